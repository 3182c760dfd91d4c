"""Bayesian ridge regression posterior kept as sufficient statistics.

Precision A = lambda I + sum phi phi^T and b = sum r phi; the posterior mean is
A^{-1} b and (with noise scale v) the covariance v^2 A^{-1}, the model behind
linear Thompson sampling (Agrawal & Goyal 2013, "Thompson Sampling for
Contextual Bandits with Linear Payoffs") and LinUCB (Li et al. 2010, "A
Contextual-Bandit Approach to Personalized News Article Recommendation").
Updates are additive, so mini-batches from a delayed-reward log can be folded
in in any order and a snapshot can resume training exactly.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import cho_factor, cho_solve, solve_triangular


@dataclass
class LinearPosterior:
    A: np.ndarray  # (D, D) precision
    b: np.ndarray  # (D,)
    n: int = 0     # observations folded in
    ridge: float = 1.0

    @classmethod
    def prior(cls, dim: int, ridge: float = 1.0) -> "LinearPosterior":
        return cls(A=ridge * np.eye(dim), b=np.zeros(dim), n=0, ridge=ridge)

    @property
    def dim(self) -> int:
        return len(self.b)

    def update(self, Phi: np.ndarray, rewards: np.ndarray, weights: np.ndarray | None = None) -> None:
        """Fold a mini-batch (n, D) of joint features and rewards in."""
        if len(Phi) == 0:
            return
        Pw = Phi if weights is None else Phi * weights[:, None]
        self.A += Pw.T @ Phi
        self.b += Pw.T @ rewards
        self.n += len(Phi)

    def grow(self, extra: int) -> None:
        """Append `extra` parameters with the prior (a new variant's own block)."""
        D = self.dim
        A = self.ridge * np.eye(D + extra)
        A[:D, :D] = self.A
        self.A = A
        self.b = np.concatenate([self.b, np.zeros(extra)])

    def mean(self) -> np.ndarray:
        return cho_solve(cho_factor(self.A), self.b)

    def covariance(self) -> np.ndarray:
        return cho_solve(cho_factor(self.A), np.eye(self.dim))

    def sample(self, m: int, scale: float, rng: np.random.Generator) -> np.ndarray:
        """m draws (m, D) from N(mean, scale^2 A^{-1})."""
        L = np.linalg.cholesky(self.A)           # A = L L^T
        eps = rng.standard_normal((self.dim, m))
        return self.mean()[None, :] + scale * solve_triangular(L.T, eps, lower=False).T
