"""Figures of an analysis: lifts with intervals per metric, posterior densities per variant.

Both return a matplotlib Figure (no pyplot state; call ``fig.savefig`` or display it in a notebook).
"""
from __future__ import annotations

import numpy as np

from experiments.abtest.results import AnalysisResult


def _figure(n_panels: int, height_per_panel: float):
    # A bare Figure: no pyplot state, no backend switch (renders headless and inline alike).
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, max(2.2, height_per_panel) * n_panels))
    axes = fig.subplots(n_panels, 1, squeeze=False)
    return fig, axes[:, 0]


def _metrics(result: AnalysisResult) -> list[str]:
    return list(dict.fromkeys(s.metric for s in result.summaries))


def plot_lifts(result: AnalysisResult):
    """Relative lift vs control with its interval (and the confidence sequence, if computed)."""
    metrics = [m for m in _metrics(result) if any(r.metric == m for r in result.records)]
    fig, axes = _figure(max(1, len(metrics)), 0.6 + 0.5 * (len(result.variants) - 1))
    for ax, metric in zip(axes, metrics):
        rows = [r for r in result.records if r.metric == metric]
        y = np.arange(len(rows))[::-1]
        for yi, r in zip(y, rows):
            span = [v for v in (r.rel_ci_low, r.rel_ci_high, r.rel_lift) if np.isfinite(v)]
            low = r.rel_ci_low if np.isfinite(r.rel_ci_low) else min(span) - 0.05
            high = r.rel_ci_high if np.isfinite(r.rel_ci_high) else max(span) + 0.05
            if r.seq_rel_low is not None:
                ax.plot([r.seq_rel_low, r.seq_rel_high], [yi - 0.18] * 2, color="0.6", lw=2,
                        label="confidence sequence" if yi == y[0] else None)
            good = r.p_adjusted if r.p_adjusted is not None else r.p_value
            color = "tab:red" if (r.harm or (r.significant and (r.rel_lift > 0) != r.higher_is_better)) else (
                "tab:green" if r.significant else "tab:blue")
            ax.plot([low, high], [yi, yi], color=color, lw=3)
            for bound, end, marker in ((r.rel_ci_low, low, "<"), (r.rel_ci_high, high, ">")):
                if not np.isfinite(bound):  # one-sided: the interval is open on this side
                    ax.plot([end], [yi], marker, color=color, ms=8)
            ax.plot([r.rel_lift], [yi], "o", color="black", ms=5)
            ax.annotate(f"{r.rel_lift:+.1%} (p={good:.3g})", (r.rel_lift, yi), xytext=(0, 7),
                        textcoords="offset points", ha="center", fontsize=8)
        ax.axvline(0.0, color="0.3", lw=1, ls="--")
        ax.set_yticks(y, [r.variant for r in rows])
        kind = "guardrail, one-sided" if rows and rows[0].guardrail else rows[0].alternative if rows else ""
        ax.set_title(f"{metric}: relative lift vs {result.control} ({kind}, {1 - result.settings.alpha:.0%})",
                     fontsize=10)
        ax.xaxis.set_major_formatter(_percent())
        ax.set_ylim(-0.7, len(rows) - 0.3)
        if rows and rows[0].seq_rel_low is not None:
            ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    return fig


def plot_posteriors(result: AnalysisResult):
    """Posterior density of each variant's metric (Beta for binary, normal otherwise)."""
    metrics = _metrics(result)
    fig, axes = _figure(max(1, len(metrics)), 2.4)
    for ax, metric in zip(axes, metrics):
        summaries = [s for s in result.summaries if s.metric == metric]
        lows, highs = zip(*(s.posterior.interval(0.9999) for s in summaries))
        x = np.linspace(min(lows), max(highs), 400)
        for s in summaries:
            ax.plot(x, s.posterior.pdf(x), label=f"{s.variant} (mean {s.mean:.4g})")
            ax.fill_between(x, s.posterior.pdf(x), alpha=0.15)
        ax.set_title(f"{metric}: posterior of the mean per variant", fontsize=10)
        ax.set_yticks([])
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _percent():
    from matplotlib.ticker import PercentFormatter

    return PercentFormatter(xmax=1.0, decimals=1)
