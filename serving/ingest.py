"""Verified provider events end to end: match them to our sends, journal them, record opt-outs
in the consent ledger, and turn the ones carrying a decision id into bandit rewards.

Only events matching a known send of their contact (`serving.send_lookup`)
go any further; the others are counted as `rejected`. Provider events we do
not record (SendGrid `processed`, Mailgun `accepted`, ...) are `ignored`.
An unsubscribe or complaint is an opt-out from all mail in the consent ledger
(`privacy.consent`, source `webhook:<provider>`, idempotent by provider event id).
A decision's reward is its campaign's `reward_event` (click by default):
reward 1.0 (a conversion's revenue when the campaign rewards conversions).
The allocator deduplicates rewards by event id, like the journal does events.
An event that says the recipient got the message (delivered, open, click, ...)
also marks its decision sent (`Allocator.mark_sent`, idempotent): what a campaign
with `learn_from: sent` learns from, whoever sent the mail.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from serving.schemas import WebhookResponse
from serving.webhooks import ProviderEvent, to_event_rows

OPT_OUT_EVENTS = ("unsubscribe", "complaint")
MAILED_EVENTS = ("delivered", "open", "click", "conversion", "unsubscribe", "complaint")  # not a bounce


def reward_events(events: list[ProviderEvent], reward_event_of) -> list[ProviderEvent]:
    """Events that are their campaign's reward event (`reward_event_of(campaign_id)` -> type or None)."""
    out = []
    for e in events:
        if e.decision_id is None or e.type is None:
            continue
        if e.type == reward_event_of(e.campaign_id):
            out.append(e)
    return out


def opt_outs(provider: str, events: list[ProviderEvent]) -> list[dict]:
    """Consent-ledger rows (`privacy.consent.ConsentLedger.record`) for the unsubscribes and complaints."""
    return [{"contact_id": e.contact_id, "kind": "opt_out", "topic": None, "source": f"webhook:{provider}",
             "occurred_at": e.occurred_at, "ref": f"{provider}:{e.provider_event_id}"}
            for e in events if e.type in OPT_OUT_EVENTS]


def ingest(provider: str, events: list[ProviderEvent], journal, allocator, lookup, consent=None) -> WebhookResponse:
    """Record what matches a send; `consent` is a `ConsentLedger` (or None when there is none)."""
    typed = np.array([e.type is not None for e in events], dtype=bool)
    known = lookup.known(events) & typed
    accepted = [e for e, ok in zip(events, known) if ok]
    recorded, duplicates = journal.append(to_event_rows(accepted))
    if consent is not None:
        rows = opt_outs(provider, accepted)
        if rows:
            consent.record(rows)

    mailed = [e for e in accepted if e.decision_id is not None and e.type in MAILED_EVENTS]
    if mailed:
        allocator.mark_sent([e.decision_id for e in mailed], [e.occurred_at for e in mailed])

    cache: dict = {}

    def reward_event_of(campaign_id):
        if campaign_id not in cache:
            try:
                cache[campaign_id] = allocator.log.campaign(campaign_id)[1]["reward_event"] if campaign_id else "click"
            except (KeyError, ValueError):
                cache[campaign_id] = None  # unknown campaign: no reward
        return cache[campaign_id]

    rewarded = reward_events(accepted, reward_event_of)
    statuses: Counter = Counter()
    if rewarded:
        result = allocator.rewards(
            [e.decision_id for e in rewarded],
            [e.value if e.type == "conversion" and e.value is not None else 1.0 for e in rewarded],
            [e.occurred_at for e in rewarded],
            [str(e.event_id) for e in rewarded],
        )
        statuses.update(result)
    return WebhookResponse(provider=provider, received=len(events), recorded=recorded, duplicates=duplicates,
                           ignored=int((~typed).sum()), rejected=int((typed & ~known).sum()),
                           rewards=dict(statuses))
