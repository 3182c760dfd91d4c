"""Tokens already accepted, shared by every worker: a replayed Mailgun token is refused.

A Mailgun signature covers `timestamp + token`, not the body, so a captured
signature could carry any forged event until its timestamp goes stale. Each
token is therefore claimed once, in one SQLite table (WAL) under the data
directory, so all workers and restarts see the same claims. A row is kept
until its request could no longer pass the freshness check anyway
(`expires_at`), then purged.
"""
from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path


class ReplayCache:
    """`claim(token, expires_at)` is True the first time a token is seen (until it expires)."""

    def __init__(self, path: str | Path, scope: str = "mailgun"):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.scope = scope
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS tokens (scope TEXT NOT NULL, token TEXT NOT NULL, "
                         "expires_at REAL NOT NULL, PRIMARY KEY (scope, token))")
        self._db.execute("CREATE INDEX IF NOT EXISTS tokens_by_expiry ON tokens (expires_at)")

    def claim(self, token: str, expires_at: float, now: float | None = None) -> bool:
        """Record `token`; False if it is already recorded and not expired (one transaction)."""
        now = time.time() if now is None else now
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("DELETE FROM tokens WHERE expires_at < ?", (now,))
                cur = self._db.execute("INSERT OR IGNORE INTO tokens (scope, token, expires_at) VALUES (?, ?, ?)",
                                       (self.scope, token, float(expires_at)))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return cur.rowcount == 1

    def release(self, token: str) -> None:
        """Forget a claim (the request failed on our side, so the provider's retry must pass)."""
        with self._lock:
            self._db.execute("DELETE FROM tokens WHERE scope = ? AND token = ?", (self.scope, token))

    def close(self) -> None:
        self._db.close()
