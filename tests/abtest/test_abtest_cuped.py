"""CUPED (Deng et al. 2013) vs an independent per-unit computation; variance reduction reported."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from abtest_fixtures import recipient_table
from experiments.abtest import analyze
from experiments.abtest.cuped import cuped_adjust
from experiments.abtest.sufficient import MetricStats


def test_cuped_equals_welch_on_adjusted_values_and_reports_reduction():
    rho = 0.8
    df = recipient_table(n=10000, seed=21, rho_pre=rho)
    plain = analyze(df, "variant", "a", ["score:continuous"]).record("score", "b")
    adjusted = analyze(df, "variant", "a", ["score:continuous"], covariate="pre").record("score", "b")
    # independent: theta from np.cov on all units, y - theta (x - mean x), then Welch's t
    y, x = df.score.to_numpy(), df.pre.to_numpy()
    theta = np.cov(y, x)[0, 1] / np.var(x, ddof=1)
    y_adj = y - theta * (x - x.mean())
    b, a = (df.variant == "b").to_numpy(), (df.variant == "a").to_numpy()
    welch = stats.ttest_ind(y_adj[b], y_adj[a], equal_var=False)
    assert adjusted.cuped and adjusted.abs_lift == pytest.approx(y_adj[b].mean() - y_adj[a].mean())
    assert adjusted.p_value == pytest.approx(welch.pvalue, rel=1e-8)
    # the variance of the lift shrinks by about rho^2 and the analysis says so
    assert adjusted.variance_reduction == pytest.approx(rho**2, abs=0.04)
    width = lambda r: r.abs_ci_high - r.abs_ci_low
    assert width(adjusted) / width(plain) == pytest.approx(np.sqrt(1 - adjusted.variance_reduction), rel=0.02)


def test_cuped_does_nothing_useful_with_an_unrelated_covariate():
    df = recipient_table(n=10000, seed=22, rho_pre=0.0)
    r = analyze(df, "variant", "a", ["score:continuous"], covariate="pre").record("score", "b")
    assert abs(r.variance_reduction) < 0.01


def test_cuped_keeps_aa_coverage():
    """1,000 simulated A/A tests with a correlated covariate: 95% CUPED intervals still cover 0."""
    rng = np.random.default_rng(4)
    runs, n = 1000, 300
    x = rng.normal(0, 1, (runs, 2, n))
    y = 5 + 2 * x + rng.normal(0, 1, (runs, 2, n))
    covered = []
    stats_ = MetricStats(n=np.full((runs, 2), n), sum=y.sum(2), sum_sq=(y**2).sum(2), x_sum=x.sum(2),
                         x_sum_sq=(x**2).sum(2), xy_sum=(x * y).sum(2))
    for i in range(runs):  # cuped_adjust pools over the variants of one test
        one = MetricStats(**{k: getattr(stats_, k)[i] for k in ("n", "sum", "sum_sq", "x_sum", "x_sum_sq", "xy_sum")})
        adj = cuped_adjust(one)
        diff = adj.means[1] - adj.means[0]
        se = np.sqrt(adj.variances_of_mean.sum())
        covered.append(abs(diff) <= 1.96 * se)
    assert 0.93 <= np.mean(covered) <= 0.97
