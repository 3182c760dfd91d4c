"""A webhook call end to end: parse the provider payload, journal the events,
turn the ones carrying a decision id into bandit rewards.

A decision's reward is its campaign's `reward_event` (click by default):
reward 1.0 (a conversion's revenue when the campaign rewards conversions).
The allocator deduplicates rewards by event id, like the journal does events.
"""
from __future__ import annotations

from collections import Counter

from serving.schemas import WebhookResponse
from serving.webhooks import PARSERS, ProviderEvent, to_event_rows


def reward_events(events: list[ProviderEvent], reward_event_of) -> list[ProviderEvent]:
    """Events that are their campaign's reward event (`reward_event_of(campaign_id)` -> type or None)."""
    out = []
    for e in events:
        if e.decision_id is None or e.type is None:
            continue
        if e.type == reward_event_of(e.campaign_id):
            out.append(e)
    return out


def ingest(provider: str, payload, journal, state, signing_key: str | None = None) -> WebhookResponse:
    parse = PARSERS[provider]
    events = parse(payload, signing_key) if provider == "mailgun" else parse(payload)
    rows = to_event_rows(events)
    recorded, duplicates = journal.append(rows)
    ignored = sum(not e.recordable for e in events)

    cache: dict = {}

    def reward_event_of(campaign_id):
        if campaign_id not in cache:
            try:
                cache[campaign_id] = state.campaign_config(campaign_id)["reward_event"] if campaign_id else "click"
            except ValueError:
                cache[campaign_id] = None  # unknown campaign: no reward
        return cache[campaign_id]

    rewarded = reward_events(events, reward_event_of)
    statuses: Counter = Counter()
    if rewarded:
        result = state.allocator.rewards(
            [e.decision_id for e in rewarded],
            [e.value if e.type == "conversion" and e.value is not None else 1.0 for e in rewarded],
            [e.occurred_at for e in rewarded],
            [str(e.event_id) for e in rewarded],
        )
        statuses.update(result)
    return WebhookResponse(provider=provider, received=len(events), recorded=recorded, duplicates=duplicates,
                           ignored=ignored, rewards=dict(statuses))
