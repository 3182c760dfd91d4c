"""An erasure that crashes midway finishes when run again, even by address once the contact row is gone;
export and erase refuse a subject they cannot name; a store added by another package is picked up."""
from __future__ import annotations

import json

import pytest

from inbox.settings import Settings


@pytest.fixture()
def world(tmp_path, monkeypatch):
    from simulation.cli import simulate_to_disk
    from simulation.world import WorldConfig

    monkeypatch.delenv("INBOX_SECRET_KEY", raising=False)
    settings = Settings(data_dir=tmp_path / "data", tracking_uri=f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}",
                        artifact_root=tmp_path / "mlruns")
    simulate_to_disk(WorldConfig(n_contacts=300, n_days=30, seed=4), settings=settings, progress=False)
    return settings


def subject_of(settings):
    from simulation.eventlog import read_table, table_path

    contacts = read_table("contacts", table_path(settings.events_dir, "contacts"))
    sends = read_table("sends", table_path(settings.events_dir, "sends"))
    row = contacts[contacts["contact_id"].isin(sends["contact_id"]) & contacts["consent"]].iloc[0]
    return int(row["contact_id"]), row["email"]


def test_a_crashed_erasure_resumes_by_address(world, monkeypatch):
    from privacy import erase as erasure
    from privacy.consent import ConsentLedger
    from privacy.suppression import is_suppressed
    from simulation.eventlog import read_table, table_path

    contact, email = subject_of(world)
    real = erasure.stores()
    crashing = [s if s.name != "consent ledger" else
                erasure.Store(s.name, lambda *_: (_ for _ in ()).throw(OSError("disk gone")), s.export) for s in real]
    monkeypatch.setattr(erasure, "stores", lambda: crashing)
    with pytest.raises(OSError, match="disk gone"):
        erasure.erase(world, erasure.resolve(world, emails=[email]))
    pending = list((world.data_dir / "privacy" / "pending").glob("*.json"))
    assert len(pending) == 1 and json.loads(pending[0].read_text())["done"]["event log contacts"] == 1
    contacts = read_table("contacts", table_path(world.events_dir, "contacts"))
    assert contact not in contacts["contact_id"].tolist()  # its row is gone, the ledger still has it
    assert not list(world.events_dir.glob(".*.tmp"))  # no temp file left by a store that finished

    monkeypatch.setattr(erasure, "stores", lambda: real)
    subject = erasure.resolve(world, emails=[email.upper()])
    assert subject.contact_ids == (contact,)
    out = erasure.erase(world, subject)
    assert out.stores["consent ledger"] > 0 and out.stores["event log sends"] > 0  # recorded by the first run
    assert not list((world.data_dir / "privacy" / "pending").glob("*.json"))
    with ConsentLedger.open(world, read_only=True) as ledger:
        assert ledger.history([contact]).empty and ledger.reasons([contact]).tolist() == ["no_consent"]
    assert is_suppressed(world, [email]).tolist() == [True]
    audit = [json.loads(line) for line in (world.data_dir / "privacy" / "audit.jsonl").read_text().splitlines()]
    assert [a["action"] for a in audit] == ["erase"] and set(audit[0]) == {"at", "action", "subject", "stores", "complete"}
    assert email not in json.dumps(audit)


def test_an_address_never_imported_is_still_suppressed(world):
    from privacy.erase import erase, resolve
    from privacy.suppression import is_suppressed

    out = erase(world, resolve(world, emails=["nobody.here@example.com"]))
    assert sum(out.stores.values()) == 0
    assert is_suppressed(world, ["Nobody.Here@example.com"]).tolist() == [True]


def test_a_subject_must_be_named(world):
    from privacy.erase import resolve

    with pytest.raises(ValueError, match="^contact:"):
        resolve(world)
    with pytest.raises(ValueError, match="^contact:"):
        resolve(world, contact_ids=[-3])
    with pytest.raises(ValueError, match="^email:"):
        resolve(world, emails=[" "])


def test_a_store_from_another_package_is_registered(world, monkeypatch, tmp_path):
    import sys

    from privacy import erase as erasure

    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "extra_store.py").write_text(
        "from privacy.erase import Store\n"
        "SEEN = []\n"
        "STORES = [Store('test store', lambda s, subj: SEEN.append(subj.contact_ids) or 2, lambda s, subj: [{'n': 1}])]\n")
    monkeypatch.syspath_prepend(str(pkg))
    monkeypatch.setattr(erasure, "STORE_MODULES", (*erasure.STORE_MODULES, "extra_store"))
    contact, _ = subject_of(world)
    assert erasure.export(world, erasure.Subject((contact,))).data["test store"] == [{"n": 1}]
    out = erasure.erase(world, erasure.Subject((contact,)))
    assert out.stores["test store"] == 2 and sys.modules["extra_store"].SEEN == [(contact,)]
    assert list(out.stores)[-2:] == ["event log contacts", "consent ledger"]  # still erased last
