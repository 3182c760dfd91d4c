"""Fast online reads of a feature service, consistent with Feast's definitions.

`OnlineReader(store).read(service, contact_ids)` returns the same values as
`store.get_online_features(features=store.get_feature_service(service),
entity_rows=...).to_df()`: same feature names, same nulls for unknown
entities, same on-demand outputs, computed with the service's own definitions
from the registry. What it skips is Feast's generic per-request machinery:
it resolves the service once, reads every feature view of the service in ONE
SQL statement (UNION ALL over the batch store's one-row-per-entity tables),
and decodes the stored `RepeatedValue` protobufs directly.

Columns come in the service's declared order (entity keys first); Feast's own
order is not stable across processes, so compare by column name.
It reads the batch SQLite store (`features.online_store.BatchSqliteOnlineStore`, the embedded
default) or Feast's Redis store (`type: redis`, the scale profile: `features.online_redis.RedisSource`,
one pipelined round trip per read); everything after the fetch is the same code.
"""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Sequence
from datetime import datetime, timezone

import numpy as np
import pandas as pd
from feast.protos.feast.types.Value_pb2 import RepeatedValue

from features.online_store import LAYOUT_TABLE, BatchSqliteOnlineStore, _feast_type_name, db_path, table_name
from features.online_decode import ColumnDecoder


@dataclass
class _ViewRead:
    view: str
    table: str
    join_key: str
    features: list[str]          # features the service outputs from this view
    needed: list[str]            # features read (outputs + on-demand inputs)
    types: dict                  # feature name -> Feast type name
    decoders: dict = field(default_factory=dict)  # layout id -> ColumnDecoder (cached)


@dataclass
class _Plan:
    join_keys: list[str]
    reads: list[_ViewRead]
    odfvs: list                  # (OnDemandFeatureView, [output names])
    columns: list[str]           # output columns, entity keys first
    sql: str


