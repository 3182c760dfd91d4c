"""Start the scale profile's servers on loopback from the machine's own binaries (tests, benchmarks).

`compose.yaml` runs Redis, PostgreSQL and the MLflow tracking server as containers; where containers
cannot run (CI, this machine) the same servers start from the Debian packages (`redis-server`,
`postgresql`) and the venv's `mlflow`, each on a free 127.0.0.1 port with its own data directory,
and stop when the context manager exits. PostgreSQL refuses to run as root, so under root its
processes run as the `postgres` user (`runuser`), which owns the data directory.

    with redis_server(tmp) as url, postgres_server() as pg:
        pg.create_database("decisions")  # -> postgresql://postgres@127.0.0.1:PORT/decisions
"""
from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 60.0, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log is not None and log.exists() else ""
            raise RuntimeError(f"{what} exited with code {proc.returncode} before listening on port {port}\n{tail}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def binary(name: str) -> str:
    """Path of a server binary: on PATH, else Debian's versioned PostgreSQL directory."""
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if found is None:
        raise FileNotFoundError(f"{name}: not installed (apt-get install -y redis-server postgresql)")
    return found


@contextlib.contextmanager
def redis_server(workdir: str | os.PathLike, port: int | None = None):
    """A redis-server on 127.0.0.1 without persistence; yields its URL `redis://127.0.0.1:PORT/0`."""
    port = port or free_port()
    directory = Path(workdir) / f"redis-{port}"
    directory.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([binary("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(directory), "--protected-mode", "yes"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_port(port, proc, "redis-server")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        _stop(proc)


@dataclass
class Postgres:
    host: str
    port: int
    user: str

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create database `name` (if absent); its URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
                conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@contextlib.contextmanager
def postgres_server(port: int | None = None):
    """A throwaway PostgreSQL cluster on 127.0.0.1 (trust authentication on loopback); yields `Postgres`.

    Its data directory is a fresh one under the system temp directory (owned by the `postgres` user
    under root: a test's own tmp directory is private to root), removed when the server stops.
    """
    import tempfile

    port = port or free_port()
    directory = Path(tempfile.mkdtemp(prefix=f"inbox-postgres-{port}-"))
    user = "postgres" if os.geteuid() == 0 else os.environ.get("USER", "postgres")
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    log = directory / "postgres.log"
    try:
        subprocess.run(_as_postgres([binary("initdb"), "-D", str(directory / "data"), "-U", user, "-A", "trust",
                                     "-E", "UTF8", "--no-instructions"]),
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        proc = subprocess.Popen(_as_postgres([binary("postgres"), "-D", str(directory / "data"), "-p", str(port),
                                              "-h", "127.0.0.1", "-k", str(directory), "-c", "max_connections=200",
                                              "-c", "shared_buffers=128MB"]),
                                stdout=subprocess.DEVNULL, stderr=open(log, "ab"))
        try:
            _wait_port(port, proc, "postgres", log=log)
            pg = Postgres("127.0.0.1", port, user)
            _wait_ready(pg)
            yield pg
        finally:
            _stop_postgres(proc, directory / "data")
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _stop_postgres(proc: subprocess.Popen, data: Path) -> None:
    """Fast shutdown (SIGINT to the postmaster itself: `runuser` does not pass it on), then wait."""
    try:
        pid = int((data / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGINT)
    except (OSError, ValueError, IndexError):
        pass
    _stop(proc, signal.SIGTERM)


def _wait_ready(pg: Postgres, timeout: float = 30.0) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(pg.url(), connect_timeout=2):
                return
        except psycopg.OperationalError:  # "the database system is starting up"
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@contextlib.contextmanager
def mlflow_server(backend_store_uri: str, artifacts_destination: str | os.PathLike, port: int | None = None):
    """`mlflow server` with a PostgreSQL backend store and served artifacts; yields its http URL."""
    port = port or free_port()
    Path(artifacts_destination).mkdir(parents=True, exist_ok=True)
    if backend_store_uri.startswith("postgresql://"):  # SQLAlchemy's psycopg 3 dialect
        backend_store_uri = "postgresql+psycopg://" + backend_store_uri[len("postgresql://"):]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                             "--backend-store-uri", backend_store_uri,
                             "--artifacts-destination", str(artifacts_destination), "--workers", "1"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_port(port, proc, "mlflow server", timeout=120)
        yield f"http://127.0.0.1:{port}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextlib.contextmanager
def service_replicas(settings, n: int = 2, timeout: float = 300.0):
    """`n` `bentoml serve` replicas of the service on free loopback ports, started at the same time,
    sharing whatever stores the environment configures; yields their `ServiceHandle`s."""
    from concurrent.futures import ThreadPoolExecutor

    from serving.runner import start_service

    managers = [start_service(settings, timeout=timeout) for _ in range(n)]
    with contextlib.ExitStack() as stack:
        with ThreadPoolExecutor(n) as pool:
            started = [pool.submit(m.__enter__) for m in managers]
        handles, failure = [], None
        for manager, future in zip(managers, started):
            try:
                handles.append(future.result())
                stack.push(manager.__exit__)
            except BaseException as exc:  # noqa: BLE001 - the others are stopped, then it is raised
                failure = failure or exc
        if failure is not None:
            raise failure
        yield handles


NGINX_TEMPLATE = Path(__file__).resolve().parent.parent / "deploy" / "nginx" / "default.conf.template"


@contextlib.contextmanager
def nginx_balancer(upstreams: list[str], workdir: str | os.PathLike, port: int | None = None):
    """nginx on 127.0.0.1 in front of `upstreams` ("host:port"), from compose's own template
    (`deploy/nginx/default.conf.template`); yields its URL."""
    import string
    import tempfile

    if len(upstreams) != 2:
        raise ValueError(f"upstreams: the template balances two replicas, got {len(upstreams)}")
    port = port or free_port()
    prefix = Path(tempfile.mkdtemp(prefix="inbox-nginx-", dir=workdir))
    site = string.Template(NGINX_TEMPLATE.read_text()).safe_substitute(
        INBOX_REPLICA_1=upstreams[0], INBOX_REPLICA_2=upstreams[1], INBOX_LB_LISTEN=f"127.0.0.1:{port}")
    (prefix / "site.conf").write_text(site)
    (prefix / "nginx.conf").write_text(
        f"worker_processes 1;\ndaemon off;\npid {prefix}/nginx.pid;\nerror_log {prefix}/error.log warn;\n"
        "events { worker_connections 1024; }\n"
        f"http {{\n  client_body_temp_path {prefix}/body;\n  proxy_temp_path {prefix}/proxy;\n"
        f"  fastcgi_temp_path {prefix}/fcgi;\n  uwsgi_temp_path {prefix}/uwsgi;\n  scgi_temp_path {prefix}/scgi;\n"
        f"  include {prefix}/site.conf;\n}}\n")
    proc = subprocess.Popen([binary("nginx"), "-p", str(prefix), "-c", str(prefix / "nginx.conf")],
                            stdout=subprocess.DEVNULL, stderr=open(prefix / "stderr.log", "ab"))
    try:
        _wait_port(port, proc, "nginx", log=prefix / "stderr.log")
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(proc, signal.SIGQUIT)
        shutil.rmtree(prefix, ignore_errors=True)
