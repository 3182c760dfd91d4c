"""Exploration policies over a linear reward model; each returns the full
probability vector over the eligible variants, never only an argmax.

- `LinearThompsonSampling`: Agrawal & Goyal (2013). The probability that
  variant a is chosen, P(a = argmax_a' x.W_a'(theta)), theta ~ N(mu, v^2 A^-1),
  is estimated by Monte Carlo over M posterior draws. Error bound (Hoeffding):
  for each (context, variant), with probability >= 1 - delta,
  |p_hat - p| <= sqrt(ln(2/delta) / (2M)); M = 512 gives <= 0.060 at
  delta = 0.05 (`thompson_error_bound`). The variant is then drawn from p_hat
  itself, so the logged propensity is exactly the probability used.
  The M draws are a bank drawn once per (policy version, campaign) from a seed
  derived from both; a decision's own randomness (which variant it gets) is
  seeded by its decision id. This makes scoring one matrix product
  X (n, d) @ W (d, M*K) for a whole batch.
- `LinUCB`: Li et al. (2010); greedy on mu.phi + alpha sqrt(phi' A^-1 phi).
- `EpsilonGreedy`: greedy on the posterior mean with probability 1 - eps,
  uniform otherwise (Sutton & Barto 2018, sec. 2.2).
- `Uniform`: the randomized-control baseline.

Ties in a greedy choice split the greedy mass equally.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import accumulate
from typing import Protocol

import numpy as np

from . import smallbatch
from .features import arm_projections, arm_weights
from .linear import LinearPosterior


def thompson_error_bound(draws: int, delta: float = 0.05) -> float:
    """Hoeffding bound on |p_hat - p| for one probability from `draws` MC draws."""
    return math.sqrt(math.log(2.0 / delta) / (2.0 * draws))


@dataclass
class ArmSet:
    """The eligible variants of one request, as the feature map sees them."""

    Z: np.ndarray      # (K, f) variant feature vectors
    slots: np.ndarray  # (K,) slot index of each variant
    n_slots: int
    d: int             # context width (incl. bias)


class Scorer(Protocol):
    def probabilities(self, X: np.ndarray) -> np.ndarray: ...


def _greedy(scores: np.ndarray) -> np.ndarray:
    """One-hot of the row max, ties split equally."""
    top = scores >= scores.max(axis=1, keepdims=True) - 1e-12
    return top / top.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class Uniform:
    name: str = "uniform"

    def prepare(self, posterior: LinearPosterior, arms: ArmSet, seed: int) -> Scorer:
        return _UniformScorer(len(arms.slots))


@dataclass
class _UniformScorer:
    k: int

    def probabilities(self, X: np.ndarray) -> np.ndarray:
        return np.full((len(X), self.k), 1.0 / self.k)


@dataclass(frozen=True)
class EpsilonGreedy:
    epsilon: float = 0.05
    name: str = "eps_greedy"

    def prepare(self, posterior: LinearPosterior, arms: ArmSet, seed: int) -> Scorer:
        return _EpsScorer(arm_weights(posterior.mean(), arms.d, arms.Z, arms.slots), self.epsilon)


@dataclass
class _EpsScorer:
    W: np.ndarray
    epsilon: float

    def probabilities(self, X: np.ndarray) -> np.ndarray:
        K = self.W.shape[1]
        return (1 - self.epsilon) * _greedy(X @ self.W) + self.epsilon / K


@dataclass(frozen=True)
class LinUCB:
    alpha: float = 0.05   # width multiplier (tuned on click rewards of a few percent)
    name: str = "lin_ucb"

    def prepare(self, posterior: LinearPosterior, arms: ArmSet, seed: int) -> Scorer:
        W = arm_weights(posterior.mean(), arms.d, arms.Z, arms.slots)
        P = arm_projections(arms.d, arms.Z, arms.slots, arms.n_slots)   # (K, D, d)
        cov = posterior.covariance()
        S = np.einsum("kDi,DE,kEj->kij", P, cov, P, optimize=True)    # (K, d, d)
        d, K = W.shape
        return _UCBScorer(W, np.ascontiguousarray(S.transpose(1, 0, 2).reshape(d, K * d)), self.alpha)


@dataclass
class _UCBScorer:
    W: np.ndarray      # (d, K) posterior-mean weights
    S: np.ndarray      # (d, K*d): per-arm covariance of x -> phi(x, a), side by side
    alpha: float

    def probabilities(self, X: np.ndarray) -> np.ndarray:
        n, (d, K) = len(X), self.W.shape
        var = ((X @ self.S).reshape(n, K, d) * X[:, None, :]).sum(axis=2)   # x' S_a x for every arm
        return _greedy(X @ self.W + self.alpha * np.sqrt(np.maximum(var, 0.0)))


@dataclass(frozen=True)
class LinearThompsonSampling:
    scale: float = 0.05   # v in Agrawal & Goyal: posterior covariance v^2 A^-1 (tuned on click rewards)
    draws: int = 512      # M Monte Carlo draws; see thompson_error_bound
    name: str = "lin_ts"

    def prepare(self, posterior: LinearPosterior, arms: ArmSet, seed: int) -> Scorer:
        theta = posterior.sample(self.draws, self.scale, np.random.default_rng(seed))
        W = arm_weights(theta, arms.d, arms.Z, arms.slots)   # (M, d, K)
        M, d, K = W.shape
        bank = np.ascontiguousarray(W.transpose(1, 2, 0).reshape(d, K * M), dtype=np.float32)
        return _TSScorer(bank, M, K)


@dataclass
class _TSScorer:
    bank: np.ndarray  # (d, K*M) float32, variant-major
    M: int
    K: int
    chunk: int = 1024

    def probabilities(self, X: np.ndarray) -> np.ndarray:
        unique, inverse = unique_rows(X)
        shares = self._win_shares(unique)
        return shares if inverse is None else shares[inverse]

    def _win_shares(self, X: np.ndarray) -> np.ndarray:
        n, K, M = len(X), self.K, self.M
        Xf = X.astype(np.float32)
        if n <= smallbatch.LIMIT:  # one pass, fewest numpy calls; same products, same maxima
            scores = (Xf @ self.bank).reshape(n, K, M)
            wins = (scores == scores.max(axis=1)[:, None, :]).sum(axis=2)
            return wins / wins.sum(axis=1, keepdims=True)
        out = np.empty((n, K))
        for start in range(0, n, self.chunk):  # chunks bound memory to chunk*M*K floats
            scores = (Xf[start : start + self.chunk] @ self.bank).reshape(-1, K, M)
            best = scores[:, 0, :].copy()
            for k in range(1, K):  # K passes over (chunk, M): faster than argmax over a short axis
                np.maximum(best, scores[:, k, :], out=best)
            out[start : start + len(scores)] = np.count_nonzero(scores == best[:, None, :], axis=2)
        return out / out.sum(axis=1, keepdims=True)  # an exact tie counts for both


def unique_rows(X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Distinct rows of X and the inverse index (X == unique[inverse]); inverse
    None when X is kept as it is (small, or too few repeats to pay).

    Contexts built from categorical attributes repeat a lot; scoring each
    distinct context once is exact and much cheaper. Rows are grouped by a
    random projection and the grouping is verified, falling back to all rows.
    """
    if len(X) < 64:
        return X, None
    key = X @ np.random.default_rng(0).standard_normal(X.shape[1])
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    unique = X[first]
    if len(first) > 0.7 * len(X) or not np.array_equal(unique[inverse], X):
        return X, None
    return unique, inverse


