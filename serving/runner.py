"""Start and stop `bentoml serve` as a child process (used by `inbox serve`,
`inbox demo`, the tests and the benchmark).

    with start_service(settings, port=None) as svc:   # free loopback port
        httpx.post(f"{svc.url}/decide", json=...)

The child gets the settings as environment variables (INBOX_DATA_DIR,
MLFLOW_TRACKING_URI, INBOX_ARTIFACT_ROOT), runs in its own process group and
is stopped with SIGTERM (then SIGKILL) of that group only.
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
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


def stop(process: subprocess.Popen, grace: float = 10.0) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


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
    child_env = {**os.environ, **settings_env(settings), **(env or {})}
    child_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), child_env.get("PYTHONPATH")]))
    child_env.setdefault("BENTOML_DO_NOT_TRACK", "True")
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(serve_command(target, port=port), cwd=PROJECT_ROOT, env=child_env,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        if require_ready:
            started = time.monotonic()
            wait_ready(url, process, timeout, log_path)
            if target == SERVICE:  # other targets (benchmarks) do not publish worker statuses
                wait_for_workers(settings.data_dir, process.pid, serve_workers(child_env),
                                 timeout - (time.monotonic() - started), alive=lambda: process.poll() is None)
        yield ServiceHandle(url, port, process, log_path)
    finally:
        stop(process)
