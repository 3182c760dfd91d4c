"""mSPRT always-valid p-values and confidence sequences under continuous peeking."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats

from experiments.abtest import AnalysisSettings, MetricStats, MetricSpec, analyze_statistics
from experiments.abtest.frequentist import absolute_lift, p_value
from experiments.abtest.sequential import confidence_sequence, msprt_p_value, running_p_values


def test_mixture_likelihood_ratio_matches_numerical_integration():
    estimate, variance, tau = 0.013, 0.00004, 0.01
    lr, _ = integrate.quad(
        lambda th: stats.norm.pdf(estimate, th, np.sqrt(variance)) / stats.norm.pdf(estimate, 0, np.sqrt(variance))
        * stats.norm.pdf(th, 0, tau), -0.2, 0.2, points=[0.0, estimate], limit=200)
    assert msprt_p_value(estimate, variance, tau) == pytest.approx(min(1.0, 1.0 / lr), rel=1e-6)
    # the confidence sequence is exactly the set of effects whose shifted p-value is >= alpha
    low, high = confidence_sequence(estimate, variance, tau, 0.05)
    assert msprt_p_value(estimate - low, variance, tau) == pytest.approx(0.05, rel=1e-6)
    assert msprt_p_value(estimate - high, variance, tau) == pytest.approx(0.05, rel=1e-6)


def _aa_streams(runs=2000, looks=60, batch=200, rate=0.1, seed=7):
    rng = np.random.default_rng(seed)
    s_t = np.cumsum(rng.binomial(batch, rate, (runs, looks)), axis=1)
    s_c = np.cumsum(rng.binomial(batch, rate, (runs, looks)), axis=1)
    n = batch * np.arange(1, looks + 1)
    return MetricStats.from_binary(n, s_t), MetricStats.from_binary(n, s_c)


def test_always_valid_p_values_control_false_positives_under_peeking_naive_does_not():
    """2,000 A/A tests looked at 60 times each: mSPRT stays <= alpha, repeated t-tests do not."""
    alpha = 0.05
    t, c = _aa_streams()
    variance = t.variance_of_mean + c.variance_of_mean
    estimate = t.mean - c.mean
    tau = 0.05 * np.sqrt(c.var_value)  # the analysis' default: 0.05 control standard deviations
    always_valid = running_p_values(msprt_p_value(estimate, variance, tau), axis=1)
    sequential_fpr = np.mean(always_valid[:, -1] < alpha)
    naive = p_value(estimate, np.sqrt(variance), "two-sided")
    naive_fpr = np.mean((naive < alpha).any(axis=1))
    single_look_fpr = np.mean(naive[:, -1] < alpha)
    print(f"false positives: mSPRT {sequential_fpr:.3f}, naive peeking {naive_fpr:.3f}, one look {single_look_fpr:.3f}")
    assert sequential_fpr <= alpha + 0.01
    assert naive_fpr > 2 * alpha
    assert 0.035 <= single_look_fpr <= 0.065


def test_confidence_sequences_cover_the_truth_at_all_looks_and_detect_a_real_effect():
    t, c = _aa_streams(seed=8)
    low, high = confidence_sequence(t.mean - c.mean, t.variance_of_mean + c.variance_of_mean,
                                    0.05 * np.sqrt(c.var_value), 0.05)
    assert np.mean(((low > 0) | (high < 0)).any(axis=1)) <= 0.06
    # a real +2 point lift on 10% is detected long before the end
    rng = np.random.default_rng(9)
    n = 200 * np.arange(1, 61)
    s_t = np.cumsum(rng.binomial(200, 0.12, (500, 60)), axis=1)
    s_c = np.cumsum(rng.binomial(200, 0.10, (500, 60)), axis=1)
    tt, cc = MetricStats.from_binary(n, s_t), MetricStats.from_binary(n, s_c)
    p = running_p_values(msprt_p_value(tt.mean - cc.mean, tt.variance_of_mean + cc.variance_of_mean,
                                       0.05 * np.sqrt(cc.var_value)), axis=1)
    assert np.mean(p[:, -1] < 0.05) > 0.9


def test_analysis_sequential_fields_are_wider_than_fixed_horizon_intervals():
    given = {"open": {"a": MetricStats.from_binary(20000, 4000), "b": MetricStats.from_binary(20000, 4250)}}
    r = analyze_statistics(given, "a", [MetricSpec.binary("open")], AnalysisSettings(sequential=True)).record("open", "b")
    fixed = absolute_lift(r.mean, 4250 * 15750 / 20000**2 / 19999, r.control_mean, 4000 * 16000 / 20000**2 / 19999)
    assert r.seq_abs_low < r.abs_ci_low and r.seq_abs_high > r.abs_ci_high
    assert r.seq_p_value >= r.p_value
    pooled_sd = np.sqrt((0.2 * 0.8 + 0.2125 * 0.7875) / 2 * 20000 / 19999)
    assert r.seq_abs_low == pytest.approx(confidence_sequence(r.abs_lift, fixed.se**2, 0.05 * pooled_sd, 0.05)[0],
                                          rel=1e-6)
