"""A SQLite online store for Feast that writes in batches: one row per entity.

Feast's stock SQLite store keeps one row per (entity, feature), upserted one
statement at a time, so materializing 100k contacts x 100 features is ten
million statements. This store keeps one row per entity per feature view:

    entity_key BLOB PRIMARY KEY  -- Feast's serialized entity key (v3)
    event_ts   INTEGER           -- feature timestamp, microseconds since epoch UTC
    created_ts INTEGER
    layout_id  INTEGER           -- which ordered feature-name list the payload follows
    payload    BLOB              -- feast.types.RepeatedValue, one Value per feature

and writes with `executemany` in one transaction (WAL journal). It keeps
Feast's API: `feast apply` creates the tables (`update`), `store.materialize`
goes through `online_write_batch`, `get_online_features` through
`online_read`. `write_arrow` is the fast path used by `features.store.materialize`:
it encodes a whole Arrow table with `features.value_codec` (no per-value
Python objects).

Configure with `online_store: {type: features.online_store.BatchSqliteOnlineStore, path: ...}`;
Feast loads the class and `BatchSqliteOnlineStoreConfig` from this module.
"""
from __future__ import annotations

import json
import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Optional, Sequence

from feast import Entity, FeatureView, RepoConfig
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.helpers import compute_table_id
from feast.infra.online_stores.online_store import OnlineStore
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import RepeatedValue
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.repo_config import FeastConfigBaseModel
from pydantic import StrictStr

LAYOUT_TABLE = "feast_batch_layouts"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class BatchSqliteOnlineStoreConfig(FeastConfigBaseModel):
    """Online store config for the batch-writing SQLite store."""

    type: Literal["features.online_store.BatchSqliteOnlineStore"] = "features.online_store.BatchSqliteOnlineStore"
    path: StrictStr = "data/online_batch.db"


def to_micros(ts: datetime | None) -> int | None:
    if ts is None:
        return None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=timezone.utc)
    return int((ts - _EPOCH).total_seconds() * 1_000_000)


def from_micros(us: int | None) -> datetime | None:
    if us is None:
        return None
    return datetime.fromtimestamp(us / 1_000_000, tz=timezone.utc)


def db_path(config: RepoConfig) -> str:
    path = Path(config.online_store.path)
    if not path.is_absolute() and config.repo_path is not None:
        path = Path(config.repo_path) / path
    return str(path)


def table_name(config: RepoConfig, view: Any) -> str:
    return compute_table_id(config.project, view, config.registry.enable_online_feature_view_versioning)


def connect(path: str) -> sqlite3.Connection:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA page_size=16384")  # effective for a new file: rows are ~0.1-1 KB payloads
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(f"CREATE TABLE IF NOT EXISTS {LAYOUT_TABLE} (layout_id INTEGER PRIMARY KEY, table_name TEXT, names TEXT, UNIQUE(table_name, names))")
    return conn


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


