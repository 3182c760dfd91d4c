"""Erasure end to end: a contact seeded in every store by the real pipeline (simulate, features, Feast
apply + materialize, fast training into MLflow, publish, decisions and rewards through the serving
code, a webhook journal row) is exported, erased, and then looked for in every byte of the data and
MLflow directories: as decimal text, as a little-endian int64, and by its address."""
from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from tests.privacy.world import CAMPAIGN, SUBJECT_EMAIL, SUBJECT_ID, journal_event, remap_subject, subject_rows, \
    traces

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    from features.pipeline import build_features
    from features.store import apply, get_store, materialize
    from inbox.settings import load_settings
    from models.training import train_all
    from privacy.seed import seed_consent
    from serving.eventsink import EventJournal
    from serving.publish import publish
    from simulation.cli import simulate_to_disk
    from simulation.world import WorldConfig

    root = tmp_path_factory.mktemp("privacy_world")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INBOX_DATA_DIR", str(root / "data"))
        mp.setenv("INBOX_ARTIFACT_ROOT", str(root / "mlruns"))
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlruns' / 'mlflow.db'}")
        settings = load_settings()
        (root / "mlruns").mkdir()
        simulate_to_disk(WorldConfig(n_contacts=600, n_days=60, seed=5), settings=settings, progress=False)
        remap_subject(settings)
        seed_consent(settings, new_world=True)
        build_features(settings.events_dir, settings.features_dir)
        train_all(settings=settings, progress=False, fast=True)
        store = get_store(settings)
        apply(store, settings)
        materialize(store, settings)
        publish(settings, progress=False)
        decision_ids = _decide_and_reward(settings)
        journal = EventJournal(settings.events_dir)
        journal.append(journal_event(settings))
        journal.close()
        yield settings, root, decision_ids


def _decide_and_reward(settings) -> list[str]:
    """Decisions for the subject and two others through serving.decide (the /decide path), one reward each."""
    from experiments.bandit import Allocator
    from serving.decide import decide
    from serving.predict import default_window
    from serving.state import ServingState
    from simulation.eventlog import read_table, table_path

    content = read_table("content", table_path(settings.events_dir, "content"))
    variants = content.head(3)[["content_id"]].assign(topic=content.head(3)["topic"].to_numpy())
    alloc = Allocator.open(settings.bandit_dir)
    alloc.register_campaign(CAMPAIGN, variants, ["engagement_score"], reward_event="click")
    alloc.close()
    state = ServingState.load(settings)
    try:
        others = [int(c) for c in state.reader.contact_ids(state.contact_services)[:40] if c != SUBJECT_ID]
        from privacy.consent import ConsentLedger

        with ConsentLedger.open(settings, read_only=True) as ledger:
            others = [c for c, ok in zip(others, ledger.can_mail(others)) if ok][:2]
        start, end = default_window()
        out = decide(state, CAMPAIGN, [SUBJECT_ID, *others], start, end)
        assert [d.contact_id for d in out.decisions] == [SUBJECT_ID, *others] and not out.refused
        for d in out.decisions:
            state.allocator.reward(d.decision_id, 1.0, start + timedelta(hours=1), f"evt-{d.decision_id}")
        return [d.decision_id for d in out.decisions]
    finally:
        state.close()


