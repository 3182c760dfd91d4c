"""Figures of an analysis: lifts with intervals per metric, posterior densities per variant.

Both return a matplotlib Figure (no pyplot state; call ``fig.savefig`` or display it in a notebook).
In the lift plot the bar, its colour and the printed p-value all use the same, unadjusted test:
a bar is coloured when its interval excludes zero. The multiplicity-adjusted verdict (Holm or BH,
the analysis's correction) is printed beside it, so the two are never mixed in one mark.
`labels` maps a variant id to a readable name (e.g. a content id to its subject line).
"""
from __future__ import annotations

import numpy as np

from experiments.abtest.results import AnalysisResult

GOOD, BAD, NEUTRAL = "tab:green", "tab:red", "tab:blue"
CORRECTION_NAMES = {"holm": "Holm", "bh": "Benjamini-Hochberg", "none": "no correction"}


def _figure(n_panels: int, height_per_panel: float, width: float = 8.5):
    # A bare Figure: no pyplot state, no backend switch (renders headless and inline alike).
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, max(2.2, height_per_panel) * n_panels + 0.6))
    axes = fig.subplots(n_panels, 1, squeeze=False)
    return fig, axes[:, 0]


def _metrics(result: AnalysisResult) -> list[str]:
    return list(dict.fromkeys(s.metric for s in result.summaries))


def variant_label(variant: str, labels: dict | None, width: int = 28) -> str:
    """'<id> · <name>' (name shortened to `width`) when a label is known, else the id."""
    name = (labels or {}).get(variant) or (labels or {}).get(str(variant))
    if not name:
        return str(variant)
    name = str(name)
    return f"{variant} · {name if len(name) <= width else name[: width - 1] + '…'}"


def _colour(r) -> str:
    """By the drawn (unadjusted) interval: does it exclude zero, and on which side is 'better'?"""
    low, high = r.rel_ci_low, r.rel_ci_high
    above, below = np.isfinite(low) and low > 0, np.isfinite(high) and high < 0
    if not (above or below):
        return NEUTRAL
    return GOOD if above == r.higher_is_better and not r.guardrail else BAD


def plot_lifts(result: AnalysisResult, labels: dict | None = None):
    """Relative lift vs control with its unadjusted interval (and the confidence sequence, if computed)."""
    from matplotlib.lines import Line2D

    metrics = [m for m in _metrics(result) if any(r.metric == m for r in result.records)]
    level = 1 - result.settings.alpha
    fig, axes = _figure(max(1, len(metrics)), 0.8 + 0.55 * (len(result.variants) - 1))
    correction = CORRECTION_NAMES.get(result.settings.correction, result.settings.correction)
    for ax, metric in zip(axes, metrics):
        rows = [r for r in result.records if r.metric == metric]
        y = np.arange(len(rows))[::-1]
        for yi, r in zip(y, rows):
            span = [v for v in (r.rel_ci_low, r.rel_ci_high, r.rel_lift) if np.isfinite(v)]
            low = r.rel_ci_low if np.isfinite(r.rel_ci_low) else min(span) - 0.05
            high = r.rel_ci_high if np.isfinite(r.rel_ci_high) else max(span) + 0.05
            if r.seq_rel_low is not None:
                ax.plot([r.seq_rel_low, r.seq_rel_high], [yi - 0.2] * 2, color="0.6", lw=2)
            color = _colour(r)
            ax.plot([low, high], [yi, yi], color=color, lw=3)
            for bound, end, marker in ((r.rel_ci_low, low, "<"), (r.rel_ci_high, high, ">")):
                if not np.isfinite(bound):  # one-sided: the interval is open on this side
                    ax.plot([end], [yi], marker, color=color, ms=8)
            ax.plot([r.rel_lift], [yi], "o", color="black", ms=5)
            verdict = "" if r.p_adjusted is None else (
                f", adj. p={r.p_adjusted:.3g}{' ✓' if r.significant else ''}")
            ax.annotate(f"{r.rel_lift:+.1%}  p={r.p_value:.3g}{verdict}", (r.rel_lift, yi), xytext=(0, 8),
                        textcoords="offset points", ha="center", fontsize=8)
        ax.axvline(0.0, color="0.3", lw=1, ls="--")
        ax.set_yticks(y, [variant_label(r.variant, labels) for r in rows], fontsize=8)
        kind = "guardrail, one-sided" if rows and rows[0].guardrail else rows[0].alternative if rows else ""
        control = variant_label(result.control, labels)
        ax.set_title(f"{metric}: relative lift vs {control} ({kind}, unadjusted {level:.0%} interval)", fontsize=9)
        ax.xaxis.set_major_formatter(_percent())
        ax.set_ylim(-0.7, len(rows) - 0.2)
    handles = [Line2D([], [], color=GOOD, lw=3, label="interval excludes 0: better"),
               Line2D([], [], color=BAD, lw=3, label="interval excludes 0: worse"),
               Line2D([], [], color=NEUTRAL, lw=3, label="interval includes 0")]
    if any(r.seq_rel_low is not None for r in result.records):
        handles.append(Line2D([], [], color="0.6", lw=2, label="always-valid confidence sequence"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=7, frameon=False)
    fig.text(0.5, 1.0, f"p and bars: unadjusted; 'adj. p' and ✓: {correction} across the decision metrics",
             ha="center", va="top", fontsize=8, color="0.3")
    fig.tight_layout(rect=(0, 0.05, 1, 0.96))
    return fig


def plot_posteriors(result: AnalysisResult, labels: dict | None = None):
    """Posterior density of each variant's metric (Beta on [0, 1] for rates, normal otherwise)."""
    metrics = _metrics(result)
    fig, axes = _figure(max(1, len(metrics)), 2.4)
    for ax, metric in zip(axes, metrics):
        summaries = [s for s in result.summaries if s.metric == metric]
        lows, highs = zip(*(s.posterior.interval(0.9999) for s in summaries))
        x = np.linspace(min(lows), max(highs), 400)
        for s in summaries:
            ax.plot(x, s.posterior.pdf(x), label=f"{variant_label(s.variant, labels)} (mean {s.mean:.4g})")
            ax.fill_between(x, s.posterior.pdf(x), alpha=0.15)
        rate = all(s.posterior.family == "beta" for s in summaries)
        ax.set_title(f"{metric}: posterior of the {'rate' if rate else 'mean'} per variant"
                     f"{' (Beta)' if rate else ''}", fontsize=9)
        if rate:
            ax.xaxis.set_major_formatter(_percent())
        ax.set_yticks([])
        ax.set_ylabel("density", fontsize=8)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _percent():
    from matplotlib.ticker import PercentFormatter

    return PercentFormatter(xmax=1.0, decimals=1)
