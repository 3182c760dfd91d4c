"""Where an installation keeps its decision log and policy snapshots: one setting, `INBOX_DECISION_LOG`.

Unset (the embedded default): SQLite `decisions.db` and `.npz` snapshots under the bandit directory.
A `postgresql://user@host:port/db` URL: `PostgresDecisionLog` and `PostgresSnapshotStore` in that
database, shared by every service replica and the learner (the scale profile, `compose.yaml`).
"""
from __future__ import annotations

import os
from pathlib import Path

DECISION_LOG_ENV = "INBOX_DECISION_LOG"


def decision_log_url(url: str | None = None) -> str | None:
    """The configured PostgreSQL URL, or None for the embedded SQLite log; ValueError for anything else."""
    url = url if url is not None else (os.environ.get(DECISION_LOG_ENV) or None)
    if url is None:
        return None
    if not url.startswith(("postgresql://", "postgres://")):
        raise ValueError(f"{DECISION_LOG_ENV}: expected a postgresql:// URL (or unset for SQLite), got {url!r}")
    return url


def open_log_and_snapshots(bandit_dir: str | Path, url: str | None = None):
    """(decision log, snapshot store) for `bandit_dir`, on PostgreSQL when `url` (or the setting) names one."""
    url = decision_log_url(url)
    if url is not None:
        from .decision_log_postgres import PostgresDecisionLog

        Path(bandit_dir).mkdir(parents=True, exist_ok=True)  # still the process's local scratch (readiness probes)
        from .snapshots_postgres import PostgresSnapshotStore

        log = PostgresDecisionLog(url)
        return log, PostgresSnapshotStore(log.connection)  # one connection per process for both
    from .decision_log import SQLiteDecisionLog
    from .snapshots import SnapshotStore

    bandit_dir = Path(bandit_dir)
    return SQLiteDecisionLog(bandit_dir / "decisions.db"), SnapshotStore(bandit_dir / "snapshots")
