"""Rewrite a Redis server's persistence files so that deleted keys leave no copy on disk.

Deleting a key removes it from memory only: the RDB snapshot (`dump.rdb`) keeps it until the next
snapshot, and the append-only file keeps every write that set it (in Redis 7, the base and
incremental files of `appendonlydir`) until the next rewrite (Redis persistence docs,
https://redis.io/docs/latest/operate/oss_and_stack/management/persistence/). So an erasure ends by
asking for those rewrites with Redis's own commands and waiting for them:

- `appendonly yes`: `BGREWRITEAOF`; the new base file is written from memory and the old base and
  incremental files are removed (Redis >= 7 deletes them itself once the rewrite is done);
- `save` configured (RDB snapshots): `BGSAVE SCHEDULE`, which replaces `dump.rdb` with a snapshot of
  memory (it waits for an AOF rewrite in progress instead of failing).

Completion is read from `INFO persistence`: the counter of finished rewrites (`aof_rewrites`,
`rdb_saves`, Redis >= 7; older servers show only the in-progress flags) has moved past its value
before the command, nothing is in progress or scheduled, and the last status is ok. A rewrite already running when we ask may have forked before
the delete, so Redis refuses the second one ("already in progress"): we wait for it to end and ask
again. Everything is bounded by one deadline; past it `TimeoutError` says what is unfinished.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

POLL_SECONDS = 0.05
REWRITE_TIMEOUT = 600.0  # seconds an erasure waits for Redis's rewrites (they grow with the data set)


@dataclass(frozen=True)
class Rewrite:
    """What `rewrite_persistence` did: the commands that completed and how long it took."""

    commands: tuple[str, ...]
    seconds: float
    unchecked: str | None = None  # why the configuration could not be read (then nothing was done)

    def describe(self) -> str:
        if self.unchecked:
            return (f"Redis persistence NOT rewritten: its configuration could not be read ({self.unchecked}); "
                    "rewrite its snapshot / append-only file by the provider's means")
        if not self.commands:
            return "Redis persistence off (appendonly no, no save points): nothing on disk"
        return f"Redis persistence rewritten ({', '.join(self.commands)}) in {self.seconds:.2f} s"


# per persistence kind: (command, finished-counter field, in-progress fields, last-status field)
_AOF = ("BGREWRITEAOF", "aof_rewrites", ("aof_rewrite_in_progress", "aof_rewrite_scheduled"), "aof_last_bgrewrite_status")
_RDB = ("BGSAVE", "rdb_saves", ("rdb_bgsave_in_progress",), "rdb_last_bgsave_status")


def persistence_kinds(client) -> list[tuple]:
    """The persistence this server writes: AOF when `appendonly` is yes, RDB when `save` has points."""
    config = {**client.config_get("appendonly"), **client.config_get("save")}
    kinds = []
    if str(config.get("appendonly", "no")).lower() == "yes":
        kinds.append(_AOF)
    if str(config.get("save", "")).strip():
        kinds.append(_RDB)
    return kinds


def rewrite_persistence(client, timeout: float) -> Rewrite:
    """Rewrite every persistence file `client`'s server keeps from its memory and wait until done.

    `client` is a `redis.Redis`; `timeout` bounds the whole call in seconds. Raises `TimeoutError`
    when a rewrite has not finished in time and `RuntimeError` when Redis reports it failed. A server
    that refuses `CONFIG GET` (managed Redis services rename it) is reported in `Rewrite.unchecked`,
    not raised: the stores erased after this one must still run."""
    if not timeout > 0:
        raise ValueError(f"timeout: expected seconds > 0, got {timeout!r}")
    import redis

    start = time.monotonic()
    deadline = start + timeout
    try:
        kinds = persistence_kinds(client)
    except redis.ResponseError as e:  # CONFIG renamed away, as managed services do: say so, do not block the erasure
        return Rewrite((), time.monotonic() - start, unchecked=str(e)[:200])
    done = []
    for kind in kinds:
        _run(client, kind, deadline, timeout)
        done.append(kind[0])
    return Rewrite(tuple(done), time.monotonic() - start)


def _run(client, kind: tuple, deadline: float, timeout: float) -> None:
    import redis

    command, counter, busy, status = kind
    while True:
        before = client.info("persistence")
        try:
            if command == "BGSAVE":
                client.bgsave(schedule=True)
            else:
                client.bgrewriteaof()
            break
        except redis.ResponseError as e:
            if "in progress" not in str(e).lower():
                raise
            # one started before our delete may hold the deleted keys: let it finish, then ask again
            _wait(client, lambda info: not any(int(info.get(f, 0)) for f in busy), deadline, timeout, command)

    def finished(info: dict) -> bool:
        moved = counter not in before or int(info.get(counter, 0)) > int(before[counter])
        return moved and not any(int(info.get(f, 0)) for f in busy)

    info = _wait(client, finished, deadline, timeout, command)
    if str(info.get(status, "ok")) != "ok":
        raise RuntimeError(f"Redis {command} failed ({status}: {info.get(status)}); see the Redis server log")


def _wait(client, done, deadline: float, timeout: float, command: str) -> dict:
    while True:
        info = client.info("persistence")
        if done(info):
            return info
        if time.monotonic() > deadline:
            raise TimeoutError(f"Redis {command} did not finish within {timeout:.0f} s; the deleted keys may "
                               "still be in the persistence files: run the erasure again to finish")
        time.sleep(POLL_SECONDS)
