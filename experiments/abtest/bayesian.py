"""Bayesian lift: posteriors per variant, chance to beat control, expected loss.

- Binary metrics: conjugate Beta-binomial per variant, prior Beta(a, b). The
  chance to beat control P(p_t > p_c) and the expected loss (risk) of shipping the
  treatment, E[max(p_c - p_t, 0)], are exact one-dimensional integrals over the
  two Beta posteriors (the closed forms of Miller 2015, "Formulas for Bayesian
  A/B testing", and Stucchio 2015 are the integer-parameter special cases the tests
  compare with).
- Continuous and ratio metrics, and binary metrics adjusted by CUPED: normal approximation of the relative lift
  (delta method) with an optional proper prior N(0, sd^2) on it, as GrowthBook's
  gbstats (Bayesian engine with a "proper prior"); chance to beat = Phi(mu/sigma)
  and expected loss = sigma phi(mu/sigma) - mu Phi(-mu/sigma), in relative
  terms, converted to metric units with the control mean.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import integrate, stats


@dataclass(frozen=True)
class BayesLift:
    chance_to_beat: float
    expected_loss: float  # in metric units: what shipping the treatment costs if it is worse
    rel_mean: float
    rel_low: float
    rel_high: float


@dataclass(frozen=True)
class Posterior:
    """A variant's posterior of its metric, for plots: ('beta', a, b) or ('normal', mean, sd)."""

    family: str
    a: float
    b: float

    def pdf(self, x):
        if self.family == "beta":
            return stats.beta.pdf(x, self.a, self.b)
        return stats.norm.pdf(x, self.a, self.b)

    def interval(self, mass: float = 0.999) -> tuple[float, float]:
        dist = stats.beta(self.a, self.b) if self.family == "beta" else stats.norm(self.a, self.b)
        return tuple(float(v) for v in dist.interval(mass))


def beta_posterior(n: float, successes: float, prior=(1.0, 1.0)) -> Posterior:
    return Posterior("beta", prior[0] + successes, prior[1] + n - successes)


def beta_from_moments(mean: float, variance_of_mean: float) -> Posterior:
    """The Beta with this mean and variance (method of moments), for a rate's adjusted estimate.

    A CUPED-adjusted conversion rate has a normal sampling distribution; drawn as a normal, its
    posterior puts mass below 0 for small rates. The moment-matched Beta keeps the mean and spread
    on [0, 1]. Falls back to the normal when no Beta has these moments (mean outside (0, 1) or
    variance >= mean (1 - mean)).
    """
    m, v = float(mean), float(variance_of_mean)
    if not (0.0 < m < 1.0 and 0.0 < v < m * (1.0 - m)):
        return normal_posterior(m, v)
    k = m * (1.0 - m) / v - 1.0
    return Posterior("beta", m * k, (1.0 - m) * k)


def normal_posterior(mean: float, variance_of_mean: float) -> Posterior:
    return Posterior("normal", float(mean), float(np.sqrt(variance_of_mean)))


def _treatment_grid(treatment: Posterior, points: int = 1201) -> np.ndarray:
    """Where the treatment posterior has its mass: the integrands below vanish elsewhere."""
    lo, hi = treatment.interval(1.0 - 1e-12)
    return np.linspace(lo, hi, points)


def beta_chance_and_loss(treatment: Posterior, control: Posterior) -> tuple[float, float]:
    """P(p_t > p_c) = integral f_t(x) F_c(x) dx and the expected loss of shipping the treatment
    E[max(p_c - p_t, 0)] = integral f_t(x) (E[p_c; p_c > x] - x P(p_c > x)) dx, with
    E[p_c; p_c > x] = mean_c P(Beta(a_c + 1, b_c) > x); Simpson's rule on one grid."""
    x = _treatment_grid(treatment)
    density = stats.beta.pdf(x, treatment.a, treatment.b)
    cdf_c = stats.beta.cdf(x, control.a, control.b)
    mean_c = control.a / (control.a + control.b)
    tail = mean_c * stats.beta.sf(x, control.a + 1.0, control.b) - x * (1.0 - cdf_c)
    chance = integrate.simpson(density * cdf_c, x=x)
    loss = integrate.simpson(density * tail, x=x)
    return float(np.clip(chance, 0.0, 1.0)), float(max(loss, 0.0))


def chance_to_be_best(posteriors: list[Posterior], higher_is_better: bool = True, draws: int = 100_000,
                      seed: int = 0) -> np.ndarray:
    """P(each variant has the best metric) among all, by Monte Carlo from the posteriors (seeded,
    so results are reproducible; sd of each probability <= 0.5 / sqrt(draws))."""
    rng = np.random.default_rng(seed)
    samples = np.column_stack([
        rng.beta(p.a, p.b, draws) if p.family == "beta" else rng.normal(p.a, p.b, draws) for p in posteriors
    ])
    best = samples.argmax(axis=1) if higher_is_better else samples.argmin(axis=1)
    return np.bincount(best, minlength=len(posteriors)) / draws


def normal_chance_and_loss(mu, sigma):
    """For an effect ~ N(mu, sigma^2) where positive is good: P(effect > 0), E[max(-effect, 0)]."""
    z = np.divide(mu, sigma)
    return stats.norm.cdf(z), sigma * stats.norm.pdf(z) - mu * stats.norm.cdf(-z)


def binary_lift(n_t, s_t, n_c, s_c, prior=(1.0, 1.0), alpha=0.05, higher_is_better=True) -> BayesLift:
    post_t, post_c = beta_posterior(n_t, s_t, prior), beta_posterior(n_c, s_c, prior)
    beats, loss_if_higher_better = beta_chance_and_loss(post_t, post_c)
    mean_t, var_t = stats.beta.stats(post_t.a, post_t.b, moments="mv")
    mean_c, var_c = stats.beta.stats(post_c.a, post_c.b, moments="mv")
    if higher_is_better:
        chance, loss = beats, loss_if_higher_better
    else:  # E[max(p_t - p_c, 0)] = E[max(p_c - p_t, 0)] + E[p_t - p_c]
        chance, loss = 1.0 - beats, max(loss_if_higher_better + float(mean_t - mean_c), 0.0)
    rel = float(mean_t / mean_c - 1.0)
    rel_sd = float(np.sqrt(var_t / mean_c**2 + mean_t**2 * var_c / mean_c**4))
    z = stats.norm.ppf(1.0 - alpha / 2.0)
    return BayesLift(float(chance), float(loss), rel, rel - z * rel_sd, rel + z * rel_sd)


def normal_lift(mean_t, var_t, mean_c, var_c, prior_sd=None, alpha=0.05, higher_is_better=True) -> BayesLift:
    """Relative-lift posterior from the delta-method normal approximation, optional N(0, prior_sd^2) prior."""
    with np.errstate(divide="ignore", invalid="ignore"):  # a zero control mean leaves it undefined (nan)
        rel = mean_t / mean_c - 1.0
        rel_var = var_t / mean_c**2 + mean_t**2 * var_c / mean_c**4
        if prior_sd is not None:
            precision = 1.0 / rel_var + 1.0 / prior_sd**2
            rel, rel_var = (rel / rel_var) / precision, 1.0 / precision
        sd = np.sqrt(rel_var)
        sign = 1.0 if higher_is_better else -1.0
        chance, rel_loss = normal_chance_and_loss(sign * rel, sd)
    z = stats.norm.ppf(1.0 - alpha / 2.0)
    return BayesLift(float(chance), float(rel_loss * abs(mean_c)), float(rel), float(rel - z * sd), float(rel + z * sd))
