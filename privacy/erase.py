"""Export or erase one data subject across every store (GDPR Art. 15/20 access, Art. 17 erasure).

A store is a `Store(name, erase, export)`: `erase(settings, subject) -> rows removed` (or an
`Erased(rows, note)` when the store has more to say, e.g. which persistence files it rewrote) must be
idempotent and atomic within the store (temp file + rename, or one transaction and a compaction:
`privacy.files`); `export(settings, subject) -> list of JSON-able dicts`. The built-in stores are in
`privacy.stores`; a package owning another store lists its own in a module named in
`STORE_MODULES` (a `STORES` list), imported when present, so adding a store is one function pair
and needs no edit here.

Erasure is resumable: before touching anything it writes a pending record (the subject's ids and
address digests, `<data_dir>/privacy/pending/<subject hash>.json`), marks each store done as it
finishes, and removes the record at the end; re-running the same command after a crash skips the
stores already done and finds the subject through the record even once its contact row is gone.
The event-log `contacts` table and the consent ledger go last; the ledger keeps only the keyed
hash of the address in the suppression list, so a re-import is never mailed. Each run appends an
audit line (`audit.jsonl`) with no personal data: a keyed hash of the subject, the time, the
stores touched and their counts.
"""
from __future__ import annotations

import importlib
import importlib.util
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

STORE_MODULES = ("privacy.stores", "sending.privacy", "serving.webhook_privacy")
LAST = ("event log contacts", "consent ledger")  # erased after every other store, in this order


@dataclass(frozen=True)
class Subject:
    """Who is exported or erased: their contact ids and the keyed digests of their addresses."""

    contact_ids: tuple[int, ...]
    email_digests: tuple[str, ...] = ()

    @property
    def ids(self) -> np.ndarray:
        return np.asarray(self.contact_ids, dtype=np.int64)


@dataclass(frozen=True)
class Store:
    name: str
    erase: Callable[[object, Subject], int]
    export: Callable[[object, Subject], list]


@dataclass(frozen=True)
class Erased:
    """A store's erasure result with a note for the caller and the audit line (no personal data)."""

    rows: int
    note: str


@dataclass
class Outcome:
    subject_hash: str
    stores: dict[str, int] = field(default_factory=dict)
    data: dict[str, list] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)


def stores() -> list[Store]:
    """Every registered store, in erasure order (`LAST` at the end)."""
    found: list[Store] = []
    for name in STORE_MODULES:
        try:
            spec = importlib.util.find_spec(name)
        except ModuleNotFoundError:
            spec = None
        if spec is not None:
            found += list(importlib.import_module(name).STORES)
    names = [s.name for s in found]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise RuntimeError(f"privacy stores registered twice: {sorted(dup)}")
    return sorted(found, key=lambda s: LAST.index(s.name) + 1 if s.name in LAST else 0)


def privacy_dir(settings) -> Path:
    return Path(settings.data_dir) / "privacy"


def subject_hash(settings, subject: Subject) -> str:
    from inbox.secrets import keyed_digest

    key = sorted(subject.contact_ids) or sorted(subject.email_digests)  # an address never imported: its digest
    return keyed_digest(settings, "erasure-subject", json.dumps(key).encode())


