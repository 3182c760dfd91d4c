"""Frequentist lift of a treatment over the control from (mean, variance of mean) pairs.

Absolute lift: difference of means with the Welch-Satterthwaite t reference
(equals scipy's ``ttest_ind(equal_var=False)`` on per-recipient data). Relative
lift m_t/m_c - 1 with the delta-method variance
v_t/m_c^2 + m_t^2 v_c/m_c^4 (as gbstats). Every function is elementwise over
numpy arrays.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Lift:
    estimate: object
    se: object
    ci_low: object
    ci_high: object


def welch_df(var_t, n_t, var_c, n_c):
    """Welch-Satterthwaite degrees of freedom from variances of the two means."""
    with np.errstate(divide="ignore", invalid="ignore"):
        df = (var_t + var_c) ** 2 / (var_t**2 / (n_t - 1.0) + var_c**2 / (n_c - 1.0))
    return np.where(np.isfinite(df), df, np.inf)


def critical_value(alpha: float, alternative: str, df=np.inf):
    level = 1.0 - alpha / 2.0 if alternative == "two-sided" else 1.0 - alpha
    return stats.t.ppf(level, df)


def interval(estimate, se, alpha: float, alternative: str, df=np.inf) -> Lift:
    """Two-sided interval, or the one-sided bound matching the alternative."""
    crit = critical_value(alpha, alternative, df)
    low, high = estimate - crit * se, estimate + crit * se
    if alternative == "greater":
        high = np.full_like(np.asarray(high, dtype=float), np.inf)
    elif alternative == "less":
        low = np.full_like(np.asarray(low, dtype=float), -np.inf)
    return Lift(estimate=estimate, se=se, ci_low=low, ci_high=high)


def p_value(estimate, se, alternative: str, df=np.inf):
    """p-value of H0: no difference, against the given alternative."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.asarray(estimate, dtype=float) / se
    if alternative == "two-sided":
        return 2.0 * stats.t.sf(np.abs(t), df)
    if alternative == "greater":
        return stats.t.sf(t, df)
    if alternative == "less":
        return stats.t.cdf(t, df)
    raise ValueError(f"alternative must be two-sided, greater or less, got {alternative!r}")


def absolute_lift(mean_t, var_t, mean_c, var_c, alpha=0.05, alternative="two-sided", df=np.inf) -> Lift:
    return interval(mean_t - mean_c, np.sqrt(var_t + var_c), alpha, alternative, df)


def relative_lift(mean_t, var_t, mean_c, var_c, alpha=0.05, alternative="two-sided", df=np.inf) -> Lift:
    """m_t/m_c - 1 with the delta-method standard error."""
    with np.errstate(divide="ignore", invalid="ignore"):
        estimate = mean_t / mean_c - 1.0
        se = np.sqrt(var_t / mean_c**2 + mean_t**2 * var_c / mean_c**4)
    return interval(estimate, se, alpha, alternative, df)