class BatchSqliteOnlineStore(OnlineStore):
    """SQLite online store with one row per entity and batched, single-transaction writes."""

    def __init__(self):
        super().__init__()
        self._conn: sqlite3.Connection | None = None
        self._layouts: dict[int, list[str]] = {}
        self._lock = threading.Lock()

    # ---- connection and layouts -------------------------------------------------
    def _get_conn(self, config: RepoConfig) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = connect(db_path(config))
        return self._conn

    def layout_id(self, conn: sqlite3.Connection, table: str, names: list[str]) -> int:
        key = json.dumps(names)
        row = conn.execute(f"SELECT layout_id FROM {LAYOUT_TABLE} WHERE table_name=? AND names=?", (table, key)).fetchone()
        if row is None:
            cur = conn.execute(f"INSERT INTO {LAYOUT_TABLE} (table_name, names) VALUES (?, ?)", (table, key))
            row = (cur.lastrowid,)
        self._layouts[row[0]] = names
        return row[0]

    def layout(self, conn: sqlite3.Connection, layout_id: int) -> list[str]:
        if layout_id not in self._layouts:
            (names,) = conn.execute(f"SELECT names FROM {LAYOUT_TABLE} WHERE layout_id=?", (layout_id,)).fetchone()
            self._layouts[layout_id] = json.loads(names)
        return self._layouts[layout_id]

    # ---- writes -----------------------------------------------------------------
    def write_rows(self, config: RepoConfig, table: Any, names: list[str], rows: Sequence[tuple]) -> None:
        """Upsert (entity_key, event_ts_us, created_ts_us, payload) rows in one transaction."""
        self._write(config, table, names, [rows])

    def _write(self, config: RepoConfig, table: Any, names: list[str], batches: Iterable[Sequence[tuple]]) -> int:
        """Upsert every batch of rows in ONE transaction (rolled back if any batch fails); rows written.

        Each batch goes in key order: B-tree appends instead of random page splits.
        """
        conn = self._get_conn(config)
        tbl = table_name(config, table)
        n = 0
        with self._lock, conn:
            lid = self.layout_id(conn, tbl, names)
            sql = (f"INSERT OR REPLACE INTO {_quote(tbl)} (entity_key, event_ts, created_ts, layout_id, payload) "
                   f"VALUES (?, ?, ?, {lid}, ?)")
            for rows in batches:
                conn.executemany(sql, sorted(rows, key=lambda r: r[0]))
                n += len(rows)
        return n

    def online_write_batch(
        self,
        config: RepoConfig,
        table: FeatureView,
        data: list[tuple[EntityKeyProto, dict[str, ValueProto], datetime, Optional[datetime]]],
        progress: Optional[Callable[[int], Any]],
    ) -> None:
        names = [f.name for f in table.features]
        version = config.entity_key_serialization_version
        rows = [
            (
                serialize_entity_key(key, entity_key_serialization_version=version),
                to_micros(ts),
                to_micros(created),
                RepeatedValue(val=[values.get(n, ValueProto()) for n in names]).SerializeToString(),
            )
            for key, values, ts, created in data
        ]
        self.write_rows(config, table, names, rows)
        if progress:
            progress(len(data))

    def write_arrow(self, config: RepoConfig, table: FeatureView, data, join_key: str, timestamp_field: str) -> int:
        """Fast path: write Arrow data (join key, timestamp, feature columns) in one transaction; rows written.

        `data`: a Table or RecordBatch, or a stream of them (a RecordBatchReader or any iterable),
        encoded and written one batch at a time, so memory is bounded by the batch, not by the view.
        Nothing is written if any batch fails.
        """
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        from features.value_codec import int64_entity_keys, repeated_value_payloads

        names = [f.name for f in table.features]
        types = [_feast_type_name(f.dtype) for f in table.features]
        prefix = serialize_entity_key(
            EntityKeyProto(join_keys=[join_key], entity_values=[ValueProto(int64_val=0)]),
            entity_key_serialization_version=config.entity_key_serialization_version,
        )[:-8]
        created = to_micros(datetime.now(timezone.utc))

        def rows(batch) -> list[tuple]:
            missing = [n for n in names + [join_key, timestamp_field] if n not in batch.column_names]
            if missing:
                raise ValueError(f"{table.name}: columns missing from the data to write: {missing}")
            payloads = repeated_value_payloads([(batch.column(n), t) for n, t in zip(names, types)])
            keys = int64_entity_keys(prefix, batch.column(join_key).to_numpy())
            ts = pc.cast(batch.column(timestamp_field), pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_numpy()
            return list(zip(keys, ts.tolist(), np.full(len(keys), created).tolist(), payloads))

        batches = [data] if isinstance(data, (pa.Table, pa.RecordBatch)) else data
        return self._write(config, table, names, (rows(b) for b in batches if b.num_rows))

    # ---- reads ------------------------------------------------------------------
    def online_read(
        self,
        config: RepoConfig,
        table: FeatureView,
        entity_keys: list[EntityKeyProto],
        requested_features: Optional[list[str]] = None,
    ) -> list[tuple[Optional[datetime], Optional[dict[str, ValueProto]]]]:
        conn = self._get_conn(config)
        version = config.entity_key_serialization_version
        keys = [serialize_entity_key(k, entity_key_serialization_version=version) for k in entity_keys]
        tbl = table_name(config, table)
        found: dict[bytes, tuple] = {}
        for i in range(0, len(keys), 900):  # SQLite's bound-parameter limit
            chunk = keys[i : i + 900]
            rows = conn.execute(
                f"SELECT entity_key, event_ts, layout_id, payload FROM {_quote(tbl)} "
                f"WHERE entity_key IN ({','.join('?' * len(chunk))})",
                chunk,
            ).fetchall()
            found.update({r[0]: r[1:] for r in rows})
        wanted = set(requested_features) if requested_features else None
        out: list[tuple[Optional[datetime], Optional[dict[str, ValueProto]]]] = []
        for k in keys:
            hit = found.get(k)
            if hit is None:
                out.append((None, None))
                continue
            ts, lid, payload = hit
            vals = RepeatedValue.FromString(payload).val
            names = self.layout(conn, lid)
            out.append(
                (from_micros(ts), {n: v for n, v in zip(names, vals) if wanted is None or n in wanted})
            )
        return out

    # ---- infra ------------------------------------------------------------------
    def update(
        self,
        config: RepoConfig,
        tables_to_delete: Sequence[FeatureView],
        tables_to_keep: Sequence[FeatureView],
        entities_to_delete: Sequence[Entity],
        entities_to_keep: Sequence[Entity],
        partial: bool,
    ):
        conn = self._get_conn(config)
        with conn:
            for table in tables_to_keep:
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {_quote(table_name(config, table))} (entity_key BLOB PRIMARY KEY, "
                    "event_ts INTEGER, created_ts INTEGER, layout_id INTEGER, payload BLOB) WITHOUT ROWID"
                )
            for table in tables_to_delete:
                conn.execute(f"DROP TABLE IF EXISTS {_quote(table_name(config, table))}")

    def plan(self, config: RepoConfig, desired_registry_proto: Any) -> list:
        return []

    def teardown(self, config: RepoConfig, tables: Sequence[FeatureView], entities: Sequence[Entity]):
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        Path(db_path(config)).unlink(missing_ok=True)


def _feast_type_name(dtype: Any) -> str:
    """'Float64', 'Int64', 'Bool', 'String', ... for a Feast primitive type."""
    name = getattr(dtype, "name", None) or str(dtype)
    return {"FLOAT64": "Float64", "FLOAT32": "Float32", "INT64": "Int64", "INT32": "Int32",
            "BOOL": "Bool", "STRING": "String"}.get(str(name).upper(), str(name))
