"""Point-in-time feature frames for training, defined by the Feast feature services.

Only the feature rows the join picks are read, whatever the number of entity
keys: a first scan reads (key, snapshot time) of the candidate rows and finds
the snapshot of each entity row, a second streams the feature columns in
batches and keeps those snapshots (`_read_snapshots`). Memory follows the
entity frame, not the contacts x days x features of the table.

Feast is the source of truth for *which* features a service has (views,
feature names, TTLs, source tables: read from the applied registry; the plan
read is recorded per registry version, `models.read_plans`, so a process whose
registry has not changed does not import Feast). The
point-in-time join itself is done here with `pandas.merge_asof` over the same
Parquet sources: Feast's `file` offline store (dask) takes seconds per ten
thousand entity rows, i.e. many minutes for the ~10^6 rows a training set has
(measured by benchmarks/bench_models.py). The semantics are Feast's: for each entity
row, the newest snapshot with `event_timestamp <= row time` and not older than
the view's TTL (TTL 0 = no limit); `tests/models/test_model_datasets.py`
checks equality with `get_historical_features` on a sample. On-demand views
(request-time context) are left out: the models compute what they need from
the candidate send time themselves. `engine="feast"` runs the real Feast join.

Without an applied Feast registry the same join runs on the pipeline's tables
with the views of `FALLBACK_VIEWS` (mirrors `features.definitions`).

Models read the union of several contact-side services, like serving does
(it merges every contact-side service by column name).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from models.sampled_log import SCAN

FALLBACK_TTL = timedelta(days=3)
FALLBACK_VIEWS = {  # service -> views (all features of each), when Feast is not applied
    "lead_scoring": ("contact_engagement", "contact_profile"),
    "send_time": ("contact_send_time", "contact_send_hours", "contact_engagement", "contact_profile"),
    "content_preference": ("contact_topics", "content_features"),
    "content_catalog": ("content_features",),
}
NEVER_EXPIRE = ("contact_profile", "contact_send_hours")  # mirrors features.definitions.TTL
VIEW_KEY = {"contact_engagement": "contact_id", "contact_send_time": "contact_id", "contact_send_hours": "contact_id",
            "contact_topics": "contact_id",
            "contact_profile": "contact_id", "content_features": "content_id"}


@dataclass(frozen=True)
class ViewRead:
    view: str
    key: str
    path: Path
    ttl: timedelta | None  # None = no limit
    features: tuple[str, ...] | None  # None = all columns


def _feast_store(settings):
    registry = Path(settings.feast_dir) / "registry.db"
    if not registry.exists():
        return None
    try:
        from features.store import get_store
    except ImportError:
        return None
    return get_store(settings)


def plan_reads(services: tuple[str, ...], settings, store=None) -> tuple[list[ViewRead], str]:
    """Views and features to join for the union of `services`; and where the definition came from.

    Without a `store`, the plan recorded for the settings' registry (`models.read_plans`: same bytes)
    is used when there is one, else the registry is read through Feast and its plan recorded."""
    digest = None
    if store is None:
        from models import read_plans

        digest = read_plans.registry_digest(settings.feast_dir)
        recorded = read_plans.cached(settings.feast_dir, services, digest)
        if recorded is not None:
            return recorded, "feast-registry"
        store = _feast_store(settings)
    reads: dict[str, ViewRead] = {}
    if store is not None:
        from features.store import source_file

        views = {v.name: v for v in store.list_feature_views()}
        for name in services:
            service = store.get_feature_service(name)
            for proj in service.feature_view_projections:
                view = views.get(proj.name)
                if view is None:  # on-demand view: computed at request time, not a training feature
                    continue
                feats = tuple(f.name for f in proj.features)
                prev = reads.get(view.name)
                if prev is not None:
                    feats = tuple(dict.fromkeys((prev.features or ()) + feats))
                ttl = view.ttl if view.ttl and view.ttl.total_seconds() > 0 else None
                reads[view.name] = ViewRead(view.name, view.entity_columns[0].name, Path(source_file(store, view)),
                                            ttl, feats)
        if digest is not None and read_plans.registry_digest(settings.feast_dir) == digest:  # unchanged meanwhile
            read_plans.record(settings.feast_dir, services, digest, reads.values())
        return list(reads.values()), "feast-registry"
    from features.pipeline import TABLE_FILES

    for name in services:
        if name not in FALLBACK_VIEWS:
            raise ValueError(f"service: unknown feature service {name!r}; expected one of {sorted(FALLBACK_VIEWS)}")
        for view in FALLBACK_VIEWS[name]:
            ttl = None if view in NEVER_EXPIRE else FALLBACK_TTL
            reads[view] = ViewRead(view, VIEW_KEY[view], Path(settings.features_dir) / TABLE_FILES[view], ttl, None)
    return list(reads.values()), "pipeline-tables"


def _asof_positions(left: pd.DataFrame, right: pd.DataFrame, key: str, tolerance) -> np.ndarray:
    """Per `left` row (key, event_timestamp): the position in `right` of the newest row with the same key
    and `event_timestamp` <= the left row's, not older than `tolerance` (None = no limit); -1 if none.

    Only the key and time columns go through `merge_asof` (the wide feature columns are taken by
    position afterwards, so the join never copies them)."""
    lhs = pd.DataFrame({key: left[key].reset_index(drop=True), "_ts": left["event_timestamp"].reset_index(drop=True),
                        "_row": np.arange(len(left))}).sort_values("_ts", kind="stable")
    rhs = pd.DataFrame({key: right[key].reset_index(drop=True),
                        "_feature_ts": right["event_timestamp"].reset_index(drop=True),
                        "_pos": np.arange(len(right))}).sort_values("_feature_ts", kind="stable")
    hit = pd.merge_asof(lhs, rhs, left_on="_ts", right_on="_feature_ts", by=key, direction="backward",
                        tolerance=tolerance, allow_exact_matches=True)
    pos = np.full(len(left), -1, dtype=np.int64)
    pos[hit["_row"].to_numpy()] = hit["_pos"].fillna(-1).to_numpy(np.int64)
    return pos


def _key_array(values: np.ndarray, arrow_type: pa.DataType) -> pa.Array:
    return pa.array(np.unique(values)).cast(arrow_type)


def _key_filter(key: str, values: np.ndarray, arrow_type: pa.DataType) -> pc.Expression:
    """`key` is one of `values`, stated with the values' range as well: Arrow skips a row group by its
    min/max statistics for a range, not for `isin`, so a contiguous block of keys (a batch of contacts
    of a contact-major table) reads only its own row groups."""
    keys = _key_array(values, arrow_type)
    if len(keys) == 0:
        return pc.field(key).isin(keys)
    return (pc.field(key) >= keys[0]) & (pc.field(key) <= keys[-1]) & pc.field(key).isin(keys)


def _scan_filter(entity: pd.DataFrame, read: ViewRead, schema: pa.Schema) -> pc.Expression:
    """Rows the as-of join could match: the entity's keys, snapshots not after its last row time and
    (with a TTL) not older than its first row time minus the TTL."""
    ts, ts_type = entity["event_timestamp"], schema.field("event_timestamp").type
    scan = pc.field("event_timestamp") <= pa.scalar(ts.max()).cast(ts_type)
    if read.ttl is not None:
        scan &= pc.field("event_timestamp") >= pa.scalar(ts.min() - pd.Timedelta(read.ttl)).cast(ts_type)
    return scan & _key_filter(read.key, entity[read.key].to_numpy(np.int64), schema.field(read.key).type)


def _us(series: pd.Series) -> np.ndarray:
    return pd.DatetimeIndex(series).as_unit("us").asi8


def _read_snapshots(entity: pd.DataFrame, read: ViewRead, columns: list[str] | None) -> pd.DataFrame:
    """The feature rows the as-of join of `entity` picks, and only those (two scans, bounded memory).

    Scan 1 reads (key, event_timestamp) of the candidate rows and runs the as-of join on them alone,
    giving the snapshot each entity row takes; scan 2 streams the feature columns in batches and keeps
    exactly those (key, snapshot) pairs. The as-of join over this subset picks what it would pick over
    the whole table: every row it can choose is in the subset, and the subset has no newer row.
    """
    data = pads.dataset(str(read.path), format="parquet")
    for col in (read.key, "event_timestamp"):
        if col not in data.schema.names:
            raise ValueError(f"{read.view}.{col}: missing column in {read.path}")
    tol = pd.Timedelta(read.ttl) if read.ttl is not None else None
    pairs = data.scanner(columns=[read.key, "event_timestamp"], filter=_scan_filter(entity, read, data.schema),
                         **SCAN).to_table().to_pandas()
    pairs["event_timestamp"] = pairs["event_timestamp"].astype("datetime64[us, UTC]")
    pos = _asof_positions(entity, pairs, read.key, tol)
    picked = pairs.iloc[pos[pos >= 0]].rename(columns={"event_timestamp": "_snapshot"})
    scanner = data.scanner(columns=columns, filter=pc.scalar(False))
    if picked.empty:
        return scanner.projected_schema.empty_table().to_pandas()
    keys = np.unique(picked[read.key].to_numpy(np.int64))
    times = np.unique(_us(picked["_snapshot"]))
    wanted = np.unique(np.searchsorted(keys, picked[read.key].to_numpy(np.int64)) * len(times)
                       + np.searchsorted(times, _us(picked["_snapshot"])))
    ts_type = data.schema.field("event_timestamp").type
    scan = _key_filter(read.key, keys, data.schema.field(read.key).type) & pc.field(
        "event_timestamp").isin(pa.array(times.astype("datetime64[us]")).cast(pa.timestamp("us", tz="UTC")).cast(
            ts_type))
    scanner = data.scanner(columns=columns, filter=scan, **SCAN)
    kept = []
    for batch in scanner.to_batches():
        if batch.num_rows == 0:
            continue
        k = batch.column(read.key).to_numpy(zero_copy_only=False).astype(np.int64)
        t = pc.cast(batch.column("event_timestamp"), pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_numpy()
        code = np.searchsorted(keys, k) * len(times) + np.searchsorted(times, t)
        pos = np.minimum(np.searchsorted(wanted, code), len(wanted) - 1)
        kept.append(batch.filter(pa.array(wanted[pos] == code)))
    return pa.Table.from_batches(kept, schema=scanner.projected_schema).to_pandas()


def feature_frame(entity_df: pd.DataFrame, services, settings, engine: str = "asof", store=None,
                  plan=None) -> pd.DataFrame:
    """`entity_df` (contact_id[, content_id], event_timestamp UTC) joined with the services' features.

    `frame.attrs["feature_source"]` records the definition and engine used. `plan`: what `plan_reads`
    returned for these services (as-of engine), so that many joins of one pass share one plan.
    """
    services = (services,) if isinstance(services, str) else tuple(services)
    for col in ("contact_id", "event_timestamp"):
        if col not in entity_df.columns:
            raise ValueError(f"entity_df: missing column {col!r}")
    if engine == "feast":
        from features.training import training_frame

        store = store or _feast_store(settings)
        if store is None:
            raise FileNotFoundError(f"no Feast registry in {settings.feast_dir} (run `inbox features apply`)")
        out = entity_df.reset_index(drop=True)
        for name in services:
            got = training_frame(entity_df, name, store=store)
            out = pd.concat([out, got[[c for c in got.columns if c not in out.columns]]], axis=1)
        out.attrs["feature_source"] = "feast:" + "+".join(services)
        return out
    if engine != "asof":
        raise ValueError(f"engine: expected 'asof' or 'feast', got {engine!r}")
    return feature_frames([entity_df], services, settings, store, plan)[0]


def feature_frames(entity_dfs: list[pd.DataFrame], services, settings, store=None, plan=None) -> list[pd.DataFrame]:
    """`feature_frame` (as-of engine) of several entity frames, scanning each feature table once for all.

    Each result is what `feature_frame` returns for that frame alone (same rows, values and dtypes).
    """
    services = (services,) if isinstance(services, str) else tuple(services)
    outs = []
    for i, entity_df in enumerate(entity_dfs):
        for col in ("contact_id", "event_timestamp"):
            if col not in entity_df.columns:
                raise ValueError(f"entity_df[{i}]: missing column {col!r}")
        out = entity_df.reset_index(drop=True).copy()
        out["event_timestamp"] = pd.to_datetime(out["event_timestamp"], utc=True).astype("datetime64[us, UTC]")
        outs.append(out)
    reads, origin = plan if plan is not None else plan_reads(services, settings, store)
    parts, have = [[out] for out in outs], [set(out.columns) for out in outs]
    for r in reads:
        users = [i for i, out in enumerate(outs) if r.key in out.columns]  # content views need content ids
        if not users:
            continue
        if not r.path.exists():
            raise FileNotFoundError(f"{r.view}: no feature table {r.path} (run `inbox features build`)")
        cols = None if r.features is None else [r.key, "event_timestamp", *r.features]
        union = pd.concat([outs[i][[r.key, "event_timestamp"]] for i in users], ignore_index=True)
        table = _read_snapshots(union, r, cols)
        table["event_timestamp"] = table["event_timestamp"].astype("datetime64[us, UTC]")
        tol = pd.Timedelta(r.ttl) if r.ttl is not None else None
        for i in users:
            pos = _asof_positions(outs[i], table, r.key, tol)
            features = table.drop(columns=[c for c in table.columns if c in have[i]]).reset_index(drop=True)
            parts[i].append(features.reindex(pos).reset_index(drop=True))  # -1: no snapshot -> missing values
            have[i] |= set(features.columns)
    results = []
    for p in parts:
        frame = pd.concat(p, axis=1)
        frame.attrs["feature_source"] = f"{origin}+asof:" + "+".join(services)
        results.append(frame)
    return results


def latest_contact_features(services, settings, as_of=None) -> pd.DataFrame:
    """Every contact's features as of `as_of` (default: the newest snapshot) in one frame; batch scoring
    reads the same rows a batch of contacts at a time (`models.contact_batches.ContactBatches`)."""
    from models.contact_batches import ContactBatches

    contacts = ContactBatches(services, settings, as_of=as_of)
    return feature_frame(pd.DataFrame({"contact_id": contacts.ids, "event_timestamp": contacts.snapshot}),
                         services, settings, plan=contacts.plan)


def latest_content_features(settings, as_of=None) -> pd.DataFrame:
    """The content catalog's features (newest snapshot per item)."""
    from features.pipeline import TABLE_FILES

    table = pd.read_parquet(Path(settings.features_dir) / TABLE_FILES["content_features"])
    if as_of is not None:
        table = table[table["event_timestamp"] <= pd.Timestamp(as_of)]
    return table.sort_values("event_timestamp").groupby("content_id", as_index=False).last()
