"""Test & Roll: profit-maximizing A/B test sizes for a finite list.

Feit and Berman (2019), "Test & Roll: Profit-Maximizing A/B Tests", Marketing
Science 38(6). Send each of two versions to n recipients, then "roll out" the
better-looking one to the remaining N - 2n. With a symmetric normal prior on the
mean response of each version, m ~ N(mu, sigma^2), and response noise s per
recipient, the expected profit is

    E[profit](n) = N mu + (N - 2n) sqrt(2) sigma^2 / (sqrt(pi) sqrt(2 sigma^2 + 2 s^2 / n))

and its maximiser is (their eq. 10)

    n* = sqrt(N/4 (s/sigma)^2 + (3/4 (s/sigma)^2)^2) - 3/4 (s/sigma)^2,

typically far smaller than a hypothesis test's sample size because wrongly
rolling out a version with an imperceptibly worse response costs little.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class TestRollPlan:
    population: int
    prior_mean: float
    prior_sd: float
    response_sd: float
    n_per_arm: int
    test_total: int
    rollout: int
    expected_profit: float
    perfect_information_profit: float
    no_test_profit: float
    efficiency: float  # share of the value of perfect information this plan captures

    def to_dict(self) -> dict:
        return asdict(self)


def expected_profit(n: float, population: int, prior_mean: float, prior_sd: float, response_sd: float) -> float:
    """Expected total response of testing n per arm and rolling out the winner."""
    if n <= 0:
        return population * prior_mean
    gain = math.sqrt(2.0) * prior_sd**2 / (math.sqrt(math.pi) * math.sqrt(2 * prior_sd**2 + 2 * response_sd**2 / n))
    return population * prior_mean + (population - 2 * n) * gain


def optimal_n(population: int, prior_sd: float, response_sd: float) -> float:
    r = (response_sd / prior_sd) ** 2
    return math.sqrt(population / 4.0 * r + (0.75 * r) ** 2) - 0.75 * r


def test_and_roll(
    population: int, prior_mean: float, prior_sd: float, response_sd: float | None = None
) -> TestRollPlan:
    """Profit-maximizing test size per arm; ``response_sd`` defaults to sqrt(mu(1 - mu)) (binary)."""
    if int(population) != population or population < 4:
        raise ValueError(f"population must be an integer >= 4, got {population}")
    if prior_sd <= 0:
        raise ValueError(f"prior_sd must be positive, got {prior_sd}")
    if response_sd is None:
        if not 0 < prior_mean < 1:
            raise ValueError("without response_sd the metric is taken as binary: prior_mean must be a rate in (0, 1)")
        response_sd = math.sqrt(prior_mean * (1 - prior_mean))
    if response_sd <= 0:
        raise ValueError(f"response_sd must be positive, got {response_sd}")
    args = (population, prior_mean, prior_sd, response_sd)
    n_star = optimal_n(population, prior_sd, response_sd)
    candidates = {max(1, min(population // 2, c)) for c in (math.floor(n_star), math.ceil(n_star))}
    n = max(candidates, key=lambda c: expected_profit(c, *args))
    profit = expected_profit(n, *args)
    perfect = population * (prior_mean + prior_sd / math.sqrt(math.pi))
    no_test = population * prior_mean
    return TestRollPlan(
        population=int(population), prior_mean=prior_mean, prior_sd=prior_sd, response_sd=response_sd,
        n_per_arm=int(n), test_total=int(2 * n), rollout=int(population - 2 * n), expected_profit=profit,
        perfect_information_profit=perfect, no_test_profit=no_test,
        efficiency=(profit - no_test) / (perfect - no_test),
    )


# not pytest tests, whatever their names say
test_and_roll.__test__ = False
TestRollPlan.__test__ = False
