"""Mini-batch learner: fold decisions whose reward window has closed into
the campaign's posterior.

A decision made at t is final at t + wait_window (no in-window reward can
arrive later), so the learner's cutoff only moves forward and every decision
is folded in exactly once; a snapshot's cutoff makes training resumable.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .decision_log import DecisionLog
from .features import joint_features
from .linear import LinearPosterior
from .snapshots import CampaignState


def closed_decisions(log: DecisionLog, campaign_id: str, config: dict, state: CampaignState | None,
                     now_us: int) -> tuple[pd.DataFrame, int]:
    """Joined decisions that closed after the state's cutoff, and the new cutoff."""
    after = 0 if state is None else state.cutoff_us
    upto = now_us - config["wait_window_us"]
    if upto <= after:
        return log.joined(campaign_id, after, after, config["aggregation"], config["default_reward"]), after
    return log.joined(campaign_id, after, upto, config["aggregation"], config["default_reward"]), upto


def fold_closed_decisions(rows: pd.DataFrame, upto: int, config: dict, Z: np.ndarray,
                          slot_of: dict[int, int], state: CampaignState | None) -> CampaignState:
    """A copy of `state` (or the prior) with `rows` folded in and the cutoff moved to `upto`."""
    d = 1 + len(config["context_features"])
    dim = d * (Z.shape[1] + config["n_slots"])
    if state is None:
        state = CampaignState(LinearPosterior.prior(dim, config["ridge"]), cutoff_us=0)
    else:
        state = CampaignState(LinearPosterior(state.posterior.A.copy(), state.posterior.b.copy(),
                                              state.posterior.n, state.posterior.ridge), state.cutoff_us)
    if state.posterior.dim < dim:
        state.posterior.grow(dim - state.posterior.dim)
    if len(rows):
        X = np.hstack([np.ones((len(rows), 1)), np.vstack(rows["context"].to_numpy())])
        slots = np.array([slot_of[int(v)] for v in rows["variant"]])
        Phi = joint_features(X, Z[slots], slots, config["n_slots"])
        state.posterior.update(Phi, rows["reward"].to_numpy(dtype=float))
    state.cutoff_us = max(state.cutoff_us, upto)
    return state
