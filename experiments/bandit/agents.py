"""Agents with one decide/learn interface, for simulations and benchmarks.

- `LinearAgent`: one of our policies over a `LinearPosterior`; decides a
  whole block of contexts in one batched pass, learns mini-batches.
- `VowpalWabbitAgent`: Vowpal Wabbit `cb_explore_adf` (action-dependent
  features; Bietti, Agarwal & Langford 2021, "A Contextual Bandit Bake-off")
  with epsilon-greedy or SquareCB (Foster & Rakhlin 2020) exploration. VW's
  Python API takes one multi-line example at a time, so it decides per row.

Both draw the served variant from their probability vector with the same
per-decision uniforms, so they face identical randomness.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .features import joint_features
from .linear import LinearPosterior
from .policies import ArmSet, apply_floor, sample_actions


@dataclass
class LinearAgent:
    policy: object                # LinearThompsonSampling | LinUCB | EpsilonGreedy | Uniform
    Z: np.ndarray                 # (K, f) variant features
    d: int                        # context width incl. bias
    floor: float = 0.0
    ridge: float = 1.0
    seed: int = 0
    posterior: LinearPosterior = field(init=False)
    _scorer: object = field(init=False, default=None)
    _version: int = field(init=False, default=0)

    def __post_init__(self):
        K = len(self.Z)
        self.arms = ArmSet(self.Z, np.arange(K), K, self.d)
        self.posterior = LinearPosterior.prior(self.d * (self.Z.shape[1] + K), self.ridge)

    @property
    def name(self) -> str:
        return self.policy.name

    def decide(self, X: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities (n, K), chosen index (n,)) for contexts X with uniforms u."""
        if self._scorer is None:
            self.prepare()
        probs = apply_floor(self._scorer.probabilities(X), self.floor)
        return probs, sample_actions(probs, u)

    def learn(self, X: np.ndarray, actions: np.ndarray, rewards: np.ndarray, propensities: np.ndarray) -> None:
        if len(X) == 0:
            return
        self.posterior.update(joint_features(X, self.Z[actions], actions, len(self.Z)), rewards)
        self._version += 1
        self.prepare()

    def prepare(self) -> None:
        """Build the scorer for the current posterior (what loading a snapshot does in serving)."""
        self._scorer = self.policy.prepare(self.posterior, self.arms, self.seed * 100_003 + self._version)


class VowpalWabbitAgent:
    """VW `cb_explore_adf`; contexts and variants as text namespaces u / a, `-q ua`."""

    def __init__(self, explorer: str, shared_lines: list[str], action_lines: list[str], extra: str = ""):
        import vowpalwabbit

        flags = {"epsilon": "--epsilon 0.05", "squarecb": "--squarecb"}[explorer]
        self.name = f"vw_{explorer}"
        self.args = f"--cb_explore_adf {flags} -q ua --quiet {extra}".strip()
        self._vw = vowpalwabbit.Workspace(self.args)
        self._shared = shared_lines          # per decision row: "shared |u ..."
        self._actions = action_lines         # per variant: "|a ..."

    def decide_rows(self, rows: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        K = len(self._actions)
        probs = np.empty((len(rows), K))
        for i, r in enumerate(rows.tolist()):   # VW's Python API is one example per call
            probs[i] = self._vw.predict([self._shared[r], *self._actions])
        return probs, sample_actions(probs, u)

    def learn_rows(self, rows: np.ndarray, actions: np.ndarray, rewards: np.ndarray,
                   propensities: np.ndarray) -> None:
        for r, a, rew, p in zip(rows.tolist(), actions.tolist(), rewards.tolist(), propensities.tolist()):
            lines = [self._shared[r], *self._actions]
            lines[1 + a] = f"0:{-rew}:{p} {lines[1 + a]}"   # VW minimizes cost = -reward
            self._vw.learn(lines)

    def close(self) -> None:
        self._vw.finish()
