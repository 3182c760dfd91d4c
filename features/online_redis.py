"""The online store on Redis: Feast's own Redis store writes, our reader reads in one pipeline.

`INBOX_ONLINE_STORE=redis://HOST:PORT/DB` renders `type: redis` into the Feast repo config
(`features.store.get_store`). Writes (materialize, `inbox publish`) go through Feast's
`RedisOnlineStore.online_write_batch`, so the keys and values are Feast's by construction;
`arrow_to_feast_rows` turns an Arrow batch into its input, encoding each column at once with
`features.value_codec` (one `Value` message per cell is then parsed, not built field by field).

`RedisSource` is `features.online.OnlineReader`'s read path on Redis. It follows Feast's Redis
layout, documented in Feast's online store format spec (docs/specs/online_store_format.md):
one hash per entity, key = the serialized entity key (v3) followed by the project name; per
feature the field murmur3_32("<view>:<feature>") (4 bytes, little-endian) holding a serialized
`feast.types.Value`; per view the field `_ts:<view>` holding the event timestamp. A request
reads every view of every contact with ONE pipelined HMGET per contact (one round trip), and the
values are decoded column-wise by the same `ColumnDecoder` the SQLite store uses: each view's
values are framed as one `RepeatedValue` per entity. An entity without `_ts:<view>` has no row
in that view and reads as all-null, as in Feast.
"""
from __future__ import annotations

import struct
from datetime import timezone
from urllib.parse import unquote, urlparse

import numpy as np

REDIS_SCHEMES = ("redis://", "rediss://")
SCAN_BATCH = 10_000


def is_redis_url(url: str | None) -> bool:
    return bool(url) and url.startswith(REDIS_SCHEMES)


def connection_string(url: str) -> str:
    """Feast's `connection_string` ("host:port,db=N[,password=...][,ssl=true]") for a redis:// URL;
    ValueError naming INBOX_ONLINE_STORE for anything else."""
    if not is_redis_url(url):
        raise ValueError(f"INBOX_ONLINE_STORE: expected redis://HOST:PORT/DB, got {url!r}")
    parsed = urlparse(url)
    db = (parsed.path or "/0").lstrip("/") or "0"
    if not db.isdigit():
        raise ValueError(f"INBOX_ONLINE_STORE: the database must be a number (redis://HOST:PORT/DB), got {db!r}")
    parts = [f"{parsed.hostname or 'localhost'}:{parsed.port or 6379}", f"db={db}"]
    if parsed.password:
        parts.append(f"password={unquote(parsed.password)}")
    if parsed.scheme == "rediss":
        parts.append("ssl=true")
    return ",".join(parts)


def feature_field(view: str, feature: str) -> bytes:
    """The hash field of one feature: murmur3_32 of "<view>:<feature>", little-endian (Feast's spec)."""
    import mmh3

    return struct.pack("<I", mmh3.hash(f"{view}:{feature}", signed=False))


def timestamp_field(view: str) -> bytes:
    return f"_ts:{view}".encode()


# ---- writes ------------------------------------------------------------------------------------
def arrow_to_feast_rows(batch, view, join_key: str, timestamp_column: str, types: list[str]) -> list[tuple]:
    """`online_write_batch`'s rows (EntityKey, {feature: Value}, event time, None) of an Arrow batch."""
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    from features.value_codec import value_part

    names = [f.name for f in view.features]
    missing = [n for n in names + [join_key, timestamp_column] if n not in batch.column_names]
    if missing:
        raise ValueError(f"{view.name}: columns missing from the data to write: {missing}")
    columns = []
    for name, ftype in zip(names, types):
        flat, lengths = value_part(batch.column(name), ftype)
        whole, ends = flat.tobytes(), np.cumsum(lengths).tolist()
        columns.append([Value.FromString(whole[a:b]) for a, b in zip([0] + ends[:-1], ends)])
    ids = batch.column(join_key).to_numpy().astype(np.int64).tolist()
    times = batch.column(timestamp_column).to_pylist()
    rows = []
    for i, (cid, when) in enumerate(zip(ids, times)):
        key = EntityKey(join_keys=[join_key], entity_values=[Value(int64_val=cid)])
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        rows.append((key, {name: col[i] for name, col in zip(names, columns)}, when, None))
    return rows


def write_arrow_feast(online, config, view, batches, join_key: str, timestamp_column: str) -> int:
    """Write Arrow batches through a Feast online store's own `online_write_batch`; rows written."""
    from features.online_store import _feast_type_name

    types = [_feast_type_name(f.dtype) for f in view.features]
    written = 0
    for batch in batches:
        if batch.num_rows:
            online.online_write_batch(config, view, arrow_to_feast_rows(batch, view, join_key, timestamp_column, types),
                                      None)
            written += batch.num_rows
    return written


