"""The server plans no mail for a contact without the right to it: /decide and /choose_variant against
the real service, with the consent ledger changed by another process while it runs."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from serving_provider_samples import CAMPAIGN

pytestmark = [pytest.mark.server, pytest.mark.slow]


def decisions_of(allocator, contact_ids) -> int:
    log = allocator.log.decisions(CAMPAIGN)
    return int(log["contact_id"].isin(contact_ids).sum())


def spare_contacts(settings, n: int) -> list[int]:
    """Mailable contacts from the end of the list (other tests use the first ones)."""
    from privacy.consent import ConsentLedger
    from simulation.eventlog import read_table, table_path

    ids = read_table("contacts", table_path(settings.events_dir, "contacts"))["contact_id"].to_numpy()[::-1]
    with ConsentLedger.open(settings, read_only=True) as ledger:
        return [int(c) for c in ids[ledger.can_mail(ids)][:n]]


def email_of(settings, contact_id: int) -> str:
    from simulation.eventlog import read_table, table_path

    contacts = read_table("contacts", table_path(settings.events_dir, "contacts"))
    return contacts.loc[contacts["contact_id"] == contact_id, "email"].iloc[0]


def test_opted_out_suppressed_and_unknown_contacts_get_no_decision(client, serving_world, allocator):
    from privacy.consent import ConsentLedger
    from privacy.suppression import suppress

    mailed, opted_out, suppressed = spare_contacts(serving_world, 3)
    unknown = 10_000_002
    with ConsentLedger.open(serving_world) as ledger:  # another process: the service reads it on each request
        ledger.record([{"contact_id": opted_out, "kind": "opt_out", "source": "one_click",
                        "occurred_at": datetime.now(timezone.utc)}])
    suppress(serving_world, [email_of(serving_world, suppressed).upper()], "test")
    before = decisions_of(allocator, [mailed, opted_out, suppressed, unknown])

    r = client.post("/decide", json={"campaign_id": CAMPAIGN, "contact_ids": [opted_out, mailed, suppressed, unknown]})
    assert r.status_code == 200, r.text
    out = r.json()
    assert [d["contact_id"] for d in out["decisions"]] == [mailed]
    assert out["refused"] == [{"contact_id": opted_out, "reason": "opted_out"},
                              {"contact_id": suppressed, "reason": "suppressed"},
                              {"contact_id": unknown, "reason": "no_consent"}]
    assert decisions_of(allocator, [opted_out, suppressed, unknown]) == 0
    assert decisions_of(allocator, [mailed]) == before + 1

    # nobody mailable: 200, nothing decided, nothing logged
    r = client.post("/decide", json={"campaign_id": CAMPAIGN, "contact_ids": [opted_out, unknown]})
    assert r.status_code == 200, r.text
    assert r.json()["decisions"] == [] and len(r.json()["refused"]) == 2
    r = client.post("/choose_variant", json={"campaign_id": CAMPAIGN, "contact_id": opted_out})
    assert r.status_code == 200, r.text
    assert r.json()["choices"] == [] and r.json()["refused"] == [{"contact_id": opted_out, "reason": "opted_out"}]
    assert decisions_of(allocator, [opted_out, suppressed, unknown]) == 0

    # opting in again (a newer event) is honoured by the next request
    with ConsentLedger.open(serving_world) as ledger:
        ledger.record([{"contact_id": opted_out, "kind": "opt_in", "source": "preference_centre",
                        "occurred_at": datetime.now(timezone.utc)}])
    r = client.post("/decide", json={"campaign_id": CAMPAIGN, "contact_ids": [opted_out]})
    assert [d["contact_id"] for d in r.json()["decisions"]] == [opted_out] and r.json()["refused"] == []


def test_bad_input_is_still_a_400_when_everyone_is_refused(client):
    r = client.post("/decide", json={"campaign_id": CAMPAIGN, "contact_ids": [10_000_003], "content_ids": [99999]})
    assert r.status_code == 400 and "content_ids" in r.text
    r = client.post("/decide", json={"campaign_id": "no-such-campaign", "contact_ids": [10_000_003]})
    assert r.status_code == 400 and "campaign_id" in r.text


def test_a_campaign_with_a_topic_refuses_contacts_who_opted_out_of_that_topic(client, serving_world, allocator):
    """The campaign's consent topic (`register_campaign(topic=...)`, the campaign file's `topic`) reaches the
    server: a contact who opted out of 'product' gets no decision for a 'product' campaign, but still gets one
    for a campaign without a topic."""
    from privacy.consent import ConsentLedger
    from sending.campaign import VARIANT_FEATURES
    from simulation.eventlog import read_table, table_path

    content = read_table("content", table_path(serving_world.events_dir, "content"))
    variants = content.head(3)[["content_id", *VARIANT_FEATURES]]
    variants = variants.astype({c: float for c in VARIANT_FEATURES if c not in ("topic", "format")})
    allocator.register_campaign("topic-product", variants, ["engagement_score", "open_rate_30d"],
                                reward_event="click", topic="product")
    out_of_product, mailed = spare_contacts(serving_world, 12)[10:12]
    with ConsentLedger.open(serving_world) as ledger:
        ledger.record([{"contact_id": out_of_product, "kind": "opt_out", "topic": "product",
                        "source": "preference_centre", "occurred_at": datetime.now(timezone.utc)}])
    r = client.post("/decide", json={"campaign_id": "topic-product", "contact_ids": [out_of_product, mailed]})
    assert r.status_code == 200, r.text
    assert [d["contact_id"] for d in r.json()["decisions"]] == [mailed]
    assert r.json()["refused"] == [{"contact_id": out_of_product, "reason": "topic_opt_out"}]
    r = client.post("/decide", json={"campaign_id": CAMPAIGN, "contact_ids": [out_of_product]})  # no topic
    assert r.status_code == 200, r.text
    assert [d["contact_id"] for d in r.json()["decisions"]] == [out_of_product] and r.json()["refused"] == []
