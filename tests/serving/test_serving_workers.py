"""Several workers, one state: `/reload` (and a reload signalled by another worker) reaches every
worker of a real 2-worker `bentoml serve`, and no request fails meanwhile."""
from __future__ import annotations

import json
import threading
import time

import pytest

from serving_provider_samples import CAMPAIGN

pytestmark = [pytest.mark.server, pytest.mark.slow]

WORKERS = 2


@pytest.fixture(scope="module")
def two_workers(request, serving_world):
    """The session's service when it runs 2 workers (the default on 2+ cores), else one started with 2."""
    from serving.config import serve_workers
    from serving.runner import start_service

    if serve_workers() == WORKERS:
        yield request.getfixturevalue("service")
        return
    with start_service(serving_world, timeout=240, env={"INBOX_SERVE_WORKERS": str(WORKERS)}) as handle:
        yield handle


@pytest.fixture()
def auth(api_key) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


def statuses(settings, handle) -> list[dict]:
    from serving.worker_sync import server_dir, worker_statuses

    return worker_statuses(server_dir(settings.data_dir, handle.process.pid))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    import os

    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def known_contacts(settings, n):
    from simulation.eventlog import read_table, table_path

    return read_table("contacts", table_path(settings.events_dir, "contacts"))["contact_id"].head(n).tolist()


def new_champion_version(settings, name: str = "lead_scoring") -> str:
    """Register a new version of `name` (the current champion's model, as a retrained model would be
    registered) and point the `champion` alias at it, as promoting a challenger does."""
    import mlflow

    from models.registry import CHAMPION

    client = mlflow.MlflowClient(settings.tracking_uri, registry_uri=settings.tracking_uri)
    champion = client.get_model_version_by_alias(name, CHAMPION)
    version = str(client.create_model_version(name, champion.source, run_id=champion.run_id,
                                              tags=champion.tags).version)
    client.set_registered_model_alias(name, CHAMPION, version)
    return version


class Hammer:
    """Threads posting /score on a NEW connection per request (so requests spread over both workers),
    recording (sent at, status, lead-scoring version) for each."""

    def __init__(self, url: str, ids: list[int], headers: dict[str, str], threads: int = 3):
        self.url, self.ids, self.headers, self.records = url, ids, headers, []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def _run(self):
        import httpx

        while not self.stop.is_set():
            sent = time.monotonic()
            try:
                r = httpx.post(f"{self.url}/score", json={"contact_ids": self.ids, "reasons": False},
                               headers=self.headers, timeout=30)
                self.records.append((sent, r.status_code, r.json().get("model_version") if r.is_success else r.text))
            except httpx.HTTPError as exc:
                self.records.append((sent, type(exc).__name__, None))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join()


def test_every_worker_starts_loaded_and_reports_itself(two_workers, serving_world):
    workers = statuses(serving_world, two_workers)
    assert [w["worker"] for w in workers] == [1, 2]
    assert len({w["pid"] for w in workers}) == WORKERS
    assert all(w["loaded"] and w["error"] is None for w in workers)
    assert len({w["generation"] for w in workers}) == 1
    assert len({json.dumps(w["model_versions"], sort_keys=True) for w in workers}) == 1


def test_reload_reaches_every_worker_without_failing_a_request(two_workers, serving_world, auth):
    import httpx

    ids = known_contacts(serving_world, 5)
    old = httpx.post(f"{two_workers.url}/score", json={"contact_ids": ids}, headers=auth,
                     timeout=30).json()["model_version"]
    new = new_champion_version(serving_world)
    assert new != old

    pids = [w["pid"] for w in statuses(serving_world, two_workers)]
    with Hammer(two_workers.url, ids, auth) as hammer:
        time.sleep(1.0)
        r = httpx.post(f"{two_workers.url}/reload", json={}, headers=auth, timeout=60)
        reloaded_at = time.monotonic()
        cpu = [cpu_seconds(p) for p in pids]
        time.sleep(3.0)
        busy = [cpu_seconds(p) - c for p, c in zip(pids, cpu)]
    assert min(busy) > 0.1, busy  # both workers served requests after the reload
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["model_versions"]["lead_scoring"] == new
    assert out["all_workers_reloaded"] is True, out
    assert [(w["worker"], w["model_versions"]["lead_scoring"]) for w in out["workers"]] == [(1, new), (2, new)]
    assert all(w["generation"] >= out["generation"] >= 1 for w in out["workers"])

    records = hammer.records
    assert {status for _, status, _ in records} == {200}, [x for x in records if x[1] != 200][:5]
    before = [v for sent, _, v in records if sent < reloaded_at]
    after = [v for sent, _, v in records if sent >= reloaded_at]
    assert old in before and len(after) >= 10, (len(before), len(after))
    assert set(after) == {new}, after  # /reload answered once every worker serves the new champion


def test_a_reload_signalled_by_another_worker_is_followed_by_every_worker(two_workers, serving_world, allocator,
                                                                        auth):
    """What a worker does after serving /reload (bump the shared generation) reloads every worker, by itself."""
    from datetime import datetime, timedelta, timezone

    import httpx

    from serving.worker_sync import GenerationFile, server_dir

    contacts = known_contacts(serving_world, 4)
    r = httpx.post(f"{two_workers.url}/decide", json={"campaign_id": CAMPAIGN, "contact_ids": contacts},
                   headers=auth, timeout=30)
    assert r.status_code == 200, r.text
    version = allocator.learn(now=datetime.now(timezone.utc) + timedelta(hours=49))  # a new live snapshot
    assert all(w["policy_version"] < version for w in statuses(serving_world, two_workers))

    generation = GenerationFile(server_dir(serving_world.data_dir, two_workers.process.pid)).bump(by="test")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        workers = statuses(serving_world, two_workers)
        if all(w["generation"] == generation for w in workers):
            break
        time.sleep(0.1)
    assert [(w["generation"], w["policy_version"], w["error"]) for w in workers] == [(generation, version, None)] * 2
    with httpx.Client(base_url=two_workers.url, timeout=30, headers=auth) as client:
        choices = [client.post("/choose_variant", json={"campaign_id": CAMPAIGN, "contact_id": c},
                               headers={"Connection": "close"}).json()["choices"][0] for c in contacts * 3]
    assert {c["policy_version"] for c in choices} == {version}
