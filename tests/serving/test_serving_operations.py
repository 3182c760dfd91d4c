"""Operations around the service: the demo loop waits for every worker after a reload; the contact-table switch."""
from __future__ import annotations

import contextlib
import json
import threading
import time
from types import SimpleNamespace

import pytest


def _publish(directory, worker: int, generation: int) -> None:
    (directory / f"worker-{worker}.json").write_text(json.dumps({"worker": worker, "generation": generation,
                                                                 "loaded": True}))


def test_waits_for_every_worker_then_returns(tmp_path, monkeypatch):
    from serving.demo_loop import _wait_for_generation
    from serving.worker_sync import server_dir

    monkeypatch.setenv("INBOX_SERVE_WORKERS", "2")
    settings, svc = SimpleNamespace(data_dir=tmp_path), SimpleNamespace(process=SimpleNamespace(pid=4242))
    directory = server_dir(tmp_path, 4242)
    directory.mkdir(parents=True)
    _publish(directory, 1, 3)
    _publish(directory, 2, 2)
    late = threading.Timer(0.8, _publish, (directory, 2, 3))
    late.start()
    started = time.monotonic()
    _wait_for_generation(settings, svc, 3, timeout=10)
    assert time.monotonic() - started >= 0.7  # returned only once worker 2 caught up
    late.join()
    with pytest.raises(TimeoutError, match="generation 4"):
        _wait_for_generation(settings, svc, 4, timeout=0.6)


# --- processes, metrics directories, storage faults (issue 13) ------------------------------------------

def _descendants(pid: int) -> set[int]:
    """Every live descendant of `pid` (Linux /proc)."""
    import os

    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry))
    out, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.add(child)
            todo.append(child)
    return out


def _running(pid: int) -> bool:
    """Alive and not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.server
@pytest.mark.slow
@pytest.mark.parametrize("signum", ["SIGTERM", "SIGINT"])
def test_inbox_serve_stops_every_process_on_a_signal_and_spares_the_other_servers_metrics(
        signum, service, client, serving_world, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from serving.runner import PROJECT_ROOT, free_port, settings_env, wait_ready

    client.post("/score", json={"contact_ids": [1]})
    port, log = free_port(), tmp_path / "serve.log"
    env = {**os.environ, **settings_env(serving_world), "INBOX_SERVE_WORKERS": "1"}
    with open(log, "wb") as out:
        inbox = subprocess.Popen([str(Path(sys.executable).with_name("inbox")), "serve", "--port", str(port)],
                                 env=env, cwd=PROJECT_ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_ready(f"http://127.0.0.1:{port}", inbox, 240, log)
        children = _descendants(inbox.pid)
        assert len(children) >= 2, children  # bentoml serve and its worker(s)
        # the second server's start did not clear the first one's metrics (each has its own directory)
        assert 'bentoml_service_request_total{endpoint="/score"' in client.get("/metrics").text
        inbox.send_signal(getattr(signal, signum))
        assert inbox.wait(30) == 128 + getattr(signal, signum)
        deadline = time.monotonic() + 15
        while any(_running(p) for p in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [p for p in children if _running(p)], log.read_text(errors="replace")[-2000:]
    finally:
        if inbox.poll() is None:
            inbox.kill()
        for p in _descendants(inbox.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)


@pytest.fixture()
def small_disk(serving_world, tmp_path):
    """A copy of the serving world whose decision log lives on its own 16 MiB tmpfs (root only)."""
    import shutil
    import sqlite3
    import subprocess

    from inbox.settings import Settings

    data = tmp_path / "data"
    shutil.copytree(serving_world.data_dir, data, ignore=shutil.ignore_patterns("logs", "*.lock"))
    bandit = data / "bandit"
    with sqlite3.connect(bandit / "decisions.db") as db:  # the WAL folded in: new writes must grow files
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    saved = tmp_path / "bandit-saved"
    shutil.move(bandit, saved)
    bandit.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(bandit)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        shutil.copytree(saved, bandit, dirs_exist_ok=True)
        yield Settings(data_dir=data, tracking_uri=serving_world.tracking_uri,
                       artifact_root=serving_world.artifact_root)
    finally:
        subprocess.run(["umount", "-l", str(bandit)], check=False)


def _fill(directory) -> "Path":
    filler = directory / "filler"
    with open(filler, "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 2**20)
                fh.flush()
        except OSError:
            pass
    return filler


@pytest.mark.server
@pytest.mark.slow
def test_a_full_disk_gives_503_with_retry_after_and_readiness_recovers(small_disk, api_key):
    import httpx

    from experiments.bandit import Allocator
    from serving.runner import start_service
    from serving_provider_samples import CAMPAIGN
    from simulation.eventlog import read_table, table_path

    contacts = read_table("contacts", table_path(small_disk.events_dir, "contacts"))["contact_id"].tolist()[:500]
    with start_service(small_disk, timeout=240, env={"INBOX_SERVE_WORKERS": "1"}) as svc, \
            httpx.Client(base_url=svc.url, timeout=60, headers={"Authorization": f"Bearer {api_key}"}) as http:
        ok = http.post("/decide", json={"campaign_id": CAMPAIGN, "contact_ids": contacts[:2]})
        assert ok.status_code == 200 and ok.json()["decisions"], ok.text
        filler = _fill(small_disk.bandit_dir)
        answers = [http.post("/decide", json={"campaign_id": CAMPAIGN, "contact_ids": contacts}) for _ in range(5)]
        assert {r.status_code for r in answers} == {503}, [(r.status_code, r.text[:200]) for r in answers]
        assert all(int(r.headers["retry-after"]) > 0 and r.json()["field"] == "service" for r in answers)
        time.sleep(1.1)
        assert http.get("/readyz").status_code == 503  # not ready while the log cannot be written
        filler.unlink()
        deadline = time.monotonic() + 10
        while http.get("/readyz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert http.get("/readyz").status_code == 200
        again = http.post("/decide", json={"campaign_id": CAMPAIGN, "contact_ids": contacts})
        assert again.status_code == 200, again.text[:300]
        log_text = svc.log_path.read_text(errors="replace")
    assert "Traceback" not in log_text and "storage fault" in log_text
    alloc = Allocator.open(small_disk.bandit_dir)
    try:  # the refused requests logged nothing; the two answered ones everything they returned
        logged = set(alloc.log.decisions(CAMPAIGN)["decision_id"])
    finally:
        alloc.close()
    answered = {d["decision_id"] for r in (ok, again) for d in r.json()["decisions"]}
    assert answered <= logged
