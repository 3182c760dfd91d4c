"""The decision log: every decision, every reward, every rejected reward.

`DecisionLog` is the interface; `SQLiteDecisionLog` (WAL mode, checkpoints
in a background thread: `checkpointer.py`) is the embedded default. A
PostgreSQL or Redis log implements the same methods.

Vectors (eligible variants, context, probabilities) are stored as
little-endian blobs (int64 / float64) so a batch is written without
per-row JSON; `decisions()` decodes them into a DataFrame.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import threading
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Callable, Protocol, Sequence

import numpy as np
import pandas as pd

from .checkpointer import WalCheckpointer


class UnknownDecisionError(KeyError):
    """A reward names a decision id that was never logged (kept in the audit table)."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else "unknown decision id"


@dataclass
class DecisionBatch:
    """What one `choose` call decided, row-aligned numpy arrays."""

    decision_id: list[str]
    campaign_id: str
    decided_at: int               # epoch microseconds, shared by the batch
    contact_id: np.ndarray        # (n,) int64
    eligible: np.ndarray          # (K,) int64 variant ids
    context: np.ndarray           # (n, c) float64 context features (without bias)
    probabilities: np.ndarray     # (n, K) float64, served distribution
    variant: np.ndarray           # (n,) int64 chosen variant
    propensity: np.ndarray        # (n,) float64 = probabilities[row, chosen]
    policy_version: int
    mode: np.ndarray              # (n,) str: policy | holdout | kill_switch | apprentice
    policy_choice: np.ndarray     # (n,) int64: the learning policy's own choice


RewardCheck = Callable[[str, float, int, int], "str | None"]
"""validate(campaign_id, reward, occurred_at_us, decided_at_us) -> None, or why the reward is refused."""


@dataclass(frozen=True)
class SentMarks:
    """What one `mark_sent` call did: ids newly marked, ids marked before (idempotent), ids never logged."""

    marked: int
    already: int
    unknown: list[str]


def sent_pairs(decision_ids: Sequence[str], sent_at: int | Sequence[int]) -> list[tuple[str, int]]:
    """(decision id, sent_at us) per distinct id, first occurrence kept; `sent_at` one time or one per id."""
    ids = [str(d) for d in decision_ids]
    times = ([int(sent_at)] * len(ids) if np.ndim(sent_at) == 0
             else np.asarray(sent_at, dtype=np.int64).tolist())
    if len(times) != len(ids):
        raise ValueError(f"sent_at: one time per decision id ({len(ids)}), got {len(times)}")
    first: dict[str, int] = {}
    for d, t in zip(ids, times):
        first.setdefault(d, t)
    return list(first.items())


class DecisionLog(Protocol):
    def save_campaign(self, campaign_id: str, config: dict) -> int: ...
    def campaign(self, campaign_id: str) -> tuple[int, dict]: ...
    def campaign_version(self, campaign_id: str) -> int: ...
    def campaign_ids(self) -> list[str]: ...
    def log_decisions(self, batch: DecisionBatch, window_us: int = 0) -> None: ...
    def add_rewards(self, decision_ids: list[str], rewards: np.ndarray, occurred_at: np.ndarray,
                    event_ids: list[str], received_at: int, validate: RewardCheck | None = None) -> list[str]: ...
    def mark_sent(self, decision_ids: Sequence[str], sent_at: int | Sequence[int]) -> SentMarks: ...
    def joined(self, campaign_id: str, after: int, upto: int, aggregation: str,
               default_reward: float, reward_range: tuple[float, float] | None = None,
               learn_from: str = "all") -> pd.DataFrame: ...
    def decisions(self, campaign_id: str | None = None) -> pd.DataFrame: ...
    def erase_contact(self, contact_ids: Sequence[int]) -> dict[str, int]: ...
    def close(self) -> None: ...


SCHEMA = """
CREATE TABLE IF NOT EXISTS campaigns (
    campaign_id TEXT PRIMARY KEY, config TEXT NOT NULL, version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS decisions (
    seq INTEGER PRIMARY KEY, decision_id TEXT NOT NULL UNIQUE,
    campaign_id TEXT NOT NULL, decided_at INTEGER NOT NULL, contact_id INTEGER NOT NULL,
    eligible BLOB NOT NULL, context BLOB NOT NULL, probabilities BLOB NOT NULL,
    variant INTEGER NOT NULL, propensity REAL NOT NULL, policy_version INTEGER NOT NULL,
    mode TEXT NOT NULL, policy_choice INTEGER NOT NULL, window_us INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS decisions_by_campaign_time ON decisions (campaign_id, decided_at);
CREATE TABLE IF NOT EXISTS rewards (
    event_id TEXT PRIMARY KEY, decision_id TEXT NOT NULL, reward REAL NOT NULL,
    occurred_at INTEGER NOT NULL, received_at INTEGER NOT NULL, late INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS rewards_by_decision ON rewards (decision_id, late, occurred_at);
CREATE TABLE IF NOT EXISTS reward_audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, decision_id TEXT, event_id TEXT, reward REAL,
    occurred_at INTEGER, received_at INTEGER NOT NULL, reason TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sent_marks (seq INTEGER PRIMARY KEY, sent_at INTEGER NOT NULL);
"""


