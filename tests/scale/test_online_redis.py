"""The online store on Redis (Feast's own `type: redis`): materialize and reads against a real redis-server.

Our reader's answers equal Feast's `get_online_features` on the same Redis store, and the values
equal those the embedded SQLite store serves for the same world."""
from __future__ import annotations

import warnings
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest

from tests.features.test_feast_store import REQUEST_TIME, feast_read

warnings.filterwarnings("ignore", message="On demand feature view is an experimental feature")
pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def redis_world(tmp_path_factory, redis_url):
    """A 300-contact world materialized to the embedded SQLite store and to Redis (db 1)."""
    import redis

    from features.store import apply, get_store, materialize
    from features.workflow import build_apply_materialize
    from inbox.settings import load_settings
    from simulation.eventlog import write_event_log
    from simulation.history import simulate_history
    from simulation.world import WorldConfig, generate_world

    data = tmp_path_factory.mktemp("redis-world")
    url = redis_url.rsplit("/", 1)[0] + "/1"
    redis.Redis.from_url(url).flushdb()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INBOX_DATA_DIR", str(data))
        mp.delenv("INBOX_ONLINE_STORE", raising=False)
        settings = load_settings()
        world = generate_world(WorldConfig(n_contacts=300, n_days=30, seed=3))
        history = simulate_history(world, progress=False)
        write_event_log(settings.events_dir, history)
        build_apply_materialize(settings=settings, progress=False)
        sqlite_store = get_store(settings)
        redis_store = get_store(feast_dir=data / "feast_redis", online_store=url)
        apply(redis_store, features_dir=settings.features_dir)
        rows = materialize(redis_store, end=datetime.now(timezone.utc))
        yield sqlite_store, redis_store, rows, history, url


def test_config_is_feasts_redis_store(redis_world):
    _, store, rows, history, url = redis_world
    assert store.config.online_store.type == "redis"
    assert store.config.online_store.connection_string.endswith(",db=1")
    assert rows["contact_engagement"] == history["contacts"]["contact_id"].nunique()
    import redis

    assert redis.Redis.from_url(url).dbsize() >= len(history["contacts"])  # one hash per entity


@pytest.mark.parametrize("n", [1, 3, 40])
@pytest.mark.parametrize("svc", ["lead_scoring", "send_time", "content_preference", "content_catalog"])
def test_redis_reader_equals_feast_and_sqlite(redis_world, svc, n):
    from features.online import OnlineReader

    sqlite_store, store, _, history, _ = redis_world
    contacts = history["contacts"]["contact_id"].to_numpy()
    ids = np.concatenate([contacts[:n], [10**9]])  # one unknown contact
    content = np.resize(history["content"]["content_id"].to_numpy(), len(ids))
    kw = {"request_time": REQUEST_TIME} if svc == "send_time" else {}
    cids = content if svc in ("content_preference", "content_catalog") else None
    got = {}
    for name, s in (("redis", store), ("sqlite", sqlite_store)):
        reader = OnlineReader(s)
        got[name] = (reader.read(svc, content_ids=content) if svc == "content_catalog"
                     else reader.read(svc, ids, content_ids=cids, **kw))
        reader.close()
    want = (feast_read(store, svc, content_ids=content) if svc == "content_catalog"
            else feast_read(store, svc, ids, cids))
    assert set(got["redis"].columns) == set(want.columns)
    pd.testing.assert_frame_equal(got["redis"], want[got["redis"].columns])
    pd.testing.assert_frame_equal(got["redis"], got["sqlite"])


def test_redis_contact_ids_and_columns(redis_world):
    from features.online import OnlineReader

    sqlite_store, store, _, _, _ = redis_world
    redis_reader, sqlite_reader = OnlineReader(store), OnlineReader(sqlite_store)
    ids = redis_reader.contact_ids(["lead_scoring", "send_time"])
    np.testing.assert_array_equal(ids, sqlite_reader.contact_ids(["lead_scoring", "send_time"]))
    some = redis_reader.some_contact_ids("lead_scoring", 7)
    assert len(some) == 7 and set(some) <= set(ids)
    a = redis_reader.read_columns(["lead_scoring", "send_time"], ids[:50], request_time=REQUEST_TIME, only=["timezone", "sends_30d"])
    b = sqlite_reader.read_columns(["lead_scoring", "send_time"], ids[:50], request_time=REQUEST_TIME, only=["timezone", "sends_30d"])
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_bad_online_store_url_names_the_setting(tmp_path):
    from features.store import get_store

    with pytest.raises(ValueError, match="INBOX_ONLINE_STORE"):
        get_store(feast_dir=tmp_path, online_store="redis://h:1/x")
