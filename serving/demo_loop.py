"""The serving half of `inbox demo`: service up, two send rounds with learning
in between, a summary of reward (oracle expectation) round 1 vs round 2 vs uniform."""
from __future__ import annotations

from datetime import timedelta

import numpy as np


def demo_campaign(settings, recipients: int, seed: int, n_variants: int = 4):
    """A campaign over `n_variants` content items of different topics (deterministic)."""
    from sending.campaign import parse_campaign
    from simulation.eventlog import read_table, table_path

    content = read_table("content", table_path(settings.events_dir, "content"))
    picks = content.sort_values("content_id").groupby("topic", sort=True).head(1)["content_id"]
    variants = [int(v) for v in picks.head(n_variants)]
    return parse_campaign({"campaign_id": "demo", "variants": variants, "reward_event": "click",
                           "audience": {"limit": recipients, "seed": seed}})


def run_demo_loop(settings, recipients: int = 2000, progress: bool = True) -> dict:
    import os

    import httpx

    from experiments.bandit import Allocator
    from serving.api_keys import ENV_VAR, client_headers, local_api_key
    from serving.runner import start_service
    from sending.pipeline import run_campaign

    os.environ[ENV_VAR] = local_api_key(settings)  # this process's clients (the send pipeline) use the demo's key
    with start_service(settings) as svc:
        first = run_campaign(demo_campaign(settings, recipients, seed=1), svc.url, settings, demo=True,
                             progress=progress, seed=1)
        alloc = Allocator.open(settings.bandit_dir)
        try:  # close every wait window of round 1 (decisions are at most 48 h old by then)
            version = alloc.learn(now=first.decided_at + timedelta(hours=49))
        finally:
            alloc.close()
        r = httpx.post(f"{svc.url}/reload", json={}, headers=client_headers(), timeout=300)
        r.raise_for_status()
        if not r.json().get("all_workers_reloaded", True):  # round 2 must meet the learned policy everywhere
            _wait_for_generation(settings, svc, int(r.json()["generation"]))
        second = run_campaign(demo_campaign(settings, recipients, seed=2), svc.url, settings, demo=True,
                              progress=progress, seed=2)
    return {
        "sent": first.sent + second.sent,
        "policy_version": version,
        "reward_round1": first.oracle_reward,
        "reward_round2": second.oracle_reward,
        "reward_uniform": float(np.mean([first.oracle_uniform, second.oracle_uniform])),
        "clicks_rewarded": first.rewards.get("accepted", 0) + second.rewards.get("accepted", 0),
        "served_live": first.live + second.live,
        "rounds": [first.as_dict(), second.as_dict()],
    }


def _wait_for_generation(settings, svc, generation: int, timeout: float = 300.0) -> None:
    """Until every worker of the demo's server publishes `generation` (its reload is slower than /reload's wait)."""
    import time

    from serving.config import serve_workers
    from serving.worker_sync import server_dir, worker_statuses

    directory = server_dir(settings.data_dir, svc.process.pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        statuses = worker_statuses(directory)
        if len(statuses) >= serve_workers() and all(int(s.get("generation", -1)) >= generation for s in statuses):
            return
        time.sleep(0.5)
    raise TimeoutError(f"workers did not all reload to generation {generation} in {timeout:.0f} s: {statuses}")
