"""Watching a running test: always-valid results at successive looks over time.

Sorts the recipients by a time column, accumulates each variant's sufficient
statistics up to every look (vectorized cumulative sums), and at each look gives
the fixed-horizon p-value (invalid when peeked at) next to the mSPRT
always-valid p-value (running minimum) and the confidence sequence (running
intersection) of Johari et al. (2017, 2022); see ``sequential``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from experiments.abtest import frequentist, sequential
from experiments.abtest.metrics import MetricSpec, parse_metric
from experiments.abtest.settings import AnalysisSettings
from experiments.abtest.sufficient import MetricStats
from experiments.abtest.table import metric_values, numeric_column, require_columns


def _cumulative(values: np.ndarray, mask: np.ndarray, ends: np.ndarray) -> np.ndarray:
    return np.cumsum(np.where(mask, values, 0.0))[ends - 1]


def sequential_history(
    df: pd.DataFrame, variant: str, control: str, metric: MetricSpec | str, time_column: str,
    looks: int = 20, settings: AnalysisSettings | None = None,
) -> pd.DataFrame:
    """One row per look x treatment variant: n, lift, fixed p, always-valid p, confidence sequence."""
    settings = settings or AnalysisSettings(sequential=True)
    metric = parse_metric(metric) if isinstance(metric, str) else metric
    require_columns(df.columns, [variant, time_column, *metric.columns], source="data")
    if looks < 1:
        raise ValueError(f"looks must be >= 1, got {looks}")
    order = np.argsort(df[time_column].to_numpy(), kind="stable")
    data = df.iloc[order]
    labels = data[variant].astype(str).to_numpy()
    if str(control) not in set(labels):
        raise ValueError(f"control {control!r} not found in column {variant!r}")
    y = metric_values(data, metric)
    den = numeric_column(data, metric.denominator, "denominator") if metric.denominator else None
    ends = np.unique(np.ceil(np.linspace(0, len(data), looks + 1)[1:]).astype(int))
    times = data[time_column].to_numpy()[ends - 1]

    def stats_for(name: str) -> MetricStats:
        mask = labels == name
        fields = dict(n=_cumulative(np.ones(len(y)), mask, ends), sum=_cumulative(y, mask, ends),
                      sum_sq=_cumulative(y * y, mask, ends))
        if den is not None:
            fields.update(den_sum=_cumulative(den, mask, ends), den_sum_sq=_cumulative(den * den, mask, ends),
                          cross_sum=_cumulative(y * den, mask, ends))
        return MetricStats(**fields)

    c = stats_for(str(control))
    rows = []
    for name in sorted(set(labels) - {str(control)}):
        t = stats_for(name)
        with np.errstate(divide="ignore", invalid="ignore"):
            estimate = t.mean - c.mean
            variance = t.variance_of_mean + c.variance_of_mean
            df_w = frequentist.welch_df(t.variance_of_mean, t.n, c.variance_of_mean, c.n)
            fixed_p = frequentist.p_value(estimate, np.sqrt(variance), "two-sided", df_w)
            unit_sd = np.sqrt((t.variance_of_mean * t.n + c.variance_of_mean * c.n) / 2.0)
            tau = settings.sequential_tau * unit_sd
            raw_p = sequential.msprt_p_value(estimate, variance, tau)
            low, high = sequential.confidence_sequence(estimate, variance, tau, settings.alpha)
        valid = np.isfinite(raw_p) & (t.n >= 2) & (c.n >= 2)
        raw_p = np.where(valid, raw_p, 1.0)
        low, high = np.where(valid, low, -np.inf), np.where(valid, high, np.inf)
        cs_low, cs_high = sequential.running_intervals(low, high)
        rows.append(pd.DataFrame({
            "look": np.arange(1, len(ends) + 1), "time": times, "metric": metric.name, "variant": name,
            "n": t.n.astype(int), "control_n": c.n.astype(int), "abs_lift": estimate,
            "fixed_p_value": fixed_p, "always_valid_p_value": sequential.running_p_values(raw_p),
            "cs_low": cs_low, "cs_high": cs_high,
        }))
    return pd.concat(rows, ignore_index=True)


def plot_sequential(history: pd.DataFrame, alpha: float = 0.05):
    """Confidence sequence of the lift over the looks, and fixed vs always-valid p-values."""
    from experiments.abtest.plots import _figure

    fig, (top, bottom) = _figure(2, 2.8)
    for name, part in history.groupby("variant"):
        line = top.plot(part["look"], part["abs_lift"], marker=".", label=f"{name} lift")[0]
        finite = np.isfinite(part["cs_low"]) & np.isfinite(part["cs_high"])
        top.fill_between(part["look"][finite], part["cs_low"][finite], part["cs_high"][finite],
                         color=line.get_color(), alpha=0.2)
        bottom.plot(part["look"], part["always_valid_p_value"], color=line.get_color(), label=f"{name} always valid")
        bottom.plot(part["look"], part["fixed_p_value"], color=line.get_color(), ls=":", label=f"{name} fixed (peeking)")
    top.axhline(0.0, color="0.3", lw=1, ls="--")
    top.set_title(f"{history['metric'].iloc[0]}: absolute lift with its {1 - alpha:.0%} confidence sequence",
                  fontsize=10)
    bottom.axhline(alpha, color="tab:red", lw=1, ls="--")
    bottom.set_yscale("log")
    bottom.set_xlabel("look")
    bottom.set_title("p-values at each look", fontsize=10)
    top.legend(fontsize=7)
    bottom.legend(fontsize=7)
    fig.tight_layout()
    return fig
