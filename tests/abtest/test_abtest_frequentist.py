"""Frequentist lifts vs independent closed forms (scipy / statsmodels) and A/A coverage."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from abtest_fixtures import recipient_table
from experiments.abtest import AnalysisSettings, MetricSpec, MetricStats, analyze, analyze_statistics
from experiments.abtest.frequentist import absolute_lift, relative_lift


@pytest.fixture(scope="module")
def table():
    return recipient_table(n=8000, seed=3, open_lift=0.02)


def _groups(df, col):
    return df.loc[df.variant == "b", col].to_numpy(float), df.loc[df.variant == "a", col].to_numpy(float)


@pytest.mark.parametrize("metric", ["open:binary", "revenue:continuous"])
def test_welch_p_value_and_interval_match_scipy_and_statsmodels(table, metric):
    column = metric.split(":")[0]
    r = analyze(table, "variant", "a", [metric]).record(column, "b")
    t, c = _groups(table, column)
    assert r.p_value == pytest.approx(stats.ttest_ind(t, c, equal_var=False).pvalue, rel=1e-9)
    low, high = CompareMeans(DescrStatsW(t), DescrStatsW(c)).tconfint_diff(alpha=0.05, usevar="unequal")
    assert (r.abs_ci_low, r.abs_ci_high) == pytest.approx((low, high), rel=1e-9)
    assert r.abs_lift == pytest.approx(t.mean() - c.mean())
    assert r.n == t.size and r.control_n == c.size


@pytest.mark.parametrize("alternative", ["greater", "less"])
def test_one_sided_tests_match_scipy(table, alternative):
    settings = AnalysisSettings(alternative=alternative)
    r = analyze(table, "variant", "a", ["revenue:continuous"], settings).record("revenue", "b")
    t, c = _groups(table, "revenue")
    assert r.p_value == pytest.approx(stats.ttest_ind(t, c, equal_var=False, alternative=alternative).pvalue, rel=1e-9)
    assert np.isinf(r.abs_ci_high if alternative == "greater" else r.abs_ci_low)


def test_relative_lift_is_the_delta_method_by_numerical_gradient(table):
    r = analyze(table, "variant", "a", ["open:binary"]).record("open", "b")
    t, c = _groups(table, "open")
    theta = np.array([t.mean(), c.mean()])
    cov = np.diag([t.var(ddof=1) / t.size, c.var(ddof=1) / c.size])
    g = lambda th: th[0] / th[1] - 1.0
    eps = 1e-7
    grad = np.array([(g(theta + eps * e) - g(theta - eps * e)) / (2 * eps) for e in np.eye(2)])
    se = np.sqrt(grad @ cov @ grad)
    df = stats.ttest_ind(t, c, equal_var=False).df
    crit = stats.t.ppf(0.975, df)
    assert r.rel_lift == pytest.approx(g(theta))
    assert (r.rel_ci_low, r.rel_ci_high) == pytest.approx((g(theta) - crit * se, g(theta) + crit * se), rel=1e-5)


def test_ratio_metric_delta_variance_matches_generic_delta_and_simulation():
    # generic delta method on the vector of means (numerator, denominator) with np.cov
    rng = np.random.default_rng(11)
    opens = rng.poisson(1.5, 3000).astype(float)
    clicks = rng.binomial(opens.astype(int), 0.2).astype(float)
    stats_ = MetricStats(n=3000, sum=clicks.sum(), sum_sq=(clicks**2).sum(), den_sum=opens.sum(),
                         den_sum_sq=(opens**2).sum(), cross_sum=(clicks * opens).sum())
    cov = np.cov(np.vstack([clicks, opens]), ddof=1) / 3000
    mu = np.array([clicks.mean(), opens.mean()])
    grad = np.array([1 / mu[1], -mu[0] / mu[1] ** 2])
    assert stats_.mean == pytest.approx(clicks.sum() / opens.sum())
    assert stats_.variance_of_mean == pytest.approx(grad @ cov @ grad, rel=1e-9)
    # and the delta variance matches the spread of the ratio over 2,000 simulated samples
    o = rng.poisson(1.5, (2000, 500)).astype(float)
    c = rng.binomial(o.astype(int), 0.2).astype(float)
    sim = MetricStats(n=500, sum=c.sum(1), sum_sq=(c**2).sum(1), den_sum=o.sum(1), den_sum_sq=(o**2).sum(1),
                      cross_sum=(c * o).sum(1))
    ratios = sim.mean
    assert np.mean(sim.variance_of_mean) == pytest.approx(ratios.var(ddof=1), rel=0.1)


def test_aa_simulation_intervals_cover_zero_at_nominal_rate():
    """2,000 A/A tests: 95% intervals (absolute and relative) cover the true zero in 93-97%."""
    rng = np.random.default_rng(2024)
    runs, n = 2000, 1500
    # binary: sufficient statistics straight from binomial counts
    s_t, s_c = rng.binomial(n, 0.08, runs), rng.binomial(n, 0.08, runs)
    t, c = MetricStats.from_binary(n, s_t), MetricStats.from_binary(n, s_c)
    for lift in (absolute_lift, relative_lift):
        res = lift(t.mean, t.variance_of_mean, c.mean, c.variance_of_mean)
        covered = np.mean((res.ci_low <= 0) & (res.ci_high >= 0))
        assert 0.93 <= covered <= 0.97, (lift.__name__, covered)
    # continuous, skewed revenue-like values (mostly zero)
    values = np.where(rng.random((runs, 2, 400)) < 0.3, rng.lognormal(2.0, 0.8, (runs, 2, 400)), 0.0)
    sums, sq = values.sum(axis=2), (values**2).sum(axis=2)
    t, c = MetricStats(400, sums[:, 0], sq[:, 0]), MetricStats(400, sums[:, 1], sq[:, 1])
    res = absolute_lift(t.mean, t.variance_of_mean, c.mean, c.variance_of_mean)
    covered = np.mean((res.ci_low <= 0) & (res.ci_high >= 0))
    assert 0.93 <= covered <= 0.97, covered


def test_guardrail_is_one_sided_for_harm_and_not_adjusted():
    rng = np.random.default_rng(5)
    df = recipient_table(n=20000, seed=5)
    harmed = (df.variant == "b").to_numpy()
    df.loc[harmed, "unsubscribe"] = (rng.random(harmed.sum()) < 0.012).astype(int)
    result = analyze(df, "variant", "a", ["open:binary"], guardrails=["unsubscribe:binary"])
    r = result.record("unsubscribe", "b")
    t, c = _groups(df, "unsubscribe")
    assert r.guardrail and r.alternative == "greater" and r.harm
    assert r.p_value == pytest.approx(stats.ttest_ind(t, c, equal_var=False, alternative="greater").pvalue, rel=1e-9)
    assert r.p_adjusted is None and r.chance_to_beat < 0.01  # lower is better: b is worse


def test_winsorizing_caps_at_percentile_of_nonzero_values(table):
    spec = MetricSpec.continuous("revenue", winsorize=0.9)
    r = analyze(table, "variant", "a", [spec]).record("revenue", "b")
    values = table.revenue.to_numpy()
    cap = np.quantile(values[values != 0], 0.9)
    capped = np.minimum(values, cap)
    assert r.winsor_cap == pytest.approx(cap)
    assert r.mean == pytest.approx(capped[(table.variant == "b").to_numpy()].mean())


def test_sufficient_statistics_input_gives_the_same_result_as_the_table(table):
    t, c = _groups(table, "revenue")
    given = {"revenue": {"a": MetricStats(c.size, c.sum(), (c**2).sum()),
                         "b": MetricStats.from_mean_sd(t.size, t.mean(), t.std(ddof=1))}}
    from_stats = analyze_statistics(given, "a", [MetricSpec.continuous("revenue")]).record("revenue", "b")
    from_table = analyze(table, "variant", "a", ["revenue:continuous"]).record("revenue", "b")
    assert from_stats.p_value == pytest.approx(from_table.p_value, rel=1e-8)
    assert from_stats.rel_ci_low == pytest.approx(from_table.rel_ci_low, rel=1e-8)


def test_variant_summary_interval_matches_statsmodels(table):
    result = analyze(table, "variant", "a", ["revenue:continuous"])
    for summary in result.summaries:
        values = table.loc[table.variant == summary.variant, "revenue"].to_numpy(float)
        low, high = DescrStatsW(values).zconfint_mean(alpha=0.05)
        assert (summary.ci_low, summary.ci_high) == pytest.approx((low, high), rel=1e-9)
        assert summary.n == values.size
