"""Sufficient statistics per variant: the only thing the analysis needs.

As in GrowthBook's gbstats, every estimate is computed from a handful of sums per
variant (n, sum y, sum y^2; for ratios also the denominator sums and the cross
product; for CUPED the covariate sums), so a million recipients reduce to a few
numbers with one vectorized pass (``np.bincount``) and results can also be
computed from a warehouse aggregate. Fields may be numpy arrays: every method is
elementwise, which the simulations in the tests rely on.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np


@dataclass(frozen=True)
class MetricStats:
    """Sums of one metric over the recipients of one variant.

    ``sum``/``sum_sq`` are of the value (numerator for a ratio); ``den_*`` and
    ``cross_sum`` (sum num*den) only for ratio metrics; ``x_*`` and ``xy_sum`` are
    the pre-period covariate for CUPED.
    """

    n: float
    sum: float
    sum_sq: float
    den_sum: float | None = None
    den_sum_sq: float | None = None
    cross_sum: float | None = None
    x_sum: float | None = None
    x_sum_sq: float | None = None
    xy_sum: float | None = None

    @classmethod
    def from_binary(cls, n, successes) -> "MetricStats":
        return cls(n=n, sum=successes, sum_sq=successes)

    @classmethod
    def from_mean_sd(cls, n, mean, sd) -> "MetricStats":
        """From a reported mean and sample standard deviation (ddof=1)."""
        n = np.asarray(n, dtype=float)
        total = n * mean
        return cls(n=n, sum=total, sum_sq=sd**2 * (n - 1) + total * mean)

    @property
    def is_ratio(self) -> bool:
        return self.den_sum is not None

    @property
    def has_covariate(self) -> bool:
        return self.x_sum is not None

    def without_covariate(self) -> "MetricStats":
        return replace(self, x_sum=None, x_sum_sq=None, xy_sum=None)

    # --- moments (ddof=1) -------------------------------------------------
    @property
    def mean_value(self):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.divide(self.sum, self.n)

    @property
    def var_value(self):
        return _sample_cov(self.n, self.sum, self.sum, self.sum_sq)

    @property
    def var_den(self):
        return _sample_cov(self.n, self.den_sum, self.den_sum, self.den_sum_sq)

    @property
    def cov_value_den(self):
        return _sample_cov(self.n, self.sum, self.den_sum, self.cross_sum)

    @property
    def var_x(self):
        return _sample_cov(self.n, self.x_sum, self.x_sum, self.x_sum_sq)

    @property
    def cov_value_x(self):
        return _sample_cov(self.n, self.sum, self.x_sum, self.xy_sum)

    # --- the estimate of the metric and its variance ------------------------
    @property
    def mean(self):
        """The metric: mean per recipient, or sum(num)/sum(den) for a ratio."""
        if self.is_ratio:
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.divide(self.sum, self.den_sum)
        return self.mean_value

    @property
    def variance_of_mean(self):
        """Variance of ``mean``; for a ratio by the delta method (Deng et al. 2018, eq. 3)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            if not self.is_ratio:
                return np.divide(self.var_value, self.n)
            mu_y = self.mean_value
            mu_x = np.divide(self.den_sum, self.n)
            unit = (
                self.var_value / mu_x**2
                - 2.0 * mu_y * self.cov_value_den / mu_x**3
                + mu_y**2 * self.var_den / mu_x**4
            )
            return np.divide(unit, self.n)


def _sample_cov(n, sum_a, sum_b, sum_ab):
    with np.errstate(divide="ignore", invalid="ignore"):
        n = np.asarray(n, dtype=float)
        return (np.asarray(sum_ab, dtype=float) - np.asarray(sum_a, dtype=float) * sum_b / n) / (n - 1.0)


def grouped_sums(codes: np.ndarray, n_groups: int, values: np.ndarray) -> np.ndarray:
    """Sum of ``values`` per group code (one vectorized pass)."""
    return np.bincount(codes, weights=values, minlength=n_groups)


def metric_stats_by_group(
    codes: np.ndarray,
    n_groups: int,
    value: np.ndarray,
    denominator: np.ndarray | None = None,
    covariate: np.ndarray | None = None,
) -> MetricStats:
    """Sufficient statistics of one metric for every group at once (arrays of length n_groups)."""
    counts = np.bincount(codes, minlength=n_groups).astype(float)
    fields = dict(
        n=counts,
        sum=grouped_sums(codes, n_groups, value),
        sum_sq=grouped_sums(codes, n_groups, value * value),
    )
    if denominator is not None:
        fields.update(
            den_sum=grouped_sums(codes, n_groups, denominator),
            den_sum_sq=grouped_sums(codes, n_groups, denominator * denominator),
            cross_sum=grouped_sums(codes, n_groups, value * denominator),
        )
    if covariate is not None:
        fields.update(
            x_sum=grouped_sums(codes, n_groups, covariate),
            x_sum_sq=grouped_sums(codes, n_groups, covariate * covariate),
            xy_sum=grouped_sums(codes, n_groups, value * covariate),
        )
    return MetricStats(**fields)


def pooled(stats: MetricStats) -> MetricStats:
    """Sum grouped statistics over all groups (e.g. all variants together)."""
    total = {}
    for name in MetricStats.__dataclass_fields__:
        value = getattr(stats, name)
        total[name] = None if value is None else float(np.sum(value))
    return MetricStats(**total)
