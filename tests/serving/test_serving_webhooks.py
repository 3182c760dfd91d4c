"""Webhook normalization (pure functions) and the deduplicating event journal."""
from __future__ import annotations

import json

import numpy as np
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


def test_mailgun_maps_types_and_ids():
    (click,) = parse_mailgun(mailgun_event())
    assert (click.type, click.decision_id, click.send_id, click.contact_id) == ("click", "d-2", 12, 8)


@pytest.mark.parametrize("severity, expected", [("permanent", "bounce"), ("temporary", "soft_bounce"),
                                                (None, "soft_bounce")])
def test_mailgun_failed_is_hard_only_when_permanent_and_temporary_is_kept(severity, expected):
    failed = mailgun_event(event="failed")
    if severity is not None:
        failed["event-data"]["severity"] = severity
    assert parse_mailgun(failed)[0].type == expected  # a temporary failure is recorded, not dropped


@pytest.mark.parametrize("event, bounce_type, expected", [
    ("bounce", "bounce", "bounce"), ("bounce", None, "bounce"), ("bounce", "blocked", "soft_bounce"),
    ("deferred", None, "soft_bounce"), ("dropped", None, None)])
def test_sendgrid_bounce_is_hard_blocked_and_deferred_are_soft(event, bounce_type, expected):
    ev = sendgrid_events()[1]
    ev["event"] = event
    if bounce_type is not None:
        ev["type"] = bounce_type
    assert parse_sendgrid([ev])[0].type == expected


@pytest.mark.parametrize("via", ["tags", "headers"])
def test_ses_reads_ids_from_tags_or_headers(via):
    (click,) = parse_ses(ses_notification(via=via))
    assert (click.type, click.send_id, click.contact_id, click.decision_id) == ("click", 13, 9, "d-3")
    assert click.occurred_at == pd.Timestamp("2017-08-09T23:51:25.570Z")


@pytest.mark.parametrize("bounce_type, expected", [("Permanent", "bounce"), ("Transient", "soft_bounce"),
                                                    ("Undetermined", "soft_bounce")])
def test_ses_bounce_is_hard_only_when_permanent(bounce_type, expected):
    assert parse_ses(ses_notification("Bounce", bounce_type=bounce_type))[0].type == expected


def test_ses_tags_are_decoded_as_the_send_pipeline_escaped_them():
    from sending.headers import ses_tag_value

    note = ses_notification(campaign_id=ses_tag_value("spring.2026:a_b"))
    assert parse_ses(note)[0].campaign_id == "spring.2026:a_b"
    message = json.loads(note["Message"])
    message["mail"]["tags"]["campaign_id"] = ["_FF"]  # not UTF-8 once unescaped
    with pytest.raises(WebhookPayloadError, match="Message.mail.tags.campaign_id"):
        parse_ses({**note, "Message": json.dumps(message)})


def test_ses_delivery_and_subscription_confirmation():
    assert parse_ses(ses_notification("Delivery"))[0].type == "delivered"
    assert parse_ses({"Type": "SubscriptionConfirmation", "MessageId": "x", "Token": "t"}) == []


def test_soft_bounces_are_valid_event_rows_and_not_the_bounced_feature(tmp_path):
    """A soft bounce lands in the event log as its own type; the features' `bounced` flag counts hard ones only."""
    from features.pipeline import build_features
    from simulation.cli import simulate_to_disk
    from simulation.world import WorldConfig
    from inbox.settings import Settings

    settings = Settings(tmp_path / "data", f"sqlite:///{tmp_path}/mlflow.db", tmp_path / "mlruns")
    simulate_to_disk(WorldConfig(n_contacts=300, n_days=30, seed=3), settings=settings, progress=False)
    events_dir = settings.events_dir
    events = read_table("events", table_path(events_dir, "events"))
    sends = read_table("sends", table_path(events_dir, "sends"))
    bounced_ever = set(events.loc[events["type"] == "bounce", "contact_id"])
    assert bounced_ever  # the simulated world has hard bounces (invalid addresses)
    soft = sends[~sends["contact_id"].isin(bounced_ever)].drop_duplicates("contact_id").head(5)
    rows = pd.DataFrame({"event_id": 2**62 + np.arange(len(soft)), "send_id": soft["send_id"].to_numpy(),
                         "contact_id": soft["contact_id"].to_numpy(), "type": "soft_bounce",
                         "occurred_at": soft["sent_at"] + pd.Timedelta(minutes=1), "value": np.nan})
    from serving.eventsink import append_events
    assert append_events(events_dir, rows) == len(soft)
    build_features(events_dir, settings.features_dir)
    eng = pd.read_parquet(settings.features_dir / "contact_engagement.parquet",
                          columns=["contact_id", "event_timestamp", "bounced"])
    latest = eng.sort_values("event_timestamp").groupby("contact_id").tail(1).set_index("contact_id")["bounced"]
    assert not latest.loc[soft["contact_id"]].any()          # soft bounces do not set the flag
    assert latest.loc[sorted(bounced_ever & set(latest.index))].all()  # hard ones do