def resolve(settings, contact_ids=(), emails=()) -> Subject:
    """The subject named by contact ids and/or addresses: every contact id with one of the addresses
    (event log, ledger, a pending erasure) and every address digest of one of the ids."""
    from privacy.consent import ConsentLedger
    from privacy.files import parquet_batches, parquet_rows
    from privacy.suppression import email_digests, normalize_emails
    from simulation.eventlog import table_files

    ids = {int(c) for c in contact_ids}
    for c in ids:
        if not 0 <= c < 2**63:
            raise ValueError(f"contact: expected an int64 >= 0, got {c}")
    for e in emails:
        if not isinstance(e, str) or "@" not in e.strip():
            raise ValueError(f"email: expected an address like name@example.org, got {e!r}")
    digests = set(email_digests(settings, list(emails))) if emails else set()
    if not ids and not digests:
        raise ValueError("contact: give --contact ID or --email ADDR")
    contacts = table_files(settings.events_dir, "contacts")
    if digests and contacts:  # batch by batch: the address column of a whole list is large
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        wanted = normalize_emails(list(emails))
        for batch in (b for f in contacts for b in parquet_batches(pq.ParquetFile(f), 65_536, ["contact_id", "email"])):
            hit = pc.is_in(normalize_emails(batch.column("email")), value_set=wanted)
            ids |= set(batch.column("contact_id").filter(hit).to_pylist())
    for pending in _pending_records(settings):
        if ids & set(pending["contact_ids"]) or digests & set(pending["email_digests"]):
            ids |= set(pending["contact_ids"])
            digests |= set(pending["email_digests"])
    ledger_file = privacy_dir(settings) / "consent.db"
    if ledger_file.exists():
        with ConsentLedger.open(settings) as ledger:
            if digests:
                rows = ledger.db.execute(
                    "SELECT contact_id FROM contacts WHERE email_digest IN (SELECT value FROM json_each(?))",
                    (json.dumps(sorted(digests)),)).fetchall()
                ids |= {r[0] for r in rows}
            if ids:
                rows = ledger.db.execute(
                    "SELECT email_digest FROM contacts WHERE contact_id IN (SELECT value FROM json_each(?))",
                    (json.dumps(sorted(ids)),)).fetchall()
                digests |= {r[0] for r in rows}
    if ids:
        emails_now = parquet_rows(contacts, sorted(ids)).to_pydict().get("email", [])
        digests |= set(email_digests(settings, emails_now))
    return Subject(tuple(sorted(ids)), tuple(sorted(digests)))


def export(settings, subject: Subject) -> Outcome:
    """Every store's rows of the subject (read only; the audit line records the export)."""
    out = Outcome(subject_hash(settings, subject))
    for store in stores():
        rows = store.export(settings, subject)
        out.data[store.name] = rows
        out.stores[store.name] = len(rows)
    _audit(settings, "export", out, complete=True)
    return out


def erase(settings, subject: Subject, progress: Callable[[str], None] | None = None) -> Outcome:
    """Remove the subject from every store (resuming a crashed run of the same subject); counts per store."""
    out = Outcome(subject_hash(settings, subject))
    pending_path = privacy_dir(settings) / "pending" / f"{out.subject_hash}.json"
    pending = _read_json(pending_path) or {"contact_ids": list(subject.contact_ids),
                                            "email_digests": list(subject.email_digests), "done": {}}
    pending["contact_ids"] = sorted(set(pending["contact_ids"]) | set(subject.contact_ids))
    pending["email_digests"] = sorted(set(pending["email_digests"]) | set(subject.email_digests))
    subject = Subject(tuple(pending["contact_ids"]), tuple(pending["email_digests"]))
    _write_json(pending_path, pending)
    notes = pending.setdefault("notes", {})
    for store in stores():
        if store.name not in pending["done"]:
            if progress:
                progress(store.name)
            result = store.erase(settings, subject)
            pending["done"][store.name] = result.rows if isinstance(result, Erased) else int(result)
            if isinstance(result, Erased):
                notes[store.name] = result.note
            _write_json(pending_path, pending)
        out.stores[store.name] = pending["done"][store.name]
        if store.name in notes:
            out.notes[store.name] = notes[store.name]
    _audit(settings, "erase", out, complete=True)
    pending_path.unlink()
    return out


def _pending_records(settings) -> list[dict]:
    folder = privacy_dir(settings) / "pending"
    return [r for p in sorted(folder.glob("*.json")) if (r := _read_json(p))] if folder.exists() else []


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def _write_json(path: Path, payload: dict) -> None:
    from privacy.files import atomic_write_bytes

    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write_bytes(path, lambda fh: fh.write(json.dumps(payload).encode()))
    os.chmod(path, 0o600)


def _audit(settings, action: str, out: Outcome, complete: bool) -> None:
    """Append one line without personal data: the subject's keyed hash, time, stores and counts."""
    path = privacy_dir(settings) / "audit.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    record = {"at": datetime.now(timezone.utc).isoformat(), "action": action,
              "subject": out.subject_hash, "stores": out.stores, "complete": complete}
    line = json.dumps({**record, "notes": out.notes} if out.notes else record)
    with open(path, "a") as fh:
        fh.write(line + "\n")
        fh.flush()
        os.fsync(fh.fileno())
