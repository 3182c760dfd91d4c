"""`choose` and `decide`: consent first, model predictions next, the allocator last.

Consent: before any work, the batch's contacts are looked up in the consent ledger
(`privacy.consent`, one batched read-only query per request, no cache to invalidate:
an opt-out recorded by any process applies to the next request). A contact without
consent, opted out (of all mail or of the campaign's `topic`) or suppressed is not
decided for: no decision is made or logged and no send time planned; the answer
lists it under `refused` with the reason. A missing ledger refuses everyone (fail closed).

The allocator logs every decision before returning it, so it is called only
after every other step of the request has succeeded: a request that fails
(unknown campaign, unknown content id, a model error) leaves no decision row.
"""
from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pandas as pd

from models.slots import window_hours
from serving.predict import ContactBatch, bandit_context, content_order, lead_score_arrays, slot_choice
from serving.schemas import DecideResponse, Decision, Refusal
from serving.state import ServingState


CHOICE_COLUMNS = ("decision_id", "contact_id", "variant", "propensity", "policy_version", "mode")


def _unique_ids(contact_ids) -> np.ndarray:
    ids = np.asarray(contact_ids, dtype=np.int64)
    if len(ids) < 2:
        return ids
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise ValueError(f"contact_ids: duplicate contact id {int(uniq[counts > 1][0])} in one batch")
    return ids


def consent_ledger(state: ServingState):
    """The state's read-only connection to the consent ledger (opened on first use), or None if missing."""
    if "consent_ledger" not in state.__dict__:
        from privacy.consent import ConsentLedger, ledger_path

        found = ledger_path(state.settings).exists()
        state.__dict__["consent_ledger"] = ConsentLedger.open(state.settings, read_only=True) if found else None
    return state.__dict__["consent_ledger"]


def mailable(state: ServingState, ids: np.ndarray, config: dict) -> tuple[np.ndarray, list[Refusal]]:
    """(the ids that may be mailed, a Refusal for each of the others), in request order."""
    ledger = consent_ledger(state)
    reasons = ledger.reasons(ids, config.get("topic")) if ledger is not None \
        else np.full(len(ids), "no_consent", dtype=object)
    refused = np.flatnonzero(reasons != None)  # noqa: E711 - elementwise on an object array
    if not len(refused):
        return ids, []
    keep = np.ones(len(ids), dtype=bool)
    keep[refused] = False
    return ids[keep], [Refusal.model_construct(contact_id=int(ids[i]), reason=reasons[i]) for i in refused]


def choose(state: ServingState, campaign_id: str, contact_ids, exclude=None) -> pd.DataFrame:
    """Allocator choices (one row per contact that may be mailed) with the campaign's context features read
    from the online store; the refusals of the others in `.attrs["refused"]` (a list of `Refusal`)."""
    config = state.campaign_config(campaign_id)
    ids, refused = mailable(state, _unique_ids(contact_ids), config)
    if not len(ids):
        df = pd.DataFrame({c: [] for c in CHOICE_COLUMNS})
    else:
        batch = ContactBatch.read(state, ids, features=config["context_features"], hours=()) \
            if config["context_features"] else None
        context = bandit_context(config, batch, lead_score_arrays(batch)) if batch is not None else None
        df = state.allocator.choose(campaign_id, ids, context, exclude=exclude)
    df.attrs["refused"] = refused
    return df


def decide(state: ServingState, campaign_id: str, contact_ids, start: datetime, end: datetime,
           quiet_hours=(21, 7), content_ids=None, k: int = 3) -> DecideResponse:
    config = state.campaign_config(campaign_id)  # unknown campaign -> ValueError before any work
    ids, refused = mailable(state, _unique_ids(contact_ids), config)
    if not len(ids):
        state.candidates(content_ids)  # still a 400 for an unknown content id
        return DecideResponse.model_construct(
            campaign_id=campaign_id, policy_version=int(state.allocator.policy_version),
            model_versions=state.model_versions, decisions=[], refused=refused)
    batch = ContactBatch.read(state, ids, request_time=start, features=config["context_features"],
                              hours=window_hours(start, end, quiet_hours))
    scores = lead_score_arrays(batch)
    slots = slot_choice(state, batch, start, end, quiet_hours)
    order = content_order(state, batch, content_ids, k)
    context = bandit_context(config, batch, scores)
    chosen = state.allocator.decide(campaign_id, ids, context)  # logged: must stay the last step
    send_at = [None if s is None else s.replace(tzinfo=timezone.utc)
               for s in slots.send_at.astype("datetime64[us]").tolist()]
    decisions = [
        Decision.model_construct(contact_id=c, decision_id=d, variant=v, propensity=p, send_at=s, send_level=lv,
                                 lead_score=ls, lead_tier=lt, content_order=o, fallback=f, source=src)
        for c, d, v, p, s, lv, ls, lt, o, f, src in zip(
            ids.tolist(), chosen.decision_id, chosen.variant.tolist(), chosen.propensity.tolist(), send_at,
            slots.level.tolist(), scores.score.tolist(), scores.tier.tolist(), order, batch.fallback.tolist(),
            batch.source.tolist())
    ]
    return DecideResponse.model_construct(
        campaign_id=campaign_id, policy_version=int(chosen.policy_version), model_versions=state.model_versions,
        decisions=decisions, refused=refused)
