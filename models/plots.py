"""Figures a reviewer looks at in MLflow (matplotlib Figures, no pyplot)."""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from models.metrics import cumulative_gain


def _subplots(nrows: int = 1, ncols: int = 1, figsize=(5, 5), **kw):
    """A bare Figure: no pyplot state and no backend switch (renders headless and inline alike)."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, **kw)


def roc(y, curves: dict[str, np.ndarray]):
    from sklearn.metrics import roc_curve

    fig, ax = _subplots(figsize=(5, 5))
    for label, p in curves.items():
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, label=label)
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (test period)")
    ax.legend(loc="lower right")
    return fig


def precision_recall(y, curves: dict[str, np.ndarray]):
    from sklearn.metrics import precision_recall_curve

    fig, ax = _subplots(figsize=(5, 5))
    for label, p in curves.items():
        prec, rec, _ = precision_recall_curve(y, p)
        ax.plot(rec, prec, label=label)
    ax.axhline(np.mean(y), ls=":", color="grey", label="base rate")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall (test period)")
    ax.legend(loc="upper right")
    return fig


def calibration(y, curves: dict[str, np.ndarray], n_bins: int = 10):
    fig, ax = _subplots(figsize=(5, 5))
    y = np.asarray(y, dtype=float)
    top = 0.0
    for label, p in curves.items():
        p = np.asarray(p, dtype=float)
        qs = np.unique(np.quantile(p, np.linspace(0, 1, n_bins + 1)))
        b = np.clip(np.searchsorted(qs, p, side="right") - 1, 0, len(qs) - 2)
        n = np.bincount(b, minlength=len(qs) - 1)
        keep = n > 0
        mp = np.bincount(b, weights=p, minlength=len(qs) - 1)[keep] / n[keep]
        my = np.bincount(b, weights=y, minlength=len(qs) - 1)[keep] / n[keep]
        ax.plot(mp, my, "o-", label=label)
        top = max(top, mp.max(), my.max())
    ax.plot([0, top], [0, top], ":", color="grey", label="perfect")
    ax.set(xlabel="predicted probability (decile mean)", ylabel="observed rate", title="Calibration (test period)")
    ax.legend(loc="upper left")
    return fig


def gain_and_lift(y, curves: dict[str, np.ndarray]):
    fig, (a1, a2) = _subplots(1, 2, figsize=(10, 4.5))
    for label, p in curves.items():
        share, captured = cumulative_gain(y, p)
        a1.plot(share, captured, label=label)
        with np.errstate(divide="ignore", invalid="ignore"):
            lift = np.where(share > 0, captured / share, np.nan)
        top = share >= 0.01  # below 1% of contacts the lift is a handful of rows: noise that sets the y scale
        a2.plot(share[top], lift[top], label=label)
    a1.plot([0, 1], [0, 1], ":", color="grey", label="random")
    a1.set(xlabel="share of contacts targeted", ylabel="share of conversions captured", title="Cumulative gain")
    a2.axhline(1.0, ls=":", color="grey")
    a2.set(xlabel="share of contacts targeted", ylabel="lift over random", title="Lift (from the top 1%)")
    a1.legend(loc="lower right")
    return fig


def importance(names: list[str], gains: np.ndarray, top: int = 25):
    order = np.argsort(gains)[::-1][:top][::-1]
    fig, ax = _subplots(figsize=(6, 0.28 * len(order) + 1.2))
    ax.barh([names[i] for i in order], np.asarray(gains)[order])
    ax.set(xlabel="total gain", title="Global feature importance")
    fig.tight_layout()
    return fig


def hour_of_week_heatmap(rows: dict[str, np.ndarray], value_label: str = "predicted P(open within 24 h)"):
    """One 7 x 24 panel per entry (predicted P(open within 24 h) by local send hour), colour bar labelled."""
    n = len(rows)
    fig, axes = _subplots(n, 1, figsize=(9, 2.2 * n), squeeze=False)
    days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    for ax, (label, grid) in zip(axes[:, 0], rows.items()):
        im = ax.imshow(np.asarray(grid).reshape(7, 24), aspect="auto", cmap="viridis")
        ax.set_yticks(range(7), days)
        ax.set_xticks(range(0, 24, 3), [f"{h:02d}:00" for h in range(0, 24, 3)])
        ax.set_title(label, fontsize=9)
        bar = fig.colorbar(im, ax=ax, fraction=0.03, pad=0.02)
        bar.set_label(value_label, fontsize=7)
        bar.ax.tick_params(labelsize=7)
    axes[-1, 0].set_xlabel("local hour of the send")
    fig.tight_layout()
    return fig


# bars named like these are references, drawn apart from the models compared
REFERENCE_BARS = {"oracle": "0.55", "random": "0.75"}


def bars(title: str, values: dict[str, float], ylabel: str):
    """Horizontal bars, one per model or baseline, each labelled with its value (names never overlap).

    `ylabel` names the measured quantity (the value axis). "ours" is highlighted; the oracle (the
    ceiling no model can pass) is grey."""
    names = list(values)
    vals = np.asarray([values[k] for k in names], dtype=float)
    fig, ax = _subplots(figsize=(7, 0.45 * len(names) + 1.3))
    colors = ["tab:orange" if k == "ours" else REFERENCE_BARS.get(k, "tab:blue") for k in names]
    y = np.arange(len(names))[::-1]
    drawn = ax.barh(y, vals, color=colors)
    ax.set_yticks(y, names)
    span = float(np.nanmax(np.abs(vals))) if len(vals) and np.isfinite(vals).any() else 1.0
    ax.bar_label(drawn, labels=[_value_text(v, span) for v in vals], padding=3, fontsize=8)
    low = min(0.0, float(np.nanmin(vals))) if len(vals) else 0.0
    ax.set_xlim(low * 1.25, max(0.0, float(np.nanmax(vals)) if len(vals) else 1.0) * 1.25 + 1e-12)
    ax.axvline(0.0, color="0.3", lw=0.8)
    ax.set(title=title, xlabel=ylabel)
    fig.tight_layout()
    return fig


def _value_text(v: float, span: float) -> str:
    if not np.isfinite(v):
        return "n/a"
    return f"{v:.4f}" if span <= 1 else f"{v:,.2f}" if span < 100 else f"{v:,.0f}"
