"""Webhook normalization (pure functions) and the deduplicating event journal."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from serving.eventsink import EventJournal, append_sends, flush
from serving.webhooks import (
    WebhookPayloadError, parse_mailgun, parse_sendgrid, parse_ses, stable_event_id, to_event_rows,
)
from simulation.eventlog import read_table, table_path, validate
from serving_provider_samples import mailgun_event, sendgrid_events, ses_notification


def test_sendgrid_maps_types_ids_and_skips_unrecorded_events():
    events = parse_sendgrid(sendgrid_events())
    assert [e.type for e in events] == [None, "delivered", "open", "click"]  # processed is not an event we keep
    click = events[-1]
    assert (click.send_id, click.contact_id, click.decision_id, click.campaign_id) == (11, 7, "d-1", "spring")
    assert click.occurred_at == pd.Timestamp(1513299569 + 131, unit="s", tz="UTC")
    rows = to_event_rows(events)
    validate("events", rows)
    assert list(rows["type"]) == ["delivered", "open", "click"]


def test_event_id_is_a_stable_63_bit_hash_per_provider():
    a = stable_event_id("sendgrid", "kCAi1KttyQdEKHhdC-nuEA==")
    assert a == stable_event_id("sendgrid", "kCAi1KttyQdEKHhdC-nuEA==")
    assert a != stable_event_id("mailgun", "kCAi1KttyQdEKHhdC-nuEA==")
    assert 0 <= a < 2**63


def test_mailgun_signature_and_failed_permanent_is_a_bounce():
    events = parse_mailgun(mailgun_event(), signing_key="key-secret")
    assert events[0].type == "click" and events[0].decision_id == "d-2" and events[0].send_id == 12
    with pytest.raises(WebhookPayloadError, match="signature.signature"):
        parse_mailgun(mailgun_event(), signing_key="another-key")
    failed = mailgun_event(event="failed")
    failed["event-data"]["severity"] = "permanent"
    assert parse_mailgun(failed)[0].type == "bounce"
    failed["event-data"]["severity"] = "temporary"
    assert parse_mailgun(failed)[0].type is None


@pytest.mark.parametrize("via", ["tags", "headers"])
def test_ses_reads_ids_from_tags_or_headers(via):
    (click,) = parse_ses(ses_notification(via=via))
    assert (click.type, click.send_id, click.contact_id, click.decision_id) == ("click", 13, 9, "d-3")
    assert click.occurred_at == pd.Timestamp("2017-08-09T23:51:25.570Z")


def test_ses_bounce_types_and_subscription_confirmation():
    assert parse_ses(ses_notification("Bounce"))[0].type == "bounce"
    assert parse_ses(ses_notification("Bounce", bounce_type="Transient"))[0].type is None
    assert parse_ses(ses_notification("Delivery"))[0].type == "delivered"
    assert parse_ses({"Type": "SubscriptionConfirmation", "MessageId": "x", "Token": "t"}) == []


@pytest.mark.parametrize("parse, payload, field", [
    (parse_sendgrid, {"event": "open"}, "body"),
    (parse_sendgrid, [{"event": "open", "timestamp": 1}], "[0].sg_event_id"),
    (parse_sendgrid, [{"event": "open", "sg_event_id": "x", "timestamp": "soon"}], "[0].timestamp"),
    (parse_mailgun, {"event-data": {}}, "signature"),
    (parse_ses, {"Type": "Notification", "MessageId": "m", "Message": "{not json"}, "Message"),
    (parse_ses, {"Type": "Notification", "MessageId": "m", "Message": json.dumps({"mail": {}})},
     "Message.eventType"),
])
def test_malformed_payloads_name_the_field(parse, payload, field):
    with pytest.raises(WebhookPayloadError) as info:
        parse(payload)
    assert info.value.field == field


def test_bad_custom_arg_names_the_field():
    bad = sendgrid_events(send_id="abc")
    with pytest.raises(WebhookPayloadError, match=r"\[0\].send_id"):
        parse_sendgrid(bad)


def test_journal_deduplicates_retries_and_flush_appends_atomically(tmp_path):
    journal = EventJournal(tmp_path)
    rows = to_event_rows(parse_sendgrid(sendgrid_events()))
    assert journal.append(rows) == (3, 0)
    assert journal.append(rows) == (0, 3)  # the provider retried the same batch
    assert flush(tmp_path) == 3
    assert flush(tmp_path) == 0
    events = read_table("events", table_path(tmp_path, "events"))
    assert sorted(events["type"]) == ["click", "delivered", "open"]
    more = to_event_rows(parse_mailgun(mailgun_event()))
    journal.append(more)
    assert flush(tmp_path) == 1
    assert len(read_table("events", table_path(tmp_path, "events"))) == 4
    journal.close()


def test_append_sends_keeps_existing_rows_and_skips_known_ids(tmp_path):
    def sends(ids):
        return pd.DataFrame({
            "send_id": ids, "contact_id": [1] * len(ids), "campaign_id": ["c"] * len(ids),
            "content_id": [3] * len(ids), "sent_at": pd.Timestamp("2026-05-01", tz="UTC"),
            "decision_id": ["d"] * len(ids), "propensity": [0.5] * len(ids)})
    assert append_sends(tmp_path, sends([1, 2])) == 2
    assert append_sends(tmp_path, sends([2, 3])) == 1
    assert sorted(read_table("sends", table_path(tmp_path, "sends"))["send_id"]) == [1, 2, 3]
