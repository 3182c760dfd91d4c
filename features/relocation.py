"""Keep the Feast registry on this data directory's feature tables after the directory is copied or moved.

`features.definitions` registers each FileSource relative to the Feast repo (the feast dir), which Feast
resolves against the repo path of the store that reads it, so a registry applied since then moves with
its directory. A registry applied before, or by another tool, may hold absolute paths; in a copy they
name the ORIGINAL directory's Parquet files, which `get_historical_features`, `materialize` and the
read plans would then read silently (or fail on, once the original is gone).

`ensure_local_sources(store, features_dir)` (called by `features.store.get_store`) finds the registered
file sources outside `features_dir` and re-applies the project's definitions from this directory's
tables through `store.apply` (Feast's public API), under a file lock so that serving workers starting
together apply once and none reads the registry while another rewrites it. What it cannot rebuild (a view this project does not define, or tables missing
from the copy) raises `inbox.locations.ForeignPathError` naming the path, instead of reading it.
"""
from __future__ import annotations

import fcntl
import logging
import os
import warnings
from contextlib import contextmanager
from pathlib import Path

from inbox.locations import ForeignPathError, is_within

logger = logging.getLogger(__name__)
LOCK_FILE = ".apply.lock"


def foreign_sources(store, features_dir) -> dict[str, str]:
    """{registered object: the file it reads} for every file source of the registry (data sources and
    feature views' batch sources) that is not inside `features_dir`."""
    from feast import FileSource

    from features.store import source_file

    out = {}
    for src in store.list_data_sources():
        if isinstance(src, FileSource):
            path = FileSource.get_uri_for_file_path(store.repo_path, src.path)
            if not is_within(path, features_dir):
                out[f"data source {src.name}"] = path
    for view in store.list_feature_views():
        if isinstance(view.batch_source, FileSource):
            path = source_file(store, view)
            if not is_within(path, features_dir):
                out[f"feature view {view.name}"] = path
    return out


@contextmanager
def _registry_lock(feast_dir, mode: int):
    """flock on `<feast_dir>/.apply.lock`: shared to read the registry for the check, exclusive to re-apply
    (Feast's file registry is rewritten in place, so a reader must not read it mid-write)."""
    fd = os.open(Path(feast_dir) / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)


def _registry_exists(store) -> bool:
    path = Path(store.config.registry.path)
    return (path if path.is_absolute() else Path(store.repo_path) / path).exists()


def ensure_local_sources(store, features_dir) -> dict[str, str]:
    """Re-apply the registry from `features_dir` when any of its file sources is outside it; returns what
    was foreign ({} when nothing was). Raises ForeignPathError when the re-apply cannot fix it."""
    with _registry_lock(store.repo_path, fcntl.LOCK_SH):
        if not _registry_exists(store) or not foreign_sources(store, features_dir):
            return {}
    with _registry_lock(store.repo_path, fcntl.LOCK_EX):
        store.refresh_registry()  # another process may have re-applied while we waited
        foreign = foreign_sources(store, features_dir)
        if not foreign:
            return {}
        what, path = next(iter(foreign.items()))
        logger.warning("Feast registry in %s names feature tables outside %s (first: %s -> %s); "
                       "re-applying it from this directory's tables", store.repo_path, features_dir, what, path)
        try:
            reapply(store, features_dir)
        except (FileNotFoundError, ValueError) as exc:
            raise ForeignPathError(f"Feast registry's {what}", path, features_dir, fix="inbox features all",
                                   detail=f"; re-applying from this directory failed: {exc}") from exc
        left = foreign_sources(store, features_dir)
        if left:
            what, path = next(iter(left.items()))
            raise ForeignPathError(f"Feast registry's {what}", path, features_dir, fix="feast apply",
                                   detail="; it is not one of this project's definitions, so it was not re-applied: "
                                          f"apply your own definition of it with a path relative to {store.repo_path}")
    return foreign


def reapply(store, features_dir) -> None:
    """`store.apply` the project's definitions with sources in `features_dir`: the pipeline's views, services
    and on-demand view, and `contact_predictions` (with the registered tower width) when it is registered."""
    from features.definitions import (PREDICTIONS_VIEW, TOWER_PREFIX, contact_predictions_service,
                                      contact_predictions_view)
    from features.store import apply

    apply(store, features_dir=features_dir)
    published = [v for v in store.list_feature_views() if v.name == PREDICTIONS_VIEW]
    if published:
        width = sum(f.name.startswith(TOWER_PREFIX) for f in published[0].features)
        view = contact_predictions_view(features_dir, width, repo_path=store.repo_path)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="On demand feature view is an experimental feature")
            store.apply([view, contact_predictions_service(view)])
