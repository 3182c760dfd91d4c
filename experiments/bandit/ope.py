"""Off-policy estimators in the style of Open Bandit Pipeline (`obp.ope`):
one small dataclass per estimator, a shared `LoggedBandit` input, results as
plain `Estimate` records with a confidence interval.

- IPS: inverse propensity scoring (Horvitz & Thompson 1952; Precup et al. 2000)
- SNIPS: self-normalized IPS (Swaminathan & Joachims 2015)
- DM: direct method, a reward model averaged under the evaluated policy
- DR: doubly robust (Dudik, Langford & Li 2011, "Doubly Robust Policy
  Evaluation and Learning")

Confidence intervals are normal approximations from the per-row terms (SNIPS:
delta method). DM's interval covers sampling noise of the contexts only, not
the reward model's error, so it is too narrow when the model is biased;
DR's interval is valid when either the propensities or the model are right.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from .features import joint_features
from .linear import LinearPosterior


@dataclass(frozen=True)
class LoggedBandit:
    """A logged bandit dataset (OBP's `bandit_feedback`)."""

    context: np.ndarray           # (n, c) numeric context (no bias column)
    action: np.ndarray            # (n,) int in [0, n_actions)
    reward: np.ndarray            # (n,) float
    pscore: np.ndarray            # (n,) logging propensity of the logged action, in (0, 1]
    n_actions: int
    action_context: np.ndarray | None = None  # (n_actions, f) action features

    def __post_init__(self):
        n = len(self.action)
        for name in ("context", "reward", "pscore"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name}: {len(getattr(self, name))} rows, expected {n}")
        if n == 0:
            raise ValueError("log: no rows")
        if not ((self.pscore > 0) & (self.pscore <= 1)).all():
            raise ValueError("propensity: every value must be in (0, 1]")
        if (self.action < 0).any() or (self.action >= self.n_actions).any():
            raise ValueError("action: index out of range")
        if not np.isfinite(self.reward).all():
            raise ValueError("reward: values must be finite")

    def __len__(self) -> int:
        return len(self.action)

    def subset(self, rows: np.ndarray) -> "LoggedBandit":
        return LoggedBandit(self.context[rows], self.action[rows], self.reward[rows], self.pscore[rows],
                            self.n_actions, self.action_context)


@dataclass(frozen=True)
class Estimate:
    estimator: str
    value: float
    ci_low: float
    ci_high: float
    std_error: float
    n: int


def _normal(name: str, terms: np.ndarray, alpha: float) -> Estimate:
    value = float(terms.mean())
    se = float(terms.std(ddof=1) / np.sqrt(len(terms))) if len(terms) > 1 else float("inf")
    z = norm.ppf(1 - alpha / 2)
    return Estimate(name, value, value - z * se, value + z * se, se, len(terms))


def _weights(data: LoggedBandit, action_dist: np.ndarray) -> np.ndarray:
    if action_dist.shape != (len(data), data.n_actions):
        raise ValueError(f"action_dist: expected shape {(len(data), data.n_actions)}, got {action_dist.shape}")
    return action_dist[np.arange(len(data)), data.action] / data.pscore


@dataclass(frozen=True)
class InverseProbabilityWeighting:
    name: str = "ips"

    def estimate(self, data: LoggedBandit, action_dist: np.ndarray, estimated_rewards=None,
                 alpha: float = 0.05) -> Estimate:
        return _normal(self.name, _weights(data, action_dist) * data.reward, alpha)


@dataclass(frozen=True)
class SelfNormalizedInverseProbabilityWeighting:
    name: str = "snips"

    def estimate(self, data: LoggedBandit, action_dist: np.ndarray, estimated_rewards=None,
                 alpha: float = 0.05) -> Estimate:
        w = _weights(data, action_dist)
        value = float((w * data.reward).sum() / w.sum())
        influence = w * (data.reward - value) / w.mean()  # delta method
        est = _normal(self.name, influence, alpha)
        return Estimate(self.name, value, value + est.ci_low - est.value, value + est.ci_high - est.value,
                        est.std_error, len(data))


@dataclass(frozen=True)
class DirectMethod:
    name: str = "dm"

    def estimate(self, data: LoggedBandit, action_dist: np.ndarray, estimated_rewards: np.ndarray,
                 alpha: float = 0.05) -> Estimate:
        return _normal(self.name, (action_dist * estimated_rewards).sum(axis=1), alpha)


@dataclass(frozen=True)
class DoublyRobust:
    name: str = "dr"

    def estimate(self, data: LoggedBandit, action_dist: np.ndarray, estimated_rewards: np.ndarray,
                 alpha: float = 0.05) -> Estimate:
        w = _weights(data, action_dist)
        q_logged = estimated_rewards[np.arange(len(data)), data.action]
        terms = (action_dist * estimated_rewards).sum(axis=1) + w * (data.reward - q_logged)
        return _normal(self.name, terms, alpha)


ESTIMATORS = (InverseProbabilityWeighting(), SelfNormalizedInverseProbabilityWeighting(), DirectMethod(),
              DoublyRobust())


class RewardModel:
    """Ridge regression of reward on joint (context, action) features, for DM/DR and greedy policies."""

    def __init__(self, n_actions: int, action_context: np.ndarray | None = None, ridge: float = 1.0):
        self.Z = np.ones((n_actions, 1)) if action_context is None else np.hstack(
            [np.ones((n_actions, 1)), action_context])
        self.n_actions = n_actions
        self.ridge = ridge
        self.theta: np.ndarray | None = None

    def fit(self, data: LoggedBandit) -> "RewardModel":
        X = _with_bias(data.context)
        post = LinearPosterior.prior(X.shape[1] * (self.Z.shape[1] + self.n_actions), self.ridge)
        post.update(joint_features(X, self.Z[data.action], data.action, self.n_actions), data.reward)
        self.theta = post.mean()
        return self

    def predict(self, context: np.ndarray) -> np.ndarray:
        """(n, n_actions) predicted rewards."""
        X = _with_bias(context)
        n, K = len(X), self.n_actions
        out = np.empty((n, K))
        for a in range(K):  # K actions, each a batched product
            acts = np.full(n, a)
            out[:, a] = joint_features(X, self.Z[acts], acts, K) @ self.theta
        return out


def cross_fitted_rewards(data: LoggedBandit, folds: int = 2, seed: int = 0) -> np.ndarray:
    """q_hat(x_i, a) from models not trained on row i (cross-fitting keeps DR honest)."""
    fold = np.random.default_rng(seed).integers(0, folds, len(data))
    out = np.empty((len(data), data.n_actions))
    for k in range(folds):
        test = fold == k
        train = ~test
        if not test.any():
            continue
        model = RewardModel(data.n_actions, data.action_context)
        model.fit(data.subset(np.flatnonzero(train)) if train.any() else data)
        out[test] = model.predict(data.context[test])
    return out


def greedy_with_epsilon(scores: np.ndarray, epsilon: float) -> np.ndarray:
    top = scores >= scores.max(axis=1, keepdims=True) - 1e-12
    greedy = top / top.sum(axis=1, keepdims=True)
    return (1 - epsilon) * greedy + epsilon / scores.shape[1]


def _with_bias(context: np.ndarray) -> np.ndarray:
    return np.hstack([np.ones((len(context), 1)), np.asarray(context, dtype=float)])
