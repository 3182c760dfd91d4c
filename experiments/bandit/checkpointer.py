"""WAL checkpoints off the request path.

SQLite's automatic checkpoint runs inside the commit that pushes the WAL past
1,000 pages: with `synchronous=NORMAL` that commit also syncs the WAL and the
database file. One 1-contact decision writes about 3.5 WAL pages, so every
~270th `decide` paid a checkpoint (here 6-17 ms wall, 1.4 ms CPU) while holding
the log's lock, a latency spike for that request and every one queued behind it.

`WalCheckpointer` runs the same checkpoint (PASSIVE: never blocks writers or
readers) from a daemon thread on its own connection, at most once per
`interval` seconds and only after a write. Durability is unchanged: a commit is
in the WAL (the OS page cache) when it returns, so it survives a process crash
either way; against power loss the WAL is synced at each checkpoint, now at
least once per `interval` after a write instead of only after 1,000 pages.
Several processes may each run one: a checkpoint finding another in progress
returns at once.
"""
from __future__ import annotations

import sqlite3
import threading
from pathlib import Path


class WalCheckpointer:
    def __init__(self, path: str | Path, interval: float = 1.0):
        self.path = Path(path)
        self.interval = interval
        self._dirty = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def wrote(self) -> None:
        """Called after a commit: a checkpoint is due within `interval`."""
        self._dirty = True
        thread = self._thread
        if thread is None or not thread.is_alive():  # first write (or a forked child)
            self._start()

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=f"wal-checkpoint:{self.path.name}", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        db = sqlite3.connect(self.path, isolation_level=None, timeout=0)
        try:
            db.execute("PRAGMA synchronous=NORMAL")  # the checkpoint syncs the WAL, then the database file
            while not self._stop.wait(self.interval):
                self.checkpoint(db)
            self.checkpoint(db)
        finally:
            db.close()

    def checkpoint(self, db: sqlite3.Connection) -> None:
        if not self._dirty:
            return
        self._dirty = False
        try:
            db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error:  # busy or locked by another process: the next round (or its checkpointer) does it
            self._dirty = True

    def close(self) -> None:
        """Stop the thread after a last checkpoint."""
        thread = self._thread
        if thread is not None and thread.is_alive():
            self._stop.set()
            thread.join()
