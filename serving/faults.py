"""Storage faults degrade to 503 + Retry-After with readiness failing, never to a 500 loop.

When an endpoint cannot read or write a store it needs (the decision log on a
full or read-only disk, a locked or vanished SQLite file, a PostgreSQL that is
down), the request answers 503 with `Retry-After` and the worker's `/readyz`
fails, so a load balancer stops sending it traffic. Readiness also probes the
decision log's directory (a small write, fsync and delete, at most once a
second): it fails while that directory takes no writes (a full disk is seen
before a request fails on it), or while the decision log's own `ping` fails (a
PostgreSQL log that is down), and recovers as soon as both pass; a request that
fails again trips the fault again. Only errors of the storage
layer count: a bug still surfaces as a 500.
"""
from __future__ import annotations

import logging
import os
import sqlite3
import time
from pathlib import Path

from starlette.responses import JSONResponse

logger = logging.getLogger("inbox.serving")
RETRY_AFTER_S = 5
PROBE_INTERVAL_S = 1.0
PROBE_BYTES = 64 * 1024


def storage_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [OSError, sqlite3.OperationalError]
    try:
        import psycopg

        errors.append(psycopg.OperationalError)
    except ImportError:
        pass
    return tuple(errors)


STORAGE_ERRORS = storage_errors()


def probe(directory: Path) -> str | None:
    """None if `directory` takes a small durable write, else why not."""
    path = Path(directory) / f".ready-probe-{os.getpid()}"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"\0" * PROBE_BYTES)
            os.fsync(fd)
        finally:
            os.close(fd)
            path.unlink(missing_ok=True)
    except OSError as exc:
        return f"{directory} cannot take writes ({type(exc).__name__}: {exc.strerror or exc})"
    return None


class FaultGate:
    """One worker's storage-fault state: `trip` on a failure, `ready` probes until the fault clears."""

    def __init__(self, directory: Path, retry_after: int = RETRY_AFTER_S, check=None):
        self.directory = Path(directory)
        self.retry_after = retry_after
        self.check = check  # optional callable raising a storage error when a remote store is down
        self.fault: str | None = None
        self._probed_at = 0.0

    def trip(self, what: str, exc: BaseException) -> JSONResponse:
        reason = f"{type(exc).__name__}: {exc}"
        if self.fault is None:
            logger.warning("%s failed on a storage fault (503 until it clears): %s", what, reason)
        self.fault, self._probed_at = reason, time.monotonic()
        return JSONResponse({"error": f"service: temporarily unavailable ({what} could not reach its store)",
                             "field": "service"}, status_code=503,
                            headers={"Retry-After": str(self.retry_after)})

    def ready(self) -> bool:
        """False while a fault lasts; probes the directory at most once per interval, so a full disk is
        noticed by a worker that has not failed a request yet, and a cleared fault by one that has."""
        now = time.monotonic()
        if now - self._probed_at < PROBE_INTERVAL_S:
            return self.fault is None
        self._probed_at = now
        failure = probe(self.directory) or self._check()
        if failure is None and self.fault is not None:
            logger.info("storage fault cleared (%s); ready again", self.fault)
        elif failure is not None and self.fault is None:
            logger.warning("storage fault (%s); not ready", failure)
        self.fault = None if failure is None else (self.fault or failure)
        return self.fault is None

    def _check(self) -> str | None:
        if self.check is None:
            return None
        try:
            self.check()
        except STORAGE_ERRORS as exc:
            return f"{type(exc).__name__}: {exc}"
        return None
