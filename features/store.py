"""Feast store helpers: render the repo config, apply definitions, materialize fast.

`get_store(settings)` renders `features/feature_store.yaml` into
`settings.feast_dir` (registry and online SQLite live there) and returns a
`feast.FeatureStore`. Every path Feast keeps (the registry and online store in the
config, each FileSource in the registry) is relative to that directory, so a data
directory that is copied or moved keeps reading its own files. `materialize` loads, per feature view, the latest
snapshot per entity in [start, end] from the Parquet feature table with DuckDB,
streamed in record batches into `BatchSqliteOnlineStore.write_arrow` (one
transaction per view, memory bounded by the batch), then records the interval in
the registry as `feast materialize` would.
"""
from __future__ import annotations

import os
import string
import tempfile
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

BATCH_STORE_TYPE = "features.online_store.BatchSqliteOnlineStore"
STOCK_STORE_TYPE = "sqlite"
REDIS_STORE_TYPE = "redis"
ONLINE_STORE_ENV = "INBOX_ONLINE_STORE"
TEMPLATE = Path(__file__).with_name("feature_store.yaml")


def online_store_url(url: str | None = None) -> str | None:
    """The configured Redis URL (`INBOX_ONLINE_STORE`), or None for the embedded SQLite store."""
    return url if url is not None else (os.environ.get(ONLINE_STORE_ENV) or None)


def _online_store_block(online_store_type: str, url: str | None) -> str:
    if url is not None:
        from features.online_redis import connection_string

        return (f"  type: {REDIS_STORE_TYPE}\n  connection_string: \"{connection_string(url)}\"\n"
                "  skip_dedup: true")
    return f"  type: {online_store_type}\n  path: online.db"


def render_config(feast_dir, online_store_type: str = BATCH_STORE_TYPE, online_store: str | None = None) -> Path:
    """Write <feast_dir>/feature_store.yaml from the template (atomically); `online_store` a redis:// URL
    (default: `INBOX_ONLINE_STORE`; unset: the SQLite store `online_store_type`)."""
    feast_dir = Path(feast_dir).resolve()
    feast_dir.mkdir(parents=True, exist_ok=True)
    url = online_store_url(online_store) if online_store_type == BATCH_STORE_TYPE else None
    text = string.Template(TEMPLATE.read_text()).substitute(
        ONLINE_STORE=_online_store_block(online_store_type, url)
    )
    path = feast_dir / "feature_store.yaml"
    fd, tmp = tempfile.mkstemp(dir=feast_dir, prefix=".feature_store.", suffix=".yaml")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    return path


def get_store(settings=None, feast_dir=None, online_store_type: str = BATCH_STORE_TYPE, online_store: str | None = None):
    """A FeatureStore over `settings.feast_dir` (or `feast_dir`); its online store on Redis when
    `online_store` (default `INBOX_ONLINE_STORE`) is a redis:// URL.

    With settings (given or loaded, not for a bare `feast_dir`), a registry whose file sources are not in
    `settings.features_dir` (a data directory copied or moved after `apply`) is re-applied from this
    directory's tables first (`features.relocation.ensure_local_sources`)."""
    from feast import FeatureStore

    if feast_dir is None:
        from inbox.settings import load_settings

        settings = settings or load_settings()
        feast_dir = settings.feast_dir
    render_config(feast_dir, online_store_type, online_store)
    store = FeatureStore(repo_path=str(Path(feast_dir).resolve()))
    if settings is not None:
        from features.relocation import ensure_local_sources

        ensure_local_sources(store, settings.features_dir)
    return store


def source_file(store, view) -> str:
    """The file a view's FileSource reads, as Feast resolves it: a relative path against the store's repo path."""
    from feast import FileSource

    resolved = FileSource.get_uri_for_file_path(store.repo_path, view.batch_source.path)
    return resolved if "://" in resolved else os.path.normpath(resolved)


def apply(store=None, settings=None, features_dir=None) -> dict:
    """Register entities, views, the on-demand view and services from the built feature tables."""
    from features.definitions import build_repo

    if features_dir is None:
        from inbox.settings import load_settings

        features_dir = (settings or load_settings()).features_dir
    store = store or get_store(settings)
    repo = build_repo(features_dir, repo_path=store.repo_path)
    with warnings.catch_warnings():
        # Feast warns on every apply that registers an on-demand view that the feature is
        # "experimental ... does not scale well for offline retrieval": a notice about Feast, raised
        # whatever the repo holds. Only that message is ignored; any other warning still shows.
        warnings.filterwarnings("ignore", message="On demand feature view is an experimental feature",
                                category=RuntimeWarning)
        store.apply([*repo["entities"], *repo["views"].values(), repo["odfv"], *repo["services"].values()])
    return {"entities": len(repo["entities"]), "feature_views": len(repo["views"]), "on_demand_views": 1,
            "feature_services": len(repo["services"]),
            "features": sum(len(v.features) for v in repo["views"].values())}


MATERIALIZE_BATCH_ROWS = 100_000
MATERIALIZE_MEMORY_LIMIT = "1GB"


