"""Issue 13's reward attacks over HTTP against the real service: a 1e300 reward, a reward out of
the declared range, a reward dated before its decision, a sibling id derived from one's own."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from serving_provider_samples import CAMPAIGN

pytestmark = [pytest.mark.server, pytest.mark.slow]


def test_reward_attacks_get_4xx_and_decide_keeps_serving(client, serving_world, allocator):
    from simulation.eventlog import read_table, table_path

    contacts = read_table("contacts", table_path(serving_world.events_dir, "contacts"))["contact_id"].head(5).tolist()
    decisions = client.post("/decide", json={"campaign_id": CAMPAIGN, "contact_ids": contacts}).json()["decisions"]
    did = decisions[0]["decision_id"]
    rewards_before = len(allocator.log.rewards())
    for body, field, text in (
        ({"reward": 1e300}, "reward", "outside the campaign's declared range [0, 1]"),
        ({"reward": 2.0}, "reward", "outside the campaign's declared range [0, 1]"),
        ({"reward": -1.0}, "reward", "outside the campaign's declared range [0, 1]"),
        ({"reward": 1.0, "occurred_at": "2015-01-01T00:00:00Z"}, "occurred_at", "before the decision it rewards"),
    ):
        r = client.post("/reward", json={"decision_id": did, "event_id": f"attack-{body}", **body})
        assert r.status_code == 400, r.text
        assert r.json()["field"] == field and text in r.json()["error"], r.text
    sibling = f"{did[:24]}{(int(did[24:], 16) + 1) % 2**32:08x}"
    assert sibling not in {d["decision_id"] for d in decisions}
    r = client.post("/reward", json={"decision_id": sibling, "reward": 1.0, "event_id": "attack-sibling"})
    assert r.status_code == 404 and r.json()["field"] == "decision_id"
    assert len(allocator.log.rewards()) == rewards_before  # nothing stored, everything audited
    assert len(allocator.log.audit()[lambda a: a["event_id"].str.startswith("attack-")]) == 5
    ok = client.post("/reward", json={"decision_id": did, "reward": 1.0, "event_id": "honest-1"})
    assert ok.status_code == 200 and ok.json()["status"] == "accepted"

    version = allocator.learn(now=datetime.now(timezone.utc) + timedelta(hours=48))  # cutoff: now
    assert allocator.learn_refusals == {}
    assert client.post("/reload", json={}).json()["policy_version"] == version
    r = client.post("/decide", json={"campaign_id": CAMPAIGN, "contact_ids": contacts})
    assert r.status_code == 200, r.text
    propensities = [d["propensity"] for d in r.json()["decisions"]]
    assert all(np.isfinite(propensities)) and all(0 < p <= 1 for p in propensities)
    assert client.get("/readyz").status_code == 200
