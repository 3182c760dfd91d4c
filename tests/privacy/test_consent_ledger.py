"""The consent ledger: events in, state derived, who may be mailed; seeding from the event log."""
from __future__ import annotations

import re
import sqlite3
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from inbox.settings import Settings

T0 = datetime(2026, 5, 1, 9, tzinfo=timezone.utc)


@pytest.fixture()
def settings(tmp_path, monkeypatch):
    monkeypatch.delenv("INBOX_SECRET_KEY", raising=False)
    return Settings(data_dir=tmp_path / "data", tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
                    artifact_root=tmp_path / "mlruns")


@pytest.fixture()
def ledger(settings):
    from privacy.consent import ConsentLedger

    with ConsentLedger.open(settings) as led:
        yield led


def ev(contact_id, kind, minutes=0, topic=None, source="test", ref=None):
    return {"contact_id": contact_id, "kind": kind, "topic": topic, "source": source,
            "occurred_at": T0 + timedelta(minutes=minutes), "ref": ref}


def test_newest_event_wins_per_contact_and_topic(ledger):
    ledger.record([ev(1, "opt_in"), ev(2, "opt_in"), ev(2, "opt_out", 5), ev(3, "opt_in", 10),
                   ev(3, "opt_out", 11, topic="promotion"), ev(4, "opt_out"), ev(4, "opt_in", 3)])
    ids = [1, 2, 3, 4, 5]
    assert ledger.reasons(ids).tolist() == [None, "opted_out", None, None, "no_consent"]
    assert ledger.reasons(ids, topic="promotion").tolist() == [None, "opted_out", "topic_opt_out", None, "no_consent"]
    assert ledger.can_mail(ids, topic="news").tolist() == [True, False, True, True, False]
    assert ledger.topics(3) == {"promotion": False}
    state = ledger.state()
    assert state[state["contact_id"] == 2][["topic", "kind"]].values.tolist() == [[None, "opt_out"]]
    assert state[state["contact_id"] == 3]["occurred_at"].max() == pd.Timestamp(T0 + timedelta(minutes=11))
    # arrival order breaks a tie in time; an event dated earlier than the newest does not win
    ledger.record([ev(1, "opt_out", 0), ev(3, "opt_in", 1, topic="promotion")])
    assert ledger.can_mail([1, 3], topic="promotion").tolist() == [False, False]


def test_answers_are_row_aligned_and_vectorized(ledger):
    ids = np.arange(0, 3000, dtype=np.int64)
    ledger.record(pd.DataFrame([ev(int(c), "opt_in") for c in ids[::2]]))
    shuffled = np.random.default_rng(0).permutation(ids)
    assert (ledger.can_mail(shuffled) == (shuffled % 2 == 0)).all()
    assert ledger.can_mail([]).tolist() == []


def test_events_are_append_only_and_refs_are_recorded_once(ledger):
    assert ledger.record([ev(1, "opt_out", ref="sendgrid:abc")]) == 1
    assert ledger.record([ev(1, "opt_out", ref="sendgrid:abc"), ev(1, "opt_in", 1)]) == 1
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        ledger.db.execute("UPDATE events SET kind = 'opt_in'")
    history = ledger.history([1])
    assert history["kind"].tolist() == ["opt_out", "opt_in"] and history["topic"].tolist() == [None, None]
    assert str(history["occurred_at"].dt.tz) == "UTC"


@pytest.mark.parametrize("bad, field", [
    ({"kind": "maybe"}, "events[0].kind"),
    ({"contact_id": -1}, "events[0].contact_id"),
    ({"contact_id": True}, "events[0].contact_id"),
    ({"occurred_at": datetime(2026, 5, 1)}, "events[0].occurred_at"),
    ({"occurred_at": "2026-05-01"}, "events[0].occurred_at"),
    ({"source": ""}, "events[0].source"),
    ({"topic": "x" * 300}, "events[0].topic"),
    ({"colour": "red"}, "events[0].colour"),
])
def test_bad_events_are_refused_naming_the_field(ledger, bad, field):
    with pytest.raises(ValueError, match="^" + re.escape(field) + ":"):
        ledger.record([{**ev(1, "opt_in"), **bad}])
    assert ledger.history([1]).empty


def test_suppressed_addresses_are_keyed_hashes_of_the_normalized_address(settings, ledger):
    from privacy.suppression import email_digest, email_digests, is_suppressed, suppress

    assert email_digests(settings, [" Ann@Example.org ", "ann@example.org"]) == [email_digest(settings, "ann@example.org")] * 2
    assert suppress(settings, ["Ann@Example.org"], "test") == 1
    assert is_suppressed(settings, ["ann@example.org", "bob@example.org"]).tolist() == [True, False]
    stored = ledger.db.execute("SELECT email_digest FROM suppression").fetchall()
    assert stored == [(email_digest(settings, "ann@example.org"),)] and "ann" not in stored[0][0]
    # a contact whose address is suppressed is refused whatever its consent
    ledger.db.execute("INSERT INTO contacts VALUES (7, ?)", (email_digest(settings, "ANN@example.org"),))
    ledger.derive_suppressed()  # as seeding does after addresses change
    ledger.record([ev(7, "opt_in"), ev(8, "opt_in")])
    assert ledger.reasons([7, 8]).tolist() == ["suppressed", None]


def test_seeding_follows_the_event_log(settings):
    from privacy.consent import ConsentLedger
    from privacy.seed import seed_consent
    from simulation.cli import simulate_to_disk
    from simulation.eventlog import read_table, table_path, write_table
    from simulation.world import WorldConfig

    simulate_to_disk(WorldConfig(n_contacts=300, n_days=30, seed=4), settings=settings, progress=False)
    contacts = read_table("contacts", table_path(settings.events_dir, "contacts"))
    events = read_table("events", table_path(settings.events_dir, "events"))
    out = events.loc[events["type"].isin(["unsubscribe", "complaint"]), "contact_id"].unique()
    with ConsentLedger.open(settings, read_only=True) as ledger:
        reasons = ledger.reasons(contacts["contact_id"])
    expected = np.where(contacts["contact_id"].isin(out), "opted_out",
                        np.where(contacts["consent"], None, "no_consent"))
    assert reasons.tolist() == expected.tolist() and len(out) > 0
    assert seed_consent(settings) == {"imports": 0, "opt_outs": 0, "contacts": 0}  # nothing changed
    # the ESP exports a withdrawal: consent False for a contact that had it
    who = int(contacts.loc[contacts["consent"] & ~contacts["contact_id"].isin(out), "contact_id"].iloc[0])
    contacts.loc[contacts["contact_id"] == who, "consent"] = False
    write_table("contacts", contacts, table_path(settings.events_dir, "contacts"))
    assert seed_consent(settings)["imports"] == 1
    with ConsentLedger.open(settings, read_only=True) as ledger:
        assert ledger.reasons([who]).tolist() == ["opted_out"]
        assert ledger.history([who])["kind"].tolist() == ["opt_in", "opt_out"]
