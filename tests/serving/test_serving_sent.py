"""`POST /sent` over HTTP: marks decisions as mailed, idempotent, unknown ids reported, validated, scoped."""
from __future__ import annotations

import json

import pytest

from serving_provider_samples import CAMPAIGN

pytestmark = [pytest.mark.server, pytest.mark.slow]


def _contacts(settings, n=2) -> list[int]:
    from simulation.eventlog import read_table, table_path

    return read_table("contacts", table_path(settings.events_dir, "contacts"))["contact_id"].iloc[10:10 + n].tolist()


def _decide(client, settings, n=2) -> list[str]:
    r = client.post("/decide", json={"campaign_id": CAMPAIGN, "contact_ids": _contacts(settings, n)})
    assert r.status_code == 200, r.text
    return [d["decision_id"] for d in r.json()["decisions"]]


def test_sent_marks_decisions_once_and_reports_unknown_ids(client, serving_world, allocator):
    ids = _decide(client, serving_world)
    unknown = "0" * 32
    r = client.post("/sent", json={"decision_ids": [*ids, unknown], "sent_at": "2026-09-01T10:00:00Z"})
    assert r.status_code == 200, r.text
    assert r.json() == {"marked": 2, "already": 0, "unknown": [unknown]}
    assert client.post("/sent", json={"decision_ids": ids}).json() == {"marked": 0, "already": 2, "unknown": []}
    sent = allocator.log.sent().set_index("decision_id")
    assert set(ids) <= set(sent.index) and unknown not in sent.index
    assert (sent.loc[ids, "sent_at"] == 1_788_256_800_000_000).all()  # 2026-09-01T10:00Z, the first mark's


@pytest.mark.parametrize("body, field", [
    ({"decision_ids": ["not-a-decision-id"]}, "decision_ids"),
    ({"decision_ids": ["A" * 32]}, "decision_ids"),
    ({"decision_ids": []}, "decision_ids"),
    ({"decision_ids": ["a" * 32] * 5001}, "decision_ids"),
    ({"decision_ids": "a" * 32}, "decision_ids"),
    ({"decision_ids": ["a" * 32], "sent_at": "2026-09-01T10:00:00"}, "sent_at"),
])
def test_sent_rejects_bad_input_naming_the_field(client, body, field):
    r = client.post("/sent", json=body)
    assert r.status_code == 400 and field in r.text, r.text


def test_sent_needs_the_send_scope(anonymous_client, serving_world):
    from serving.api_keys import KeyStore

    store = KeyStore(serving_world.data_dir)
    _, send_key = store.create(["send"], name="sent: send pipeline")
    _, reward_key = store.create(["reward"], name="sent: rewards")
    body = {"decision_ids": ["b" * 32]}
    assert anonymous_client.post("/sent", json=body).status_code == 401
    assert anonymous_client.post("/sent", json=body, headers={"Authorization": f"Bearer {reward_key}"}).status_code == 403
    ok = anonymous_client.post("/sent", json=body, headers={"Authorization": f"Bearer {send_key}"})
    assert ok.status_code == 200 and ok.json()["unknown"] == ["b" * 32]


def test_a_verified_delivered_event_marks_its_decision_sent(client, serving_world, allocator):
    from datetime import datetime, timezone

    from serving.demo_webhook_keys import demo_signers
    from serving_provider_samples import record_sends, sendgrid_events

    r = client.post("/decide", json={"campaign_id": CAMPAIGN, "contact_ids": _contacts(serving_world)})
    decisions = r.json()["decisions"]
    ids = [d["decision_id"] for d in decisions]
    assert len(ids) == 2, r.text
    sends = record_sends(serving_world, decisions, 970_000)  # webhook events must match a known send
    delivered = [ev for ev in sendgrid_events(**sends[0], when=int(datetime.now(timezone.utc).timestamp()))
                 if ev["event"] == "delivered"]
    delivered[0]["sg_event_id"] = "delivered-marks-sent"
    body = json.dumps(delivered).encode()
    r = client.post("/webhooks/sendgrid", content=body,
                    headers={"Content-Type": "application/json", **demo_signers(serving_world).sendgrid_headers(body)})
    assert r.status_code == 200 and r.json()["recorded"] == 1, r.text
    marked = set(allocator.log.sent()["decision_id"])
    assert ids[0] in marked and ids[1] not in marked
