"""The real service over HTTP: endpoints, validation, learning from signed webhooks, reload
(the webhooks themselves: test_serving_webhook_http.py)."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest

from serving_provider_samples import CAMPAIGN, record_sends, sendgrid_events, signed_sendgrid_post

pytestmark = [pytest.mark.server, pytest.mark.slow]


def decision_count(allocator) -> int:
    return len(allocator.log.decisions(CAMPAIGN))


def known_contacts(settings, n=3):
    from simulation.eventlog import read_table, table_path

    return read_table("contacts", table_path(settings.events_dir, "contacts"))["contact_id"].head(n).tolist()


def test_health_readiness_metrics_and_openapi(client):
    assert client.get("/readyz").status_code == 200
    assert client.get("/livez").status_code == 200
    client.post("/score", json={"contact_ids": [1]})
    metrics = client.get("/metrics").text
    assert "bentoml_service_request_duration_seconds" in metrics
    assert 'bentoml_service_request_total{endpoint="/score"' in metrics
    spec = client.get("/docs.json").json()
    for path in ("/score", "/send_time", "/rank_content", "/choose_variant", "/reward", "/decide", "/reload",
                 "/webhooks/sendgrid", "/webhooks/mailgun", "/webhooks/ses"):
        assert path in spec["paths"], path


def test_score_send_time_rank_and_fallback(client, serving_world):
    ids = known_contacts(serving_world, 2)
    r = client.post("/score", json={"contact_ids": [*ids, 10_000_000]})
    assert r.status_code == 200, r.text
    scores = r.json()["scores"]
    assert [s["contact_id"] for s in scores] == [*ids, 10_000_000]
    assert all(0 <= s["probability"] <= 1 and s["tier"] in "ABCD" for s in scores)
    assert [s["fallback"] for s in scores] == [False, False, True]
    assert [s["source"] for s in scores] == ["published", "published", "live"]  # no row: computed live
    assert scores[0]["reasons_positive"] or scores[0]["reasons_negative"]

    start = datetime(2026, 9, 1, tzinfo=timezone.utc)
    r = client.post("/send_time", json={"contact_ids": ids, "window": {
        "start": start.isoformat(), "end": (start + timedelta(hours=24)).isoformat()}})
    assert r.status_code == 200, r.text
    for slot in r.json()["slots"]:
        at = datetime.fromisoformat(slot["send_at"].replace("Z", "+00:00"))
        assert start <= at < start + timedelta(hours=24)
        assert slot["level"] in ("contact", "segment", "population")

    r = client.post("/rank_content", json={"contact_id": ids[0], "k": 3})
    assert r.status_code == 200, r.text
    ranking = r.json()["ranking"]
    assert [x["rank"] for x in ranking] == [1, 2, 3]
    assert ranking[0]["score"] >= ranking[-1]["score"]


def test_choose_reward_duplicate_and_unknown(client, serving_world):
    contact = known_contacts(serving_world, 1)[0]
    r = client.post("/choose_variant", json={"campaign_id": CAMPAIGN, "contact_id": contact})
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    assert 0 < choice["propensity"] <= 1
    body = {"decision_id": choice["decision_id"], "reward": 1.0, "event_id": "evt-choose-1"}
    assert client.post("/reward", json=body).json()["status"] == "accepted"
    assert client.post("/reward", json=body).json()["status"] == "duplicate"
    r = client.post("/reward", json={**body, "decision_id": "no-such-decision"})
    assert r.status_code == 404 and "decision_id" in r.text


def test_decide_returns_everything_in_one_round_trip(client, serving_world, allocator):
    from privacy.consent import ConsentLedger

    ids = known_contacts(serving_world, 3)
    with ConsentLedger.open(serving_world) as ledger:  # a consenting contact the feature store does not know yet
        ledger.record([{"contact_id": 10_000_001, "kind": "opt_in", "source": "test",
                        "occurred_at": datetime.now(timezone.utc)}])
    before = decision_count(allocator)
    r = client.post("/decide", json={"campaign_id": CAMPAIGN, "contact_ids": [*ids, 10_000_001], "k": 2})
    assert r.status_code == 200, r.text
    out = r.json()
    assert set(out["model_versions"]) == {"lead_scoring", "send_time", "content_preference"}
    decisions = out["decisions"]
    assert [d["contact_id"] for d in decisions] == [*ids, 10_000_001]
    assert decisions[-1]["fallback"] is True
    assert [d["source"] for d in decisions] == ["published"] * 3 + ["live"]
    for d in decisions:
        assert d["decision_id"] and 0 < d["propensity"] <= 1
        assert len(d["content_order"]) == 2 and 0 <= d["lead_score"] <= 100
    assert decision_count(allocator) == before + 4


@pytest.mark.parametrize("path, body, field", [
    ("/decide", {"campaign_id": CAMPAIGN, "contact_ids": "1,2"}, "contact_ids"),
    ("/decide", {"campaign_id": CAMPAIGN, "contact_ids": [1, "x"]}, "contact_ids"),
    ("/decide", {"campaign_id": "unknown-campaign", "contact_ids": [1]}, "campaign_id"),
    ("/decide", {"campaign_id": CAMPAIGN, "contact_ids": []}, "contact_ids"),
    ("/decide", {"campaign_id": CAMPAIGN, "contact_ids": list(range(1001))}, "contact_ids"),
    ("/decide", {"campaign_id": CAMPAIGN, "contact_ids": [1, 1]}, "contact_ids"),
    ("/decide", {"campaign_id": CAMPAIGN, "contact_ids": [-5]}, "contact_ids"),
    ("/decide", {"campaign_id": CAMPAIGN, "contact_ids": [1], "content_ids": [99999]}, "content_ids"),
    ("/decide", {"campaign_id": CAMPAIGN, "contact_ids": [1],
                 "window": {"start": "2026-09-01T00:00:00", "end": "2026-09-02T00:00:00Z"}}, "window"),
    ("/choose_variant", {"campaign_id": CAMPAIGN}, "contact_id"),
    ("/reward", {"decision_id": "x", "reward": "lots", "event_id": "e"}, "reward"),
    # each of these was a 500 (issue 13): ids above int64, dates near year 1 / 9999, wrong types
    ("/decide", {"campaign_id": CAMPAIGN, "contact_ids": [2**63]}, "contact_ids"),
    ("/score", {"contact_ids": [2**64 + 5]}, "contact_ids"),
    ("/choose_variant", {"campaign_id": CAMPAIGN, "contact_id": 1, "exclude": [2**70]}, "exclude"),
    ("/decide", {"campaign_id": CAMPAIGN, "contact_ids": [1],
                 "window": {"start": "0001-01-01T00:00:00Z", "end": "0001-01-02T00:00:00Z"}}, "window"),
    ("/decide", {"campaign_id": CAMPAIGN, "contact_ids": [1],
                 "window": {"start": "9999-12-31T00:00:00Z", "end": "9999-12-31T23:59:59Z"}}, "window"),
    ("/send_time", {"contact_ids": [1],
                    "window": {"start": "9999-12-31T00:00:00-14:00", "end": "9999-12-31T23:00:00-14:00"}}, "window"),
    ("/decide", {"campaign_id": CAMPAIGN, "contact_ids": [1],
                 "window": {"start": "2026-09-01T00:00:00Z", "end": "2226-09-01T00:00:00Z"}}, "window"),
    ("/send_time", {"contact_ids": [1], "window": {"start": "2026-09-01T00:00:00Z", "end": "2026-09-02T00:00:00Z",
                                                   "quiet_hours": [25, -1]}}, "quiet_hours"),
    ("/reward", {"decision_id": "x", "reward": 1, "event_id": "e", "occurred_at": "0001-01-01T00:00:00Z"},
     "occurred_at"),
    ("/reward", {"decision_id": "x", "reward": 1, "event_id": "e", "occurred_at": "9999-12-31T23:59:59Z"},
     "occurred_at"),
    ("/decide", {"campaign_id": 5, "contact_ids": {"a": 1}, "k": "x"}, "campaign_id"),
    ("/rank_content", {"contact_id": [1]}, "contact_id"),
])
def test_bad_input_gets_4xx_naming_the_field_and_logs_nothing(client, allocator, path, body, field):
    before = decision_count(allocator)
    r = client.post(path, json=body)
    assert 400 <= r.status_code < 500, r.text
    assert field in r.text
    assert decision_count(allocator) == before


def test_rewards_change_the_next_snapshot_and_reload_serves_it(client, serving_world, allocator):
    from serving.demo_webhook_keys import demo_signers

    contacts = known_contacts(serving_world, 40)
    decisions = client.post("/decide", json={"campaign_id": CAMPAIGN, "contact_ids": contacts}).json()["decisions"]
    sends = record_sends(serving_world, decisions, 910_000)  # webhook events must match a known send
    clicks = [ev for i, ids in enumerate(sends) if i % 2 == 0
              for ev in sendgrid_events(**ids, when=int(datetime.now(timezone.utc).timestamp()))
              if ev["event"] == "click"]
    for i, ev in enumerate(clicks):
        ev["sg_event_id"] = f"click-{i}"
    r = signed_sendgrid_post(client, demo_signers(serving_world), clicks)
    assert r.json()["rewards"] == {"accepted": len(clicks)}
    old = allocator.snapshots.newest()
    version = allocator.learn(now=datetime.now(timezone.utc) + timedelta(hours=49))
    assert version == old + 1
    new_state = allocator.snapshots.read(version).campaigns[CAMPAIGN]
    old_state = allocator.snapshots.read(old).campaigns.get(CAMPAIGN) if old else None
    assert old_state is None or new_state.posterior.n > old_state.posterior.n
    r = client.post("/reload", json={})
    assert r.status_code == 200, r.text
    assert r.json()["policy_version"] == version
    choice = client.post("/choose_variant", json={"campaign_id": CAMPAIGN, "contact_id": contacts[0]}).json()
    assert choice["choices"][0]["policy_version"] == version


def test_reload_under_load_fails_no_request(client, service, serving_world, api_key):
    import httpx

    ids = known_contacts(serving_world, 5)
    statuses: list[int] = []
    stop = threading.Event()

    def hammer():
        with httpx.Client(base_url=service.url, timeout=60, headers={"Authorization": f"Bearer {api_key}"}) as c:
            while not stop.is_set():
                statuses.append(c.post("/score", json={"contact_ids": ids, "reasons": False}).status_code)

    threads = [threading.Thread(target=hammer) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        r = client.post("/reload", json={}, timeout=300)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert r.status_code == 200, r.text
    assert len(statuses) > 5
    assert set(statuses) == {200}
