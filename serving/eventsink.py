"""Appending webhook events and sends to the event log, atomically and without duplicates.

Writing a Parquet segment per webhook call would leave thousands of tiny
files to merge, so webhook events land first in a journal beside the log,
`events_dir/webhook_journal.db` (SQLite, WAL, `event_id` primary key: a
provider's retry is an `INSERT OR IGNORE` no-op, one transaction per call).
The journal keeps every id it has recorded, and `append_events` (the send
pipeline's own events) records its rows there too, so the journal holds every
id appended to `events`: `flush(events_dir)` appends the pending rows as one
segment without looking their ids up in the table
(`simulation.eventlog.append_rows`), and its time follows the batch.

Exactly once across crashes, in two phases under the event-log lock: one
transaction tags the pending rows with the sequence number their segment will
take (a small `flushing` table); the segment is written under that number; a second
transaction marks the tagged rows flushed. Rows still tagged but unflushed when
a flush starts belong to an attempt that crashed: the file that now holds that
sequence number (the segment, or a merge or whole-table write that replaced it:
`simulation.segments.file_holding`) is searched for their ids, the rows found
there are marked flushed and the rest flushed again. The rows a journal from
before this scheme left pending are checked against the whole table once.

The send pipeline flushes before choosing an audience and after each round,
the service on shutdown. Every writer of a Parquet table holds
`events_dir/.eventlog.lock` (flock, `eventlog_lock`).
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from simulation.eventlog import append_new_rows, append_rows, new_rows, next_seq, table_files, validate
from simulation.segments import LOCK, eventlog_lock, file_holding, rows_with_keys  # noqa: F401 (LOCK: the lock every event-log writer holds)

JOURNAL = "webhook_journal.db"
UNKNOWN = -1  # the seq of rows a pre-two-phase journal left pending: they may be anywhere in the table
_COLUMNS = "event_id, send_id, contact_id, type, occurred_us, value"


class EventJournal:
    """Durable, deduplicating landing table for webhook events.

    `events` holds every row recorded (`occurred_us` in microseconds) and `flushed` (1 once in the
    `events` table); a partial index holds only the unflushed ones, so finding them costs time in
    their number, not the journal's. `flushing` holds the ids a flush is writing and the sequence
    number of their segment: small, so tagging them does not rewrite the large table's rows. The
    rows `append_events` records go in flushed and tagged at once; `_recover` makes them pending
    when their segment did not land.
    """

    def __init__(self, events_dir: str | Path):
        self.events_dir = Path(events_dir)
        self.events_dir.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.events_dir / JOURNAL, check_same_thread=False, timeout=30,
                                    isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            tables = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            self.conn.execute(
                "CREATE TABLE IF NOT EXISTS events (event_id INTEGER PRIMARY KEY, send_id INTEGER NOT NULL, "
                "contact_id INTEGER NOT NULL, type TEXT NOT NULL, occurred_us INTEGER NOT NULL, value REAL, "
                "flushed INTEGER NOT NULL DEFAULT 0)")
            self.conn.execute("CREATE TABLE IF NOT EXISTS flushing (event_id INTEGER PRIMARY KEY, seq INTEGER NOT NULL)")
            if "events" in tables and "flushing" not in tables:  # a journal written before the two-phase flush
                self.conn.execute("INSERT INTO flushing SELECT event_id, ? FROM events WHERE flushed = 0", (UNKNOWN,))
            self.conn.execute("CREATE INDEX IF NOT EXISTS unflushed ON events (event_id) WHERE flushed = 0")
            self.conn.execute("CREATE INDEX IF NOT EXISTS flushing_seq ON flushing (seq)")

    def close(self) -> None:
        self.conn.close()

    def append(self, rows: pd.DataFrame | pa.Table, seq: int | None = None) -> tuple[int, int]:
        """Insert validated `events` rows whose ids are new to the journal; returns (recorded,
        duplicates). With `seq` they go in flushed and tagged for the append writing segment `seq`
        (a crash before it lands makes them pending again: `_recover`)."""
        if len(rows) == 0:
            return 0, 0
        at = validate("events", rows)
        at = at.take(pc.sort_indices(at.column("event_id")))  # key order: each B-tree page is touched once
        ids = at.column("event_id").to_pylist()
        occurred = at.column("occurred_at").cast("int64").to_numpy()
        value = at.column("value").to_pandas().astype(object).where(lambda s: s.notna(), None)
        records = list(zip(ids, at.column("send_id").to_pylist(), at.column("contact_id").to_pylist(),
                           at.column("type").to_pylist(), occurred.tolist(), value.tolist()))
        before = self.conn.total_changes
        with self.conn:  # one transaction
            self.conn.execute("BEGIN IMMEDIATE")
            if seq is not None:  # the ids new to the journal, before they are inserted
                tagged = self.conn.total_changes
                self.conn.executemany("INSERT INTO flushing SELECT ?1, ?2 WHERE NOT EXISTS "
                                      "(SELECT 1 FROM events WHERE event_id = ?1)", [(e, seq) for e in ids])
                before += self.conn.total_changes - tagged
            self.conn.executemany(f"INSERT OR IGNORE INTO events ({_COLUMNS}, flushed) VALUES (?, ?, ?, ?, ?, ?, ?)",
                                  [(*r, int(seq is not None)) for r in records])
        recorded = self.conn.total_changes - before
        return recorded, len(records) - recorded

    def pending(self) -> pd.DataFrame:
        """Journal rows not yet folded into the `events` table, as `events` rows."""
        return _journal_rows(pd.read_sql_query(f"SELECT {_COLUMNS} FROM events WHERE flushed = 0", self.conn))

    # --- the two-phase flush (the caller holds the event-log lock) -----------------------------------
    def unfinished(self) -> list[int]:
        """Sequence numbers of flushes that tagged rows and did not mark them flushed (a crash)."""
        return [r[0] for r in self.conn.execute("SELECT DISTINCT seq FROM flushing")]

    def tagged(self, seq: int) -> pd.DataFrame:
        """The rows tagged with `seq`, as `events` rows."""
        return _journal_rows(pd.read_sql_query(
            f"SELECT {_COLUMNS} FROM events WHERE event_id IN "
            "(SELECT event_id FROM flushing WHERE seq = ?)", self.conn, params=(seq,)))

    def tag(self, seq: int) -> int:
        """Phase one: tag every untagged unflushed row with `seq`, in one transaction; rows tagged."""
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            return self.conn.execute(
                "INSERT INTO flushing SELECT event_id, ? FROM events WHERE flushed = 0 AND event_id NOT IN "
                "(SELECT event_id FROM flushing)", (seq,)).rowcount

    def finish(self, seq: int, written: np.ndarray | None = None) -> None:
        """Phase two: mark the rows tagged `seq` flushed (all of them, or only the ids in `written`;
        the others become pending and untagged, so the next flush writes them), in one transaction."""
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            if written is not None:
                self.conn.execute("UPDATE events SET flushed = 0 WHERE event_id IN "
                                  "(SELECT event_id FROM flushing WHERE seq = ?)", (seq,))
                self.conn.executemany("UPDATE events SET flushed = 1 WHERE event_id = ?", [(int(e),) for e in written])
            else:
                self.conn.execute("UPDATE events SET flushed = 1 WHERE flushed = 0 AND event_id IN "
                                  "(SELECT event_id FROM flushing WHERE seq = ?)", (seq,))
            self.conn.execute("DELETE FROM flushing WHERE seq = ?", (seq,))


def _journal_rows(df: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "event_id": df["event_id"].astype(np.int64),
        "send_id": df["send_id"].astype(np.int64),
        "contact_id": df["contact_id"].astype(np.int64),
        "type": df["type"].astype(object),
        "occurred_at": pd.to_datetime(df["occurred_us"].astype(np.int64), unit="us", utc=True),
        "value": df["value"].astype("float64"),
    })


def _recover(journal: EventJournal, events_dir: Path) -> None:
    """Settle the flushes a crash interrupted: rows already in the file that holds their sequence
    number (for `UNKNOWN`, anywhere in the table) are marked flushed, the others untagged. Reads only
    that file, and only after a crash. Lock held."""
    for seq in journal.unfinished():
        rows = journal.tagged(seq)
        if seq == UNKNOWN:
            files = table_files(events_dir, "events")
        else:
            holder = file_holding(events_dir, "events", seq)
            files = [holder] if holder is not None else []
        found = rows_with_keys(files, "event_id", rows["event_id"].to_numpy()) if files and len(rows) else None
        journal.finish(seq, np.empty(0, np.int64) if found is None else found.column(0).to_numpy())


def flush(events_dir: str | Path) -> int:
    """Fold journaled webhook events into the `events` table as one segment; returns rows added."""
    events_dir = Path(events_dir)
    if not (events_dir / JOURNAL).exists():
        return 0
    journal = EventJournal(events_dir)
    try:
        with eventlog_lock(events_dir):
            _recover(journal, events_dir)
            seq = next_seq(events_dir, "events")
            if journal.tag(seq) == 0:
                return 0
            return _write_tagged(journal, events_dir, seq)
    finally:
        journal.close()


def _write_tagged(journal: EventJournal, events_dir: Path, seq: int) -> int:
    """Write the rows tagged `seq` as segment `seq`, then mark them flushed. Lock held."""
    added = append_rows("events", journal.tagged(seq), events_dir, seq=seq)
    journal.finish(seq)
    return added


def append_sends(events_dir: str | Path, sends: pd.DataFrame) -> int:
    """Append `sends` rows (new send_ids only) to the `sends` table atomically."""
    validate("sends", sends)
    with eventlog_lock(events_dir):
        return append_new_rows("sends", sends, Path(events_dir), "send_id")


def append_events(events_dir: str | Path, events: pd.DataFrame) -> int:
    """Append `events` rows directly (e.g. the send pipeline's own records): the rows whose ids neither
    the table (exact lookup, `new_rows`) nor the journal holds, through the journal's two-phase flush,
    so the journal knows every id appended to `events` and a webhook event whose hashed id collides
    with one of them is dropped as a duplicate, as before."""
    validate("events", events)
    events_dir = Path(events_dir)
    journal = EventJournal(events_dir)
    try:
        with eventlog_lock(events_dir):
            _recover(journal, events_dir)
            seq = next_seq(events_dir, "events")
            if journal.append(new_rows("events", events, events_dir, "event_id"), seq)[0] == 0:
                return 0
            return _write_tagged(journal, events_dir, seq)
    finally:
        journal.close()
