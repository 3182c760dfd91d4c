"""Start and stop `bentoml serve` as a child process (used by `inbox serve`,
`inbox demo`, the tests and the benchmark).

    with start_service(settings, port=None) as svc:   # free loopback port
        httpx.post(f"{svc.url}/decide", json=...)

The child gets the settings as environment variables (INBOX_DATA_DIR,
MLFLOW_TRACKING_URI, INBOX_ARTIFACT_ROOT) and a private BENTOML_HOME (so its
Prometheus multiprocess directory, which `bentoml serve` empties at start, is
its own: two servers on one machine keep their metrics). It runs in its own
process group and is stopped with SIGTERM (then SIGKILL) of that group only,
waiting until no process of the group (server, arbiter, workers) is left.
`serve_foreground` (`inbox serve`) forwards SIGTERM/SIGINT to that group.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SERVICE = "serving.service:InboxService"
NOT_LOADED = "serving state not loaded"  # logged by the service when start-up loading failed


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def settings_env(settings) -> dict[str, str]:
    return {
        "INBOX_DATA_DIR": str(settings.data_dir),
        "MLFLOW_TRACKING_URI": settings.tracking_uri,
        "INBOX_ARTIFACT_ROOT": str(settings.artifact_root),
    }


def serve_command(target: str = SERVICE, host: str = "127.0.0.1", port: int = 3000,
                  working_dir: Path = PROJECT_ROOT) -> list[str]:
    bentoml = Path(sys.executable).with_name("bentoml")
    exe = [str(bentoml)] if bentoml.exists() else [sys.executable, "-m", "bentoml"]
    return [*exe, "serve", target, "--host", host, "--port", str(port), "--working-dir", str(working_dir)]


@dataclass
class ServiceHandle:
    url: str
    port: int
    process: subprocess.Popen
    log_path: Path

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def wait_ready(url: str, process: subprocess.Popen, timeout: float, log_path: Path) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"bentoml serve exited with code {process.returncode}:\n"
                               + log_path.read_text(errors="replace")[-3000:])
        try:
            r = httpx.get(f"{url}/readyz", timeout=2)
            if r.status_code == 200:
                return
            last = f"{r.status_code} {r.text.strip()[:200]}"
            if NOT_LOADED in log_path.read_text(errors="replace"):  # started, but will not become ready
                raise RuntimeError("service started without its models/features/allocator:\n"
                                   + log_path.read_text(errors="replace")[-3000:])
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        time.sleep(0.25)
    raise TimeoutError(f"service at {url} not ready after {timeout:.0f} s (last: {last}):\n"
                       + log_path.read_text(errors="replace")[-3000:])


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop(process: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM to the server's process group; SIGKILL to whatever of it is left after `grace` seconds."""
    pgid = process.pid
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    deadline = time.monotonic() + (grace if process.poll() is None else 2.0)
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if group_alive(pgid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(5)


@contextlib.contextmanager
def server_home():
    """A BENTOML_HOME of one server's own (removed when it stops): `bentoml serve` clears
    `<BENTOML_HOME>/prometheus_multiproc_dir` at start, which a shared home would clear for every server."""
    home = tempfile.mkdtemp(prefix="inbox-bentoml-")
    try:
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


def child_env(settings, home: str, env: dict[str, str] | None = None) -> dict[str, str]:
    out = {**os.environ, **settings_env(settings), **(env or {}), "BENTOML_HOME": home}
    out["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), out.get("PYTHONPATH")]))
    out.setdefault("BENTOML_DO_NOT_TRACK", "True")
    return out


class _Stop(Exception):
    pass


def _raise_stop(signum, _frame):
    raise _Stop(signum)


def serve_foreground(settings, host: str = "127.0.0.1", port: int = 3000, grace: float = 10.0) -> int:
    """`bentoml serve` in its own process group until it exits or this process gets SIGTERM/SIGINT,
    which stops the whole group (server and workers) before returning."""
    forwarded = (signal.SIGTERM, signal.SIGINT)
    previous = {s: signal.signal(s, _raise_stop) for s in forwarded}
    process = None
    try:
        with server_home() as home:
            try:
                process = subprocess.Popen(serve_command(host=host, port=port), cwd=PROJECT_ROOT,
                                           env=child_env(settings, home), start_new_session=True)
                return process.wait()
            except _Stop as exc:
                for s in forwarded:
                    signal.signal(s, signal.SIG_IGN)
                if process is not None:
                    stop(process, grace)
                return 128 + exc.args[0]
            finally:
                if process is not None:
                    stop(process, grace)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def start_service(settings, port: int | None = None, *, target: str = SERVICE, timeout: float = 120.0,
                  env: dict[str, str] | None = None, log_path: Path | None = None, require_ready: bool = True):
    """Run `bentoml serve` on 127.0.0.1 until the block exits; yields a `ServiceHandle` once every
    worker has loaded its state (`/readyz` answers from whichever worker gets the request)."""
    from serving.config import serve_workers
    from serving.worker_sync import wait_for_workers

    port = port or free_port()
    log_path = Path(log_path or Path(settings.data_dir) / "logs" / f"serve-{port}.log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{port}"
    with server_home() as home:
        environ = child_env(settings, home, env)
        with open(log_path, "ab") as log:
            process = subprocess.Popen(serve_command(target, port=port), cwd=PROJECT_ROOT, env=environ,
                                       stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            if require_ready:
                started = time.monotonic()
                wait_ready(url, process, timeout, log_path)
                if target == SERVICE:  # other targets (benchmarks) do not publish worker statuses
                    wait_for_workers(settings.data_dir, process.pid, serve_workers(environ),
                                     timeout - (time.monotonic() - started), alive=lambda: process.poll() is None)
            yield ServiceHandle(url, port, process, log_path)
        finally:
            stop(process)
