"""Readiness follows a PostgreSQL decision log: it fails while the database cannot be reached and
recovers by itself (serving.faults.FaultGate with the log's ping as its check)."""
import psycopg
import pytest

from serving import faults
from serving.faults import FaultGate

pytestmark = pytest.mark.server


def test_readiness_fails_while_the_database_is_unreachable_and_recovers(tmp_path, pg_url, monkeypatch):
    from experiments.bandit.decision_log_postgres import PostgresDecisionLog

    monkeypatch.setattr(faults, "PROBE_INTERVAL_S", 0.0)
    log = PostgresDecisionLog(pg_url)
    gate = FaultGate(tmp_path, check=log.ping)
    try:
        assert gate.ready()
        with psycopg.connect(pg_url, autocommit=True) as admin:  # cut the log's connection from the server side
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                          " WHERE datname = current_database() AND pid <> pg_backend_pid()")
        assert not gate.ready() and "terminating connection" in gate.fault
        assert gate.ready() and gate.fault is None  # the log reconnects; ready again without a restart
    finally:
        log.close()


def test_a_check_that_raises_a_storage_error_fails_readiness_and_a_bug_does_not_hide(tmp_path, monkeypatch):
    monkeypatch.setattr(faults, "PROBE_INTERVAL_S", 0.0)
    state = {"down": True}

    def check():
        if state["down"]:
            raise psycopg.OperationalError("connection refused")

    gate = FaultGate(tmp_path, check=check)
    assert not gate.ready()
    state["down"] = False
    assert gate.ready()
    gate.check = lambda: 1 / 0  # not a storage error: surfaces instead of reading as "not ready"
    with pytest.raises(ZeroDivisionError):
        gate.ready()
