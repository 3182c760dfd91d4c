"""Bayesian results vs closed forms (Miller 2015) and Monte Carlo of the posteriors."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.special import betaln

from experiments.abtest import AnalysisSettings, MetricStats, MetricSpec, analyze_statistics
from experiments.abtest.bayesian import beta_posterior, binary_lift, normal_lift


def miller_prob_b_beats_a(a_a, b_a, a_b, b_b) -> float:
    """Evan Miller (2015), "Formulas for Bayesian A/B testing": exact for integer a_b."""
    i = np.arange(int(a_b))
    return float(np.sum(np.exp(betaln(a_a + i, b_b + b_a) - np.log(b_b + i) - betaln(1 + i, b_b) - betaln(a_a, b_a))))


@pytest.mark.parametrize("n_t,s_t,n_c,s_c", [(1000, 130, 1000, 110), (40000, 4100, 40000, 4000), (300, 2, 280, 9)])
def test_binary_chance_to_beat_matches_miller_closed_form(n_t, s_t, n_c, s_c):
    post_t, post_c = beta_posterior(n_t, s_t), beta_posterior(n_c, s_c)
    exact = miller_prob_b_beats_a(post_c.a, post_c.b, post_t.a, post_t.b)
    got = binary_lift(n_t, s_t, n_c, s_c)
    assert got.chance_to_beat == pytest.approx(exact, abs=1e-6)
    lower_better = binary_lift(n_t, s_t, n_c, s_c, higher_is_better=False)
    assert lower_better.chance_to_beat == pytest.approx(1 - exact, abs=1e-6)


def test_binary_expected_loss_matches_monte_carlo_and_prior_is_used():
    rng = np.random.default_rng(0)
    prior = (2.0, 30.0)
    got = binary_lift(800, 70, 820, 80, prior=prior)
    p_t = rng.beta(prior[0] + 70, prior[1] + 730, 4_000_000)
    p_c = rng.beta(prior[0] + 80, prior[1] + 740, 4_000_000)
    assert got.expected_loss == pytest.approx(np.maximum(p_c - p_t, 0).mean(), rel=5e-3)
    assert got.chance_to_beat == pytest.approx((p_t > p_c).mean(), abs=2e-3)
    worse = binary_lift(800, 70, 820, 80, prior=prior, higher_is_better=False)
    assert worse.expected_loss == pytest.approx(np.maximum(p_t - p_c, 0).mean(), rel=5e-3)


def test_normal_lift_chance_loss_and_proper_prior_are_conjugate_normal():
    m_t, v_t, m_c, v_c = 10.6, 0.09, 10.0, 0.08
    rel = m_t / m_c - 1
    rel_var = v_t / m_c**2 + m_t**2 * v_c / m_c**4
    flat = normal_lift(m_t, v_t, m_c, v_c)
    assert flat.chance_to_beat == pytest.approx(stats.norm.cdf(rel / np.sqrt(rel_var)))
    draws = np.random.default_rng(1).normal(rel, np.sqrt(rel_var), 4_000_000)
    assert flat.expected_loss == pytest.approx(np.maximum(-draws, 0).mean() * m_c, rel=1e-2)
    prior_sd = 0.02
    shrunk = normal_lift(m_t, v_t, m_c, v_c, prior_sd=prior_sd)
    post_var = 1 / (1 / rel_var + 1 / prior_sd**2)
    assert shrunk.rel_mean == pytest.approx(post_var * rel / rel_var)
    assert shrunk.rel_high - shrunk.rel_low == pytest.approx(2 * 1.959964 * np.sqrt(post_var), rel=1e-5)
    assert abs(shrunk.rel_mean) < abs(flat.rel_mean)


def test_analysis_reports_posteriors_per_variant():
    given = {"click": {"a": MetricStats.from_binary(5000, 400), "b": MetricStats.from_binary(5000, 470)}}
    result = analyze_statistics(given, "a", [MetricSpec.binary("click")], AnalysisSettings(beta_prior=(1, 1)))
    post = {s.variant: s.posterior for s in result.summaries}
    assert (post["b"].a, post["b"].b) == (471, 4531)
    r = result.record("click", "b")
    assert r.chance_to_beat == pytest.approx(miller_prob_b_beats_a(401, 4601, 471, 4531), abs=1e-6)


def test_chance_to_be_best_and_relative_credible_interval():
    from experiments.abtest.bayesian import chance_to_be_best

    given = {"click": {"a": MetricStats.from_binary(20000, 2000), "b": MetricStats.from_binary(20000, 2100),
                       "c": MetricStats.from_binary(20000, 2000)}}
    result = analyze_statistics(given, "a", [MetricSpec.binary("click")])
    best = {s.variant: s.chance_to_be_best for s in result.summaries}
    # Monte Carlo with other draws, independent of the analysis' seed
    rng = np.random.default_rng(99)
    draws = np.column_stack([rng.beta(1 + s, 1 + 20000 - s, 400_000) for s in (2000, 2100, 2000)])
    expected = np.bincount(draws.argmax(1), minlength=3) / 400_000
    assert [best[v] for v in "abc"] == pytest.approx(expected, abs=0.006)
    assert sum(best.values()) == pytest.approx(1.0)
    # with two variants, "best" is "beats the control"
    two = chance_to_be_best([beta_posterior(5000, 400), beta_posterior(5000, 450)])
    assert two[1] == pytest.approx(binary_lift(5000, 450, 5000, 400).chance_to_beat, abs=0.005)
    # the relative-lift credible interval matches the quantiles of p_b / p_a - 1
    r = result.record("click", "b")
    rel = draws[:, 1] / draws[:, 0] - 1
    assert (r.post_rel_low, r.post_rel_high) == pytest.approx(tuple(np.quantile(rel, [0.025, 0.975])), abs=2e-3)
