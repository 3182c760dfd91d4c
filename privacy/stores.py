"""The stores this repository keeps per-contact data in, each an erase + export pair (`privacy.erase`).

| store | where | what is removed |
|---|---|---|
| webhook journal | `data/events/webhook_journal.db` | the contact's journaled events (first: see `STORES`) |
| event log sends / events | `data/events/{sends,events}.parquet` and their segments (`.parquet.d/`) | the contact's rows (each file holding them rewritten) |
| simulator world | `data/world/contacts.parquet`, `traits.npz` | the contact's row and latent traits |
| feature tables | `data/features/*.parquet` with a `contact_id` column | every snapshot row |
| online store | `data/feast/online.db`, every table (or Redis) | the contact's entity rows: features and the published `contact_predictions` |
| online store persistence | Redis's `dump.rdb` / append-only files (the scale profile) | the deleted keys' copies on disk: rewritten from memory (`privacy.redis_persistence`) |
| decision log | `DecisionLog.erase_contact` (SQLite or PostgreSQL) | decisions, their rewards, audited rewards and sent marks |
| MLflow artifacts | logged models' `input_example.json` / `serving_input_example.json` | see `privacy.mlflow_artifacts` |
| event log contacts | `data/events/contacts.parquet` | the contact's row (erased next to last) |
| consent ledger | `data/privacy/consent.db` | events, state, address mapping; the address digest stays suppressed |
"""
from __future__ import annotations

import json
import sqlite3
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa

from privacy.erase import Erased, Store, Subject
from privacy.files import ids_json, parquet_rows, parquet_without, sqlite_delete


def _records(table: pa.Table) -> list[dict]:
    """JSON-able rows (timestamps as ISO 8601 text, bytes as hex)."""
    rows = table.to_pylist()
    for row in rows:
        for k, v in row.items():
            if hasattr(v, "isoformat"):
                row[k] = v.isoformat()
            elif isinstance(v, bytes):
                row[k] = v.hex()
            elif isinstance(v, float) and not np.isfinite(v):
                row[k] = None
    return rows


# --- event log ---------------------------------------------------------------------------------------
def _event_table(table: str) -> Store:
    """One event-log table: every file of it (`table_files`: base file and appended segments). Erasure
    first deletes the superseded files merges left (they may still hold the contact's rows), then
    rewrites, each atomically, only the files that hold the contact's rows; a re-run resumes."""
    def erase(settings, subject: Subject) -> int:
        from simulation.eventlog import table_files
        from simulation.segments import cleanup, eventlog_lock

        with eventlog_lock(settings.events_dir):  # every writer of an event-log table holds it
            cleanup(settings.events_dir, table, grace=0)
            return sum(parquet_without(f, subject.ids) for f in table_files(settings.events_dir, table))

    def export(settings, subject: Subject) -> list[dict]:
        from simulation.eventlog import table_files

        return _records(parquet_rows(table_files(settings.events_dir, table), subject.ids))

    return Store(f"event log {table}", erase, export)


def _journal(settings) -> Path:
    from serving.eventsink import JOURNAL

    return Path(settings.events_dir) / JOURNAL


def _erase_journal(settings, subject: Subject) -> int:
    counts = sqlite_delete(_journal(settings), [
        ("DELETE FROM events WHERE contact_id IN (SELECT value FROM json_each(?))", (ids_json(subject.ids),))])
    return sum(counts.values())


def _export_journal(settings, subject: Subject) -> list[dict]:
    return _sqlite_rows(_journal(settings), "SELECT * FROM events WHERE contact_id IN (SELECT value FROM json_each(?))",
                        (ids_json(subject.ids),))


def _sqlite_rows(path: Path, sql: str, params: tuple) -> list[dict]:
    if not path.exists():
        return []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        cur = db.execute(sql, params)
        names = [d[0] for d in cur.description]
        return [{n: (v.hex() if isinstance(v, bytes) else v) for n, v in zip(names, row)} for row in cur]
    finally:
        db.close()


# --- simulator world -----------------------------------------------------------------------------------
def _trait_names() -> list[str]:
    """The per-contact arrays of traits.npz (`simulation.world.Traits`), stored by contacts-file row."""
    from dataclasses import fields

    from simulation.world import Traits

    return [f.name for f in fields(Traits) if f.name != "topics"]


