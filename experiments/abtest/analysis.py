"""The analysis entry point: table or sufficient statistics in, result records out.

    from experiments.abtest import analyze, AnalysisSettings
    result = analyze(df, variant="variant", control="a",
                     metrics=["open:binary", "revenue:continuous", "cto:ratio(click,open)"],
                     guardrails=["unsubscribe:binary"], covariate="pre_opens",
                     split={"a": 0.5, "b": 0.5}, settings=AnalysisSettings(sequential=True))
    result.to_frame()
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from experiments.abtest import bayesian, frequentist, sequential
from experiments.abtest.cuped import cuped_adjust
from experiments.abtest.metrics import MetricSpec, parse_metric
from experiments.abtest.multiple_testing import adjust, benjamini_hochberg, holm
from experiments.abtest.results import AnalysisResult, LiftRecord, VariantSummary
from experiments.abtest.settings import AnalysisSettings
from experiments.abtest.srm import srm_test, validate_split
from experiments.abtest.sufficient import MetricStats
from experiments.abtest.table import VariantTable, needed_columns, read_table, summarize


def metric_specs(metrics, guardrails=(), winsorize: float | None = None) -> list[MetricSpec]:
    """Accept MetricSpec objects or 'COL:kind' strings (guardrails: one-sided for harm)."""
    specs = [m if isinstance(m, MetricSpec) else parse_metric(m, winsorize=winsorize) for m in metrics]
    specs += [g if isinstance(g, MetricSpec) else parse_metric(g, guardrail=True) for g in guardrails]
    return specs


def analyze(
    data: pd.DataFrame | str | Path,
    variant: str,
    control: str,
    metrics,
    settings: AnalysisSettings | None = None,
    *,
    guardrails=(),
    covariate: str | None = None,
    split: dict[str, float] | None = None,
    winsorize: float | None = None,
) -> AnalysisResult:
    """Analyse a per-recipient table (DataFrame, or a CSV/Parquet path)."""
    specs = metric_specs(metrics, guardrails, winsorize)
    split = validate_split(split) if split is not None else None
    if isinstance(data, (str, Path)):
        data = read_table(data, needed_columns(variant, specs, covariate))
    planned = tuple(split) if split else ()
    table = summarize(data, variant, control, specs, covariate=covariate, extra_variants=planned)
    return analyze_table(table, specs, settings or AnalysisSettings(), split=split)


def analyze_statistics(
    stats: dict[str, dict[str, MetricStats]],
    control: str,
    metrics: list[MetricSpec],
    settings: AnalysisSettings | None = None,
    split: dict[str, float] | None = None,
) -> AnalysisResult:
    """Analyse given sufficient statistics: ``stats[metric_name][variant] -> MetricStats``."""
    if not metrics:
        raise ValueError("at least one metric is required")
    variants: list[str] = []
    for metric in metrics:
        if metric.name not in stats:
            raise ValueError(f"no statistics given for metric {metric.name!r}")
        variants += [v for v in stats[metric.name] if v not in variants]
    if control not in variants:
        raise ValueError(f"control {control!r} not found; variants given: {variants}")
    variants = [control] + sorted(set(variants) - {control})
    if len(variants) < 2:
        raise ValueError(f"need at least two variants, got {variants}")
    stacked = {}
    for metric in metrics:
        per_variant = stats[metric.name]
        missing = [v for v in variants if v not in per_variant]
        if missing:
            raise ValueError(f"metric {metric.name!r}: no statistics for variants {missing}")
        fields = {}
        for name in MetricStats.__dataclass_fields__:
            values = [getattr(per_variant[v], name) for v in variants]
            fields[name] = None if values[0] is None else np.array(values, dtype=float)
        stacked[metric.name] = MetricStats(**fields)
    has_cov = any(s.has_covariate for s in stacked.values())
    table = VariantTable(tuple(variants), control, stacked, covariate="covariate" if has_cov else None)
    return analyze_table(table, metrics, settings or AnalysisSettings(), split=split)


def analyze_table(
    table: VariantTable, metrics: list[MetricSpec], settings: AnalysisSettings, split=None
) -> AnalysisResult:
    counts = table.counts
    srm = srm_test(dict(zip(table.variants, counts)), split, settings.srm_threshold)
    warnings = []
    if srm.mismatch:
        warnings.append(
            f"sample-ratio mismatch (chi-square p = {srm.p_value:.2g} < {srm.threshold}): "
            "the assignment may be broken; do not trust the lifts"
        )
    empty = [v for v, n in zip(table.variants, counts) if n < 2]
    if counts[0] < 2:
        raise ValueError(f"control {table.control!r} has fewer than 2 units")
    if empty:
        warnings.append(f"variants {empty} have fewer than 2 units and are not compared")
    records: list[LiftRecord] = []
    summaries: list[VariantSummary] = []
    for metric in metrics:
        stats = table.stats[metric.name]
        rows, summ = _analyze_metric(metric, stats, table, settings, warnings)
        records += rows
        summaries += summ
    records = _with_adjusted_p_values(records, settings)
    return AnalysisResult(
        records=records, summaries=summaries, srm=srm, settings=settings, control=table.control,
        variants=table.variants, covariate=table.covariate, warnings=warnings,
    )


def _analyze_metric(metric, stats: MetricStats, table: VariantTable, settings, warnings):
    means, variances = np.asarray(stats.mean, dtype=float), np.asarray(stats.variance_of_mean, dtype=float)
    raw_variances = variances
    use_cuped = stats.has_covariate and not stats.is_ratio
    if stats.has_covariate and stats.is_ratio:
        warnings.append(f"metric {metric.name!r}: CUPED is not applied to ratio metrics")
    if use_cuped:
        adj = cuped_adjust(stats)
        means, variances = adj.means, adj.variances_of_mean
    n = np.asarray(stats.n, dtype=float)
    z = sps.norm.ppf(1.0 - settings.alpha / 2.0)
    summaries = []
    for i, name in enumerate(table.variants):
        if n[i] < 2:
            continue
        if metric.kind == "binary" and not use_cuped:
            posterior = bayesian.beta_posterior(n[i], float(np.asarray(stats.sum)[i]), settings.beta_prior)
        elif metric.kind == "binary":  # a CUPED-adjusted rate: keep it on [0, 1]
            posterior = bayesian.beta_from_moments(means[i], variances[i])
        else:
            posterior = bayesian.normal_posterior(means[i], variances[i])
        sd = float(np.sqrt(variances[i]))
        summaries.append(VariantSummary(metric.name, name, int(n[i]), float(means[i]),
                                        float(means[i] - z * sd), float(means[i] + z * sd), posterior))
    if len(summaries) >= 2 and all(np.isfinite(s.posterior.b) and s.posterior.b > 0 for s in summaries):
        best = bayesian.chance_to_be_best([s.posterior for s in summaries], metric.higher_is_better)
        summaries = [replace(s, chance_to_be_best=float(b)) for s, b in zip(summaries, best)]

    if metric.guardrail:
        alternative = "less" if metric.higher_is_better else "greater"
    else:
        alternative = settings.alternative
    m_c, v_c = means[0], variances[0]
    if m_c == 0:
        warnings.append(f"metric {metric.name!r}: the control mean is 0, so relative lifts are undefined")
    if np.all(variances[n >= 2] == 0):
        warnings.append(f"metric {metric.name!r}: no variation in any variant, nothing to test")
    records = []
    for i in range(1, len(table.variants)):
        if n[i] < 2:
            continue
        m_t, v_t = means[i], variances[i]
        df = frequentist.welch_df(v_t, n[i], v_c, n[0])
        absolute = frequentist.absolute_lift(m_t, v_t, m_c, v_c, settings.alpha, alternative, df)
        relative = frequentist.relative_lift(m_t, v_t, m_c, v_c, settings.alpha, alternative, df)
        p = float(frequentist.p_value(absolute.estimate, absolute.se, alternative, df))
        if metric.kind == "binary" and not use_cuped:  # with CUPED: the adjusted normal approximation
            bayes = bayesian.binary_lift(
                n[i], float(np.asarray(stats.sum)[i]), n[0], float(np.asarray(stats.sum)[0]),
                settings.beta_prior, settings.alpha, metric.higher_is_better,
            )
        else:
            bayes = bayesian.normal_lift(m_t, v_t, m_c, v_c, settings.effect_prior_sd, settings.alpha,
                                         metric.higher_is_better)
        seq = {}
        if settings.sequential:
            unit_sd = np.sqrt((raw_variances[i] * n[i] + raw_variances[0] * n[0]) / 2.0)  # per recipient
            tau = settings.sequential_tau * unit_sd
            var_abs = v_t + v_c
            low, high = sequential.confidence_sequence(absolute.estimate, var_abs, tau, settings.alpha)
            with np.errstate(divide="ignore", invalid="ignore"):
                rel_low, rel_high = sequential.confidence_sequence(
                    relative.estimate, relative.se**2, tau / abs(m_c), settings.alpha
                )
            seq = dict(
                seq_p_value=float(sequential.msprt_p_value(absolute.estimate, var_abs, tau)),
                seq_abs_low=float(low), seq_abs_high=float(high),
                seq_rel_low=float(rel_low), seq_rel_high=float(rel_high),
            )
        records.append(LiftRecord(
            metric=metric.name, kind=metric.kind, guardrail=metric.guardrail,
            higher_is_better=metric.higher_is_better, variant=table.variants[i], control=table.control,
            n=int(n[i]), control_n=int(n[0]), mean=float(m_t), control_mean=float(m_c),
            abs_lift=float(absolute.estimate), abs_ci_low=float(absolute.ci_low), abs_ci_high=float(absolute.ci_high),
            rel_lift=float(relative.estimate), rel_ci_low=float(relative.ci_low), rel_ci_high=float(relative.ci_high),
            alternative=alternative, p_value=p, p_holm=None, p_bh=None, p_adjusted=None,
            significant=bool(p < settings.alpha), harm=bool(p < settings.alpha) if metric.guardrail else None,
            chance_to_beat=bayes.chance_to_beat, expected_loss=bayes.expected_loss,
            post_rel_mean=bayes.rel_mean, post_rel_low=bayes.rel_low, post_rel_high=bayes.rel_high,
            cuped=use_cuped,  # reduction of the variance of the lift estimate
            variance_reduction=float(1.0 - (v_t + v_c) / (raw_variances[i] + raw_variances[0])) if use_cuped else None,
            winsor_cap=table.winsor_caps.get(metric.name), **seq,
        ))
    return records, summaries


def _with_adjusted_p_values(records: list[LiftRecord], settings: AnalysisSettings) -> list[LiftRecord]:
    """Holm and BH over the decision metrics (guardrails stay unadjusted)."""
    family = [i for i, r in enumerate(records) if not r.guardrail and np.isfinite(r.p_value)]
    if not family:
        return records
    p = np.array([records[i].p_value for i in family])
    p_holm, p_bh = holm(p), benjamini_hochberg(p)
    chosen = {"holm": p_holm, "bh": p_bh, "none": p}[settings.correction]
    seq_adjusted = [None] * len(family)
    if settings.sequential:  # as Optimizely's Stats Engine: the correction on always-valid p-values
        seq_adjusted = adjust(np.array([records[i].seq_p_value for i in family]), settings.correction)
    out = list(records)
    for j, i in enumerate(family):
        out[i] = replace(records[i], p_holm=float(p_holm[j]), p_bh=float(p_bh[j]),
                         p_adjusted=float(chosen[j]), significant=bool(chosen[j] < settings.alpha),
                         seq_p_adjusted=None if seq_adjusted[j] is None else float(seq_adjusted[j]))
    return out
