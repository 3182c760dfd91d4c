"""The decision log on PostgreSQL: one database shared by every service replica and the learner.

Same tables, same protocol (`decision_log.DecisionLog`) and same answers as `SQLiteDecisionLog`;
vectors are the same little-endian blobs (`bytea`). What PostgreSQL changes:

- any number of processes on any number of machines write at once (row locks, no file lock);
- a decision is committed, durably (`synchronous_commit` as the server has it, `on` by default),
  before `log_decisions` returns, so a replica never answers with a decision another could lose;
- a reward is joined to its decision whichever replica logged either: rewards are checked against the
  decisions in one query per batch, and the same provider event twice is stored once
  (`ON CONFLICT (event_id) DO NOTHING`), also when two replicas receive it at the same moment.

psycopg 3 (https://www.psycopg.org/psycopg3/docs/); one connection per process, used under a lock,
re-opened on the next call after the server dropped it.
"""
from __future__ import annotations

import json
import threading
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .decision_log import JOINED_COLUMNS, DecisionBatch, RewardCheck, SentMarks, decision_rows, joined_query, sent_pairs

SCHEMA = """
CREATE TABLE IF NOT EXISTS campaigns (
    campaign_id TEXT PRIMARY KEY, config TEXT NOT NULL, version BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS decisions (
    seq BIGSERIAL PRIMARY KEY, decision_id TEXT NOT NULL UNIQUE,
    campaign_id TEXT NOT NULL, decided_at BIGINT NOT NULL, contact_id BIGINT NOT NULL,
    eligible BYTEA NOT NULL, context BYTEA NOT NULL, probabilities BYTEA NOT NULL,
    variant BIGINT NOT NULL, propensity DOUBLE PRECISION NOT NULL, policy_version BIGINT NOT NULL,
    mode TEXT NOT NULL, policy_choice BIGINT NOT NULL, window_us BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS decisions_by_campaign_time ON decisions (campaign_id, decided_at);
CREATE INDEX IF NOT EXISTS decisions_by_contact ON decisions (contact_id);
CREATE TABLE IF NOT EXISTS rewards (
    event_id TEXT PRIMARY KEY, decision_id TEXT NOT NULL, reward DOUBLE PRECISION NOT NULL,
    occurred_at BIGINT NOT NULL, received_at BIGINT NOT NULL, late INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS rewards_by_decision ON rewards (decision_id, late, occurred_at);
CREATE TABLE IF NOT EXISTS reward_audit (
    id BIGSERIAL PRIMARY KEY, decision_id TEXT, event_id TEXT, reward DOUBLE PRECISION,
    occurred_at BIGINT, received_at BIGINT NOT NULL, reason TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sent_marks (seq BIGINT PRIMARY KEY, sent_at BIGINT NOT NULL);
"""
SCHEMA_LOCK = 7_216_016  # pg_advisory_xact_lock key: replicas starting together create the tables once