def _erase_world(settings, subject: Subject) -> int:
    """Traits are stored by contacts-file row: traits.npz is rewritten first, then contacts.parquet; a
    re-run after a crash between the two sees traits one row short and rewrites only the contacts."""
    import pyarrow.parquet as pq

    from privacy.files import atomic_write_bytes

    world = Path(settings.world_dir)
    contacts, traits = world / "contacts.parquet", world / "traits.npz"
    if not contacts.exists():
        return 0
    ids = pq.read_table(contacts, columns=["contact_id"]).column(0).to_numpy()
    gone = np.isin(ids, subject.ids)
    if not gone.any():
        return 0
    if traits.exists():
        with np.load(traits, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        per_contact = [k for k in _trait_names() if k in arrays and len(arrays[k]) == len(ids)]
        if per_contact:  # not yet rewritten
            for k in per_contact:
                arrays[k] = arrays[k][~gone]
            atomic_write_bytes(traits, lambda fh: np.savez_compressed(fh, **arrays))
    return parquet_without(contacts, subject.ids)


def _export_world(settings, subject: Subject) -> list[dict]:
    import pyarrow.parquet as pq

    world = Path(settings.world_dir)
    contacts, traits = world / "contacts.parquet", world / "traits.npz"
    if not contacts.exists():
        return []
    rows = _records(parquet_rows(contacts, subject.ids))
    if traits.exists() and rows:
        ids = pq.read_table(contacts, columns=["contact_id"]).column(0).to_numpy()
        with np.load(traits, allow_pickle=False) as z:
            per_contact = {k: z[k] for k in _trait_names() if k in z.files and len(z[k]) == len(ids)}
        for row in rows:
            at = int(np.flatnonzero(ids == row["contact_id"])[0])
            row["traits"] = {k: a[at].tolist() for k, a in per_contact.items()}
    return rows


# --- features ------------------------------------------------------------------------------------------
def _feature_files(settings) -> list[Path]:
    import pyarrow.parquet as pq

    folder = Path(settings.features_dir)
    if not folder.exists():
        return []
    return [p for p in sorted(folder.glob("*.parquet")) if "contact_id" in pq.read_schema(p).names]


def _erase_features(settings, subject: Subject) -> int:
    return sum(parquet_without(p, subject.ids) for p in _feature_files(settings))


def _export_features(settings, subject: Subject) -> list[dict]:
    return [{"table": p.stem, **row} for p in _feature_files(settings) for row in _records(parquet_rows(p, subject.ids))]


# --- Feast online store --------------------------------------------------------------------------------
def _online(settings, subject: Subject):
    """(the Feast store, the subject's serialized entity keys), or None without a Feast registry."""
    if not (Path(settings.feast_dir) / "registry.db").exists():  # before importing Feast (seconds)
        return None
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    from features.store import get_store

    store = get_store(settings)
    version = store.config.entity_key_serialization_version
    keys = [serialize_entity_key(EntityKey(join_keys=["contact_id"], entity_values=[Value(int64_val=int(c))]),
                                 entity_key_serialization_version=version) for c in subject.contact_ids]
    return store, keys


def _erase_online(settings, subject: Subject) -> int:
    """Every row of the contact in every view: one SQLite transaction over the store's entity tables
    (then compacted), or on Redis (the scale profile) the contact's hash, keyed as Feast's online store
    format spec lays it out (serialized entity key + project; `features.online_redis`)."""
    found = _online(settings, subject)
    if found is None or not subject.contact_ids:
        return 0
    store, keys = found
    if _on_redis(store):
        with _redis(store) as source:
            return int(source.client.delete(*[k + source.project for k in keys]))
    from features.online_store import db_path

    path = Path(db_path(store.config))
    if not path.exists():
        return 0
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        tables = [n for n in names if "entity_key" in {r[1] for r in db.execute(f'PRAGMA table_info("{n}")')}]
    finally:
        db.close()
    marks = ",".join("?" * len(keys))
    counts = sqlite_delete(path, [(f'DELETE FROM "{t}" WHERE entity_key IN ({marks})', tuple(keys)) for t in tables])
    return sum(counts.values())


def _on_redis(store) -> bool:
    return getattr(store.config.online_store, "type", None) == "redis"


@contextmanager
def _redis(store):
    """A `features.online_redis.RedisSource` on the store's Redis (its client and project), closed after."""
    from features.online_redis import RedisSource

    source = RedisSource(store)
    try:
        yield source
    finally:
        source.close()


def _erase_online_persistence(settings, subject: Subject) -> int | Erased:
    """On Redis, after the online store's keys are deleted: rewrite the RDB snapshot and/or append-only
    file from memory and wait for it (`privacy.redis_persistence`), so the deleted values are not left in
    them; rows = persistence rewrites done. Nothing to do on the SQLite store (compacted by its eraser).
    It runs even when the online store found no keys: a resumed erasure may have deleted them before."""
    found = _online(settings, subject)
    if found is None or not subject.contact_ids or not _on_redis(found[0]):
        return 0
    from privacy.redis_persistence import REWRITE_TIMEOUT, rewrite_persistence

    with _redis(found[0]) as source:
        done = rewrite_persistence(source.client, REWRITE_TIMEOUT)
    return Erased(len(done.commands), done.describe())


def _export_online(settings, subject: Subject) -> list[dict]:
    """The contact's online rows decoded through the Feast API (features and published predictions)."""
    found = _online(settings, subject)
    if found is None or not subject.contact_ids:
        return []
    store, _ = found
    out = []
    for fv in store.list_feature_views():
        if [e.name for e in fv.entity_columns] != ["contact_id"]:
            continue
        names = [f"{fv.name}:{f.name}" for f in fv.features]
        got = store.get_online_features(features=names, entity_rows=[{"contact_id": int(c)} for c in subject.contact_ids])
        for row in got.to_df().to_dict("records"):
            values = {k: v for k, v in row.items() if k != "contact_id"}
            if any(v is not None and v == v for v in values.values()):
                out.append({"view": fv.name, "contact_id": int(row["contact_id"]),
                            **json.loads(json.dumps(values, default=str))})
    return out


# --- decision log --------------------------------------------------------------------------------------
def _decision_log(settings):
    try:
        from experiments.bandit.backends import open_log_and_snapshots
    except ImportError:
        from experiments.bandit.decision_log import SQLiteDecisionLog

        path = Path(settings.bandit_dir) / "decisions.db"
        return SQLiteDecisionLog(path) if path.exists() else None
    if not (Path(settings.bandit_dir) / "decisions.db").exists():
        from experiments.bandit.backends import decision_log_url

        if decision_log_url() is None:
            return None
    log, snapshots = open_log_and_snapshots(settings.bandit_dir)
    return log


def _erase_decisions(settings, subject: Subject) -> int:
    log = _decision_log(settings)
    if log is None:
        return 0
    try:
        return sum(log.erase_contact(subject.contact_ids).values())
    finally:
        log.close()


def _export_decisions(settings, subject: Subject) -> list[dict]:
    path = Path(settings.bandit_dir) / "decisions.db"
    ids = ids_json(subject.ids)
    mine = "SELECT decision_id FROM decisions WHERE contact_id IN (SELECT value FROM json_each(?))"
    rows = [{"table": "decisions", **r} for r in _sqlite_rows(
        path, "SELECT decision_id, campaign_id, decided_at, contact_id, variant, propensity, policy_version, mode"
        " FROM decisions WHERE contact_id IN (SELECT value FROM json_each(?))", (ids,))]
    for table in ("rewards", "reward_audit"):
        rows += [{"table": table, **r} for r in _sqlite_rows(
            path, f"SELECT * FROM {table} WHERE decision_id IN ({mine})", (ids,))]
    if _sqlite_rows(path, "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?", ("sent_marks",)):
        # a log that no version with sent marks has opened yet has no such table, and so no marks
        rows += [{"table": "sent_marks", **r} for r in _sqlite_rows(
            path, "SELECT d.decision_id, s.sent_at FROM sent_marks s JOIN decisions d ON d.seq = s.seq"
            " WHERE d.contact_id IN (SELECT value FROM json_each(?))", (ids,))]
    return rows


# --- consent ledger ------------------------------------------------------------------------------------
def _erase_ledger(settings, subject: Subject) -> int:
    """Events, state and the address mapping go; the address digests are added to the suppression list."""
    from privacy.consent import ConsentLedger
    from privacy.files import compact_sqlite
    from privacy.suppression import add_digests

    ids = ids_json(subject.ids)
    with ConsentLedger.open(settings) as ledger:
        with ledger.transaction():
            add_digests(ledger, subject.email_digests, "erased")
            removed = sum(ledger.db.execute(f"DELETE FROM {t} WHERE contact_id IN (SELECT value FROM json_each(?))",
                                            (ids,)).rowcount for t in ("events", "state", "contacts", "suppressed_contacts"))
        compact_sqlite(ledger.db)
    return removed


def _export_ledger(settings, subject: Subject) -> list[dict]:
    from privacy.consent import ConsentLedger, ledger_path

    if not ledger_path(settings).exists():
        return []
    with ConsentLedger.open(settings, read_only=True) as ledger:
        df = ledger.history(subject.ids)
    return [{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()}
            for r in df.drop(columns=["seq"]).to_dict("records")]


def _mlflow_store() -> Store:
    from privacy.mlflow_artifacts import erase_input_examples, export_input_examples

    return Store("MLflow artifacts", erase_input_examples, export_input_examples)


# The webhook journal comes before the event tables: a flush (under the event-log lock) that ran between
# erasing `events` and erasing the journal would write the subject's pending journal rows back into
# `events`; erased first, the journal has none left to flush, and a flush already holding the lock
# finishes before the `events` eraser (which takes the lock) removes what it wrote.
STORES = [
    Store("webhook journal", _erase_journal, _export_journal),
    _event_table("sends"),
    _event_table("events"),
    Store("simulator world", _erase_world, _export_world),
    Store("feature tables", _erase_features, _export_features),
    Store("online store", _erase_online, _export_online),
    Store("online store persistence", _erase_online_persistence, lambda settings, subject: []),
    Store("decision log", _erase_decisions, _export_decisions),
    _mlflow_store(),
    _event_table("contacts"),
    Store("consent ledger", _erase_ledger, _export_ledger),
]
