"""Appending webhook events and sends to the event log, atomically and without duplicates.

Writing a Parquet segment per webhook call would leave thousands of tiny
files to merge, so webhook events land first in a journal beside the log,
`events_dir/webhook_journal.db` (SQLite, WAL, `event_id` primary key: a
provider's retry is an `INSERT OR IGNORE` no-op, one transaction per call).
`flush(events_dir)` folds the journal into the `events` table (validated,
deduplicated, appended as one segment: `simulation.eventlog.append_new_rows`);
the send pipeline flushes before choosing an audience and after each round,
the service on shutdown. Every writer of a Parquet table holds
`events_dir/.eventlog.lock` (flock, `eventlog_lock`).
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd

from simulation.eventlog import append_new_rows, validate
from simulation.segments import LOCK, eventlog_lock  # noqa: F401 (the lock every event-log writer holds)

JOURNAL = "webhook_journal.db"


class EventJournal:
    """Durable, deduplicating landing table for webhook events."""

    def __init__(self, events_dir: str | Path):
        self.events_dir = Path(events_dir)
        self.events_dir.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.events_dir / JOURNAL, check_same_thread=False, timeout=30,
                                    isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS events (event_id INTEGER PRIMARY KEY, send_id INTEGER NOT NULL, "
            "contact_id INTEGER NOT NULL, type TEXT NOT NULL, occurred_us INTEGER NOT NULL, value REAL, "
            "flushed INTEGER NOT NULL DEFAULT 0)"
        )

    def close(self) -> None:
        self.conn.close()

    def append(self, rows: pd.DataFrame) -> tuple[int, int]:
        """Insert validated `events` rows; returns (recorded, duplicates)."""
        if rows.empty:
            return 0, 0
        at = validate("events", rows)
        occurred = at.column("occurred_at").cast("int64").to_numpy()
        value = at.column("value").to_pandas().astype(object).where(lambda s: s.notna(), None)
        records = list(zip(at.column("event_id").to_pylist(), at.column("send_id").to_pylist(),
                           at.column("contact_id").to_pylist(), at.column("type").to_pylist(),
                           occurred.tolist(), value.tolist()))
        before = self.conn.total_changes
        with self.conn:  # one transaction
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.executemany(
                "INSERT OR IGNORE INTO events (event_id, send_id, contact_id, type, occurred_us, value) "
                "VALUES (?, ?, ?, ?, ?, ?)", records)
        recorded = self.conn.total_changes - before
        return recorded, len(records) - recorded

    def pending(self) -> pd.DataFrame:
        """Journal rows not yet folded into the `events` table, as `events` rows."""
        df = pd.read_sql_query(
            "SELECT event_id, send_id, contact_id, type, occurred_us, value FROM events WHERE flushed = 0",
            self.conn)
        return _journal_rows(df)

    def mark_flushed(self, event_ids: np.ndarray) -> None:
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.executemany("UPDATE events SET flushed = 1 WHERE event_id = ?",
                                  [(int(e),) for e in event_ids])


def _journal_rows(df: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "event_id": df["event_id"].astype(np.int64),
        "send_id": df["send_id"].astype(np.int64),
        "contact_id": df["contact_id"].astype(np.int64),
        "type": df["type"].astype(object),
        "occurred_at": pd.to_datetime(df["occurred_us"].astype(np.int64), unit="us", utc=True),
        "value": df["value"].astype("float64"),
    })


def _append_table(events_dir: Path, table: str, rows: pd.DataFrame, key: str) -> int:
    """Append rows whose `key` is new as one segment (`append_new_rows`). Lock held by caller."""
    return append_new_rows(table, rows, events_dir, key)


def flush(events_dir: str | Path) -> int:
    """Fold journaled webhook events into the `events` table; returns rows added."""
    events_dir = Path(events_dir)
    if not (events_dir / JOURNAL).exists():
        return 0
    journal = EventJournal(events_dir)
    try:
        with eventlog_lock(events_dir):
            pending = journal.pending()
            if pending.empty:
                return 0
            added = _append_table(events_dir, "events", pending, "event_id")
            journal.mark_flushed(pending["event_id"].to_numpy())
            return added
    finally:
        journal.close()


def append_sends(events_dir: str | Path, sends: pd.DataFrame) -> int:
    """Append `sends` rows (new send_ids only) to the `sends` table atomically."""
    validate("sends", sends)
    with eventlog_lock(events_dir):
        return _append_table(Path(events_dir), "sends", sends, "send_id")


def append_events(events_dir: str | Path, events: pd.DataFrame) -> int:
    """Append `events` rows directly (e.g. the send pipeline's own records)."""
    validate("events", events)
    with eventlog_lock(events_dir):
        return _append_table(Path(events_dir), "events", events, "event_id")
