"""/score with the sender's send plan: probabilities prior-shifted by the champion's stored send-volume line, ranking,
score and tier unchanged; a bad plan is a 400 naming the field."""
from __future__ import annotations

import numpy as np
import pytest

pytestmark = [pytest.mark.server, pytest.mark.slow]


def test_score_takes_a_send_plan(client, serving_world):
    from models.loading import load_champion
    from simulation.eventlog import read_table, table_path

    ids = read_table("contacts", table_path(serving_world.events_dir, "contacts"))["contact_id"].head(20).tolist()
    model = load_champion("lead_scoring", tracking_uri=serving_world.tracking_uri)
    assert model.send_volume is not None  # training stored the line
    plain = client.post("/score", json={"contact_ids": ids, "reasons": False})
    assert plain.status_code == 200, plain.text
    low = model.send_volume.sends_min / 2  # fewer sends than any past window: a lower rate
    planned = client.post("/score", json={"contact_ids": ids, "reasons": False, "planned_sends": low})
    assert planned.status_code == 200, planned.text
    p0 = np.array([s["probability"] for s in plain.json()["scores"]])
    p1 = np.array([s["probability"] for s in planned.json()["scores"]])
    assert np.allclose(p1, model.planned_probability(p0, low))
    assert not np.allclose(p1, p0)
    assert [(s["score"], s["tier"]) for s in planned.json()["scores"]] == \
        [(s["score"], s["tier"]) for s in plain.json()["scores"]]
    for bad in (-1, "many"):
        r = client.post("/score", json={"contact_ids": ids[:1], "planned_sends": bad})
        assert r.status_code == 400 and "planned_sends" in r.text, r.text
