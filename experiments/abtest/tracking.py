"""Log an analysis as one MLflow run a reviewer can read.

The run holds the settings as parameters, a few headline metrics per decision
metric (best relative lift, smallest adjusted p-value, how many variants are
significant after the correction) and the SRM p-value, the full result as a
table artifact (`tables/ab_results.json`, one row per metric x variant, shown
as a table in the UI) and as JSON (`ab_results.json`), the lift and posterior
plots, and a description that states the verdict in words. Per-variant numbers
live in the table, not as hundreds of scalar metrics. mlflow is imported lazily
(only here), so the statistics never depend on it.
"""
from __future__ import annotations

import re
import tempfile
from pathlib import Path

from experiments.abtest.results import AnalysisResult

DEFAULT_EXPERIMENT = "ab-tests"
TABLE_COLUMNS = ["metric", "variant", "variant_name", "guardrail", "n", "mean", "control_mean", "rel_lift",
                 "rel_ci_low", "rel_ci_high", "abs_lift", "p_value", "p_adjusted", "significant", "harm",
                 "chance_to_beat", "expected_loss", "cuped", "variance_reduction", "seq_p_value"]


def _key(*parts: str) -> str:
    """MLflow keys allow alphanumerics, _ - . space / only."""
    return "/".join(re.sub(r"[^0-9A-Za-z_\-. ]", "_", str(p)) for p in parts)


def results_table(result: AnalysisResult, labels: dict | None = None):
    """One row per metric x treatment variant with the columns a reviewer compares."""
    frame = result.to_frame()
    frame["variant_name"] = frame["variant"].map(lambda v: (labels or {}).get(v, (labels or {}).get(str(v), "")))
    return frame[[c for c in TABLE_COLUMNS if c in frame.columns]]


def headline_metrics(result: AnalysisResult) -> dict[str, float]:
    """Per decision metric: best relative lift (in its better direction), smallest adjusted p, significant
    variants; per guardrail: variants flagged as harmful; the SRM p-value."""
    import math

    out = {"srm_p_value": float(result.srm.p_value), "variants": float(len(result.variants))}
    for metric in dict.fromkeys(r.metric for r in result.records):
        rows = [r for r in result.records if r.metric == metric]
        if rows[0].guardrail:
            out[_key(metric, "harmful_variants")] = float(sum(bool(r.harm) for r in rows))
            continue
        sign = 1.0 if rows[0].higher_is_better else -1.0
        lifts = [r.rel_lift for r in rows if math.isfinite(r.rel_lift)]
        if lifts:
            out[_key(metric, "best_rel_lift")] = sign * max(sign * v for v in lifts)
        adjusted = [r.p_adjusted for r in rows if r.p_adjusted is not None and math.isfinite(r.p_adjusted)]
        if adjusted:
            out[_key(metric, "min_p_adjusted")] = min(adjusted)
        out[_key(metric, "significant_variants")] = float(sum(r.significant for r in rows))
    return out


def verdict(result: AnalysisResult, labels: dict | None = None) -> str:
    """The analysis in a few markdown lines (the run's description)."""
    from experiments.abtest.plots import CORRECTION_NAMES, variant_label

    n = sum(s.n for s in result.summaries if s.metric == result.summaries[0].metric) if result.summaries else 0
    correction = CORRECTION_NAMES.get(result.settings.correction, result.settings.correction)
    lines = [f"A/B/n analysis of {n:,} recipients over {len(result.variants)} variants; control "
             f"**{variant_label(result.control, labels)}**; p-values adjusted by {correction} across the "
             f"decision metrics.",
             "SRM check: " + ("**sample-ratio mismatch, do not trust the lifts**" if result.srm.mismatch
                              else f"passed (p = {result.srm.p_value:.3g})") + "."]
    for metric in dict.fromkeys(r.metric for r in result.records):
        rows = [r for r in result.records if r.metric == metric]
        if rows[0].guardrail:
            harmed = [variant_label(r.variant, labels) for r in rows if r.harm]
            lines.append(f"- {metric} (guardrail): " + (f"harm in {', '.join(harmed)}" if harmed else "no harm"))
            continue
        winners = [r for r in rows if r.significant and (r.rel_lift > 0) == r.higher_is_better]
        if winners:
            best = max(winners, key=lambda r: r.rel_lift if r.higher_is_better else -r.rel_lift)
            lines.append(f"- {metric}: **{variant_label(best.variant, labels)}** {best.rel_lift:+.1%} "
                         f"(adjusted p = {best.p_adjusted:.3g})")
        else:
            lines.append(f"- {metric}: no variant differs significantly from the control")
    lines.append("Full table: `tables/ab_results.json`; plots under `plots/`.")
    return "\n".join(lines)


def log_analysis(
    result: AnalysisResult,
    *,
    tracking_uri: str | None = None,
    artifact_root: str | Path | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
    run_name: str | None = None,
    params: dict | None = None,
    histories: list | None = None,
    labels: dict | None = None,
) -> str:
    """Record ``result`` as one MLflow run in experiment `inbox/<experiment>`; returns the run id.

    `labels` maps variant ids to readable names (plots, table, description).
    """
    import mlflow

    from experiments.abtest.monitoring import plot_sequential
    from experiments.abtest.plots import plot_lifts, plot_posteriors
    from inbox.settings import Settings, load_settings
    from inbox.tracking import configure, describe_run

    settings = load_settings()
    settings = Settings(data_dir=settings.data_dir, tracking_uri=tracking_uri or settings.tracking_uri,
                        artifact_root=Path(artifact_root) if artifact_root else settings.artifact_root)
    client_uri = mlflow.get_tracking_uri()
    try:
        configure(settings, experiment)
        with mlflow.start_run(run_name=run_name) as run:
            mlflow.set_tag("inbox.kind", "ab_analysis")
            describe_run(verdict(result, labels))
            logged_params = {
                "control": result.control,
                "variants": ",".join(result.variants),
                "metrics": ",".join(dict.fromkeys(r.metric for r in result.records)),
                "covariate": result.covariate or "",
                **{f"settings.{k}": v for k, v in result.settings.to_dict().items()},
                **(params or {}),
            }
            mlflow.log_params({k: str(v)[:6000] for k, v in logged_params.items()})
            mlflow.log_metrics(headline_metrics(result))
            mlflow.log_table(results_table(result, labels), "tables/ab_results.json")
            mlflow.log_text(result.to_json(), "ab_results.json")
            with tempfile.TemporaryDirectory() as tmp:
                for name, plot in (("lift.png", plot_lifts), ("posteriors.png", plot_posteriors)):
                    fig = plot(result, labels=labels)
                    path = Path(tmp) / name
                    fig.savefig(path, dpi=110, bbox_inches="tight")
                    mlflow.log_artifact(str(path), "plots")
                for history in histories or []:  # sequential replays: one plot per metric
                    fig = plot_sequential(history, result.settings.alpha)
                    path = Path(tmp) / f"sequential_{_key(history['metric'].iloc[0])}.png"
                    fig.savefig(path, dpi=110, bbox_inches="tight")
                    mlflow.log_artifact(str(path), "plots")
            return run.info.run_id
    finally:
        mlflow.set_tracking_uri(client_uri)
