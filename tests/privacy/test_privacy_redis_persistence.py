"""`privacy.redis_persistence` against a real redis-server: a rewrite already running when the keys
are deleted is followed by another, a slow one fails on its deadline, no persistence means nothing to do."""
from __future__ import annotations

import pytest

from tests.privacy.redis_disk import CANARY, files_holding, persistent_redis

pytestmark = pytest.mark.server


def test_a_rewrite_running_since_before_the_delete_is_waited_for_and_repeated(tmp_path):
    """A BGREWRITEAOF forked before the delete writes the value into the new base file; a second one
    must follow it. `rdb-key-save-delay` (microseconds per key) makes the first one slow enough to overlap."""
    from privacy.redis_persistence import rewrite_persistence

    directory = tmp_path / "redis"
    with persistent_redis(directory, "--save", "") as (client, _):
        client.hset("contact:1", "domain", CANARY)
        client.mset({f"other:{i}": i for i in range(10)})
        client.config_set("rdb-key-save-delay", 30_000)
        client.bgrewriteaof()  # forks now, with the value in memory
        client.delete("contact:1")
        done = rewrite_persistence(client, timeout=30)
        assert done.commands == ("BGREWRITEAOF",)  # `save ""`: no snapshot to rewrite
        client.config_set("rdb-key-save-delay", 0)
        assert files_holding(directory, CANARY.encode()) == []
        assert client.info("persistence")["aof_rewrites"] == 2


def test_a_rewrite_that_does_not_finish_in_time_fails_the_erasure_step(tmp_path):
    from privacy.redis_persistence import rewrite_persistence

    with persistent_redis(tmp_path / "redis", "--appendonly", "no") as (client, _):
        client.mset({f"k{i}": i for i in range(5)})
        client.config_set("rdb-key-save-delay", 1_000_000)
        with pytest.raises(TimeoutError, match="BGSAVE did not finish within"):
            rewrite_persistence(client, timeout=0.3)
        client.config_set("rdb-key-save-delay", 0)  # the shutdown's own save is not slowed down


def test_no_persistence_means_no_rewrite(tmp_path):
    from privacy.redis_persistence import rewrite_persistence

    with persistent_redis(tmp_path / "redis", "--appendonly", "no", "--save", "") as (client, _):
        done = rewrite_persistence(client, timeout=5)
        assert done.commands == () and "nothing on disk" in done.describe()
        assert not files_holding(tmp_path / "redis", b"REDIS")


def test_a_server_refusing_config_is_reported_not_rewritten(tmp_path):
    from privacy.redis_persistence import rewrite_persistence

    with persistent_redis(tmp_path / "redis", "--rename-command", "CONFIG", "") as (client, _):
        done = rewrite_persistence(client, timeout=5)
        assert done.commands == () and done.unchecked and "NOT rewritten" in done.describe()
