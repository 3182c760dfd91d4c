"""Promotion gate: a new policy version goes live only when the lower bound
of its doubly-robust estimate (Dudik et al. 2011) beats the live policy's
estimate on decisions the candidate has never been trained on.

In `Allocator.learn(gate=True)` the candidate is the newest (not yet live)
snapshot; the evaluation data are the decisions that closed since its
training cutoff, served by the live policy with logged propensities. The
live policy's estimate there is simply its on-policy mean reward. The
candidate's reward model for DR is its own posterior mean (fitted on older
data only, so it is independent of the evaluation rows).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .features import arm_weights
from .linear import LinearPosterior
from .ope import Estimate, _normal
from .policies import ArmSet, apply_floor, make_policy


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    candidate: Estimate       # DR estimate of the candidate
    live: Estimate            # on-policy estimate of the live policy
    candidate_version: int
    live_version: int
    reason: str


def promotion_gate(candidate: Estimate, live: Estimate, candidate_version: int, live_version: int) -> GateDecision:
    promote = bool(candidate.ci_low > live.value)
    relation = ">" if promote else "<="
    reason = (f"candidate v{candidate_version} DR lower bound {candidate.ci_low:.5f} {relation} "
              f"live v{live_version} estimate {live.value:.5f} (n={candidate.n})")
    return GateDecision(promote, candidate, live, candidate_version, live_version, reason)


def candidate_dr(rows: pd.DataFrame, posterior: LinearPosterior, config: dict, Z: np.ndarray,
                 slot_of: dict[int, int], seed: int, alpha: float = 0.05) -> tuple[Estimate, Estimate]:
    """(DR of the candidate policy, on-policy mean of the logged policy) on joined rows.

    rows: `DecisionLog.joined` output restricted to mode == 'policy' (columns
    context, eligible, variant, propensity, reward).
    """
    policy = make_policy(config["policy"], **config["policy_params"])
    d = 1 + len(config["context_features"])
    mean = posterior.mean()
    terms = []
    keys = rows["eligible"].map(lambda e: tuple(np.asarray(e).tolist()))
    for eligible, group in rows.groupby(keys, sort=False):   # one pass per distinct eligible set
        slots = np.array([slot_of[v] for v in eligible])
        arms = ArmSet(Z[slots], slots, config["n_slots"], d)
        X = np.hstack([np.ones((len(group), 1)), np.vstack(group["context"].to_numpy())])
        pi = apply_floor(policy.prepare(posterior, arms, seed).probabilities(X), config["floor"])
        q = X @ arm_weights(mean, d, arms.Z, slots)
        position = {v: i for i, v in enumerate(eligible)}
        a = group["variant"].map(position).to_numpy()
        r = group["reward"].to_numpy(float)
        idx = np.arange(len(group))
        w = pi[idx, a] / group["propensity"].to_numpy(float)
        terms.append((pi * q).sum(axis=1) + w * (r - q[idx, a]))
    dr = _normal("dr", np.concatenate(terms), alpha)
    live = _normal("on_policy", rows["reward"].to_numpy(float), alpha)
    return dr, live
