"""The durable outbox: every rendered message with its send time and delivery state (SQLite, WAL).

One row per message, written (and fsynced: `synchronous=FULL`) before the
message is handed to SMTP. Send ids come from a counter in the same database,
reserved in blocks inside an IMMEDIATE transaction and never handed out twice:
not across campaigns, not after a crash (a block reserved by a run that died
leaves a gap, never a reuse). The counter starts above every send id already in
the event log. `UNIQUE (campaign_id, run, contact_id)` makes a re-run of a
campaign skip whoever is already queued.

States: `queued` -> `handed` (the end-of-data dot was written to the SMTP server;
committed right after it, see `handing`) -> `sent` | `deferred` (4xx, retried after
exponential backoff) -> ... | `failed` (4xx after max attempts) | `bounced` (5xx,
a hard bounce) | `unknown` (the sender died between the dot and recording the
reply: delivered as far as we can know, never re-sent; see `sending.delivery`). Once a message
is sent, bounced or failed its body and address are dropped from the row (the
ids, decision and status stay), so the file holds what is still to deliver.
"""
from __future__ import annotations

import contextlib
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

PENDING = ("queued", "deferred")
FINAL = ("sent", "bounced", "failed")  # the body and address are dropped: the outbox does not grow with history
_DROP = ", message = X'', rcpt = ''"
RECORDED_STATES = ("sent", "unknown", "bounced")  # these have a row in the event log's sends table
MAILED_STATES = ("sent", "unknown")  # handed to SMTP and accepted (or so we must assume): their decisions were mailed

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    send_id INTEGER PRIMARY KEY,
    campaign_id TEXT NOT NULL, run TEXT NOT NULL, contact_id INTEGER NOT NULL,
    content_id INTEGER NOT NULL, decision_id TEXT, propensity REAL,
    fallback INTEGER NOT NULL DEFAULT 0, live INTEGER NOT NULL DEFAULT 0,
    domain TEXT NOT NULL, mail_from TEXT NOT NULL, rcpt TEXT NOT NULL, message BLOB NOT NULL,
    send_at_us INTEGER NOT NULL, due_us INTEGER NOT NULL, enqueued_us INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'queued', attempts INTEGER NOT NULL DEFAULT 0, last_code INTEGER,
    sent_at_us INTEGER, recorded INTEGER NOT NULL DEFAULT 0,
    UNIQUE (campaign_id, run, contact_id));
CREATE INDEX IF NOT EXISTS messages_due ON messages (status, due_us);
CREATE INDEX IF NOT EXISTS messages_contact ON messages (contact_id);
"""

COLUMNS = ("send_id", "campaign_id", "run", "contact_id", "content_id", "decision_id", "propensity", "fallback",
           "live", "domain", "mail_from", "rcpt", "message", "send_at_us", "due_us", "enqueued_us")


def outbox_path(settings) -> Path:
    return Path(settings.data_dir) / "outbox" / "outbox.db"


def lookup(settings, send_ids) -> pd.DataFrame:
    """The outbox's [send_id, contact_id, decision_id] for these send ids (webhooks match events to sends)."""
    path = outbox_path(settings)
    if not path.exists():
        return pd.DataFrame({"send_id": pd.Series(dtype="int64"), "contact_id": pd.Series(dtype="int64"),
                             "decision_id": pd.Series(dtype=object)})
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return pd.read_sql_query(
            "SELECT send_id, contact_id, decision_id FROM messages WHERE send_id IN (SELECT value FROM json_each(?))"
            " ORDER BY send_id", db, params=(json.dumps([int(i) for i in send_ids]),))
    finally:
        db.close()


@dataclass(frozen=True)
class Due:
    send_id: int
    domain: str
    mail_from: str
    rcpt: str
    message: bytes
    attempts: int
    send_at_us: int


