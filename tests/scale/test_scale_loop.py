"""The loop on the scale profile against real servers started on loopback (issue 16's acceptance).

redis-server and PostgreSQL from the Debian packages, an MLflow tracking server on PostgreSQL with
served artifacts; a small world whose features are materialized to Redis, models trained into the
tracking server, predictions published to Redis; two `bentoml serve` replicas deciding into one
PostgreSQL decision log; rewards posted to either replica reach the learner; the learned snapshot
reaches both; Spark batch scores equal the in-process model step's.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.server]
CAMPAIGN = "scale-campaign"


@pytest.fixture(scope="module")
def scale_world(tmp_path_factory, postgres, redis_url):
    import redis

    from inbox.scale_profile import build_world, register_campaign
    from inbox.services import mlflow_server
    from inbox.settings import load_settings

    root = tmp_path_factory.mktemp("scale_world")
    tag = uuid.uuid4().hex[:8]
    tracking_db, log_db = postgres.create_database(f"mlflow_{tag}"), postgres.create_database(f"log_{tag}")
    online = redis_url.rsplit("/", 1)[0] + "/2"
    redis.Redis.from_url(online).flushdb()
    with mlflow_server(tracking_db, root / "served-artifacts") as tracking, pytest.MonkeyPatch.context() as mp:
        env = {"INBOX_DATA_DIR": str(root / "data"), "INBOX_ARTIFACT_ROOT": str(root / "mlruns"),
               "MLFLOW_TRACKING_URI": tracking, "INBOX_ONLINE_STORE": online, "INBOX_DECISION_LOG": log_db}
        for name, value in env.items():
            mp.setenv(name, value)
        settings = load_settings()
        summary = build_world(settings, contacts=500, days=60, seed=5)
        register_campaign(settings, CAMPAIGN)
        yield {"settings": settings, "summary": summary, "root": root, **env}


def test_batch_steps_ran_on_the_servers(scale_world):
    import mlflow
    import redis

    settings = scale_world["settings"]
    contacts = scale_world["summary"]["simulate"]["contacts"] if "contacts" in scale_world["summary"]["simulate"] else None
    # features and published predictions: Feast's Redis store, no SQLite online store
    assert not (settings.feast_dir / "online.db").exists()
    assert "type: redis" in (settings.feast_dir / "feature_store.yaml").read_text()
    assert scale_world["summary"]["publish"]["contacts"] > 0
    assert redis.Redis.from_url(scale_world["INBOX_ONLINE_STORE"]).dbsize() >= (contacts or 1)
    # models: registered in the tracking server, artifacts served by it (none under the local mlruns)
    client = mlflow.MlflowClient(scale_world["MLFLOW_TRACKING_URI"])
    for name in ("lead_scoring", "send_time", "content_preference"):
        version = client.get_model_version_by_alias(name, "champion")
        assert client.get_run(version.run_id).info.artifact_uri.startswith("mlflow-artifacts:")
    assert any((scale_world["root"] / "served-artifacts").rglob("MLmodel"))
    assert not (settings.artifact_root / "artifacts").exists()


def test_two_replicas_share_the_log_and_the_learner(scale_world):
    import httpx

    from experiments.bandit import Allocator
    from serving.api_keys import KeyStore
    from inbox.services import service_replicas

    settings = scale_world["settings"]
    keys = KeyStore(settings.data_dir)
    send = {"Authorization": f"Bearer {keys.create(['send'], name='scale-test')[1]}"}
    reward = {"Authorization": f"Bearer {keys.create(['reward'], name='scale-test')[1]}"}
    admin = {"Authorization": f"Bearer {keys.create(['admin'], name='scale-test')[1]}"}
    from privacy.consent import ConsentLedger

    with ConsentLedger.open(settings, read_only=True) as ledger:
        ids = np.arange(500)
        mailable = ids[ledger.can_mail(ids)][:120]
    assert len(mailable) >= 60
    with service_replicas(settings, 2) as (one, two):
        replicas = (one.url, two.url)
        answers = {url: [] for url in replicas}
        for i, contact in enumerate(mailable.tolist()):  # alternate replicas, one recipient per request
            url = replicas[i % 2]
            r = httpx.post(f"{url}/decide", json={"campaign_id": CAMPAIGN, "contact_ids": [contact]}, headers=send,
                           timeout=30)
            assert r.status_code == 200, r.text
            answers[url] += r.json()["decisions"]
        served = [d for url in replicas for d in answers[url]]
        assert len(served) == len(mailable) and all(answers.values())

        # every decision either replica returned is in the one PostgreSQL log, once
        learner = Allocator.open(settings.bandit_dir)
        logged = learner.log.decisions(CAMPAIGN)
        assert sorted(logged["decision_id"]) == sorted(d["decision_id"] for d in served)
        assert not (settings.bandit_dir / "decisions.db").exists()

        # rewards: each replica receives the rewards of the other's decisions. Replica one gets
        # replica two's through /reward; replica two gets replica one's as provider-signed SendGrid
        # click webhooks for recorded sends (one click per decision that showed the first variant)
        now = datetime.now(timezone.utc)
        for d in answers[two.url]:
            r = httpx.post(f"{one.url}/reward", headers=reward, timeout=30, json={
                "decision_id": d["decision_id"], "reward": float(d["variant"] == answers[two.url][0]["variant"]),
                "occurred_at": (now + timedelta(minutes=5)).isoformat(), "event_id": f"e-{d['decision_id']}"})
            assert r.status_code == 200 and r.json()["status"] == "accepted", r.text
        clicked = _signed_clicks_via(two.url, settings, answers[one.url], datetime.now(timezone.utc))
        assert clicked >= 1
        rewards = learner.log.rewards()
        assert len(rewards) == len(answers[two.url]) + clicked
        assert set(rewards["decision_id"]) >= {d["decision_id"] for d in answers[one.url]
                                               if d["variant"] == answers[one.url][0]["variant"]}

        # the learner folds them in; both replicas pick the snapshot up from the database
        version = learner.learn(now=now + timedelta(hours=49))
        snapshot = learner.snapshots.read(version)
        assert snapshot.campaigns[CAMPAIGN].posterior.n == len(served)
        learner.close()
        for url in replicas:
            r = httpx.post(f"{url}/reload", headers=admin, timeout=120)
            assert r.status_code == 200 and r.json()["policy_version"] == version, r.text
            r = httpx.post(f"{url}/decide", json={"campaign_id": CAMPAIGN, "contact_ids": mailable[:2].tolist()},
                           headers=send, timeout=30)
            assert r.status_code == 200 and r.json()["policy_version"] == version


def test_spark_batch_scores_equal_in_process(scale_world, spark):
    from models.lead_scorer import LeadScorer
    from models.spark_scoring import champion_inputs, score_with_spark

    version, directory, features = champion_inputs(scale_world["settings"])
    got = score_with_spark(spark, features, version, directory, partitions=3)
    p, score, tier = LeadScorer.load(directory, version=version).predict_arrays(features)
    want = pd.DataFrame({"contact_id": features["contact_id"].to_numpy(), "probability": p, "score": score,
                         "tier": tier}).sort_values("contact_id", ignore_index=True)
    assert len(got) == len(want) == features["contact_id"].nunique() > 0
    np.testing.assert_array_equal(got["contact_id"], want["contact_id"])
    np.testing.assert_array_equal(got["score"], want["score"])
    np.testing.assert_array_equal(got["tier"], want["tier"].astype(str))
    # the same code on other row blocks: BLAS may round the linear part's last bit differently
    np.testing.assert_allclose(got["probability"], want["probability"], rtol=1e-13, atol=0)
    assert (got["model_version"] == version).all()


def _signed_clicks_via(url: str, settings, decisions: list[dict], when: datetime) -> int:
    """Record sends for `decisions` (as the send pipeline does before mailing), then POST a SendGrid
    click, signed with the demo's key, for each decision that showed the first decision's variant.
    The number of clicks the replica accepted as rewards."""
    import json

    import httpx
    import pandas as pd

    from serving.demo_webhook_keys import demo_signers
    from serving.eventsink import append_sends

    sends = pd.DataFrame({
        "send_id": np.arange(970_000, 970_000 + len(decisions)), "contact_id": [d["contact_id"] for d in decisions],
        "campaign_id": CAMPAIGN, "content_id": [d["variant"] for d in decisions],
        "sent_at": pd.Timestamp(when) - pd.Timedelta(seconds=1), "decision_id": [d["decision_id"] for d in decisions],
        "propensity": [d["propensity"] for d in decisions]})
    append_sends(settings.events_dir, sends)
    first = decisions[0]["variant"]
    clicks = [{"email": "reader@example.com", "timestamp": int(when.timestamp()), "event": "click",
               "sg_event_id": f"click-{s.send_id}", "url": "https://example.com",
               "send_id": str(s.send_id), "contact_id": str(s.contact_id), "decision_id": s.decision_id,
               "campaign_id": CAMPAIGN}
              for s in sends.itertuples() if s.content_id == first]
    body = json.dumps(clicks).encode()
    signers = demo_signers(settings)  # configures the demo's SendGrid public key for the replicas
    r = httpx.post(f"{url}/webhooks/sendgrid", content=body, timeout=30,
                   headers={"Content-Type": "application/json", **signers.sendgrid_headers(body)})
    assert r.status_code == 200, r.text
    assert r.json()["rewards"] == {"accepted": len(clicks)}, r.text
    return len(clicks)