INSERT_DECISION = (
    "INSERT INTO decisions (decision_id, campaign_id, decided_at, contact_id, eligible, context,"
    " probabilities, variant, propensity, policy_version, mode, policy_choice, window_us)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
INSERT_AUDIT = ("INSERT INTO reward_audit (decision_id, event_id, reward, occurred_at, received_at, reason)"
                " VALUES (%s, %s, %s, %s, %s, %s)")
DECISION_COLUMNS = ("decision_id, campaign_id, decided_at, contact_id, eligible, context, probabilities,"
                    " variant, propensity, policy_version, mode, policy_choice")


def check_url(url: str) -> str:
    if not isinstance(url, str) or not url.startswith(("postgresql://", "postgres://")):
        raise ValueError(f"decision_log: expected a postgresql:// URL, got {url!r}")
    return url


class PostgresConnection:
    """One psycopg connection per process, used under a lock and re-opened after a failure."""

    def __init__(self, url: str):
        import psycopg

        self.url = check_url(url)
        self._psycopg = psycopg
        self.lock = threading.RLock()  # re-entered: add_rewards's validate callback may read a campaign
        self._db = None

    def create(self, schema: str) -> "PostgresConnection":
        """Create the tables of `schema` if absent (once, when replicas start together); self."""
        with self.lock:
            db = self.connection()
            with db.transaction():
                db.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                db.execute(schema)
        return self

    def connection(self):
        """The open connection (call under `lock`)."""
        if self._db is None or self._db.closed or self._db.broken:
            self._db = self._psycopg.connect(self.url, autocommit=True)
        return self._db

    def close(self) -> None:
        with self.lock:
            if self._db is not None:
                self._db.close()
                self._db = None


def _frame(cursor, columns: str) -> pd.DataFrame:
    return pd.DataFrame(cursor.fetchall(), columns=[c.strip() for c in columns.split(",")])


def _vectors(df: pd.DataFrame, columns: Sequence[tuple[str, str]]) -> pd.DataFrame:
    for col, dtype in columns:
        df[col] = [np.frombuffer(b, dtype=dtype) for b in df[col]]
    return df


class PostgresDecisionLog:
    """Decision log in a PostgreSQL database (`postgresql://user@host:port/db`)."""

    def __init__(self, url: str | PostgresConnection):
        """`url`, or an open `PostgresConnection` to share (e.g. with `PostgresSnapshotStore`)."""
        self._pg = (url if isinstance(url, PostgresConnection) else PostgresConnection(url)).create(SCHEMA)
        self.url = self._pg.url

    @property
    def connection(self) -> PostgresConnection:
        return self._pg

    def close(self) -> None:
        self._pg.close()

    def ping(self) -> None:
        """One round trip to the database; psycopg.OperationalError when it cannot be reached."""
        with self._pg.lock:
            self._pg.connection().execute("SELECT 1").fetchone()

    # campaigns ---------------------------------------------------------------
    def save_campaign(self, campaign_id: str, config: dict) -> int:
        with self._pg.lock:
            (version,) = self._pg.connection().execute(
                "INSERT INTO campaigns (campaign_id, config, version) VALUES (%s, %s, 1)"
                " ON CONFLICT (campaign_id) DO UPDATE SET config = EXCLUDED.config, version = campaigns.version + 1"
                " RETURNING version", (campaign_id, json.dumps(config))).fetchone()
        return int(version)

    def campaign(self, campaign_id: str) -> tuple[int, dict]:
        with self._pg.lock:
            row = self._pg.connection().execute(
                "SELECT version, config FROM campaigns WHERE campaign_id = %s", (campaign_id,)).fetchone()
        if row is None:
            raise ValueError(f"campaign_id: unknown campaign {campaign_id!r}; register it first")
        return int(row[0]), json.loads(row[1])

    def campaign_version(self, campaign_id: str) -> int:
        with self._pg.lock:
            row = self._pg.connection().execute(
                "SELECT version FROM campaigns WHERE campaign_id = %s", (campaign_id,)).fetchone()
        if row is None:
            raise ValueError(f"campaign_id: unknown campaign {campaign_id!r}; register it first")
        return int(row[0])

    def campaign_ids(self) -> list[str]:
        with self._pg.lock:
            return [r[0] for r in self._pg.connection().execute("SELECT campaign_id FROM campaigns ORDER BY campaign_id")]

    # decisions ---------------------------------------------------------------
    def log_decisions(self, batch: DecisionBatch, window_us: int = 0) -> None:
        """Insert the batch in one transaction, committed (visible to every replica) on return."""
        rows = decision_rows(batch, window_us)
        with self._pg.lock:
            db = self._pg.connection()
            if len(rows) == 1:  # autocommit: one statement is one transaction
                db.execute(INSERT_DECISION, rows[0])
            else:
                with db.transaction(), db.cursor() as cur:
                    cur.executemany(INSERT_DECISION, rows)

    def decisions(self, campaign_id: str | None = None) -> pd.DataFrame:
        where, params = ("", ()) if campaign_id is None else (" WHERE campaign_id = %s", (campaign_id,))
        with self._pg.lock:
            cur = self._pg.connection().execute(f"SELECT {DECISION_COLUMNS} FROM decisions{where} ORDER BY seq", params)
            df = _frame(cur, DECISION_COLUMNS)
        df = _vectors(df, (("eligible", "<i8"), ("context", "<f8"), ("probabilities", "<f8")))
        df["decided_at"] = pd.to_datetime(df["decided_at"].astype("int64"), unit="us", utc=True)
        return df

    # rewards -----------------------------------------------------------------
    def add_rewards(self, decision_ids, rewards, occurred_at, event_ids, received_at: int,
                    validate: RewardCheck | None = None) -> list[str]:
        """Store rewards; per row 'accepted' | 'duplicate' | 'late' | 'unknown' | 'rejected' (as the SQLite log).

        The decisions named are read in one query; the rewards go in with `ON CONFLICT DO NOTHING`,
        so an event stored by another replica meanwhile reads as 'duplicate', never as an error.
        """
        dids = [str(d) for d in decision_ids]
        values = np.asarray(rewards, float).tolist()
        occurred = np.asarray(occurred_at, np.int64).tolist()
        eids = [str(e) for e in event_ids]
        statuses: list[str | None] = [None] * len(dids)
        with self._pg.lock:
            db = self._pg.connection()
            with db.transaction():
                found = {r[0]: r[1:] for r in db.execute(
                    "SELECT decision_id, decided_at, window_us, campaign_id FROM decisions WHERE decision_id = ANY(%s)",
                    (sorted(set(dids)),))}
                audit, stored, seen = [], [], set()
                for i, (did, r, occ, eid) in enumerate(zip(dids, values, occurred, eids)):
                    dec = found.get(did)
                    if dec is None:
                        audit.append((did, eid, r, occ, received_at, "unknown decision id"))
                        statuses[i] = "unknown"
                        continue
                    refused = validate(dec[2], r, occ, dec[0]) if validate is not None else None
                    if refused:
                        audit.append((did, eid, r, occ, received_at, refused))
                        statuses[i] = "rejected"
                        continue
                    if eid in seen:  # the same event twice in one batch: stored once
                        statuses[i] = "duplicate"
                        continue
                    seen.add(eid)
                    late = int(occ > dec[0] + dec[1])
                    stored.append((i, (eid, did, r, occ, received_at, late)))
                with db.cursor() as cur:
                    if audit:
                        cur.executemany(INSERT_AUDIT, audit)
                    inserted: set[str] = set()
                    if stored:
                        cur.execute(
                            "INSERT INTO rewards (event_id, decision_id, reward, occurred_at, received_at, late)"
                            " SELECT * FROM unnest(%s::text[], %s::text[], %s::float8[], %s::int8[], %s::int8[], %s::int4[])"
                            " ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
                            [list(col) for col in zip(*(row for _, row in stored))])
                        inserted = {r[0] for r in cur.fetchall()}
        for i, row in stored:
            statuses[i] = ("late" if row[5] else "accepted") if row[0] in inserted else "duplicate"
        return statuses  # type: ignore[return-value]

    def audit(self) -> pd.DataFrame:
        cols = "id, decision_id, event_id, reward, occurred_at, received_at, reason"
        with self._pg.lock:
            return _frame(self._pg.connection().execute(f"SELECT {cols} FROM reward_audit ORDER BY id"), cols)

    def rewards(self) -> pd.DataFrame:
        cols = "event_id, decision_id, reward, occurred_at, received_at, late"
        with self._pg.lock:
            return _frame(self._pg.connection().execute(f"SELECT {cols} FROM rewards"), cols)

    def joined(self, campaign_id: str, after: int, upto: int, aggregation: str = "first",
               default_reward: float = 0.0, reward_range: tuple[float, float] | None = None,
               learn_from: str = "all") -> pd.DataFrame:
        """Decisions with after < decided_at <= upto joined with their in-window rewards (as the SQLite log)."""
        sql, params = joined_query("%s", campaign_id, after, upto, aggregation, default_reward, reward_range,
                                   learn_from)
        with self._pg.lock:
            df = _frame(self._pg.connection().execute(sql, params), JOINED_COLUMNS)
        df = _vectors(df, (("context", "<f8"), ("eligible", "<i8")))
        return df.astype({"decided_at": "int64", "variant": "int64", "propensity": "float64",
                          "policy_version": "int64", "reward": "float64", "mailed": "int64"})

    # sent marks --------------------------------------------------------------
    def mark_sent(self, decision_ids: Sequence[str], sent_at: int | Sequence[int]) -> SentMarks:
        """Record that these decisions were mailed (as the SQLite log): one INSERT ... SELECT over the logged
        ones, `ON CONFLICT DO NOTHING` (idempotent, also when two replicas mark the same id at once)."""
        pairs = sent_pairs(decision_ids, sent_at)
        if not pairs:
            return SentMarks(0, 0, [])
        ids, times = [d for d, _ in pairs], [t for _, t in pairs]
        with self._pg.lock:
            db = self._pg.connection()
            with db.transaction():
                known = {r[0] for r in db.execute(
                    "SELECT decision_id FROM decisions WHERE decision_id = ANY(%s)", (ids,))}
                marked = db.execute(
                    "INSERT INTO sent_marks (seq, sent_at) SELECT d.seq, p.t FROM unnest(%s::text[], %s::int8[])"
                    " AS p(id, t) JOIN decisions d ON d.decision_id = p.id ON CONFLICT (seq) DO NOTHING",
                    (ids, times)).rowcount
        return SentMarks(marked, len(known) - marked, [d for d in ids if d not in known])

    def sent(self) -> pd.DataFrame:
        """Every sent mark: [decision_id, sent_at (epoch us)]."""
        with self._pg.lock:
            df = _frame(self._pg.connection().execute(
                "SELECT d.decision_id, s.sent_at FROM sent_marks s JOIN decisions d ON d.seq = s.seq"
                " ORDER BY d.decision_id COLLATE \"C\""), "decision_id, sent_at")
        return df.astype({"sent_at": "int64"})

    # privacy -----------------------------------------------------------------
    def erase_contact(self, contact_ids: Sequence[int]) -> dict[str, int]:
        """Delete the contacts' decisions, their rewards, reward_audit rows and sent marks in one transaction; counts
        per table (idempotent: a second call deletes nothing). A plain VACUUM then frees the rows' space for
        reuse (VACUUM FULL, which rewrites the tables, would lock out the replicas)."""
        ids = [int(c) for c in contact_ids]
        with self._pg.lock:
            db = self._pg.connection()
            with db.transaction():
                mine = "SELECT decision_id FROM decisions WHERE contact_id = ANY(%s)"
                rewards = db.execute(f"DELETE FROM rewards WHERE decision_id IN ({mine})", (ids,)).rowcount
                audit = db.execute(f"DELETE FROM reward_audit WHERE decision_id IN ({mine})", (ids,)).rowcount
                sent = db.execute("DELETE FROM sent_marks WHERE seq IN (SELECT seq FROM decisions WHERE contact_id = ANY(%s))",
                                  (ids,)).rowcount
                decisions = db.execute("DELETE FROM decisions WHERE contact_id = ANY(%s)", (ids,)).rowcount
            if decisions or rewards or audit or sent:
                db.execute("VACUUM rewards, reward_audit, sent_marks, decisions")
        return {"decisions": decisions, "rewards": rewards, "reward_audit": audit, "sent_marks": sent}