class Outbox:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)
        self._pending: list[tuple[str, tuple]] = []  # result updates committed with the next handoff

    def set_durable(self, durable: bool) -> None:
        """FULL (default): every commit is fsynced before the next message starts. NORMAL: commits
        survive the process being killed (the log write is done) but an OS crash or power loss may undo
        the last ones, whose messages would then be sent again; one fsync less per message."""
        self.db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")

    @classmethod
    def open(cls, settings) -> "Outbox":
        return cls(outbox_path(settings))

    def close(self) -> None:
        self.flush()
        self.db.close()

    def __enter__(self) -> "Outbox":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- enqueue ------------------------------------------------------------
    def reserve_send_ids(self, n: int, floor: int = 1) -> int:
        """Reserve `n` consecutive send ids (the first returned), above `floor` and every id reserved before."""
        if n < 1:
            raise ValueError("n: must be >= 1")
        self.db.execute("BEGIN IMMEDIATE")
        try:
            row = self.db.execute("SELECT value FROM meta WHERE key = 'next_send_id'").fetchone()
            used = self.db.execute("SELECT COALESCE(MAX(send_id), 0) + 1 FROM messages").fetchone()[0]
            first = max(int(floor), int(used), int(row[0]) if row else 1)
            self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('next_send_id', ?)", (first + n,))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return first

    def queued_contacts(self, campaign_id: str, run: str) -> np.ndarray:
        rows = self.db.execute("SELECT contact_id FROM messages WHERE campaign_id = ? AND run = ?",
                               (campaign_id, run)).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def enqueue(self, rows: list[tuple]) -> int:
        """Insert messages (tuples in `COLUMNS` order) in one transaction; returns rows inserted."""
        if not rows:
            return 0
        before = self.db.total_changes
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.executemany(f"INSERT OR IGNORE INTO messages ({', '.join(COLUMNS)}) "
                                f"VALUES ({', '.join('?' * len(COLUMNS))})", rows)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return self.db.total_changes - before

    # --- delivery -----------------------------------------------------------
    def recover(self) -> int:
        """After a crash: messages left `handed` (dot maybe sent, reply not recorded) become `unknown`."""
        self.flush()
        return self.db.execute("UPDATE messages SET status = 'unknown' WHERE status = 'handed'").rowcount

    def due(self, now_us: int, limit: int, campaign: tuple[str, str] | None = None) -> list[Due]:
        where, params = "status IN ('queued', 'deferred') AND due_us <= ?", [now_us]
        if campaign is not None:
            where += " AND campaign_id = ? AND run = ?"
            params += list(campaign)
        rows = self.db.execute(f"SELECT send_id, domain, mail_from, rcpt, message, attempts, send_at_us FROM messages "
                               f"WHERE {where} ORDER BY due_us, send_id LIMIT ?", (*params, limit)).fetchall()
        return [Due(*r) for r in rows]

    def next_due_us(self, campaign: tuple[str, str] | None = None) -> int | None:
        where, params = "status IN ('queued', 'deferred')", []
        if campaign is not None:
            where += " AND campaign_id = ? AND run = ?"
            params = list(campaign)
        return self.db.execute(f"SELECT MIN(due_us) FROM messages WHERE {where}", params).fetchone()[0]

    @contextlib.contextmanager
    def handing(self, send_id: int, attempt_us: int):
        """Around SMTP's end-of-data dot: opens a write transaction and marks the message `handed`
        (with the results noted before it) before the block, commits right after it. A sender killed
        before the commit wrote nothing (the message is still pending); the commit's log write follows
        the dot within microseconds. Yields False (and rolls back) if the message is no longer pending:
        then the dot must not be sent."""
        self.db.execute("BEGIN IMMEDIATE")  # the write lock first: nothing waits between the dot and the commit
        try:
            self._apply_pending()
            n = self.db.execute("UPDATE messages SET status = 'handed', attempts = attempts + 1, sent_at_us = ? "
                                "WHERE send_id = ? AND status IN ('queued', 'deferred')",
                                (attempt_us, send_id)).rowcount
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        if n != 1:
            self.db.execute("ROLLBACK")
            yield False
            return
        try:
            yield True
        finally:  # also when writing the dot failed: it may have left, so the message is never sent again
            self.db.execute("COMMIT")

    def note_result(self, send_id: int, status: str, code: int | None, due_us: int | None = None) -> None:
        """Record an SMTP outcome; committed with the next handoff or `flush` (a crash before that
        leaves the message `handed`, i.e. `unknown`, never re-sent)."""
        if status == "deferred":
            self._pending.append(("UPDATE messages SET status = 'deferred', last_code = ?, due_us = ? "
                                  "WHERE send_id = ?", (code, due_us, send_id)))
        else:
            self._pending.append((f"UPDATE messages SET status = ?, last_code = ?{_DROP if status in FINAL else ''} "
                                  "WHERE send_id = ?", (status, code, send_id)))

    def note_refused(self, send_id: int, status: str, code: int, due_us: int, attempt_us: int) -> None:
        """A reply refusing the message before the dot (MAIL, RCPT or DATA): counts as an attempt."""
        self._pending.append(("UPDATE messages SET status = ?, attempts = attempts + 1, last_code = ?, due_us = ?, "
                              f"sent_at_us = ?{_DROP if status in FINAL else ''} WHERE send_id = ?",
                              (status, code, due_us, attempt_us, send_id)))

    def _apply_pending(self) -> None:
        for sql, params in self._pending:
            self.db.execute(sql, params)
        self._pending.clear()

    def flush(self) -> None:
        if not self._pending:
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self._apply_pending()
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    # --- records ------------------------------------------------------------
    def unrecorded(self) -> pd.DataFrame:
        """Messages handed to SMTP (sent, unknown or bounced) whose sends row is not yet in the event log."""
        marks = ", ".join(f"'{s}'" for s in RECORDED_STATES)
        return pd.read_sql_query(
            "SELECT send_id, contact_id, campaign_id, content_id, sent_at_us, send_at_us, decision_id, propensity, "
            f"status, last_code FROM messages WHERE recorded = 0 AND status IN ({marks}) ORDER BY send_id", self.db)

    def mark_recorded(self, send_ids) -> None:
        ids = json.dumps([int(i) for i in send_ids])
        self.db.execute("BEGIN IMMEDIATE")
        self.db.execute("UPDATE messages SET recorded = 1 WHERE send_id IN (SELECT value FROM json_each(?))", (ids,))
        self.db.execute("COMMIT")

    def run_rows(self, campaign_id: str, run: str) -> pd.DataFrame:
        """Every message of one campaign run (no addresses or bodies)."""
        return pd.read_sql_query(
            "SELECT send_id, contact_id, campaign_id, content_id, decision_id, propensity, fallback, live, status, "
            "attempts, last_code, send_at_us, sent_at_us FROM messages WHERE campaign_id = ? AND run = ? "
            "ORDER BY send_id", self.db, params=(campaign_id, run))

    def counts(self, campaign: tuple[str, str] | None = None) -> dict[str, int]:
        where, params = ("WHERE campaign_id = ? AND run = ?", campaign) if campaign else ("", ())
        return dict(self.db.execute(f"SELECT status, COUNT(*) FROM messages {where} GROUP BY status",
                                    params).fetchall())
