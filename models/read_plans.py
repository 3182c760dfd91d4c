"""Feature services' read plans, kept beside the Feast registry they were read from.

`models.datasets.plan_reads` asks the applied Feast registry which views, features, TTLs and source
tables a service has. Opening a `feast.FeatureStore` for that costs seconds of imports in every
process that joins features (`inbox score`, `inbox train`), while the answer changes only when the
registry does. So the plan read from Feast is recorded in `<feast_dir>/read_plans.json` under the
SHA-256 of the registry file's bytes, and a later process whose registry has exactly those bytes
takes the recorded plan without importing Feast. Any change to the registry (an apply, a
materialize) changes the digest: the next join reads the plan from Feast again and records it anew.
Table paths are recorded relative to the feast dir (as the registry's own sources are), so a copied or
moved data directory's record names the copy's tables; a record with an absolute path (written before,
possibly in another directory) is not used.
"""
from __future__ import annotations

import hashlib
import json
import os
from datetime import timedelta
from pathlib import Path

PLANS_FILE = "read_plans.json"
REGISTRY_FILE = "registry.db"


def registry_digest(feast_dir) -> str | None:
    """SHA-256 of the registry file (None when there is none)."""
    try:
        return hashlib.sha256((Path(feast_dir) / REGISTRY_FILE).read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def _key(services: tuple[str, ...]) -> str:
    return "+".join(services)


def cached(feast_dir, services: tuple[str, ...], digest: str | None):
    """The plan recorded for `services` under `digest` (list of `ViewRead`), or None."""
    from models.datasets import ViewRead

    if digest is None:
        return None
    try:
        book = json.loads((Path(feast_dir) / PLANS_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return None
    if not isinstance(book, dict) or book.get("registry_sha256") != digest:
        return None
    rows = book.get("plans", {}).get(_key(services))
    if rows is None or any(Path(r["path"]).is_absolute() for r in rows):
        return None
    return [ViewRead(r["view"], r["key"], Path(os.path.normpath(Path(feast_dir) / r["path"])),
                     None if r["ttl_us"] is None else timedelta(microseconds=r["ttl_us"]),
                     None if r["features"] is None else tuple(r["features"])) for r in rows]


def record(feast_dir, services: tuple[str, ...], digest: str, reads) -> None:
    """Add the plan of `services` read from the registry of `digest` (the file is replaced atomically;
    plans of another digest are dropped)."""
    from privacy.files import atomic_write_bytes

    path = Path(feast_dir) / PLANS_FILE
    try:
        book = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        book = {}
    if not isinstance(book, dict) or book.get("registry_sha256") != digest:
        book = {"registry_sha256": digest, "plans": {}}
    book["plans"][_key(services)] = [
        {"view": r.view, "key": r.key, "path": os.path.relpath(os.path.abspath(r.path), os.path.abspath(feast_dir)),
         "ttl_us": None if r.ttl is None else r.ttl // timedelta(microseconds=1),
         "features": None if r.features is None else list(r.features)} for r in reads]
    atomic_write_bytes(path, lambda fh: fh.write(json.dumps(book, indent=1).encode()))
