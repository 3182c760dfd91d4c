"""Bring the consent ledger up to date with the event log (run after every import of events).

Three sources, each idempotent:

- `contacts.parquet` `consent` (source "import"): a contact's first import with consent is an
  opt_in at its `created_at`; a later import whose consent differs from the contact's newest
  import event is recorded as a new import event now (a withdrawal exported by the ESP wins);
- `events` table (every file) unsubscribe / complaint: an all-mail opt_out at the event's time, source
  "unsubscribe" / "complaint", ref "event:<event_id>" (recorded once);
- the address of each contact, as a keyed digest (`privacy.suppression`), so a suppressed
  address re-imported under any contact id is not mailed.

Called at the end of `inbox simulate` and `inbox features build` (both run before anything is
served); when neither table changed since the last run (size and mtime) it does nothing.

Both tables are read in batches of at most `batch_rows` rows (Parquet record batches, one row group
at a time: `privacy.files.parquet_batches`), all in one ledger transaction, so memory does not grow
with the list and a reader never sees half a seeding. A contact's newest import event is looked up
for each batch's ids only; the suppressed contacts are derived once, after the last batch, and the
state of the contacts given events once at the end, in contact-id order (`derive_since`). Contact
ids are unique in `contacts.parquet` (`simulation.eventlog`), so the result does not depend on the
batch size.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from privacy.consent import ConsentLedger, now_us
from privacy.files import parquet_batches

OPT_OUT_EVENTS = ("unsubscribe", "complaint")
CONTACT_COLUMNS = ["contact_id", "email", "consent", "created_at"]
BATCH_ROWS = 65_536


def _fingerprint(*paths: Path) -> str:
    return json.dumps([[p.name, p.stat().st_size, p.stat().st_mtime_ns] if p.exists() else [p.name] for p in paths])


def seed_consent(settings, force: bool = False, new_world: bool = False, batch_rows: int = BATCH_ROWS) -> dict:
    """Record what the event log says about consent; {"imports": n, "opt_outs": n, "contacts": n}.

    `new_world`: the event log was replaced by another list (`inbox simulate`): the consent history of
    the previous list is dropped first (its contact ids name other people now); the suppression list stays.
    `batch_rows`: rows read and written per step (memory is proportional to it, not to the list)."""
    from simulation.eventlog import table_files

    if isinstance(batch_rows, bool) or not isinstance(batch_rows, int) or batch_rows < 1:
        raise ValueError(f"batch_rows: expected a positive integer, got {batch_rows!r}")
    contacts_files = table_files(settings.events_dir, "contacts")
    events_files = table_files(settings.events_dir, "events")
    out = {"imports": 0, "opt_outs": 0, "contacts": 0}
    if not contacts_files:
        return out
    fingerprint = _fingerprint(*contacts_files, *events_files)
    with ConsentLedger.open(settings) as ledger:
        if new_world:
            with ledger.transaction():
                for table in ("events", "state", "contacts", "suppressed_contacts"):
                    ledger.db.execute(f"DELETE FROM {table}")
        elif not force and ledger.meta("seeded_from") == fingerprint:
            return out
        now = now_us()  # "now" of every import change and the recording time of every row of this run
        with ledger.transaction():
            since = ledger.last_seq()
            for batch in (b for f in contacts_files for b in parquet_batches(pq.ParquetFile(f), batch_rows,
                                                                           CONTACT_COLUMNS)):
                out["contacts"] += _map_addresses(settings, ledger, batch)
                out["imports"] += ledger._append(_import_rows(ledger, batch, now), derive=False)
            if out["contacts"]:
                ledger.derive_suppressed()  # new or changed addresses: which of them are suppressed
            for rows in _opt_out_rows(events_files, batch_rows, now):
                out["opt_outs"] += ledger._append(rows, derive=False)
            ledger.derive_since(since, batch_rows)  # the state of every contact given an event above
            ledger.set_meta("seeded_from", fingerprint)
    return out


def _map_addresses(settings, ledger: ConsentLedger, batch: pa.RecordBatch) -> int:
    """Upsert the batch's contact -> address digest rows (caller holds the transaction); rows changed."""
    from privacy.suppression import email_digests

    before = ledger.db.total_changes
    ledger.db.executemany(
        "INSERT INTO contacts (contact_id, email_digest) VALUES (?, ?) ON CONFLICT (contact_id)"
        " DO UPDATE SET email_digest = excluded.email_digest WHERE email_digest != excluded.email_digest",
        zip(batch.column("contact_id").to_pylist(), email_digests(settings, batch.column("email"))))
    return ledger.db.total_changes - before


def _import_rows(ledger: ConsentLedger, contacts: pa.RecordBatch | pa.Table, now: int) -> list[tuple]:
    """Import events for contacts whose consent differs from their newest import event (or who have
    none and consent): first imports dated at created_at, changes dated `now`."""
    import pandas as pd

    ids = contacts.column("contact_id").to_numpy()
    newest = pd.read_sql_query(
        "SELECT contact_id, kind FROM (SELECT contact_id, kind, ROW_NUMBER() OVER (PARTITION BY contact_id"
        " ORDER BY occurred_us DESC, seq DESC) AS k FROM events WHERE source = 'import' AND topic = ''"
        " AND contact_id IN (SELECT value FROM json_each(?))) WHERE k = 1",
        ledger.db, params=(json.dumps(ids.tolist()),))
    consent = contacts.column("consent").to_numpy(zero_copy_only=False).astype(bool)
    created = pc.cast(contacts.column("created_at"), pa.int64()).to_numpy()
    last = pd.Series(newest["kind"].to_numpy(), index=newest["contact_id"].to_numpy()).reindex(ids).to_numpy()
    first = pd.isna(last) & consent
    changed = ~pd.isna(last) & ((last == "opt_in") != consent)
    when = np.where(first, created, now)
    pick = np.flatnonzero(first | changed)
    kinds = np.where(consent[pick], "opt_in", "opt_out")
    return [(int(c), k, "", "import", int(t), now, None)
            for c, k, t in zip(ids[pick].tolist(), kinds.tolist(), when[pick].tolist())]


def _opt_out_rows(events_files: list[Path], batch_rows: int, now: int) -> Iterator[list[tuple]]:
    """The unsubscribe / complaint events as ledger rows, from at most `batch_rows` events at a time
    (`ParquetFile` batches: a `pyarrow.dataset` scan holds on to what it read, apache/arrow#39808)."""
    columns = ["event_id", "contact_id", "type", "occurred_at"]
    for batch in (b for f in events_files for b in parquet_batches(pq.ParquetFile(f), batch_rows, columns)):
        batch = batch.filter(pc.is_in(batch.column("type"), value_set=pa.array(OPT_OUT_EVENTS)))
        if batch.num_rows:
            occurred = pc.cast(batch.column("occurred_at"), pa.int64()).to_pylist()
            yield [(c, "opt_out", "", t, o, now, f"event:{e}") for e, c, t, o in zip(
                batch.column("event_id").to_pylist(), batch.column("contact_id").to_pylist(),
                batch.column("type").to_pylist(), occurred)]