POLICIES = {"lin_ts": LinearThompsonSampling, "lin_ucb": LinUCB, "eps_greedy": EpsilonGreedy, "uniform": Uniform}


def make_policy(name: str, **params) -> LinearThompsonSampling | LinUCB | EpsilonGreedy | Uniform:
    if name not in POLICIES:
        raise ValueError(f"policy: unknown {name!r}; choose one of {sorted(POLICIES)}")
    return POLICIES[name](**params)


def apply_floor(probs: np.ndarray, floor: float) -> np.ndarray:
    """Mix so every variant gets at least `floor`: p' = floor + (1 - K floor) p.

    The floor is capped at 1/K (then the result is uniform).
    """
    K = probs.shape[1]
    f = min(max(floor, 0.0), 1.0 / K)
    return f + (1.0 - K * f) * probs


def sample_actions(probs: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF draw of one column index per row from uniforms u."""
    if len(probs) <= smallbatch.LIMIT and probs.dtype == np.float64:  # cumsum adds in the same order
        last = probs.shape[1] - 1
        out = []
        for row, target in zip(probs.tolist(), np.asarray(u, dtype=np.float64).tolist()):
            cdf = list(accumulate(row))
            target *= cdf[-1]
            out.append(min(sum(c < target for c in cdf), last))
        return np.array(out, dtype=np.intp)
    cdf = np.cumsum(probs, axis=1)
    idx = (cdf < (u * cdf[:, -1])[:, None]).sum(axis=1)
    return np.minimum(idx, probs.shape[1] - 1)
