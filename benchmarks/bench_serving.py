"""Serving latency: BentoML 1.4.40 against a bare Starlette floor, measured in the same run.

    .venv/bin/python benchmarks/bench_serving.py            # everything (~10 min on 2 cores)
    .venv/bin/python benchmarks/bench_serving.py --part predict   # only the one-row predict study
    .venv/bin/python benchmarks/bench_serving.py --part decide    # only the decide targets
    .venv/bin/python benchmarks/bench_serving.py --part auth      # decide before vs after API keys

Part 1 (`predict`): one LightGBM row behind (a) bare Starlette + uvicorn, the
floor; (b) a default `@bentoml.service` (sync API returning a dict); (c..m)
the same predict with our configuration added one setting at a time
(ablation), ending at what the service ships (`serving.config`: BentoML
configuration and a gc.freeze, no patching); then `batchable=True`. One worker each, with `wrk` at concurrency 1 and 8, the
server's CPU time per request during the c=8 run (less sensitive to other load
on the machine than req/s), plus a sequential Python client that records every
request over 10 s to find stalls (> 50 ms).

Part 2 (`decide`): a simulated world (features in Feast, fast-trained
champions, their predictions published by `inbox publish`, a campaign) served by `serving.service:InboxService` and by a bare
Starlette app calling the same `serving.decide.decide`, the floor doing the
same work: decide for 1 recipient at concurrency 8 (targets: p99 <= 10 ms,
>= 50% of the floor's throughput), decide for 100 recipients (p50 <= 25 ms),
60 s sustained at concurrency 4 (no non-2xx), and the 100-contact online read
(Feast's `get_online_features` vs `features.online.OnlineReader`). Both servers
run the number of workers the service ships with (`serving.config.serve_workers`,
`--workers` to change it).

Part 3 (`auth`, run alone): the same decide served by the code before API keys
(a `git archive` of that commit) and by the current code (keys, route-template
metrics, body limit), alternating, same world, key and wrk scripts; plus the
in-process cost of one key check.

Loopback only; every loop is bounded by a duration. Needs `wrk` (Debian: apt-get install wrk).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from serving.runner import free_port, stop  # noqa: E402

PERF_APP = "benchmarks.serving_perf_app"
FEATURES = [0.1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]


# --- processes ------------------------------------------------------------------
def _wait_http(url: str, proc: subprocess.Popen, path: str, body: dict | None, timeout: float = 240,
               headers: dict | None = None) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode})")
        try:
            r = (httpx.post(url + path, json=body, timeout=60, headers=headers) if body is not None
                 else httpx.get(url + path, headers=headers))
            if r.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url}{path} not answering")


@contextmanager
def server(kind: str, target: str, env: dict, warm_path: str, warm_body: dict, log: Path, workers: int = 1,
           headers: dict | None = None, code: Path = ROOT):
    """kind 'uvicorn' (the floor) or 'bentoml'; yields a `Server` once a warm-up request succeeded and every
    worker has loaded (otherwise wrk's connections would all land on the first worker ready). `code`: the
    source tree served (another commit's export for a before/after comparison)."""
    port = free_port()
    ready_dir = log.parent / f"ready-{port}"
    home = tempfile.mkdtemp(prefix="bench-bentoml-")  # each server its own Prometheus directory
    full_env = {**os.environ, **env, "PYTHONPATH": str(code), "BENTOML_DO_NOT_TRACK": "True", "BENTOML_HOME": home,
                "INBOX_SERVE_WORKERS": str(workers), "BENCH_READY_DIR": str(ready_dir)}
    if kind == "uvicorn":
        cmd = [str(Path(sys.executable).with_name("uvicorn")), target, "--host", "127.0.0.1", "--port", str(port),
               "--no-access-log", "--log-level", "warning", "--workers", str(workers)]
    else:
        cmd = [str(Path(sys.executable).with_name("bentoml")), "serve", target, "--host", "127.0.0.1",
               "--port", str(port), "--working-dir", str(code)]
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, cwd=code, env=full_env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(url, proc, warm_path, warm_body, headers=headers)
        if workers > 1:
            _wait_workers(target, full_env, proc, ready_dir, workers)
        yield Server(url, proc)
    finally:
        stop(proc)
        shutil.rmtree(home, ignore_errors=True)


def _wait_workers(target: str, env: dict, proc: subprocess.Popen, ready_dir: Path, workers: int,
                  timeout: float = 240) -> None:
    from serving.runner import SERVICE
    from serving.worker_sync import wait_for_workers

    if target == SERVICE:
        wait_for_workers(env["INBOX_DATA_DIR"], proc.pid, workers, timeout, alive=lambda: proc.poll() is None)
        return
    if not target.endswith(":decide_floor_app"):
        raise ValueError(f"--workers: no readiness signal for {target} with {workers} workers")
    deadline = time.monotonic() + timeout
    while len(list(ready_dir.glob("ready-*"))) < workers:
        if time.monotonic() > deadline or proc.poll() is not None:
            raise TimeoutError(f"{target}: {workers} workers not ready")
        time.sleep(0.3)


class Server:
    """A started server: its URL and the CPU seconds its process tree has used so far."""

    def __init__(self, url: str, proc: subprocess.Popen):
        self.url, self.proc = url, proc

    def cpu_by_process(self) -> dict[int, float]:
        import psutil

        root = psutil.Process(self.proc.pid)
        out = {}
        for p in [root, *root.children(recursive=True)]:
            try:
                t = p.cpu_times()
                out[p.pid] = t.user + t.system
            except psutil.NoSuchProcess:
                pass
        return out


def measured(srv: Server, path: str, lua: Path, connections: int, seconds: int) -> dict:
    """wrk figures, the server's CPU microseconds per request during the run, and how that CPU time
    split over its processes (the busiest first: are both workers serving?)."""
    before = srv.cpu_by_process()
    out = wrk(srv.url + path, lua, connections, seconds)
    after = srv.cpu_by_process()
    used = sorted((after[p] - before.get(p, 0.0) for p in after), reverse=True)
    out["cpu_us"] = sum(used) / max(out["requests"], 1) * 1e6
    out["cpu_split"] = "/".join(f"{100 * u / max(sum(used), 1e-9):.0f}" for u in used if u > 0.01 * sum(used))
    return out


# --- load generation ----------------------------------------------------------------
_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    return float(m.group(1)) * _UNIT[m.group(2)]


def wrk(url: str, lua: Path, connections: int, seconds: int) -> dict:
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "5s",
                          "-s", str(lua), url], capture_output=True, text=True, check=True).stdout
    pct = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", out, re.M))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {"p50": _ms(pct["50"]), "p99": _ms(pct["99"]),
            "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "requests": int(re.search(r"(\d+) requests in", out).group(1)),
            "non2xx": int(non2xx.group(1)) if non2xx else 0,
            "errors": sum(map(int, errors.groups())) if errors else 0}


