"""Policy snapshots in the decision log's PostgreSQL database, shared by every replica and the learner.

Same interface and the same `.npz` bytes as `snapshots.SnapshotStore` (`write_npz` / `read_npz`),
one row per version: `policy_snapshots(version, live, data)`. A write is one INSERT, so a reader
sees a whole snapshot or none; `promote` flips `live` in place. Two learners writing the same
version is an error (the second one's INSERT conflicts) rather than a silent overwrite.
"""
from __future__ import annotations

import io

from .decision_log_postgres import PostgresConnection
from .snapshots import Snapshot, read_npz, write_npz

SCHEMA = """
CREATE TABLE IF NOT EXISTS policy_snapshots (
    version BIGINT PRIMARY KEY, live BOOLEAN NOT NULL, data BYTEA NOT NULL,
    written_at TIMESTAMPTZ NOT NULL DEFAULT now());
"""


class SnapshotVersionConflict(RuntimeError):
    """Another learner already wrote this snapshot version."""


class PostgresSnapshotStore:
    def __init__(self, url: str | PostgresConnection):
        """`url`, or an open `PostgresConnection` to share (the decision log's)."""
        self._pg = (url if isinstance(url, PostgresConnection) else PostgresConnection(url)).create(SCHEMA)

    def close(self) -> None:
        self._pg.close()

    def versions(self, live_only: bool = False) -> list[tuple[int, bool]]:
        where = " WHERE live" if live_only else ""
        with self._pg.lock:
            rows = self._pg.connection().execute(f"SELECT version, live FROM policy_snapshots{where} ORDER BY version")
            return [(int(v), bool(live)) for v, live in rows]

    def newest(self, live_only: bool = False) -> int:
        """Newest version number (0 when there is none)."""
        where = " WHERE live" if live_only else ""
        with self._pg.lock:
            (version,) = self._pg.connection().execute(f"SELECT max(version) FROM policy_snapshots{where}").fetchone()
        return int(version or 0)

    def write(self, snapshot: Snapshot) -> str:
        buffer = io.BytesIO()
        write_npz(snapshot, buffer)
        with self._pg.lock:
            cur = self._pg.connection().execute(
                "INSERT INTO policy_snapshots (version, live, data) VALUES (%s, %s, %s)"
                " ON CONFLICT (version) DO NOTHING", (int(snapshot.version), bool(snapshot.live), buffer.getvalue()))
        if cur.rowcount == 0:
            raise SnapshotVersionConflict(f"version: snapshot {snapshot.version} was already written by another learner")
        return f"policy_snapshots/{snapshot.version}"

    def promote(self, version: int) -> None:
        """Make a candidate snapshot live."""
        with self._pg.lock:
            self._pg.connection().execute("UPDATE policy_snapshots SET live = true WHERE version = %s", (int(version),))

    def read(self, version: int) -> Snapshot:
        with self._pg.lock:
            row = self._pg.connection().execute(
                "SELECT data FROM policy_snapshots WHERE version = %s", (int(version),)).fetchone()
        if row is None:
            raise FileNotFoundError(f"version: no snapshot {version} in the database")
        return read_npz(io.BytesIO(row[0]))