def _latest_batches(path: str, join_key: str, start: datetime | None, end: datetime,
                    batch_rows: int = MATERIALIZE_BATCH_ROWS):
    """Latest row per entity with start <= event_timestamp <= end, as a stream of Arrow record batches.

    Two passes, both streaming: the newest timestamp per entity (two columns, a hash
    aggregate of one row per entity), then a scan of the table joined to it. DuckDB
    runs under a memory limit and the rows come out `batch_rows` at a time, so memory
    does not grow with contacts x days. Raises ValueError (inside the stream, so the
    writer's transaction rolls back) if an entity has two rows at its newest timestamp.
    """
    import tempfile

    import duckdb

    with tempfile.TemporaryDirectory(prefix="materialize-") as spill:
        con = duckdb.connect()
        try:
            con.execute("SET threads=2")
            con.execute(f"SET memory_limit='{MATERIALIZE_MEMORY_LIMIT}'")
            con.execute(f"SET temp_directory='{spill}'")
            con.execute("SET preserve_insertion_order=false")
            lo = "" if start is None else "AND event_timestamp >= $start"
            params = {"path": path, "end": end} | ({} if start is None else {"start": start})
            key = f'"{join_key}"'
            con.execute(f"""CREATE TEMP TABLE latest AS SELECT {key} AS k, max(event_timestamp) AS ts
                            FROM read_parquet($path) WHERE event_timestamp <= $end {lo} GROUP BY ALL""", params)
            ((entities,),) = con.execute("SELECT count(*) FROM latest").fetchall()
            rows = 0
            reader = con.sql(f"""SELECT s.* FROM read_parquet($path) s
                                 JOIN latest l ON s.{key} = l.k AND s.event_timestamp = l.ts""",
                             params={"path": path}).to_arrow_reader(batch_rows)
            for batch in reader:
                rows += batch.num_rows
                if rows > entities:
                    raise ValueError(f"{path}: more than one row for some {join_key} at its newest event_timestamp")
                yield batch
        finally:
            con.close()


def materialize(store=None, settings=None, end: datetime | None = None, start: datetime | None = None,
                views: list[str] | None = None, progress=None, batch_rows: int = MATERIALIZE_BATCH_ROWS) -> dict:
    """Load the newest snapshot per entity (up to `end`) into the online store; {view: rows}.

    With the batch store this is the fast path (vectorized encoding, one transaction per
    view); on Redis the same stream goes through Feast's own `RedisOnlineStore.online_write_batch`
    (`write_arrow`); any other online store falls back to Feast's own `materialize`.
    """
    store = store or get_store(settings)
    end = end or datetime.now(timezone.utc)
    if end.tzinfo is None:
        raise ValueError("materialize: end must be timezone-aware UTC")
    if start is not None and start.tzinfo is None:
        raise ValueError("materialize: start must be timezone-aware UTC")
    if not isinstance(batch_rows, int) or batch_rows < 1:
        raise ValueError(f"materialize: batch_rows must be a positive integer, got {batch_rows!r}")
    online = store._get_provider().online_store
    fvs = [fv for fv in store.list_feature_views() if (views is None or fv.name in views)
           and "written_by" not in fv.tags]  # e.g. contact_predictions: rows come from `inbox publish`
    out = {}
    for fv in fvs:
        t0 = time.perf_counter()
        if not hasattr(online, "write_arrow") and not _is_redis(store):
            store.materialize(start_date=start or datetime(1970, 1, 1, tzinfo=timezone.utc), end_date=end,
                              feature_views=[fv.name])
            out[fv.name] = None
            continue
        key = fv.entity_columns[0].name
        batches = _latest_batches(source_file(store, fv), key, start, end, batch_rows)
        out[fv.name] = write_arrow(store, fv, batches, key, "event_timestamp")
        store.registry.apply_materialization(fv, store.project, start or datetime(1970, 1, 1, tzinfo=timezone.utc),
                                             end, commit=True)
        if progress:
            progress(fv.name, out[fv.name], time.perf_counter() - t0)
    return out


def _is_redis(store) -> bool:
    return getattr(store.config.online_store, "type", None) == REDIS_STORE_TYPE


def write_arrow(store, view, batches, join_key: str, timestamp_field: str) -> int:
    """Write Arrow data (a Table, a RecordBatch, or a stream of them) of `view` into the online store;
    rows written. The batch SQLite store encodes it vectorized in one transaction; Redis gets it
    through Feast's own `online_write_batch`, one pipeline per batch."""
    import pyarrow as pa

    online = store._get_provider().online_store
    if hasattr(online, "write_arrow"):
        return online.write_arrow(store.config, view, batches, join_key, timestamp_field)
    if not _is_redis(store):
        raise ValueError(f"write_arrow: unsupported online store {type(online).__name__}")
    from features.online_redis import write_arrow_feast

    if isinstance(batches, pa.Table):
        batches = batches.to_batches(max_chunksize=REDIS_WRITE_ROWS)
    elif isinstance(batches, pa.RecordBatch):
        batches = [batches]
    return write_arrow_feast(online, store.config, view, _rechunk(batches, REDIS_WRITE_ROWS), join_key,
                             timestamp_field)


REDIS_WRITE_ROWS = 5_000  # Value messages held at once: rows x features


def _rechunk(batches, rows: int):
    for batch in batches:
        for lo in range(0, batch.num_rows, rows):
            yield batch.slice(lo, rows)