# ---- reads -------------------------------------------------------------------------------------
_HEADERS = [bytes((0x0A, n)) for n in range(128)]  # RepeatedValue.val tag + a one-byte length
_NULL = b"\x0a\x00"                                 # an empty Value: null


def _frame(values) -> bytes:
    """One `RepeatedValue` from a view's field values (None: a null Value)."""
    out = []
    for v in values:
        if v is None:
            out.append(_NULL)
        elif len(v) < 128:
            out += (_HEADERS[len(v)], v)
        else:
            from features.value_codec import varint

            flat, _ = varint(np.array([len(v)]))
            out += (b"\x0a", flat.tobytes(), v)
    return b"".join(out)


class RedisSource:
    """Reads of `OnlineReader` plans from Feast's Redis online store (see the module docstring)."""

    def __init__(self, store):
        import redis

        cfg = store.config.online_store
        self.project = store.config.project.encode()
        host_port, *params = cfg.connection_string.split(",")
        host, _, port = host_port.rpartition(":")
        options = dict(p.split("=", 1) for p in params if "=" in p)
        self.client = redis.Redis(host=host, port=int(port), db=int(options.get("db", 0)),
                                  password=options.get("password"), ssl=options.get("ssl", "").lower() == "true")
        self._fields: dict[tuple, list[bytes]] = {}

    def close(self) -> None:
        self.client.close()

    def layout_names(self, layout_id) -> list[str]:
        return list(layout_id[1])  # ("redis", needed features)

    def _view_fields(self, r) -> list[bytes]:
        key = (r.view, tuple(r.needed))
        if key not in self._fields:
            self._fields[key] = [feature_field(r.view, f) for f in r.needed] + [timestamp_field(r.view)]
        return self._fields[key]

    def fetch(self, plan, keys: dict[str, list[bytes]]) -> list[dict[bytes, tuple]]:
        """Per view of the plan, {entity key: (layout id, RepeatedValue payload)} of the entities that
        have a row: one HMGET per entity (every view it is read for), all in one pipeline."""
        reads = plan.reads
        by_join: dict[str, list[int]] = {}
        for v, r in enumerate(reads):
            by_join.setdefault(r.join_key, []).append(v)
        found: list[dict[bytes, tuple]] = [dict() for _ in reads]
        pipe = self.client.pipeline(transaction=False)
        plan = []
        for join_key, views in by_join.items():
            fields = [self._view_fields(reads[v]) for v in views]
            flat = [f for fs in fields for f in fs]
            for k in keys[join_key]:
                pipe.hmget(k + self.project, flat)
            plan.append((join_key, views, fields))
        results = iter(pipe.execute())
        for join_key, views, fields in plan:
            for k in keys[join_key]:
                values = next(results)
                lo = 0
                for v, fs in zip(views, fields):
                    hi = lo + len(fs)
                    if values[hi - 1] is not None:  # `_ts:<view>`: the entity has a row in this view
                        found[v][k] = (("redis", tuple(reads[v].needed)), _frame(values[lo : hi - 1]))
                    lo = hi
        return found

    def _entity_keys(self, prefix: bytes):
        """Every stored key of an int64 join key with this serialized-key prefix, without the project."""
        pattern = b"".join(b"\\" + bytes((c,)) if c in b"*?[]\\" else bytes((c,)) for c in prefix) + b"*"
        size = len(prefix) + 8 + len(self.project)
        for key in self.client.scan_iter(match=pattern, count=SCAN_BATCH):
            if len(key) == size and key.endswith(self.project):
                yield key[: -len(self.project)]

    def contact_ids(self, reads, prefix: bytes, limit: int | None = None) -> np.ndarray:
        """Ids of the entities with a row in any of `reads` (unsorted; at most `limit`)."""
        ts = [timestamp_field(r.view) for r in reads]
        out: list[bytes] = []
        chunk: list[bytes] = []

        def flush():
            pipe = self.client.pipeline(transaction=False)
            for k in chunk:
                pipe.hmget(k + self.project, ts)
            out.extend(k for k, vals in zip(chunk, pipe.execute()) if any(x is not None for x in vals))
            chunk.clear()

        for key in self._entity_keys(prefix):
            chunk.append(key)
            if len(chunk) >= SCAN_BATCH:
                flush()
            if limit is not None and len(out) >= limit:
                break
        if chunk and (limit is None or len(out) < limit):
            flush()
        out = out[:limit] if limit is not None else out
        return np.frombuffer(b"".join(k[-8:] for k in out), dtype="<i8").astype(np.int64)