class OnlineReader:
    """Batched reads of a Feast feature service from the batch SQLite online store."""

    def __init__(self, store, mmap_bytes: int = 1 << 30, cache_bytes: int = 128 << 20):
        """`mmap_bytes`: how much of the database file reads map (straight from the OS page cache; every
        page touched counts in the process's RSS); `cache_bytes`: SQLite's own page cache."""
        for name, value in (("mmap_bytes", mmap_bytes), ("cache_bytes", cache_bytes)):
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name}: expected a non-negative integer, got {value!r}")
        online = store._get_provider().online_store
        if isinstance(online, BatchSqliteOnlineStore):
            self._source = SqliteSource(store, mmap_bytes, cache_bytes)
        elif getattr(store.config.online_store, "type", None) == "redis":
            from features.online_redis import RedisSource

            self._source = RedisSource(store)
        else:
            raise ValueError(
                f"OnlineReader needs online_store type features.online_store.BatchSqliteOnlineStore or redis, "
                f"got {type(online).__name__}"
            )
        self.store = store
        self._plans: dict[str, _Plan] = {}
        self._prefixes: dict[str, bytes] = {}

    def close(self) -> None:
        self._source.close()

    # ---- planning (once per service) -----------------------------------------------
    def _plan(self, service_name: str) -> _Plan:
        if service_name in self._plans:
            return self._plans[service_name]
        store = self.store
        service = store.get_feature_service(service_name)
        odfv_by_name = {o.name: o for o in store.list_on_demand_feature_views()}
        views = {v.name: v for v in store.list_feature_views()}
        reads: dict[str, _ViewRead] = {}
        odfvs, columns = [], []

        def view_read(name: str) -> _ViewRead:
            if name not in reads:
                fv = views[name]
                reads[name] = _ViewRead(name, table_name(store.config, fv), fv.entity_columns[0].name, [], [],
                                        {f.name: _feast_type_name(f.dtype) for f in fv.features})
            return reads[name]

        for proj in service.feature_view_projections:
            names = [f.name for f in proj.features]
            if proj.name in odfv_by_name:
                odfv = odfv_by_name[proj.name]
                odfvs.append((odfv, names))
                for src in odfv.source_feature_view_projections.values():
                    r = view_read(src.name)
                    r.needed += [f.name for f in src.features if f.name not in r.needed]
            else:
                r = view_read(proj.name)
                r.features += names
                r.needed += [n for n in names if n not in r.needed]
            columns += names
        join_keys = []
        for r in reads.values():
            if r.join_key not in join_keys:
                join_keys.append(r.join_key)
        plan = _Plan(join_keys, list(reads.values()), odfvs, join_keys + columns, _union_sql(reads.values()))
        self._plans[service_name] = plan
        return plan

    def _prefix(self, join_key: str) -> bytes:
        if join_key not in self._prefixes:
            from feast.infra.key_encoding_utils import serialize_entity_key
            from feast.protos.feast.types.EntityKey_pb2 import EntityKey
            from feast.protos.feast.types.Value_pb2 import Value

            key = serialize_entity_key(
                EntityKey(join_keys=[join_key], entity_values=[Value(int64_val=0)]),
                entity_key_serialization_version=self.store.config.entity_key_serialization_version,
            )
            self._prefixes[join_key] = key[:-8]
        return self._prefixes[join_key]

    # ---- reading ----------------------------------------------------------------------
    def read(self, service_name: str, contact_ids=None, *, content_ids=None, request_time=None) -> pd.DataFrame:
        """Features of `service_name` for the given ids (aligned rows when both ids are given).

        `request_time` (UTC datetime, or one per row) feeds on-demand views; default now.
        """
        plan = self._plan(service_name)
        ids: dict[str, np.ndarray] = {}
        given = {"contact_id": contact_ids, "content_id": content_ids}
        for jk in plan.join_keys:
            if given.get(jk) is None:
                raise ValueError(f"{service_name}: {jk}s are required (the service's entities: {plan.join_keys})")
            ids[jk] = np.asarray(given[jk], dtype=np.int64).reshape(-1)
        n = len(next(iter(ids.values())))
        if any(len(v) != n for v in ids.values()):
            raise ValueError(f"{service_name}: {' and '.join(ids)} must have the same length")
        return pd.DataFrame(self._execute(plan, ids, request_time))

    def read_columns(self, services: str | Sequence[str], contact_ids, *, request_time=None,
                     only: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """The contact-side features of one or more services for `contact_ids`, in ONE read.

        Returns {column: numpy array} (no DataFrame): `contact_id` first, then each service's
        contact-side features in its declared order, a name read once (first service wins:
        feature names are unique across views). The content side of a (contact x content)
        service is not read. Every array equals the same-named column of `read(service, ...)`,
        i.e. of Feast's `get_online_features(...).to_df()` (same values, nulls and dtype).
        `only`: read just these of the services' columns (names they lack are ignored).
        """
        plan = self.contact_plan(services) if only is None else self.restricted_plan(services, only)
        ids = np.asarray(contact_ids, dtype=np.int64).reshape(-1)
        return self._execute(plan, {"contact_id": ids}, request_time)

    def restricted_plan(self, services: str | Sequence[str], only: Sequence[str]) -> _Plan:
        """`contact_plan(services)` reading only the columns named in `only` (and an on-demand view's
        inputs when one of its outputs is named); cached."""
        key = ("only", *((services,) if isinstance(services, str) else services), "|", *only)
        plan = self._plans.get(key)
        if plan is None:
            if len(self._plans) >= 1024:  # e.g. one per request window: forget the restricted ones
                self._plans = {k: v for k, v in self._plans.items() if not (isinstance(k, tuple) and k[0] == "only")}
            plan = self._plans[key] = _restricted(self.contact_plan(services), set(only))
        return plan

    def contact_plan(self, services: str | Sequence[str]) -> _Plan:
        """The contact-side read plan of `services` (cached): views keyed by contact with the union of
        the services' features, on-demand views whose sources are all contact-keyed."""
        names = (services,) if isinstance(services, str) else tuple(services)
        if not names:
            raise ValueError("services: at least one feature service is required")
        key = ("contact",) + names
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = _contact_plan([self._plan(s) for s in names])
        return plan

    def contact_ids(self, services: str | Sequence[str]) -> np.ndarray:
        """Sorted ids of every contact with a row in any contact-keyed view of `services`: the
        contacts `read_columns` returns stored values for (every other id reads as all-null)."""
        plan = self.contact_plan(services)
        return np.unique(self._source.contact_ids(plan.reads, self._prefix("contact_id")))

    def some_contact_ids(self, services: str | Sequence[str], limit: int) -> np.ndarray:
        """Up to `limit` ids of contacts with a row in the first contact-keyed view of `services` (a cheap
        sample, e.g. for a warm-up, that does not scan the store)."""
        plan = self.contact_plan(services)
        if not plan.reads:
            return np.empty(0, dtype=np.int64)
        return self._source.contact_ids(plan.reads[:1], self._prefix("contact_id"), limit=int(limit))

    def read_stored(self, services: str | Sequence[str], contact_ids) -> dict[str, np.ndarray]:
        """`read_columns` without the on-demand outputs: `contact_id`, then every stored column the
        services' contact side reads (their features and the on-demand views' inputs). Pass the result
        to `on_demand` for the rest: together they equal `read_columns`."""
        plan = self.contact_plan(services)
        ids = np.asarray(contact_ids, dtype=np.int64).reshape(-1)
        out, inputs = self._stored(plan, {"contact_id": ids})
        return {**out, **inputs}

    def on_demand(self, services: str | Sequence[str], stored: dict[str, np.ndarray], request_time=None
                  ) -> dict[str, np.ndarray]:
        """The on-demand outputs of the services' contact side from `read_stored`-shaped columns."""
        plan = self.contact_plan(services)
        n = len(stored["contact_id"])
        out: dict[str, np.ndarray] = {}
        for odfv, names in plan.odfvs:
            out.update(self._on_demand(odfv, names, stored, request_time, n))
        return out

    def _execute(self, plan: _Plan, ids: dict[str, np.ndarray], request_time) -> dict[str, np.ndarray]:
        n = len(next(iter(ids.values())))
        out, inputs = self._stored(plan, ids)
        for odfv, names in plan.odfvs:
            out.update(self._on_demand(odfv, names, inputs, request_time, n))
        return {c: out[c] for c in plan.columns}

    def _stored(self, plan: _Plan, ids: dict[str, np.ndarray]) -> tuple[dict, dict]:
        """(entity keys + stored features, on-demand inputs) of one read."""
        n = len(next(iter(ids.values())))
        keys = {jk: self._keys(jk, v) for jk, v in ids.items()}
        found = self._source.fetch(plan, keys) if n else [dict() for _ in plan.reads]
        out: dict[str, np.ndarray] = dict(ids)
        inputs: dict[str, np.ndarray] = {}
        for r, hits in zip(plan.reads, found):
            values = self._decode(r, keys[r.join_key], hits)
            for name in r.features:
                out[name] = values[name]
            for name in r.needed:
                inputs[name] = values[name]
        return out, inputs

    def _keys(self, join_key: str, ids: np.ndarray) -> list[bytes]:
        from features.value_codec import int64_entity_keys

        return int64_entity_keys(self._prefix(join_key), ids)

    def _decode(self, r: _ViewRead, keys: list[bytes], hits: dict) -> dict[str, np.ndarray]:
        """Columns of r.needed for `keys` in order; entities without a row decode as all-null."""
        layout_ids = {hit[0] for hit in hits.values()}
        if len(layout_ids) > 1:  # rows written under different feature lists: decode per value
            return self._decode_slow(r, keys, hits)
        lid = next(iter(layout_ids)) if layout_ids else None
        decoder = r.decoders.get(lid)
        if decoder is None:
            layout = self._source.layout_names(lid) if lid is not None else list(r.needed)
            decoder = r.decoders[lid] = ColumnDecoder(layout, {n: r.types[n] for n in r.needed if n in layout})
        empty = b"\x0a\x00" * len(decoder.layout)  # an entity without a row decodes as all-null (Feast's nulls)
        cols = decoder.decode([hits[k][1] if k in hits else empty for k in keys] if len(hits) < len(keys)
                              else [hits[k][1] for k in keys])
        for n in r.needed:  # a feature absent from the stored layout reads as null, as in Feast
            if n not in cols:
                cols[n] = np.full(len(keys), None, dtype=object)
        return cols

    def _decode_slow(self, r: _ViewRead, keys: list[bytes], hits: dict) -> dict[str, np.ndarray]:
        cols: dict[str, list] = {name: [None] * len(keys) for name in r.needed}
        for i, key in enumerate(keys):
            hit = hits.get(key)
            if hit is None:
                continue
            lid, payload = hit
            vals = RepeatedValue.FromString(payload).val
            pos = {name: j for j, name in enumerate(self._source.layout_names(lid))}
            for name in r.needed:
                j = pos.get(name)
                if j is not None:
                    kind = vals[j].WhichOneof("val")
                    if kind is not None:
                        cols[name][i] = getattr(vals[j], kind)
        return {n: pd.Series(v).to_numpy() if any(x is not None for x in v) else np.array(v, dtype=object)
                for n, v in cols.items()}

    def _on_demand(self, odfv, names, inputs, request_time, n) -> dict[str, np.ndarray]:
        when = request_time if request_time is not None else datetime.now(timezone.utc)
        if odfv.name == "request_context":  # the same function the view's UDF calls
            from features.request_context import local_context_arrays

            result = local_context_arrays(inputs["timezone"], when)
        else:
            df = pd.DataFrame(dict(inputs))
            for source in odfv.source_request_sources.values():
                for f in source.schema:
                    scalar = isinstance(when, datetime) or np.isscalar(when)
                    df[f.name] = pd.to_datetime(pd.Series([when] * n if scalar else list(when)), utc=True)
            result = odfv.feature_transformation.transform(df)
        return {name: np.asarray(result[name]) for name in names}


class SqliteSource:
    """Reads of `OnlineReader` plans from the batch SQLite store: every view in ONE statement."""

    def __init__(self, store, mmap_bytes: int, cache_bytes: int):
        self._conn = sqlite3.connect(f"file:{db_path(store.config)}?mode=ro", uri=True, check_same_thread=False)
        self._conn.execute("PRAGMA query_only=ON")
        self._conn.execute(f"PRAGMA mmap_size={int(mmap_bytes)}")
        self._conn.execute(f"PRAGMA cache_size=-{int(cache_bytes) // 1024}")  # negative: KiB
        self._layouts: dict[int, list[str]] = {}

    def close(self) -> None:
        self._conn.close()

    def layout_names(self, layout_id: int) -> list[str]:
        if layout_id not in self._layouts:
            import json

            (names,) = self._conn.execute(f"SELECT names FROM {LAYOUT_TABLE} WHERE layout_id=?", (layout_id,)).fetchone()
            self._layouts[layout_id] = json.loads(names)
        return self._layouts[layout_id]

    def fetch(self, plan: _Plan, keys: dict[str, list[bytes]]) -> list[dict[bytes, tuple]]:
        """Per view of the plan, {entity key: (layout id, RepeatedValue payload)} of the entities with a row."""
        n = len(next(iter(keys.values())))
        params = [k for r in plan.reads for k in keys[r.join_key]]
        rows = self._conn.execute(plan.sql.format(marks=",".join("?" * n)), params).fetchall()
        found: list[dict[bytes, tuple]] = [dict() for _ in plan.reads]
        for v, key, lid, payload in rows:
            found[v][key] = (lid, payload)
        return found

    def contact_ids(self, reads, prefix: bytes, limit: int | None = None) -> np.ndarray:
        """Ids of the entities with a row in any of `reads` (at most `limit`, taken in key order)."""
        found = [np.empty(0, dtype=np.int64)]
        for r in reads:
            sql = f'SELECT entity_key FROM "{r.table}" WHERE length(entity_key) = ?'
            rows = self._conn.execute(sql + (" LIMIT ?" if limit is not None else ""),
                                      (len(prefix) + 8,) + ((int(limit),) if limit is not None else ())).fetchall()
            keys = [k for (k,) in rows if k.startswith(prefix)]
            found.append(np.frombuffer(b"".join(k[-8:] for k in keys), dtype="<i8").astype(np.int64))
        return np.concatenate(found)


def _union_sql(reads) -> str:
    """One statement for every view of a plan (`{marks}`: the placeholders of one id list)."""
    return " UNION ALL ".join(
        f'SELECT {i} AS v, entity_key, layout_id, payload FROM "{r.table}" WHERE entity_key IN ({{marks}})'
        for i, r in enumerate(reads)
    )


def _contact_plan(plans: list[_Plan], join_key: str = "contact_id") -> _Plan:
    """The contact-side union of several services' plans: views by name with the union of their
    features, on-demand views with the union of their outputs, columns in service order (first wins)."""
    reads: dict[str, _ViewRead] = {}
    odfvs: dict[str, tuple] = {}
    for plan in plans:
        for r in plan.reads:
            if r.join_key != join_key:
                continue
            m = reads.setdefault(r.view, _ViewRead(r.view, r.table, r.join_key, [], [], dict(r.types)))
            m.features += [f for f in r.features if f not in m.features]
            m.needed += [f for f in r.needed if f not in m.needed]
        for odfv, names in plan.odfvs:
            sources = [src.name for src in odfv.source_feature_view_projections.values()]
            if all(any(r.view == s and r.join_key == join_key for r in plan.reads) for s in sources):
                have = odfvs.setdefault(odfv.name, (odfv, []))[1]
                have += [n for n in names if n not in have]
    outputs = {f for r in reads.values() for f in r.features} | {n for _, names in odfvs.values() for n in names}
    columns = [join_key]
    for plan in plans:
        columns += [c for c in plan.columns if c in outputs and c not in columns]
    return _Plan([join_key], list(reads.values()), list(odfvs.values()), columns, _union_sql(reads.values()))


def _restricted(plan: _Plan, wanted: set) -> _Plan:
    """`plan` with only the `wanted` output columns (entity keys kept)."""
    odfvs = [(odfv, [n for n in names if n in wanted]) for odfv, names in plan.odfvs]
    odfvs = [(odfv, names) for odfv, names in odfvs if names]
    inputs = {f.name for odfv, _ in odfvs for src in odfv.source_feature_view_projections.values()
              for f in src.features}
    reads = []
    for r in plan.reads:
        features = [f for f in r.features if f in wanted]
        needed = [f for f in r.needed if f in wanted or f in inputs]
        if needed:
            reads.append(_ViewRead(r.view, r.table, r.join_key, features, needed, r.types))
    columns = [c for c in plan.columns if c in plan.join_keys or c in wanted]
    return _Plan(plan.join_keys, reads, odfvs, columns, _union_sql(reads))
