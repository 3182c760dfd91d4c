"""Erasure from the scale profile's online store, Feast's own Redis store, against a real redis-server."""
from __future__ import annotations

import warnings
from datetime import datetime, timezone

import pytest

warnings.filterwarnings("ignore", message="On demand feature view is an experimental feature")
pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def redis_world(tmp_path_factory):
    from features.pipeline import build_features
    from features.store import apply, get_store, materialize
    from inbox.services import redis_server
    from inbox.settings import load_settings
    from simulation.cli import simulate_to_disk
    from simulation.world import WorldConfig

    root = tmp_path_factory.mktemp("privacy-redis")
    with redis_server(root) as url, pytest.MonkeyPatch.context() as mp:
        mp.setenv("INBOX_DATA_DIR", str(root / "data"))
        mp.setenv("INBOX_ONLINE_STORE", url)
        settings = load_settings()
        simulate_to_disk(WorldConfig(n_contacts=300, n_days=30, seed=3), settings=settings, progress=False)
        build_features(settings.events_dir, settings.features_dir)
        store = get_store(settings)
        apply(store, settings)
        materialize(store, end=datetime.now(timezone.utc))
        yield settings, store, url


def test_a_contact_is_erased_from_redis_and_nobody_else(redis_world):
    import redis

    from privacy.erase import Subject, stores

    settings, store, url = redis_world
    online = next(s for s in stores() if s.name == "online store")
    client = redis.Redis.from_url(url)
    keys_before = set(client.scan_iter(count=10_000))
    subject, other = Subject((12,)), Subject((13,))
    assert {r["view"] for r in online.export(settings, subject)} >= {"contact_engagement", "contact_profile"}

    assert online.erase(settings, subject) == 1  # one hash per entity holds every view
    gone = keys_before - set(client.scan_iter(count=10_000))
    assert len(gone) == 1 and (12).to_bytes(8, "little") in next(iter(gone))
    assert online.export(settings, subject) == []
    assert online.export(settings, other)  # the neighbour keeps its rows
    assert online.erase(settings, subject) == 0  # idempotent