def lua_fixed(path: Path, body: dict) -> Path:
    path.write_text('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                    f"wrk.body = '{json.dumps(body)}'\n")
    return path


def lua_decide(path: Path, campaign: str, n_contacts: int, per_request: int, token: str = "") -> Path:
    """Each request: `per_request` consecutive contact ids from a random offset (a new audience slice),
    with the API key `token` as a bearer token."""
    path.write_text(f"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {token}"
math.randomseed(7)
request = function()
  local lo = math.random(0, {n_contacts - per_request})
  local ids = {{}}
  for i = 0, {per_request - 1} do ids[#ids + 1] = tostring(lo + i) end
  local body = '{{"campaign_id": "{campaign}", "contact_ids": [' .. table.concat(ids, ",") .. ']}}'
  return wrk.format(nil, nil, nil, body)
end
""")
    return path


async def _sequential(url: str, body: bytes, seconds: float) -> list[tuple[float, float]]:
    from urllib.parse import urlparse

    u = urlparse(url)
    reader, writer = await asyncio.open_connection(u.hostname, u.port)
    head = (f"POST {u.path} HTTP/1.1\r\nHost: {u.hostname}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    out, t0 = [], time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        s = time.perf_counter()
        writer.write(head + body)
        await writer.drain()
        hdr = await reader.readuntil(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length:\s*(\d+)", hdr).group(1))
        await reader.readexactly(length)
        out.append((s - t0, time.perf_counter() - s))
    writer.close()
    return out


def stalls(url: str, body: dict, seconds: float = 10, threshold_ms: float = 50) -> dict:
    samples = asyncio.run(_sequential(url, json.dumps(body).encode(), seconds))
    slow = [(t, d * 1e3) for t, d in samples if d * 1e3 > threshold_ms]
    return {"requests": len(samples), "stalls": len(slow),
            "worst_ms": max((d for _, d in samples), default=0) * 1e3,
            "stall_times": [round(t, 1) for t, _ in slow]}


# --- part 1: one-row predict ------------------------------------------------------------
OFF_LOG = {"logging": {"access": {"enabled": False}}}
OFF_TRACE = {**OFF_LOG, "tracing": {"excluded_urls": [".*"]}}


def predict_variants():
    from serving.config import SERVICE_CONFIG

    shipped = json.dumps({**SERVICE_CONFIG, "workers": 1})
    rows = [
        ("floor: bare Starlette + uvicorn", "uvicorn", f"{PERF_APP}:floor_app", {}),
        ("BentoML default (sync def -> dict)", "bentoml", f"{PERF_APP}:DefaultPredictor", {}),
        ("+ async def, pydantic output", "bentoml", f"{PERF_APP}:TunedPredictor",
         {"BENCH_PERF_CONFIG": "{}", "BENCH_PERF_TUNE_PROCESS": "0"}),
        ("+ access log off", "bentoml", f"{PERF_APP}:TunedPredictor",
         {"BENCH_PERF_CONFIG": json.dumps(OFF_LOG), "BENCH_PERF_TUNE_PROCESS": "0"}),
        ("+ tracing middleware skipped", "bentoml", f"{PERF_APP}:TunedPredictor",
         {"BENCH_PERF_CONFIG": json.dumps(OFF_TRACE), "BENCH_PERF_TUNE_PROCESS": "0"}),
        ("+ traffic.timeout 10 s (was 60)", "bentoml", f"{PERF_APP}:TunedPredictor",
         {"BENCH_PERF_CONFIG": shipped, "BENCH_PERF_TUNE_PROCESS": "0"}),
        ("+ gc.freeze after start (= what serving ships)", "bentoml", f"{PERF_APP}:TunedPredictor",
         {"BENCH_PERF_CONFIG": shipped, "BENCH_PERF_TUNE_PROCESS": "1"}),
    ]
    rows.append(("batchable=True, max_latency_ms=20", "bentoml", f"{PERF_APP}:BatchingPredictor", {}))
    return rows


def run_predict(work: Path, seconds: int) -> list[dict]:
    from benchmarks.serving_perf_app import ensure_model

    model = ensure_model(work / "perf_model.txt")
    rows = []
    for name, kind, target, env in predict_variants():
        body = {"rows": [FEATURES]} if "Batching" in target else {"features": FEATURES}
        lua = lua_fixed(work / "predict.lua", body)
        env = {**env, "BENCH_PERF_MODEL": str(model)}
        print(f"  {name} ...", flush=True)
        with server(kind, target, env, "/predict", body, work / "predict_servers.log") as srv:
            url = srv.url
            wrk(url + "/predict", lua, 8, 2)  # warm-up
            c1 = wrk(url + "/predict", lua, 1, seconds)
            c8 = measured(srv, "/predict", lua, 8, seconds)
            st = stalls(url + "/predict", body, seconds=10)
        rows.append({"variant": name, "c1": c1, "c8": c8, "stalls": st, "load": os.getloadavg()[0]})
    return rows


# --- part 2: decide ---------------------------------------------------------------------
def build_world(root: Path, contacts: int, days: int) -> object:
    env = {"INBOX_DATA_DIR": str(root / "data"), "INBOX_ARTIFACT_ROOT": str(root / "mlruns"),
           "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"}
    os.environ.update(env)
    (root / "mlruns").mkdir(parents=True, exist_ok=True)
    from features.pipeline import build_features
    from features.store import apply, get_store, materialize
    from inbox.settings import load_settings
    from models.training import train_all
    from serving.publish import publish
    from simulation.cli import simulate_to_disk
    from simulation.world import WorldConfig

    settings = load_settings()
    simulate_to_disk(WorldConfig(n_contacts=contacts, n_days=days, seed=3), settings=settings, progress=False)
    build_features(settings.events_dir, settings.features_dir)
    train_all(settings=settings, progress=False, fast=True)
    store = get_store(settings)
    apply(store, settings)
    materialize(store, settings)
    publish(settings, progress=False)
    return settings


def register(settings, campaign: str) -> None:
    from experiments.bandit import Allocator
    from sending.campaign import VARIANT_FEATURES
    from simulation.eventlog import read_table, table_path

    content = read_table("content", table_path(settings.events_dir, "content"))
    variants = content.head(4)[["content_id", *VARIANT_FEATURES]]
    variants = variants.astype({c: float for c in VARIANT_FEATURES if c not in ("topic", "format")})
    alloc = Allocator.open(settings.bandit_dir)
    alloc.register_campaign(campaign, variants, ["engagement_score", "open_rate_30d"])
    alloc.close()


def online_read_timing(settings, n: int = 100, repeats: int = 30) -> dict:
    from features.online import OnlineReader
    from features.store import get_store

    store = get_store(settings)
    reader = OnlineReader(store)
    service = store.get_feature_service("lead_scoring")
    ids = np.arange(n)
    rows = [{"contact_id": int(i)} for i in ids]

    def best(fn):
        fn()
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return float(np.median(times) * 1e3)

    feast_ms = best(lambda: store.get_online_features(features=service, entity_rows=rows).to_df())
    fast_ms = best(lambda: reader.read("lead_scoring", ids))
    reader.close()
    return {"feast_ms": feast_ms, "reader_ms": fast_ms}


STEPS = ("read features + published rows", "lead score", "send slots", "content ranking", "bandit context",
         "bandit choose + log")


def decide_breakdown(settings, campaign: str, sizes=(1, 100), repeats: int = 60) -> dict:
    """CPU ms per step of `serving.decide.decide` in this process (median of `repeats`, thread CPU time,
    so other processes on the machine do not count), plus the whole call."""
    from serving.decide import decide
    from serving.predict import (
        ContactBatch, bandit_context, content_order, default_window, lead_score_arrays, slot_choice,
    )
    from models.slots import window_hours
    from serving.state import ServingState
    from serving.warmup import warm_up

    state = ServingState.load(settings)
    warm_up(state)  # as the service at start-up
    start, end = default_window()
    config = state.campaign_config(campaign)
    rng = np.random.default_rng(0)
    stored = state.reader.contact_ids(state.contact_services)
    n_contacts = len(stored)
    out = {}
    for n in sizes:
        spans, whole = [], []
        for _ in range(repeats + 5):
            lo = int(rng.integers(0, max(n_contacts - n, 1)))
            ids = stored[lo : lo + n]
            t = [time.thread_time()]
            batch = ContactBatch.read(state, ids, request_time=start, features=config["context_features"],
                                      hours=window_hours(start, end))
            t.append(time.thread_time())
            scores = lead_score_arrays(batch)
            t.append(time.thread_time())
            slot_choice(state, batch, start, end)
            t.append(time.thread_time())
            content_order(state, batch, None, 3)
            t.append(time.thread_time())
            context = bandit_context(config, batch, scores)
            t.append(time.thread_time())
            state.allocator.decide(campaign, ids, context)
            t.append(time.thread_time())
            spans.append(np.diff(t))
            w = time.thread_time()
            decide(state, campaign, ids, start, end)
            whole.append(time.thread_time() - w)
        med = np.median(np.asarray(spans[5:]), axis=0) * 1e3
        out[n] = {**dict(zip(STEPS, med.tolist())), "decide() total": float(np.median(whole[5:]) * 1e3)}
    state.close()
    return out


def use_world(root: Path):
    """Settings of an existing world laid out as `build_world` makes it (data/, mlruns/mlflow.db)."""
    os.environ.update({"INBOX_DATA_DIR": str(root / "data"), "INBOX_ARTIFACT_ROOT": str(root / "mlruns"),
                       "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"})
    from inbox.settings import load_settings

    return load_settings()


def run_decide(work: Path, seconds: int, sustained: int, contacts: int, workers: int,
               world: Path | None = None) -> dict:
    from serving.runner import settings_env

    if world is None:
        print("  building the world (simulate, features, train, Feast) ...", flush=True)
        settings = build_world(work / "world", contacts, 60)
    else:
        settings = use_world(world)
    campaign = "bench"
    register(settings, campaign)
    env = settings_env(settings)
    token, headers = bench_key(settings)
    one = {"campaign_id": campaign, "contact_ids": [1]}
    lua1 = lua_decide(work / "decide1.lua", campaign, contacts, 1, token)
    lua100 = lua_decide(work / "decide100.lua", campaign, contacts, 100, token)
    out = {"read": online_read_timing(settings), "breakdown": decide_breakdown(settings, campaign),
           "workers": workers}
    targets = [("floor: bare Starlette, same decide()", "uvicorn", f"{PERF_APP}:decide_floor_app"),
               ("BentoML InboxService (serving.config)", "bentoml", "serving.service:InboxService")]
    for name, kind, target in targets:
        print(f"  {name} ...", flush=True)
        with server(kind, target, env, "/decide", one, work / "decide_servers.log", workers, headers) as srv:
            url = srv.url
            wrk(url + "/decide", lua1, 8, 2)
            load = os.getloadavg()
            r = {"d1_c8": measured(srv, "/decide", lua1, 8, seconds),
                 "d100_c1": measured(srv, "/decide", lua100, 1, seconds), "load": load}
            if kind == "bentoml":
                r["sustained"] = wrk(url + "/decide", lua1, 4, sustained)
            out[name] = r
    return out


def bench_key(settings) -> tuple[str, dict]:
    """An API key with the `send` scope for the world (the service refuses /decide without one)."""
    from serving.api_keys import KeyStore

    token = KeyStore(settings.data_dir).create(["send"], name="bench_serving")[1]
    return token, {"Authorization": f"Bearer {token}"}


def pre_auth_rev() -> str:
    """The commit before API keys landed (the parent of the first commit that added serving/auth.py)."""
    added = subprocess.run(["git", "-C", str(ROOT), "log", "--diff-filter=A", "--format=%H", "--", "serving/auth.py"],
                           capture_output=True, text=True, check=True).stdout.split()
    return f"{added[-1]}^"


def export_tree(rev: str, dest: Path) -> Path:
    """`rev`'s source tree (git archive) in `dest`, to serve another commit's code from the same venv."""
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def key_lookup_us(settings, token: str, repeats: int = 20000) -> float:
    """In-process cost of one request's key check (`KeyTable.lookup`: a stat, a regex, a SHA-256)."""
    from serving.api_keys import KeyTable

    table = KeyTable(settings.data_dir)
    table.lookup(token)
    t0 = time.perf_counter()
    for _ in range(repeats):
        table.lookup(token)
    return (time.perf_counter() - t0) / repeats * 1e6


def middleware_cpu_us(settings, token: str, repeats: int = 20000) -> dict:
    """Thread CPU microseconds per request of the service's middlewares (route metrics, API key, body limit)
    around a do-nothing ASGI app, against the bare app: what the edges add to every request, measured
    without the network or the other processes on the machine."""
    from serving.auth import BearerAuthMiddleware
    from serving.http_metrics import RouteMetricsMiddleware
    from serving.limits import BodyLimitMiddleware

    body = b'{"campaign_id": "bench", "contact_ids": [1]}'

    async def app(scope, receive, send):
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    stack = RouteMetricsMiddleware(BearerAuthMiddleware(BodyLimitMiddleware(app), data_dir=settings.data_dir),
                                   routes=["/decide"])
    scope = {"type": "http", "method": "POST", "path": "/decide",
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                         (b"authorization", f"Bearer {token}".encode())]}

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        pass

    async def timed(target) -> float:
        for _ in range(200):
            await target(dict(scope), receive, send)
        t0 = time.thread_time()
        for _ in range(repeats):
            await target(dict(scope), receive, send)
        return (time.thread_time() - t0) / repeats * 1e6

    bare, edges = asyncio.run(timed(app)), asyncio.run(timed(stack))
    return {"bare_us": bare, "edges_us": edges}


def run_auth(work: Path, seconds: int, contacts: int, workers: int, world: Path | None, rev: str | None,
             rounds: int = 3) -> dict:
    """decide through the service as of `rev` (default: before API keys) and as now (keys, route metrics,
    body limit), alternating A/B `rounds` times on the same world and key."""
    from serving.runner import SERVICE, settings_env

    from privacy.seed import seed_consent

    settings = use_world(world) if world else build_world(work / "world", contacts, 60)
    seed_consent(settings)  # the current decide plans mail only for consenting contacts: same work as before
    campaign = "bench"
    register(settings, campaign)
    env = settings_env(settings)
    token, headers = bench_key(settings)
    rev = rev or pre_auth_rev()
    trees = {f"before ({rev})": export_tree(rev, work / "before"), "now (API keys on)": ROOT}
    lua1 = lua_decide(work / "auth1.lua", campaign, contacts, 1, token)
    lua100 = lua_decide(work / "auth100.lua", campaign, contacts, 100, token)
    one = {"campaign_id": campaign, "contact_ids": [1]}
    out: dict = {"lookup_us": key_lookup_us(settings, token), "workers": workers, "runs": [],
                 **middleware_cpu_us(settings, token)}
    for round_ in range(rounds):
        for name, code in trees.items():
            print(f"  round {round_ + 1}: {name} ...", flush=True)
            with server("bentoml", SERVICE, env, "/decide", one, work / "auth_servers.log", workers, headers,
                        code=code) as srv:
                import httpx

                decided = httpx.post(srv.url + "/decide", json={"campaign_id": campaign, "contact_ids": [1, 2, 3]},
                                     headers=headers, timeout=60).json()
                wrk(srv.url + "/decide", lua1, 8, 2)
                out["runs"].append({"name": name, "round": round_ + 1, "decisions": len(decided["decisions"]),
                                    "d1_c8": measured(srv, "/decide", lua1, 8, seconds),
                                    "d100_c1": measured(srv, "/decide", lua100, 1, seconds),
                                    "load": os.getloadavg()[0]})
    return out


# --- report -------------------------------------------------------------------------------
def print_predict(rows: list[dict]) -> None:
    floor = rows[0]
    print("\n### One-row LightGBM predict: floor vs BentoML, fixes added one at a time\n")
    print("| variant | c=1 p50 ms | c=1 p99 ms | c=1 req/s | c=8 p50 ms | c=8 p99 ms | c=8 req/s | % of floor (c=8) "
          "| server CPU us/req (c=8) | non-2xx (c=8) | stalls > 50 ms in 10 s (worst ms) | load (1 min) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        c1, c8, st = r["c1"], r["c8"], r["stalls"]
        print(f"| {r['variant']} | {c1['p50']:.2f} | {c1['p99']:.2f} | {c1['rps']:,.0f} | {c8['p50']:.2f} | "
              f"{c8['p99']:.2f} | {c8['rps']:,.0f} | {100 * c8['rps'] / floor['c8']['rps']:.0f}% | "
              f"{c8['cpu_us']:,.0f} | {c8['non2xx'] + c8['errors']} | {st['stalls']} ({st['worst_ms']:.0f}) | "
              f"{r['load']:.2f} |")


def print_decide(out: dict, sustained: int) -> None:
    names = [k for k in out if k not in ("read", "breakdown", "workers")]
    floor, ours = out[names[0]], out[names[1]]
    la = lambda v: " / ".join(f"{x:.2f}" for x in v)  # noqa: E731
    print(f"\n### decide: InboxService vs a bare Starlette app doing the same work ({out['workers']} worker(s) each; "
          f"load average 1/5/15 min before each server's runs: floor {la(floor['load'])}, "
          f"BentoML {la(ours['load'])})\n")
    print("| measure | floor | BentoML | target | met |")
    print("|---|---|---|---|---|")
    ratio = ours["d1_c8"]["rps"] / floor["d1_c8"]["rps"]
    rows = [
        ("decide 1 recipient, c=8: p50 ms", floor["d1_c8"]["p50"], ours["d1_c8"]["p50"], "", None),
        ("decide 1 recipient, c=8: p99 ms", floor["d1_c8"]["p99"], ours["d1_c8"]["p99"], "<= 10",
         ours["d1_c8"]["p99"] <= 10),
        ("decide 1 recipient, c=8: req/s", floor["d1_c8"]["rps"], ours["d1_c8"]["rps"],
         f">= 50% of floor ({100 * ratio:.0f}%)", ratio >= 0.5),
        ("decide 100 recipients, c=1: p50 ms", floor["d100_c1"]["p50"], ours["d100_c1"]["p50"], "<= 25",
         ours["d100_c1"]["p50"] <= 25),
        ("decide 100 recipients, c=1: p99 ms", floor["d100_c1"]["p99"], ours["d100_c1"]["p99"], "", None),
        ("decide 1 recipient, c=8: server CPU us/req", floor["d1_c8"]["cpu_us"], ours["d1_c8"]["cpu_us"], "", None),
        ("decide 1 recipient, c=8: CPU % per process", floor["d1_c8"]["cpu_split"], ours["d1_c8"]["cpu_split"], "",
         None),
        ("decide 100 recipients, c=1: server CPU us/req", floor["d100_c1"]["cpu_us"], ours["d100_c1"]["cpu_us"], "",
         None),
        (f"sustained {sustained} s, c=4: req/s", None, ours["sustained"]["rps"], "", None),
        (f"sustained {sustained} s, c=4: p99 ms", None, ours["sustained"]["p99"], "", None),
        (f"sustained {sustained} s, c=4: non-2xx + socket errors", None,
         ours["sustained"]["non2xx"] + ours["sustained"]["errors"], "0",
         ours["sustained"]["non2xx"] + ours["sustained"]["errors"] == 0),
    ]
    for name, f, o, target, met in rows:
        fmt = (lambda v: "" if v is None else v if isinstance(v, str) else (f"{v:,}" if isinstance(v, int) else
                                               f"{v:,.0f}" if v >= 100 else f"{v:.2f}"))
        print(f"| {name} | {fmt(f)} | {fmt(o)} | {target} | {'' if met is None else ('yes' if met else 'NO')} |")
    sizes = list(out["breakdown"])
    print("\n### decide() in-process, CPU ms per step (median, thread CPU time)\n")
    print("| step | " + " | ".join(f"{n} recipient(s)" for n in sizes) + " |")
    print("|---|" + "---|" * len(sizes))
    for step in (*STEPS, "decide() total"):
        print(f"| {step} | " + " | ".join(f"{out['breakdown'][n][step]:.2f}" for n in sizes) + " |")
    r = out["read"]
    print(f"\nOnline read of 100 contacts (lead_scoring service, median of 30): Feast get_online_features "
          f"{r['feast_ms']:.1f} ms, features.online.OnlineReader {r['reader_ms']:.1f} ms")


def print_auth(out: dict) -> None:
    print(f"\n### decide before and after API keys ({out['workers']} worker(s); same world, key and wrk scripts; "
          f"rounds alternate)\n")
    print("| code | round | decide 1, c=8: p50 ms | p99 ms | req/s | CPU us/req | decide 100, c=1: p50 ms | p99 ms "
          "| non-2xx | decisions for 3 contacts | load (1 min) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in out["runs"]:
        a, b = r["d1_c8"], r["d100_c1"]
        print(f"| {r['name']} | {r['round']} | {a['p50']:.2f} | {a['p99']:.2f} | {a['rps']:,.0f} | {a['cpu_us']:,.0f} "
              f"| {b['p50']:.2f} | {b['p99']:.2f} | {a['non2xx'] + b['non2xx'] + a['errors'] + b['errors']} "
              f"| {r['decisions']} | {r['load']:.2f} |")
    print(f"\nIn process, per request: key check (KeyTable.lookup: stat + regex + SHA-256 + compare) "
          f"{out['lookup_us']:.1f} us wall; the three middlewares (route metrics, API key, body limit) around a "
          f"do-nothing ASGI app {out['edges_us']:.1f} us CPU vs the bare app {out['bare_us']:.1f} us CPU "
          f"(+{out['edges_us'] - out['bare_us']:.1f} us)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=["predict", "decide", "auth", "all"], default="all",
                    help="auth: decide before vs after API keys (not part of 'all')")
    ap.add_argument("--baseline", help="--part auth: the commit to compare with (default: before API keys)")
    ap.add_argument("--seconds", type=int, default=8, help="wrk duration per measurement (default 8)")
    ap.add_argument("--sustained", type=int, default=60, help="sustained-load duration (default 60)")
    ap.add_argument("--contacts", type=int, default=3000, help="contacts in the decide world (default 3000)")
    ap.add_argument("--workers", type=int, default=None,
                    help="worker processes of both decide servers (default: what the service ships, "
                         "serving.config.serve_workers())")
    ap.add_argument("--world", type=Path, help="use this existing world (a COPY: decide logs decisions into it) "
                                               "instead of building one; it must hold --contacts contacts")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        print("needs wrk (apt-get install -y wrk)", file=sys.stderr)
        return 2
    if args.workers is None:
        from serving.config import serve_workers

        args.workers = serve_workers()
    work = Path(tempfile.mkdtemp(prefix="bench_serving_"))
    print(f"load average at start: {' / '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    try:
        if args.part in ("predict", "all"):
            print("part 1: one-row predict", flush=True)
            print_predict(run_predict(work, args.seconds))
        if args.part in ("decide", "all"):
            print("part 2: decide", flush=True)
            print_decide(run_decide(work, args.seconds, args.sustained, args.contacts, args.workers, args.world), args.sustained)
        if args.part == "auth":
            print("decide before/after API keys", flush=True)
            print_auth(run_auth(work, args.seconds, args.contacts, args.workers, args.world, args.baseline))
    finally:
        print(f"\nload average at the end: {' / '.join(f'{x:.2f}' for x in os.getloadavg())}")
        if args.keep:
            print(f"work directory: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