INSERT_DECISION = (
    "INSERT INTO decisions (decision_id, campaign_id, decided_at, contact_id, eligible, context,"
    " probabilities, variant, propensity, policy_version, mode, policy_choice, window_us)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def decision_rows(batch: DecisionBatch, window_us: int = 0) -> list[tuple]:
    """The `decisions` table rows of a batch (vectors as little-endian blobs), in batch order."""
    n = len(batch.decision_id)
    contexts = np.asarray(batch.context, dtype="<f8")  # no copy when already float64
    probs = np.asarray(batch.probabilities, dtype="<f8")
    return list(zip(
        batch.decision_id, repeat(batch.campaign_id, n), repeat(int(batch.decided_at), n), batch.contact_id.tolist(),
        repeat(np.asarray(batch.eligible, dtype="<i8").tobytes(), n), map(np.ndarray.tobytes, contexts),
        map(np.ndarray.tobytes, probs), batch.variant.tolist(), batch.propensity.tolist(),
        repeat(int(batch.policy_version), n), batch.mode.tolist(), batch.policy_choice.tolist(), repeat(int(window_us), n),
    ))


JOINED_COLUMNS = "decision_id, decided_at, context, eligible, variant, propensity, policy_version, mode, reward, mailed"
LEARN_FROM = ("all", "sent")


def joined_query(placeholder: str, campaign_id: str, after: int, upto: int, aggregation: str,
                 default_reward: float, reward_range: tuple[float, float] | None,
                 learn_from: str = "all") -> tuple[str, tuple]:
    """The decisions-joined-with-rewards query and its parameters, shared by every `DecisionLog`
    backend (`placeholder`: the driver's parameter marker, `?` for sqlite3, `%s` for psycopg).

    `mailed` is 1 when the decision is known to have been mailed (a `sent_marks` row, or any
    stored reward: an event came back for it) with `learn_from="sent"`; with "all" every decision
    counts as mailed (1) and nothing more is read. Marks are keyed by the decision's `seq`, so the
    query probes them in key order (by decision id, random by design, each probe would land on
    a random page)."""
    if learn_from not in LEARN_FROM:
        raise ValueError(f"learn_from: expected one of {LEARN_FROM}, got {learn_from!r}")
    mailed = "1" if learn_from == "all" else (
        "CASE WHEN EXISTS (SELECT 1 FROM sent_marks s WHERE s.seq = d.seq)"
        " OR EXISTS (SELECT 1 FROM rewards r WHERE r.decision_id = d.decision_id) THEN 1 ELSE 0 END")
    q = placeholder
    bounded = "" if reward_range is None else f" AND r.reward >= {q} AND r.reward <= {q}"
    bounds = () if reward_range is None else (float(reward_range[0]), float(reward_range[1]))
    if aggregation == "first":
        agg = (f"(SELECT r.reward FROM rewards r WHERE r.decision_id = d.decision_id AND r.late = 0{bounded}"
               " ORDER BY r.occurred_at, r.event_id LIMIT 1)")
    elif aggregation == "sum":
        agg = f"(SELECT SUM(r.reward) FROM rewards r WHERE r.decision_id = d.decision_id AND r.late = 0{bounded})"
    else:
        raise ValueError(f"aggregation: expected 'first' or 'sum', got {aggregation!r}")
    sql = (f"SELECT d.decision_id, d.decided_at, d.context, d.eligible, d.variant, d.propensity, d.policy_version,"
           f" d.mode, COALESCE({agg}, {q}) AS reward, {mailed} AS mailed FROM decisions d"
           f" WHERE d.campaign_id = {q} AND d.decided_at > {q} AND d.decided_at <= {q} ORDER BY d.seq")
    return sql, (*bounds, float(default_reward), campaign_id, int(after), int(upto))


class SQLiteDecisionLog:
    """Decision log in one SQLite file (WAL: readers never block the writer)."""

    def __init__(self, path: str | Path, background_checkpoints: bool = True):
        """`background_checkpoints`: WAL checkpoints run by a thread (`checkpointer.WalCheckpointer`);
        False keeps SQLite's automatic checkpoint inside the committing call."""
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._lock_fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._checkpointer = None
        if background_checkpoints:
            self._db.execute("PRAGMA wal_autocheckpoint=0")
            self._checkpointer = WalCheckpointer(self.path)

    @contextlib.contextmanager
    def _writing(self):
        """This process's lock, then an `fcntl.flock` on `<log>.lock` shared by every process writing the
        log (the serving workers, the learner). Without it a writer that finds another process's write
        transaction open sleeps in SQLite's busy handler (1, 2, 5 ... ms) on the event loop; the kernel
        wakes a flock waiter as soon as the lock is free (the p99 effect: bench_allocator_decide.py)."""
        with self._lock:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _wrote(self, rows: int) -> None:
        """After a commit, under the lock: about 3 b-tree pages per transaction plus one per ~12 rows."""
        if self._checkpointer is not None:
            self._checkpointer.wrote(self._db, 3 + rows / 12)

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.close()
        self._db.close()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    # campaigns ---------------------------------------------------------------
    def save_campaign(self, campaign_id: str, config: dict) -> int:
        with self._writing():
            row = self._db.execute("SELECT version FROM campaigns WHERE campaign_id=?", (campaign_id,)).fetchone()
            version = (row[0] if row else 0) + 1
            self._db.execute(
                "INSERT OR REPLACE INTO campaigns (campaign_id, config, version) VALUES (?, ?, ?)",
                (campaign_id, json.dumps(config), version),
            )
            self._wrote(1)
        return version

    def campaign(self, campaign_id: str) -> tuple[int, dict]:
        row = self._db.execute("SELECT version, config FROM campaigns WHERE campaign_id=?", (campaign_id,)).fetchone()
        if row is None:
            raise ValueError(f"campaign_id: unknown campaign {campaign_id!r}; register it first")
        return row[0], json.loads(row[1])

    def campaign_version(self, campaign_id: str) -> int:
        row = self._db.execute("SELECT version FROM campaigns WHERE campaign_id=?", (campaign_id,)).fetchone()
        if row is None:
            raise ValueError(f"campaign_id: unknown campaign {campaign_id!r}; register it first")
        return row[0]

    def campaign_ids(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT campaign_id FROM campaigns ORDER BY campaign_id")]

    # decisions ---------------------------------------------------------------
    def log_decisions(self, batch: DecisionBatch, window_us: int = 0) -> None:
        """Insert the batch in one transaction, committed (visible to every connection) on return."""
        rows = decision_rows(batch, window_us)
        with self._writing():
            if len(rows) == 1:  # autocommit: one statement is one transaction
                self._db.execute(INSERT_DECISION, rows[0])
            else:
                self._db.execute("BEGIN")
                try:
                    self._db.executemany(INSERT_DECISION, rows)
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            self._wrote(len(rows))

    def decisions(self, campaign_id: str | None = None) -> pd.DataFrame:
        sql = ("SELECT decision_id, campaign_id, decided_at, contact_id, eligible, context, probabilities,"
               " variant, propensity, policy_version, mode, policy_choice FROM decisions")
        params: tuple = ()
        if campaign_id is not None:
            sql += " WHERE campaign_id=?"
            params = (campaign_id,)
        df = pd.read_sql_query(sql + " ORDER BY seq", self._db, params=params)
        for col, dtype in (("eligible", "<i8"), ("context", "<f8"), ("probabilities", "<f8")):
            df[col] = [np.frombuffer(b, dtype=dtype) for b in df[col]]
        df["decided_at"] = pd.to_datetime(df["decided_at"], unit="us", utc=True)
        return df

    # rewards -----------------------------------------------------------------
    def add_rewards(self, decision_ids, rewards, occurred_at, event_ids, received_at: int,
                    validate: RewardCheck | None = None) -> list[str]:
        """Store rewards; per row 'accepted' | 'duplicate' | 'late' | 'unknown' | 'rejected'.

        Unknown decision ids go to `reward_audit`; so does a reward `validate` refuses
        (status 'rejected', the audit row's reason is validate's message); the same
        event_id twice is stored once; a reward after its decision's wait window is
        stored with late=1 and never joined for learning.
        """
        statuses: list[str] = []
        audit = ("INSERT INTO reward_audit (decision_id, event_id, reward, occurred_at, received_at, reason)"
                 " VALUES (?, ?, ?, ?, ?, ?)")
        with self._writing():
            self._db.execute("BEGIN")
            try:
                for did, r, occ, eid in zip(decision_ids, np.asarray(rewards, float).tolist(),
                                            np.asarray(occurred_at, np.int64).tolist(), event_ids):
                    dec = self._db.execute(
                        "SELECT decided_at, window_us, campaign_id FROM decisions WHERE decision_id=?", (did,)
                    ).fetchone()
                    if dec is None:
                        self._db.execute(audit, (did, eid, r, occ, received_at, "unknown decision id"))
                        statuses.append("unknown")
                        continue
                    refused = validate(dec[2], r, occ, dec[0]) if validate is not None else None
                    if refused:
                        self._db.execute(audit, (did, eid, r, occ, received_at, refused))
                        statuses.append("rejected")
                        continue
                    late = int(occ > dec[0] + dec[1])
                    cur = self._db.execute(
                        "INSERT OR IGNORE INTO rewards (event_id, decision_id, reward, occurred_at, received_at, late)"
                        " VALUES (?, ?, ?, ?, ?, ?)", (eid, did, r, occ, received_at, late))
                    statuses.append("duplicate" if cur.rowcount == 0 else ("late" if late else "accepted"))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._wrote(len(statuses))
        return statuses

    # sent marks --------------------------------------------------------------
    def mark_sent(self, decision_ids: Sequence[str], sent_at: int | Sequence[int]) -> SentMarks:
        """Record that these decisions were mailed (`sent_at`: epoch us, one or one per id). Idempotent: a
        decision marked before keeps its first time and counts as `already`; ids never logged are marked
        nowhere and returned as `unknown`."""
        pairs = sent_pairs(decision_ids, sent_at)
        if not pairs:
            return SentMarks(0, 0, [])
        blob = json.dumps(pairs)
        with self._writing():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                known = {r[0] for r in self._db.execute(
                    "SELECT decision_id FROM decisions WHERE decision_id IN"
                    " (SELECT json_extract(value, '$[0]') FROM json_each(?))", (blob,))}
                marked = self._db.execute(
                    "INSERT OR IGNORE INTO sent_marks (seq, sent_at) SELECT d.seq, p.t FROM"
                    " (SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS t FROM json_each(?)) p"
                    " JOIN decisions d ON d.decision_id = p.id", (blob,)).rowcount
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._wrote(marked)
        return SentMarks(marked, len(known) - marked, [d for d, _ in pairs if d not in known])

    def sent(self) -> pd.DataFrame:
        """Every sent mark: [decision_id, sent_at (epoch us)]."""
        return pd.read_sql_query("SELECT d.decision_id, s.sent_at FROM sent_marks s JOIN decisions d ON d.seq = s.seq"
                                 " ORDER BY d.decision_id", self._db)

    def erase_contact(self, contact_ids: Sequence[int]) -> dict[str, int]:
        """Delete these contacts' decisions, their rewards, audited rewards and sent marks (a privacy erasure);
        rows removed per table. Idempotent. The file is then compacted (`VACUUM`, WAL truncated) so no
        copy of a deleted row stays in free pages, interior b-tree pages or the write-ahead log."""
        ids = json.dumps([int(c) for c in contact_ids])
        mine = "SELECT decision_id FROM decisions WHERE contact_id IN (SELECT value FROM json_each(?))"
        counts = {}
        with self._writing():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for table in ("rewards", "reward_audit"):
                    counts[table] = self._db.execute(
                        f"DELETE FROM {table} WHERE decision_id IN ({mine})", (ids,)).rowcount
                counts["sent_marks"] = self._db.execute(
                    "DELETE FROM sent_marks WHERE seq IN (SELECT seq FROM decisions WHERE contact_id IN"
                    " (SELECT value FROM json_each(?)))", (ids,)).rowcount
                counts["decisions"] = self._db.execute(
                    "DELETE FROM decisions WHERE contact_id IN (SELECT value FROM json_each(?))", (ids,)).rowcount
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            from privacy.files import compact_sqlite

            compact_sqlite(self._db)
        return counts

    def audit(self) -> pd.DataFrame:
        return pd.read_sql_query("SELECT * FROM reward_audit ORDER BY id", self._db)

    def rewards(self) -> pd.DataFrame:
        return pd.read_sql_query("SELECT * FROM rewards", self._db)

    def joined(self, campaign_id: str, after: int, upto: int, aggregation: str = "first",
               default_reward: float = 0.0, reward_range: tuple[float, float] | None = None,
               learn_from: str = "all") -> pd.DataFrame:
        """Decisions with after < decided_at <= upto joined with their in-window rewards.

        aggregation 'first' takes the earliest in-window reward, 'sum' adds them;
        decisions without a reward get `default_reward`. With `reward_range` (lo, hi) a
        stored reward outside [lo, hi] is not joined, as if it had been refused on
        arrival (only a log written before rewards were validated can hold one). `mailed`: see
        `joined_query` (`learn_from`).
        """
        sql, params = joined_query("?", campaign_id, after, upto, aggregation, default_reward, reward_range,
                                   learn_from)
        df = pd.read_sql_query(sql, self._db, params=params)
        df["context"] = [np.frombuffer(b, dtype="<f8") for b in df["context"]]
        df["eligible"] = [np.frombuffer(b, dtype="<i8") for b in df["eligible"]]
        return df
