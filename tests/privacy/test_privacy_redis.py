"""Erasure from the scale profile's online store, Feast's own Redis store, against a real redis-server
with RDB snapshots and the append-only file on: the contact's hash goes, and so do the copies of its
values in the persistence files."""
from __future__ import annotations

import warnings
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.privacy.redis_disk import CANARY, files_holding, persistent_redis

warnings.filterwarnings("ignore", message="On demand feature view is an experimental feature")
pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def redis_world(tmp_path_factory):
    from features.pipeline import build_features
    from features.store import apply, get_store, materialize
    from inbox.settings import load_settings
    from simulation.cli import simulate_to_disk
    from simulation.world import WorldConfig

    root = tmp_path_factory.mktemp("privacy-redis")
    with persistent_redis(root / "redis") as (client, url), pytest.MonkeyPatch.context() as mp:
        mp.setenv("INBOX_DATA_DIR", str(root / "data"))
        mp.setenv("INBOX_ONLINE_STORE", url)
        settings = load_settings()
        simulate_to_disk(WorldConfig(n_contacts=300, n_days=30, seed=3), settings=settings, progress=False)
        build_features(settings.events_dir, settings.features_dir)
        store = get_store(settings)
        apply(store, settings)
        materialize(store, end=datetime.now(timezone.utc))
        yield settings, store, client, root / "redis"


def test_a_contact_is_erased_from_redis_and_nobody_else(redis_world):
    from privacy.erase import Subject, stores

    settings, store, client, _ = redis_world
    online = next(s for s in stores() if s.name == "online store")
    keys_before = set(client.scan_iter(count=10_000))
    subject, other = Subject((12,)), Subject((13,))
    assert {r["view"] for r in online.export(settings, subject)} >= {"contact_engagement", "contact_profile"}

    assert online.erase(settings, subject) == 1  # one hash per entity holds every view
    gone = keys_before - set(client.scan_iter(count=10_000))
    assert len(gone) == 1 and (12).to_bytes(8, "little") in next(iter(gone))
    assert online.export(settings, subject) == []
    assert online.export(settings, other)  # the neighbour keeps its rows
    assert online.erase(settings, subject) == 0  # idempotent


def write_canary(store, features_dir: Path, contact: int) -> None:
    """The contact's newest contact_profile row, re-written online through Feast with the canary value."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    view = store.get_feature_view("contact_profile")
    table = pq.read_table(Path(features_dir) / "contact_profile.parquet")
    rows = table.filter(pc.equal(table.column("contact_id"), contact)).to_pandas()
    ts = view.batch_source.timestamp_field
    row = rows.sort_values(ts).tail(1).copy()
    row["email_suggested_domain"] = CANARY
    row[ts] = datetime.now(timezone.utc)
    store.write_to_online_store("contact_profile", row)


def test_erasure_rewrites_the_rdb_snapshot_and_the_append_only_file(redis_world):
    from privacy.erase import erase, resolve, stores

    settings, store, client, directory = redis_world
    contact = 40  # not the other test's contacts
    write_canary(store, settings.features_dir, contact)
    got = store.get_online_features(features=["contact_profile:email_suggested_domain"],
                                    entity_rows=[{"contact_id": contact}]).to_dict()
    assert got["email_suggested_domain"] == [CANARY]
    client.save()  # a snapshot taken while the contact was there, as a save point would
    on_disk = files_holding(directory, CANARY.encode())
    assert "dump.rdb" in on_disk and any(p.startswith("appendonlydir/") for p in on_disk), on_disk

    online = next(s for s in stores() if s.name == "online store")
    subject = resolve(settings, [contact])
    assert online.erase(settings, subject) == 1
    # deleting the key is not enough: both files still hold the value (what this change fixes)
    assert files_holding(directory, CANARY.encode()) == on_disk

    before = client.info("persistence")
    out = erase(settings, subject)
    assert out.stores["online store"] == 0 and out.stores["online store persistence"] == 2
    assert "BGREWRITEAOF" in out.notes["online store persistence"] and "BGSAVE" in out.notes["online store persistence"]
    after = client.info("persistence")
    assert after["aof_rewrites"] > before["aof_rewrites"] and after["rdb_saves"] > before["rdb_saves"]
    assert files_holding(directory, CANARY.encode()) == []
    assert client.dbsize() > 0 and files_holding(directory, b"contact_id")  # the other contacts are still persisted
    audit = (Path(settings.data_dir) / "privacy" / "audit.jsonl").read_text().splitlines()[-1]
    assert "BGREWRITEAOF" in audit and CANARY not in audit
