"""The webhooks of the real service over HTTP (mounted ASGI app, no API key, the demo's signers)."""
from __future__ import annotations

import sqlite3
from datetime import datetime, timezone

import pytest

from serving_provider_samples import (
    CAMPAIGN, mailgun_event, record_sends, sendgrid_events, ses_notification, signed_sendgrid_post,
)

pytestmark = [pytest.mark.server, pytest.mark.slow]


def journal_count(settings) -> int:
    with sqlite3.connect(settings.events_dir / "webhook_journal.db") as conn:
        return conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]


@pytest.fixture(scope="module")
def signers(serving_world):
    """The demo's signing keys, configured in the serving world (the running service re-reads its key file)."""
    from serving.demo_webhook_keys import demo_signers

    return demo_signers(serving_world)


def sent(client, settings, n: int, first_send_id: int) -> list[dict]:
    """Decide for n contacts and record their sends."""
    from simulation.eventlog import read_table, table_path

    contacts = read_table("contacts", table_path(settings.events_dir, "contacts"))["contact_id"].head(60).tolist()
    r = client.post("/decide", json={"campaign_id": CAMPAIGN, "contact_ids": contacts})
    assert r.status_code == 200, r.text
    decisions = r.json()["decisions"][:n]
    assert len(decisions) == n
    return record_sends(settings, decisions, first_send_id)


def test_signed_webhooks_of_each_provider_record_and_reward(client, anonymous_client, serving_world, signers):
    ids = sent(client, serving_world, 3, 930_001)
    now = datetime.now(timezone.utc)
    events = sendgrid_events(**ids[0], when=int(now.timestamp()))
    mailgun = mailgun_event(**ids[1], signature=signers.mailgun_signature(), timestamp=now.timestamp())
    calls = {
        "sendgrid": lambda: signed_sendgrid_post(anonymous_client, signers, events),
        "mailgun": lambda: anonymous_client.post("/webhooks/mailgun", json=mailgun),
        "ses": lambda: anonymous_client.post("/webhooks/ses", json=signers.sns(
            ses_notification(message_id="http-ses-1", **ids[2], when=now))),
    }
    recorded = {"sendgrid": 3, "mailgun": 1, "ses": 1}  # SendGrid's "processed" is not recorded
    for provider, call in calls.items():
        r = call()
        assert r.status_code == 200, r.text
        assert (r.json()["recorded"], r.json()["rewards"]) == (recorded[provider], {"accepted": 1}), r.json()
    retry = calls["sendgrid"]().json()
    assert (retry["recorded"], retry["duplicates"], retry["rewards"]) == (0, 3, {"duplicate": 1})
    assert calls["mailgun"]().status_code == 401  # the same Mailgun token twice: a replay


def test_forged_unsigned_unsubscribes_get_401_and_record_nothing(anonymous_client, serving_world, signers):
    before = journal_count(serving_world)
    forged = [{**sendgrid_events(send_id=1, contact_id=c)[1], "event": "unsubscribe", "sg_event_id": f"f{c}"}
              for c in range(5000)]
    r = anonymous_client.post("/webhooks/sendgrid", json=forged)
    assert r.status_code == 401 and r.json()["field"] == "X-Twilio-Email-Event-Webhook-Timestamp"
    assert anonymous_client.post("/webhooks/mailgun", json=mailgun_event()).status_code == 401  # 2018 signature
    assert anonymous_client.post("/webhooks/ses", json=ses_notification()).status_code == 401
    assert anonymous_client.post("/webhooks/ses", content=b"{oops").status_code == 400
    assert journal_count(serving_world) == before


def test_webhook_routes_are_in_the_openapi_document(anonymous_client):
    spec = anonymous_client.get("/docs.json").json()
    for provider in ("sendgrid", "mailgun", "ses"):
        post = spec["paths"][f"/webhooks/{provider}"]["post"]
        assert {"200", "400", "401", "413"} <= set(post["responses"]), post["responses"]
        assert "application/json" in post["requestBody"]["content"]
