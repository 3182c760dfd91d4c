"""Sample size / MDE vs statsmodels power, Dunnett vs the multivariate normal, Test & Roll vs simulation."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize, stats
from statsmodels.stats.power import NormalIndPower

from experiments.abtest.sizing import dunnett_critical_value, minimum_detectable_effect, power_at, sample_size
from experiments.abtest.test_roll import expected_profit, test_and_roll


@pytest.mark.parametrize("alternative", ["two-sided", "one-sided"])
@pytest.mark.parametrize("baseline,mde", [(0.2, 0.01), (0.03, 0.003), (0.5, -0.02)])
def test_binary_sample_size_matches_statsmodels(baseline, mde, alternative):
    plan = sample_size("binary", mde, baseline=baseline, alternative=alternative)
    # unpooled variances: the standardized effect is delta / sqrt(mean of the two variances)
    es = abs(mde) / math.sqrt((baseline * (1 - baseline) + (baseline + mde) * (1 - baseline - mde)) / 2)
    sm_alt = "two-sided" if alternative == "two-sided" else "larger"
    expected = NormalIndPower().solve_power(effect_size=es, alpha=0.05, power=0.8, ratio=1.0, alternative=sm_alt)
    assert plan.n_per_variant == math.ceil(expected - 1e-6)
    assert plan.total == 2 * plan.n_per_variant


@pytest.mark.parametrize("d,n", [(0.2, 393), (0.5, 63)])
def test_sample_size_for_cohens_standardized_effects(d, n):
    # (z_0.975 + z_0.8)^2 = 7.849; n = 2 * 7.849 / d^2 per group. Cohen (1988, table 2.4.1) lists
    # 393 for d = 0.2 (the t test's small-sample correction adds one at d = 0.5: 64).
    assert sample_size("continuous", d, baseline=0.0, sd=1.0).n_per_variant == n


def test_continuous_sample_size_bonferroni_and_mde_round_trip():
    plan = sample_size("continuous", 0.5, baseline=20.0, sd=12.0, variants=4, power=0.9)
    expected = NormalIndPower().solve_power(effect_size=0.5 / 12.0, alpha=0.05 / 3, power=0.9, ratio=1.0)
    assert plan.n_per_variant == math.ceil(expected)
    assert plan.alpha_per_comparison == pytest.approx(0.05 / 3) and plan.total == 4 * plan.n_per_variant
    back = minimum_detectable_effect("continuous", plan.n_per_variant, baseline=20.0, sd=12.0, variants=4, power=0.9)
    assert back.mde_abs == pytest.approx(0.5, rel=1e-3) and back.mde_abs <= 0.5
    relative = sample_size("continuous", 0.025, relative=True, baseline=20.0, sd=12.0, variants=4, power=0.9)
    assert relative.n_per_variant == plan.n_per_variant


def test_binary_mde_inverts_sample_size_and_power_is_met_by_simulation():
    mde = minimum_detectable_effect("binary", 12000, baseline=0.04)
    assert power_at("binary", 12000, mde.mde_abs, baseline=0.04) == pytest.approx(0.8, abs=1e-6)
    plan = sample_size("binary", mde.mde_abs, baseline=0.04)
    assert plan.n_per_variant in (12000, 12001)
    rng = np.random.default_rng(0)
    n = plan.n_per_variant
    s_t, s_c = rng.binomial(n, 0.04 + mde.mde_abs, 4000), rng.binomial(n, 0.04, 4000)
    p_t, p_c = s_t / n, s_c / n
    z = (p_t - p_c) / np.sqrt(p_t * (1 - p_t) / n + p_c * (1 - p_c) / n)
    assert np.mean(np.abs(z) > 1.959964) == pytest.approx(0.8, abs=0.025)


@pytest.mark.parametrize("alternative", ["two-sided", "one-sided"])
def test_dunnett_critical_value_matches_multivariate_normal(alternative):
    k = 3
    c = dunnett_critical_value(k, 0.05, alternative)
    cov = np.full((k, k), 0.5) + 0.5 * np.eye(k)
    mvn = stats.multivariate_normal(mean=np.zeros(k), cov=cov)
    lower = -c * np.ones(k) if alternative == "two-sided" else -np.inf * np.ones(k)
    coverage = mvn.cdf(c * np.ones(k), lower_limit=lower)
    assert coverage == pytest.approx(0.95, abs=2e-4)
    bonferroni = stats.norm.isf(0.05 / k / (2 if alternative == "two-sided" else 1))
    assert stats.norm.isf(0.025 if alternative == "two-sided" else 0.05) < c < bonferroni
    plan = sample_size("binary", 0.01, baseline=0.1, variants=4, correction="dunnett", alternative=alternative)
    bonf = sample_size("binary", 0.01, baseline=0.1, variants=4, correction="bonferroni", alternative=alternative)
    assert plan.n_per_variant < bonf.n_per_variant


def test_test_and_roll_optimum_and_profit_formula():
    N, mu, sigma, s = 100_000, 0.68, 0.03, math.sqrt(0.68 * 0.32)
    plan = test_and_roll(N, mu, sigma)
    assert plan.response_sd == pytest.approx(s)
    # the closed-form n* maximises the expected-profit curve (numerical optimisation)
    best = optimize.minimize_scalar(lambda n: -expected_profit(n, N, mu, sigma, s), bounds=(1, N / 2),
                                    method="bounded", options={"xatol": 1e-3})
    assert abs(plan.n_per_arm - best.x) <= 1.0
    # the expected-profit formula matches a Monte Carlo of the prior, the test and the roll-out
    rng = np.random.default_rng(0)
    sims, n = 400_000, plan.n_per_arm
    m = rng.normal(mu, sigma, (sims, 2))
    ybar = m + rng.normal(0, s / math.sqrt(n), (sims, 2))
    chosen = np.where(ybar[:, 0] > ybar[:, 1], m[:, 0], m[:, 1])
    simulated = n * m.sum(1) + (N - 2 * n) * chosen
    assert plan.expected_profit == pytest.approx(simulated.mean(), rel=2e-4)
    assert plan.no_test_profit < plan.expected_profit < plan.perfect_information_profit
    # far smaller than the hypothesis test sized to detect a 1-sigma difference
    classical = sample_size("binary", sigma, baseline=mu).n_per_variant
    assert plan.n_per_arm < classical
