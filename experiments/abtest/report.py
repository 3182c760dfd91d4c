"""Readable rich tables of analysis results and design plans."""
from __future__ import annotations

import math

from experiments.abtest.results import AnalysisResult


def _num(value, fmt: str = ".4g") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return format(value, fmt)


def _interval(low, high, pct: bool) -> str:
    fmt = "+.2%" if pct else "+.4g"
    lo = "-inf" if math.isinf(low) else format(low, fmt)
    hi = "inf" if math.isinf(high) else format(high, fmt)
    return f"[{lo}, {hi}]"


def _verdict(r) -> str:
    if r.guardrail:
        return "[red]harm[/red]" if r.harm else "ok"
    if not r.significant:
        return ""
    return "[green]win[/green]" if (r.abs_lift > 0) == r.higher_is_better else "[red]loss[/red]"


def analysis_tables(result: AnalysisResult):
    """Frequentist table, and Bayesian (+ sequential) table."""
    from rich.table import Table

    level = f"{1 - result.settings.alpha:.0%}"
    freq = Table(title=f"Lift vs control {result.control!r} ({level} intervals)", title_justify="left")
    for name in ("metric", "variant", "n", "control", "variant mean", "relative lift [CI]", "p",
                 f"p {result.settings.correction}", ""):
        freq.add_column(name, no_wrap=True, justify="left" if name in ("metric", "variant") else "right")
    bayes = Table(title="Bayesian" + (" and always-valid (mSPRT)" if result.settings.sequential else ""),
                  title_justify="left")
    columns = ["metric", "variant", "absolute lift [CI]", "P(beat control)", "risk"]
    if result.settings.sequential:
        columns += ["seq p", "relative lift conf. sequence"]
    for name in columns:
        bayes.add_column(name, no_wrap=True, justify="left" if name in ("metric", "variant") else "right")
    for r in result.records:
        label = r.metric + ("*" if r.guardrail else "") + (" (cuped)" if r.cuped else "")
        freq.add_row(
            label, r.variant, f"{r.n:,}", _num(r.control_mean), _num(r.mean),
            f"{r.rel_lift:+.2%} {_interval(r.rel_ci_low, r.rel_ci_high, True)}",
            _num(r.p_value, ".3g"), _num(r.p_adjusted, ".3g"), _verdict(r),
        )
        row = [label, r.variant, f"{r.abs_lift:+.4g} {_interval(r.abs_ci_low, r.abs_ci_high, False)}",
               f"{r.chance_to_beat:.1%}", _num(r.expected_loss, ".3g")]
        if result.settings.sequential:
            row += [_num(r.seq_p_value, ".3g"), _interval(r.seq_rel_low, r.seq_rel_high, True)]
        bayes.add_row(*row)
    return freq, bayes


def print_analysis(result: AnalysisResult, console) -> None:
    for table in analysis_tables(result):
        console.print(table)
    if any(r.guardrail for r in result.records):
        console.print("* guardrail: one-sided test for harm, not adjusted for multiplicity")
    srm = result.srm
    observed = ", ".join(f"{v}={o:,}" for v, o in zip(srm.variants, srm.observed))
    status = "[bold red]MISMATCH[/bold red]" if srm.mismatch else "ok"
    console.print(f"SRM check: {observed}; chi2 = {srm.chi2:.3g}, p = {srm.p_value:.3g} -> {status}")
    reductions = [(r.metric, r.variant, r.variance_reduction) for r in result.records if r.cuped]
    if reductions:
        text = ", ".join(f"{m}/{v} {vr:.1%}" for m, v, vr in reductions)
        console.print(f"CUPED on {result.covariate!r}: variance reduction {text}")
    if len(result.variants) > 2:
        for metric in dict.fromkeys(s.metric for s in result.summaries):
            best = [(s.variant, s.chance_to_be_best) for s in result.summaries
                    if s.metric == metric and s.chance_to_be_best is not None]
            if best:
                console.print(f"P(best) {metric}: " + ", ".join(f"{v} {p:.1%}" for v, p in best))
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")


def sequential_table(histories, alpha: float):
    """Per metric x variant, after replaying the looks: always-valid p and confidence sequence."""
    from rich.table import Table

    table = Table(title="Sequential replay (mSPRT, running over all looks)", title_justify="left")
    for name in ("metric", "variant", "looks", "n", "always-valid p", "abs lift conf. sequence", "first look p<alpha"):
        table.add_column(name, no_wrap=True, justify="left" if name in ("metric", "variant") else "right")
    for history in histories:
        for variant, part in history.groupby("variant"):
            last = part.iloc[-1]
            hits = part.loc[part.always_valid_p_value < alpha, "look"]
            table.add_row(str(last.metric), str(variant), str(int(last.look)), f"{int(last.n):,}",
                          _num(float(last.always_valid_p_value), ".3g"),
                          _interval(float(last.cs_low), float(last.cs_high), False),
                          str(int(hits.iloc[0])) if len(hits) else "-")
    return table


def key_value_table(title: str, values: dict):
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_header=False)
    table.add_column("field")
    table.add_column("value", justify="right")
    for key, value in values.items():
        table.add_row(key, _num(value) if isinstance(value, float) else str(value))
    return table


def frame_table(df, title: str):
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in df.columns:
        table.add_column(str(column))
    for row in df.itertuples(index=False):
        table.add_row(*(_cell(v) for v in row))
    return table


def _cell(value) -> str:
    import pandas as pd

    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M %Z")
    return _num(value) if isinstance(value, float) else str(value)