def test_export_holds_what_every_store_had(seeded, tmp_path):
    from inbox.cli import main

    settings, root, decision_ids = seeded
    out = tmp_path / "export.json"
    assert main(["privacy", "export", "--email", SUBJECT_EMAIL.upper(), "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["contact_ids"] == [SUBJECT_ID]
    stores = data["stores"]
    rows = subject_rows(settings)
    assert [r["email"] for r in stores["event log contacts"]] == [SUBJECT_EMAIL]
    assert len(stores["event log sends"]) == rows["sends"] > 0
    assert len(stores["event log events"]) == rows["events"] > 0
    assert [r["event_id"] for r in stores["webhook journal"]] == [9_100_000_001]
    assert stores["simulator world"][0]["contact_id"] == SUBJECT_ID and "base_engagement" in stores["simulator world"][0]["traits"]
    assert {r["table"] for r in stores["feature tables"]} >= {"contact_engagement", "contact_profile"}
    assert "contact_predictions" in {r["view"] for r in stores["online store"]}
    decisions = [r for r in stores["decision log"] if r["table"] == "decisions"]
    assert [r["decision_id"] for r in decisions] == decision_ids[:1]
    assert [r["reward"] for r in stores["decision log"] if r["table"] == "rewards"] == [1.0]
    assert [(r["kind"], r["source"]) for r in stores["consent ledger"]] == [("opt_in", "import")]


def test_erase_leaves_no_byte_of_the_contact_and_suppresses_its_address(seeded):
    from experiments.bandit import Allocator
    from inbox.cli import main
    from privacy.consent import ConsentLedger
    from privacy.seed import seed_consent
    from privacy.suppression import is_suppressed
    from simulation.eventlog import read_table, table_path, write_table

    settings, root, decision_ids = seeded
    before = traces(root)
    # the scan sees the subject where it was: decoded Parquet, SQLite pages, Feast entity keys
    for where in ("data/events/contacts.parquet", "data/events/sends.parquet", "data/world/contacts.parquet",
                  "data/features/contact_engagement.parquet", "data/feast/online.db", "data/bandit/decisions.db",
                  "data/events/webhook_journal.db", "data/privacy/consent.db"):
        assert any(k.startswith(where) for k in before), (where, sorted(before))
    assert any("int64 LE" in h for hits in before.values() for h in hits)

    assert main(["privacy", "erase", "--contact", str(SUBJECT_ID)]) == 0

    assert traces(root) == {}
    audit = [json.loads(line) for line in (settings.data_dir / "privacy" / "audit.jsonl").read_text().splitlines()]
    erased = audit[-1]
    assert erased["action"] == "erase" and erased["complete"]
    for store in ("event log sends", "event log events", "webhook journal", "simulator world", "feature tables",
                  "online store", "decision log", "event log contacts", "consent ledger"):
        assert erased["stores"][store] > 0, store
    assert erased["stores"]["MLflow artifacts"] > 0  # the logged models' input examples (rows of unnamed contacts)
    assert not list(root.joinpath("mlruns").rglob("*input_example.json"))
    from models.loading import load_champion

    for name in ("lead_scoring", "send_time", "content_preference"):  # the champions still load
        assert load_champion(name, tracking_uri=settings.tracking_uri).version
    assert not list((settings.data_dir / "privacy" / "pending").glob("*"))

    # the others' decisions and the rest of the world are intact
    alloc = Allocator.open(settings.bandit_dir)
    try:
        assert alloc.log.decisions(CAMPAIGN)["decision_id"].tolist() == decision_ids[1:]
    finally:
        alloc.close()
    world = read_table("contacts", settings.world_dir / "contacts.parquet")
    with np.load(settings.world_dir / "traits.npz") as z:
        assert len(z["base_engagement"]) == len(world) == 599

    # running it again finds nothing more to remove and still leaves nothing
    assert main(["privacy", "erase", "--contact", str(SUBJECT_ID)]) == 0
    assert traces(root) == {}

    # re-importing the address (under a new id, in another case) is suppressed, not mailed
    assert is_suppressed(settings, [SUBJECT_EMAIL.lower(), "someone.else@example.org"]).tolist() == [True, False]
    contacts = read_table("contacts", table_path(settings.events_dir, "contacts"))
    again = contacts.iloc[:1].assign(contact_id=SUBJECT_ID + 1, email=" erase.subject.q7zk@EXAMPLE.NET",
                                     consent=True, created_at=pd.Timestamp.now(tz="UTC"))
    write_table("contacts", pd.concat([contacts, again]), table_path(settings.events_dir, "contacts"))
    seed_consent(settings)
    with ConsentLedger.open(settings, read_only=True) as ledger:
        assert ledger.reasons([SUBJECT_ID + 1, int(contacts["contact_id"].iloc[0])]).tolist()[0] == "suppressed"
        assert ledger.history([SUBJECT_ID + 1])["kind"].tolist() == ["opt_in"]  # its consent is recorded, and overruled