@pytest.mark.parametrize("parse, payload, field", [
    (parse_sendgrid, {"event": "open"}, "body"),
    (parse_sendgrid, [{"event": "open", "timestamp": 1}], "[0].sg_event_id"),
    (parse_sendgrid, [{"event": "open", "sg_event_id": "x", "timestamp": "soon"}], "[0].timestamp"),
    (parse_mailgun, {"event-data": {}}, "event-data.event"),
    (parse_mailgun, {"signature": {}}, "event-data"),
    (parse_sendgrid, [{"event": "open", "sg_event_id": "x", "timestamp": 1.6e9, "send_id": 2**63}], "[0].send_id"),
    (parse_sendgrid, [{"event": "open", "sg_event_id": "x", "timestamp": 253402300800}], "[0].timestamp"),
    (parse_sendgrid, [{"event": "open", "sg_event_id": "x", "timestamp": True}], "[0].timestamp"),
    (parse_ses, {"Type": "Notification", "MessageId": "m", "Message": 5}, "Message"),
    (parse_ses, {"Type": "Notification", "MessageId": ["m"], "Message": "{}"}, "MessageId"),
    (parse_ses, {"Type": "Notification", "MessageId": "m",
                 "Message": json.dumps({"eventType": "Click", "mail": {"timestamp": "2026-01-01T00:00:00Z",
                                                                       "tags": ["x"]}})}, "Message.mail.tags"),
    (parse_ses, {"Type": "Notification", "MessageId": "m",
                 "Message": json.dumps({"eventType": "Click", "mail": {"timestamp": "2026-01-01T00:00:00Z",
                                                                       "headers": [{"name": 3}]}})},
     "Message.mail.headers[0].name"),
    (parse_ses, {"Type": "Notification", "MessageId": "m",
                 "Message": json.dumps({"eventType": "Click", "click": "now", "mail": {}})}, "Message.click"),
    (parse_ses, {"Type": "Notification", "MessageId": "m",
                 "Message": json.dumps({"eventType": "Click", "mail": {"timestamp": "0001-01-01T00:00:00Z"}})},
     "Message.mail.timestamp"),
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


def test_send_lookup_matches_send_contact_and_decision():
    from datetime import datetime, timezone

    from serving.send_lookup import SendLookup
    from serving.webhooks import ProviderEvent

    table = pd.DataFrame({"send_id": [1, 2], "contact_id": [10, 20], "decision_id": ["d1", None]})
    asked = []

    def source(ids):
        asked.append(sorted(ids.tolist()))
        return table[table["send_id"].isin(ids)]

    def ev(send, contact, decision):
        return ProviderEvent("sendgrid", "x", "click", datetime.now(timezone.utc), send, contact, decision, None)

    events = [ev(1, 10, "d1"), ev(1, 10, None), ev(1, 11, "d1"), ev(2, 20, None), ev(2, 20, "d1"), ev(3, 30, None),
              ev(None, 10, None)]
    assert SendLookup([source]).known(events).tolist() == [True, True, False, True, False, False, False]
    assert asked == [[1, 2, 3]]
    second = []
    SendLookup([source, lambda ids: second.append(sorted(ids.tolist())) or table.iloc[:0]]).known(events)
    assert second == [[3]]  # a later source is asked only for the ids the earlier ones lack
