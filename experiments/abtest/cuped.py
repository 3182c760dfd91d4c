"""CUPED: variance reduction with a pre-experiment covariate.

Deng, Xu, Kohavi and Walker (2013), "Improving the Sensitivity of Online
Controlled Experiments by Utilizing Pre-Experiment Data", WSDM. One theta =
cov(Y, X) / var(X) estimated on all variants pooled (the treatment cannot move a
pre-period covariate), then per variant

    mean_adj = mean(Y) - theta (mean(X) - mean(X over all variants))
    var_adj  = (var(Y) - 2 theta cov(Y, X) + theta^2 var(X)) / n,

so the variance of the estimate shrinks by about rho^2 (the squared correlation).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from experiments.abtest.sufficient import MetricStats, pooled


@dataclass(frozen=True)
class CupedAdjustment:
    theta: float
    means: np.ndarray  # adjusted, per variant
    variances_of_mean: np.ndarray  # adjusted, per variant
    variance_reduction: np.ndarray  # per variant: 1 - var_adj / var_unadjusted


def cuped_adjust(stats: MetricStats) -> CupedAdjustment:
    """Adjust per-variant (array) statistics of a non-ratio metric with its covariate sums."""
    if not stats.has_covariate:
        raise ValueError("CUPED needs covariate sums (x_sum, x_sum_sq, xy_sum)")
    if stats.is_ratio:
        raise ValueError("CUPED is implemented for binary and continuous metrics, not ratios")
    total = pooled(stats)
    var_x = float(total.var_x)
    theta = float(total.cov_value_x) / var_x if var_x > 0 else 0.0
    n = np.asarray(stats.n, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_mean_all = total.x_sum / total.n
        means = stats.mean_value - theta * (np.asarray(stats.x_sum) / n - x_mean_all)
        unit_var = stats.var_value - 2.0 * theta * stats.cov_value_x + theta**2 * stats.var_x
        variances = unit_var / n
        reduction = 1.0 - variances / stats.variance_of_mean
    return CupedAdjustment(theta=theta, means=means, variances_of_mean=variances, variance_reduction=reduction)
