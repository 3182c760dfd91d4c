"""Bring the consent ledger up to date with the event log (run after every import of events).

Three sources, each idempotent:

- `contacts.parquet` `consent` (source "import"): a contact's first import with consent is an
  opt_in at its `created_at`; a later import whose consent differs from the contact's newest
  import event is recorded as a new import event now (a withdrawal exported by the ESP wins);
- `events.parquet` unsubscribe / complaint: an all-mail opt_out at the event's time, source
  "unsubscribe" / "complaint", ref "event:<event_id>" (recorded once);
- the address of each contact, as a keyed digest (`privacy.suppression`), so a suppressed
  address re-imported under any contact id is not mailed.

Called at the end of `inbox simulate` and `inbox features build` (both run before anything is
served); when neither table changed since the last run (size and mtime) it does nothing.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from privacy.consent import ConsentLedger, now_us

OPT_OUT_EVENTS = ("unsubscribe", "complaint")


def _fingerprint(*paths: Path) -> str:
    return json.dumps([[p.name, p.stat().st_size, p.stat().st_mtime_ns] if p.exists() else [p.name] for p in paths])


def seed_consent(settings, force: bool = False, new_world: bool = False) -> dict:
    """Record what the event log says about consent; {"imports": n, "opt_outs": n, "contacts": n}.

    `new_world`: the event log was replaced by another list (`inbox simulate`): the consent history of
    the previous list is dropped first (its contact ids name other people now); the suppression list stays."""
    from privacy.suppression import email_digests
    from simulation.eventlog import table_path

    contacts_path = table_path(settings.events_dir, "contacts")
    events_path = table_path(settings.events_dir, "events")
    out = {"imports": 0, "opt_outs": 0, "contacts": 0}
    if not contacts_path.exists():
        return out
    fingerprint = _fingerprint(contacts_path, events_path)
    with ConsentLedger.open(settings) as ledger:
        if new_world:
            with ledger.transaction():
                for table in ("events", "state", "contacts", "suppressed_contacts"):
                    ledger.db.execute(f"DELETE FROM {table}")
        elif not force and ledger.meta("seeded_from") == fingerprint:
            return out
        contacts = pq.read_table(contacts_path, columns=["contact_id", "email", "consent", "created_at"])
        ids = contacts.column("contact_id").to_numpy()
        digests = email_digests(settings, contacts.column("email"))
        opt_outs = _opt_out_rows(events_path)
        with ledger.transaction():
            before = ledger.db.total_changes
            ledger.db.executemany(
                "INSERT INTO contacts (contact_id, email_digest) VALUES (?, ?) ON CONFLICT (contact_id)"
                " DO UPDATE SET email_digest = excluded.email_digest WHERE email_digest != excluded.email_digest",
                zip(ids.tolist(), digests))
            out["contacts"] = ledger.db.total_changes - before
            if out["contacts"]:
                ledger.derive_suppressed()  # new or changed addresses: which of them are suppressed
            out["imports"] = ledger._append(_import_rows(ledger, contacts))
            out["opt_outs"] = ledger._append(opt_outs)
            ledger.set_meta("seeded_from", fingerprint)
    return out


def _import_rows(ledger: ConsentLedger, contacts: pa.Table) -> list[tuple]:
    """Import events for contacts whose consent differs from their newest import event (or who have
    none and consent): first imports dated at created_at, changes dated now."""
    import pandas as pd

    newest = pd.read_sql_query(
        "SELECT contact_id, kind FROM (SELECT contact_id, kind, ROW_NUMBER() OVER (PARTITION BY contact_id"
        " ORDER BY occurred_us DESC, seq DESC) AS k FROM events WHERE source = 'import' AND topic = '') WHERE k = 1",
        ledger.db)
    ids = contacts.column("contact_id").to_numpy()
    consent = contacts.column("consent").to_numpy(zero_copy_only=False).astype(bool)
    created = pc.cast(contacts.column("created_at"), pa.int64()).to_numpy()
    last = pd.Series(newest["kind"].to_numpy(), index=newest["contact_id"].to_numpy()).reindex(ids).to_numpy()
    first = pd.isna(last) & consent
    changed = ~pd.isna(last) & ((last == "opt_in") != consent)
    when = np.where(first, created, now_us())
    pick = np.flatnonzero(first | changed)
    recorded = now_us()
    kinds = np.where(consent[pick], "opt_in", "opt_out")
    return [(int(c), k, "", "import", int(t), recorded, None)
            for c, k, t in zip(ids[pick].tolist(), kinds.tolist(), when[pick].tolist())]


def _opt_out_rows(events_path: Path) -> list[tuple]:
    if not events_path.exists():
        return []
    table = pads.dataset(str(events_path), format="parquet").to_table(
        columns=["event_id", "contact_id", "type", "occurred_at"],
        filter=pc.field("type").isin(pa.array(OPT_OUT_EVENTS)))
    recorded = now_us()
    occurred = pc.cast(table.column("occurred_at"), pa.int64()).to_pylist()
    return [(c, "opt_out", "", t, o, recorded, f"event:{e}") for e, c, t, o in zip(
        table.column("event_id").to_pylist(), table.column("contact_id").to_pylist(),
        table.column("type").to_pylist(), occurred)]
