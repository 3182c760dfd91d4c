"""WAL checkpoints off the request path.

SQLite's automatic checkpoint runs inside the commit that pushes the WAL past
1,000 pages: with `synchronous=NORMAL` that commit also syncs the WAL and the
database file. One 1-contact decision writes about 3.5 WAL pages, so every
few-hundredth `decide` paid a checkpoint (an fsync of both files) while holding
the log's lock: a latency spike for that request and every one queued behind it.

`WalCheckpointer` runs the same checkpoint (PASSIVE: it never blocks writers or
readers) from a daemon thread on its own connection, at the same cadence
(about `pages` WAL pages written by this process, estimated per commit) or
`interval` seconds after a write, whichever comes first.

A PASSIVE checkpoint copies the frames that existed when it started; commits
made meanwhile keep the WAL from restarting at its beginning. Under
uninterrupted writing the WAL would then only grow, so once it holds more than
`max_frames` the writer runs one checkpoint itself, under its own lock (the
old behaviour, now about once per `max_frames / pages` checkpoints instead of
every one).

Durability is unchanged: a commit is in the WAL (the OS page cache) when it
returns, so it survives a process crash either way; against power loss the WAL
is synced at each checkpoint, at about the same cadence as before and now also
at most `interval` after any write (SQLite alone never syncs an idle WAL).
Several processes may each run one: a checkpoint finding another in progress
returns at once.
"""
from __future__ import annotations

import sqlite3
import threading
from pathlib import Path


class WalCheckpointer:
    def __init__(self, path: str | Path, pages: int = 1000, interval: float = 5.0, max_frames: int = 4000):
        self.path = Path(path)
        self.pages = pages
        self.interval = interval
        self.max_frames = max_frames
        self._written = 0.0        # estimated WAL pages written since the last checkpoint
        self._wal_frames = 0       # frames in the WAL after the last background checkpoint
        self._due = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def wrote(self, db: sqlite3.Connection, pages: float) -> None:
        """After a commit on `db`, with the writer's lock still held: count the pages; run the
        rare inline checkpoint when background ones could not let the WAL restart."""
        if self._wal_frames > self.max_frames:
            self._wal_frames = 0
            try:
                db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.OperationalError:  # another checkpoint is running: the next commit retries
                self._wal_frames = self.max_frames + 1
        self._written += pages
        if self._written >= self.pages:
            self._due.set()
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
            while not self._stop.is_set():
                self._due.wait(self.interval)
                self._due.clear()
                self._checkpoint(db)
            self._checkpoint(db)
        finally:
            db.close()

    def _checkpoint(self, db: sqlite3.Connection) -> None:
        if self._written <= 0:
            return
        self._written = 0.0
        try:
            _, frames, _ = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.OperationalError:  # locked by another process: the next round (or its checkpointer) does it
            self._written = float(self.pages)
            return
        self._wal_frames = frames

    def close(self) -> None:
        """Stop the thread after a last checkpoint."""
        thread = self._thread
        if thread is not None and thread.is_alive():
            self._stop.set()
            self._due.set()
            thread.join()
