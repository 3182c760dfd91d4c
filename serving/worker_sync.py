"""Keep every worker of one `bentoml serve` on the same models and allocator snapshot.

BentoML runs N worker processes on one listening socket; an HTTP request (such as
`/reload`) reaches only one of them. The workers of a server therefore share a small
directory, `<data dir>/serve/<server pid>/` (the `bentoml serve` process is every
worker's parent):

- `generation`: a counter the worker that served `/reload` bumps once it has loaded its
  new state (read-increment-write under a file lock, written to a temp file and
  `os.replace`d, so readers never see half a file);
- `worker-<index>.json`: what each worker serves (generation, model versions, policy
  version, pid), rewritten after every load, so `/reload` can report (and wait for) the
  other workers and `serving.runner` can wait until all of them have started.

A worker notices a new generation with one `os.stat` every `POLL_S` (in an asyncio
task, not per request), loads its own new state in a thread and swaps it in on the
event loop (`serving.service`).
"""
from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

POLL_S = 0.25


def server_dir(data_dir: str | os.PathLike, server_pid: int) -> Path:
    return Path(data_dir) / "serve" / str(server_pid)


def _write_json(path: Path, payload: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload))
    os.replace(tmp, path)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def worker_statuses(directory: Path) -> list[dict]:
    """The status each worker of the server last published, by worker index."""
    out = [s for p in sorted(directory.glob("worker-*.json")) if (s := _read_json(p)) is not None]
    return sorted(out, key=lambda s: s.get("worker", 0))


@dataclass
class GenerationFile:
    """The reload counter of one server's workers, checked cheaply by stat."""

    directory: Path
    _stamp: tuple[int, int] | None = None

    @property
    def path(self) -> Path:
        return self.directory / "generation"

    def read(self) -> int:
        data = _read_json(self.path)
        return int(data["generation"]) if data else 0

    def bump(self, by: int | str) -> int:
        """Add one to the counter (atomic across processes) and return the new value."""
        import fcntl

        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / "generation.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            generation = self.read() + 1
            _write_json(self.path, {"generation": generation, "by": by,
                                    "at": datetime.now(timezone.utc).isoformat()})
        return generation

    def changed(self) -> bool:
        """True when the file was replaced since the last call (one `os.stat`, no read)."""
        try:
            st = os.stat(self.path)
            stamp = (st.st_ino, st.st_mtime_ns)
        except FileNotFoundError:
            stamp = None
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        return stamp is not None


class WorkerSync:
    """One worker's side: its index, the shared generation and its own status file."""

    def __init__(self, data_dir: str | os.PathLike, workers: int, server_pid: int | None = None,
                 worker: int | None = None) -> None:
        self.directory = server_dir(data_dir, server_pid or os.getppid())
        self.directory.mkdir(parents=True, exist_ok=True)
        self.workers = workers
        self.worker = worker if worker is not None else _worker_index()
        self.generation_file = GenerationFile(self.directory)
        self.generation_file.changed()  # remember the current stamp
        self.generation = self.generation_file.read()  # what this worker's state is at least as new as

    @property
    def status_path(self) -> Path:
        return self.directory / f"worker-{self.worker}.json"

    def publish(self, state, generation: int, error: str | None = None) -> None:
        """Record what this worker serves now (generation, model versions, policy version)."""
        self.generation = generation
        _write_json(self.status_path, {
            "worker": self.worker, "pid": os.getpid(), "generation": generation,
            "loaded": state is not None, "error": error,
            "model_versions": state.model_versions if state is not None else {},
            "policy_version": state.allocator.policy_version if state is not None else None,
            "at": datetime.now(timezone.utc).isoformat(),
        })

    def signal(self) -> int:
        """Tell the other workers to reload; returns the new generation."""
        return self.generation_file.bump(by=self.worker)

    def pending(self) -> int | None:
        """The newer generation to load, if another worker signalled one (cheap when nothing changed)."""
        if not self.generation_file.changed():
            return None
        generation = self.generation_file.read()
        return generation if generation > self.generation else None

    def statuses(self) -> list[dict]:
        return worker_statuses(self.directory)

    def others_at(self, generation: int) -> list[dict]:
        """Statuses of every worker, once all `workers` of them report `generation` or newer; else []."""
        statuses = self.statuses()
        done = [s for s in statuses if s.get("generation", 0) >= generation and s.get("loaded")]
        return statuses if len(done) >= self.workers else []

    def close(self) -> None:
        """Remove this worker's status; the last worker out removes the directory."""
        with contextlib.suppress(OSError):
            self.status_path.unlink()
        if not any(self.directory.glob("worker-*.json")):
            for name in ("generation", "generation.lock"):
                with contextlib.suppress(OSError):
                    (self.directory / name).unlink()
            with contextlib.suppress(OSError):
                self.directory.rmdir()


def _worker_index() -> int:
    """BentoML's 1-based worker id (`--worker-id`), or the pid outside a BentoML worker."""
    try:
        from bentoml._internal.context import server_context

        if server_context.worker_index is not None:
            return int(server_context.worker_index)
    except ImportError:
        pass
    return os.getpid()


def wait_for_workers(data_dir: str | os.PathLike, server_pid: int, workers: int, timeout: float,
                     alive=lambda: True) -> list[dict]:
    """Block until `workers` workers of the server published a loaded state (used by `serving.runner`)."""
    directory = server_dir(data_dir, server_pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        statuses = worker_statuses(directory)
        failed = [s for s in statuses if not s.get("loaded")]
        if failed:
            raise RuntimeError(f"worker {failed[0]['worker']} did not load its state: {failed[0].get('error')}")
        if len(statuses) >= workers:
            return statuses
        time.sleep(0.2)
    raise TimeoutError(f"{workers} workers not loaded after {timeout:.0f} s: "
                       f"{worker_statuses(directory)}")
