"""Mini-batch learner: fold decisions whose reward window has closed into
the campaign's posterior.

A decision made at t is final at t + wait_window (no in-window reward can
arrive later), so the learner's cutoff only moves forward and every decision
is folded in exactly once; a snapshot's cutoff makes training resumable.
A campaign with `learn_from: sent` folds only decisions known to have been
mailed (marked sent by the send pipeline, or rewarded): one that was logged
but never mailed (a worker killed before replying, a sender that died before
its outbox write) is not a "sent and ignored" zero; it is counted instead.

An update is checked before it is kept (`check_posterior`): a stored reward
outside the campaign's declared range is not joined, and a posterior that is
not finite (or whose mean the float32 scorers could not hold) is refused with
`RefusedUpdate`: the campaign keeps its last good state.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .decision_log import DecisionLog
from .features import joint_features
from .linear import LinearPosterior
from .snapshots import CampaignState


DEFAULT_REWARD_RANGE = (0.0, 1.0)
MAX_COEFFICIENT = 1e30  # Thompson sampling scores in float32 (max ~3.4e38): coefficients stay far below


class RefusedUpdate(ValueError):
    """A learned update that would corrupt the posterior; the message says why."""


def reward_range(config: dict) -> tuple[float, float]:
    """A campaign's declared range of one reward (campaigns registered before ranges existed: [0, 1])."""
    lo, hi = config.get("reward_range", DEFAULT_REWARD_RANGE)
    return float(lo), float(hi)


def check_posterior(post: LinearPosterior) -> None:
    """Raise RefusedUpdate unless A and b are finite, A is positive definite and the mean is
    finite and representable by the scorers."""
    if not np.isfinite(post.A).all() or not np.isfinite(post.b).all():
        raise RefusedUpdate("the posterior's sufficient statistics (A, b) are not finite")
    try:
        mean = post.mean()
    except np.linalg.LinAlgError as exc:
        raise RefusedUpdate(f"the posterior's precision matrix is not positive definite ({exc})") from None
    if not np.isfinite(mean).all():
        raise RefusedUpdate("the posterior mean is not finite")
    if np.abs(mean).max(initial=0.0) > MAX_COEFFICIENT:
        raise RefusedUpdate(f"the posterior mean reaches {np.abs(mean).max():.3g} (limit {MAX_COEFFICIENT:g})")


def learn_from(config: dict) -> str:
    """A campaign's `learn_from`: 'all' (every closed decision) or 'sent' (only those known to be mailed);
    campaigns registered before the setting existed learn from all."""
    return config.get("learn_from", "all")


def closed_decisions(log: DecisionLog, campaign_id: str, config: dict, state: CampaignState | None,
                     now_us: int) -> tuple[pd.DataFrame, int, int]:
    """Joined decisions that closed after the state's cutoff, the new cutoff, and how many closed
    decisions were left out because nothing says they were mailed (`learn_from` 'sent': no sent
    mark and no reward; always 0 with 'all'). A decision left out is never folded in later: the
    cutoff passes it like any other."""
    after = 0 if state is None else state.cutoff_us
    upto = max(after, now_us - config["wait_window_us"])
    rows = log.joined(campaign_id, after, upto, config["aggregation"], config["default_reward"],
                      reward_range(config), learn_from(config))
    mailed = rows["mailed"].to_numpy(dtype=bool)
    if mailed.all():
        return rows, upto, 0
    return rows[mailed].reset_index(drop=True), upto, int((~mailed).sum())


def fold_closed_decisions(rows: pd.DataFrame, upto: int, config: dict, Z: np.ndarray,
                          slot_of: dict[int, int], state: CampaignState | None) -> CampaignState:
    """A copy of `state` (or the prior) with `rows` folded in and the cutoff moved to `upto`.

    Raises RefusedUpdate (naming the decisions) when a reward is not finite or the
    updated posterior fails `check_posterior`; `state` itself is never modified.
    """
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
        rewards = rows["reward"].to_numpy(dtype=float)
        span = f"{len(rows)} decisions decided in ({state.cutoff_us}, {upto}] us"
        bad = ~np.isfinite(rewards)
        if bad.any():
            raise RefusedUpdate(f"{int(bad.sum())} of {span} have a non-finite reward "
                                f"(e.g. decision {rows['decision_id'].iloc[int(np.argmax(bad))]!r})")
        with np.errstate(over="ignore", invalid="ignore"):
            state.posterior.update(Phi, rewards)
        try:
            check_posterior(state.posterior)
        except RefusedUpdate as exc:
            raise RefusedUpdate(f"folding {span}: {exc}") from None
    state.cutoff_us = max(state.cutoff_us, upto)
    return state
