"""The webhooks of the real service over HTTP (mounted ASGI app, no API key, the demo's signers)."""
from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timezone

import pandas as pd
import pytest

from serving_provider_samples import CAMPAIGN, mailgun_event, sendgrid_events, ses_notification

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
    """Decide for n contacts and record their sends (as the send pipeline does before mailing)."""
    from serving.eventsink import append_sends
    from simulation.eventlog import read_table, table_path

    contacts = read_table("contacts", table_path(settings.events_dir, "contacts"))["contact_id"].head(60).tolist()
    r = client.post("/decide", json={"campaign_id": CAMPAIGN, "contact_ids": contacts})
    assert r.status_code == 200, r.text
    decisions = r.json()["decisions"][:n]
    assert len(decisions) == n
    sends = pd.DataFrame({
        "send_id": [first_send_id + i for i in range(n)], "contact_id": [d["contact_id"] for d in decisions],
        "campaign_id": CAMPAIGN, "content_id": [d["variant"] for d in decisions],
        "sent_at": pd.Timestamp.now(tz="UTC"), "decision_id": [d["decision_id"] for d in decisions],
        "propensity": [d["propensity"] for d in decisions]})
    append_sends(settings.events_dir, sends)
    return [{"send_id": int(s.send_id), "contact_id": int(s.contact_id), "decision_id": s.decision_id,
             "campaign_id": CAMPAIGN} for s in sends.itertuples()]


def test_signed_webhooks_of_each_provider_record_and_reward(client, anonymous_client, serving_world, signers):
    ids = sent(client, serving_world, 3, 930_001)
    now = datetime.now(timezone.utc)
    body = json.dumps(sendgrid_events(**ids[0], when=int(now.timestamp()))).encode()
    calls = {
        "sendgrid": lambda: anonymous_client.post(
            "/webhooks/sendgrid", content=body,
            headers={"Content-Type": "application/json", **signers.sendgrid_headers(body)}),
        "mailgun": lambda: anonymous_client.post("/webhooks/mailgun", json=mailgun_event(
            **ids[1], signature=signers.mailgun_signature(), timestamp=now.timestamp())),
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
