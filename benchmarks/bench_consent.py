"""What enforcing consent costs `decide`, against the decide of the commit before it, in the same run.

    .venv/bin/python benchmarks/bench_consent.py --world /path/to/copy/of/a/world   # data/ + mlruns/
    .venv/bin/python benchmarks/bench_consent.py                                    # builds a 5k world

The world is used as `benchmarks/bench_serving.py` lays it out (its `build_world` makes one); the
consent ledger is seeded if missing. Parts:

1. the ledger lookup alone (`ConsentLedger.reasons`) for 1, 100 and 1,000 contacts;
2. in process, `serving.decide.decide` of this tree against the baseline `decide` (the module as of
   BASELINE, loaded from git) on one loaded `ServingState`, alternating calls: thread-CPU ms, p50/p99;
3. over HTTP, two `bentoml serve` servers from clean exports of HEAD (`git archive`), one with the
   baseline `serving/decide.py`: `wrk` at concurrency 8 with 1 recipient and concurrency 1 with
   100 recipients per request (as bench_serving), p50/p99 and req/s;
4. seeding the ledger from the event log (first run and an unchanged log);
5. with `--erase`, erasing one contact (it is removed from the world!): seconds per store, every store
   but "MLflow artifacts" (a copied world's tracking database points at the original's artifacts).

Recipients are consecutive contact ids from a random offset (bench_serving's `lua_decide`), so a few
per hundred are refused (no consent or unsubscribed): the consent build does less allocator work for
those. Loopback only; every loop is bounded. Needs `wrk`.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BASELINE = "02e04ea"  # the last commit before serving.decide checked consent
CAMPAIGN = "bench-consent"


def baseline_decide_module(work: Path):
    src = subprocess.run(["git", "show", f"{BASELINE}:serving/decide.py"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    path = work / "baseline_decide.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("baseline_decide", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pct(values) -> tuple[float, float]:
    v = np.asarray(values) * 1e3
    return float(np.median(v)), float(np.percentile(v, 99))


def lookup_timing(settings, repeats: int = 300) -> dict:
    from privacy.consent import ConsentLedger

    out = {}
    with ConsentLedger.open(settings, read_only=True) as ledger:
        ids = ledger.db.execute("SELECT contact_id FROM contacts").fetchall()
        ids = np.array([r[0] for r in ids], dtype=np.int64)
        rng = np.random.default_rng(0)
        for n in (1, 100, 1000):
            times = []
            for _ in range(repeats):
                batch = rng.choice(ids, n, replace=False)
                t = time.perf_counter()
                ledger.reasons(batch)
                times.append(time.perf_counter() - t)
            out[n] = pct(times)
    return out


def in_process(settings, work: Path, repeats: int) -> dict:
    from serving.decide import decide
    from serving.predict import default_window
    from serving.state import ServingState
    from serving.warmup import warm_up

    old = baseline_decide_module(work)
    state = ServingState.load(settings)
    warm_up(state)
    start, end = default_window()
    stored = state.reader.contact_ids(state.contact_services)
    rng = np.random.default_rng(1)
    out = {}
    for n in (1, 100):
        times = {"baseline": [], "consent": []}
        refused = 0
        for i in range(repeats + 10):
            lo = int(rng.integers(0, len(stored) - n))
            ids = stored[lo:lo + n]
            for name, fn in (("baseline", old.decide), ("consent", decide)) if i % 2 else \
                    (("consent", decide), ("baseline", old.decide)):
                t = time.thread_time()
                res = fn(state, CAMPAIGN, ids, start, end)
                if i >= 10:
                    times[name].append(time.thread_time() - t)
                if name == "consent" and i >= 10:
                    refused += len(res.refused)
        out[n] = {k: pct(v) for k, v in times.items()}
        out[n]["refused share"] = refused / (repeats * n)
    state.close()
    return out


def export_tree(dest: Path, baseline_decide: bool) -> Path:
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    if baseline_decide:
        src = subprocess.run(["git", "show", f"{BASELINE}:serving/decide.py"], cwd=ROOT, check=True,
                             capture_output=True).stdout
        (dest / "serving" / "decide.py").write_bytes(src)
    return dest


@contextmanager
def bento(tree: Path, env: dict, log: Path, workers: int, headers: dict):
    from benchmarks.bench_serving import _wait_http
    from serving.runner import free_port, stop
    from serving.worker_sync import wait_for_workers

    port = free_port()
    full = {**os.environ, **env, "PYTHONPATH": str(tree), "BENTOML_DO_NOT_TRACK": "True",
            "INBOX_SERVE_WORKERS": str(workers)}
    cmd = [str(Path(sys.executable).with_name("bentoml")), "serve", "serving.service:InboxService",
           "--host", "127.0.0.1", "--port", str(port), "--working-dir", str(tree)]
    with open(log, "ab") as fh:
        proc = subprocess.Popen(cmd, cwd=tree, env=full, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(url, proc, "/readyz", None)
        wait_for_workers(env["INBOX_DATA_DIR"], proc.pid, workers, 240, alive=lambda: proc.poll() is None)
        yield url
    finally:
        stop(proc)


def lua_with_key(path: Path, n_contacts: int, per_request: int, token: str) -> Path:
    from benchmarks.bench_serving import lua_decide

    return lua_decide(path, CAMPAIGN, n_contacts, per_request, token=token)


def over_http(settings, work: Path, seconds: int, workers: int, rounds: int) -> dict:
    from benchmarks.bench_serving import wrk
    from serving.runner import settings_env

    try:
        from serving.api_keys import local_api_key

        token = local_api_key(settings)
    except ImportError:  # a tree without API keys
        token = ""
    import pyarrow.parquet as pq

    n_contacts = pq.read_metadata(settings.events_dir / "contacts.parquet").num_rows
    lua1 = lua_with_key(work / "d1.lua", n_contacts, 1, token)
    lua100 = lua_with_key(work / "d100.lua", n_contacts, 100, token)
    env = settings_env(settings)
    out = {}
    trees = {"baseline": export_tree(work / "tree-baseline", True), "consent": export_tree(work / "tree-consent", False)}
    for round_ in range(rounds):  # the two builds interleaved, so drifting machine load hits both alike
        for name, tree in trees.items():
            print(f"  {name} server, round {round_ + 1} ...", flush=True)
            with bento(tree, env, work / "servers.log", workers, {}) as url:
                wrk(url + "/decide", lua1, 8, 2)  # warm-up
                r = {"d1_c8": wrk(url + "/decide", lua1, 8, seconds), "d100_c1": wrk(url + "/decide", lua100, 1, seconds),
                     "load": os.getloadavg()[0]}
            print(f"    p99 {r['d1_c8']['p99']:.1f} / {r['d100_c1']['p99']:.1f} ms, non-2xx "
                  f"{r['d1_c8']['non2xx'] + r['d100_c1']['non2xx']}", flush=True)
            out.setdefault(name, []).append(r)
    return out


def seeding_timing(settings) -> dict:
    from privacy.consent import ledger_path
    from privacy.seed import seed_consent

    backup = ledger_path(settings).with_suffix(".bench")
    os.replace(ledger_path(settings), backup)
    try:
        t = time.perf_counter()
        first = seed_consent(settings)
        t1 = time.perf_counter() - t
        t = time.perf_counter()
        seed_consent(settings)
        t2 = time.perf_counter() - t
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(str(ledger_path(settings)) + suffix).unlink(missing_ok=True)
        os.replace(backup, ledger_path(settings))
    return {"first": t1, "unchanged": t2, "contacts": first["contacts"]}


def erase_timing(settings) -> dict:
    from privacy.consent import ConsentLedger
    from privacy.erase import resolve, stores

    with ConsentLedger.open(settings, read_only=True) as ledger:
        contact = int(ledger.db.execute("SELECT contact_id FROM state WHERE topic = '' AND kind = 'opt_in'"
                                        " ORDER BY contact_id LIMIT 1").fetchone()[0])
    subject = resolve(settings, [contact])
    out = {}
    for store in stores():
        if store.name == "MLflow artifacts":
            continue
        t = time.perf_counter()
        n = store.erase(settings, subject)
        out[store.name] = (time.perf_counter() - t, getattr(n, "rows", n))  # an int or privacy.erase.Erased
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--world", type=Path, help="a world laid out as bench_serving's (data/, mlruns/); default: build 5k")
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--repeats", type=int, default=300)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2, help="HTTP rounds per build (interleaved)")
    ap.add_argument("--skip-http", action="store_true")
    ap.add_argument("--erase", action="store_true", help="also time erasing one contact (modifies the world)")
    args = ap.parse_args()
    from benchmarks.bench_serving import build_world, register, use_world
    from privacy.consent import ledger_path
    from privacy.seed import seed_consent

    work = Path(tempfile.mkdtemp(prefix="bench_consent_"))
    settings = use_world(args.world) if args.world else build_world(work / "world", 5000, 60)
    if not ledger_path(settings).exists():
        seed_consent(settings)
    register(settings, CAMPAIGN)
    seed = seeding_timing(settings)
    look = lookup_timing(settings)
    inproc = in_process(settings, work, args.repeats)
    http = None if args.skip_http else over_http(settings, work, args.seconds, args.workers, args.rounds)
    erased = erase_timing(settings) if args.erase else None

    print(f"\nworld: {settings.data_dir} ({seed['contacts']:,} contacts); baseline = serving/decide.py at {BASELINE}")
    print("\n| ledger lookup (`reasons`) | p50 ms | p99 ms |\n|---|---:|---:|")
    for n, (p50, p99) in look.items():
        print(f"| {n:,} contacts | {p50:.3f} | {p99:.3f} |")
    print("\n| decide() in process, thread CPU | baseline p50 | baseline p99 | consent p50 | consent p99 | refused |")
    print("|---|---:|---:|---:|---:|---:|")
    for n, r in inproc.items():
        print(f"| {n} recipient(s) | {r['baseline'][0]:.2f} | {r['baseline'][1]:.2f} | {r['consent'][0]:.2f} | "
              f"{r['consent'][1]:.2f} | {r['refused share']:.1%} |")
    if http:
        print("\n| HTTP /decide (BentoML, {} workers) | round | p50 ms | p99 ms | req/s | non-2xx | load |".format(args.workers))
        print("|---|---:|---:|---:|---:|---:|---:|")
        for key, label in (("d1_c8", "1 recipient, c=8"), ("d100_c1", "100 recipients, c=1")):
            for name, rounds in http.items():
                for i, r in enumerate(rounds):
                    m = r[key]
                    print(f"| {name}: {label} | {i + 1} | {m['p50']:.2f} | {m['p99']:.2f} | {m['rps']:.0f} | "
                          f"{m['non2xx']} | {r['load']:.1f} |")
                med = [float(np.median([r[key][k] for r in rounds])) for k in ("p50", "p99", "rps")]
                print(f"| **{name}: {label}, median of rounds** | | {med[0]:.2f} | {med[1]:.2f} | {med[2]:.0f} | | |")
        if any(r[k]["non2xx"] for rounds in http.values() for r in rounds for k in ("d1_c8", "d100_c1")):
            print("\nWARNING: non-2xx answers: the latencies above are not of decide")
    print(f"\n| seeding the ledger | s |\n|---|---:|\n| first run | {seed['first']:.2f} |"
          f"\n| event log unchanged | {seed['unchanged']:.4f} |")
    if erased:
        sizes = {"feature tables": settings.features_dir, "online store": settings.feast_dir,
                 "decision log": settings.bandit_dir}
        print("\n| erasing one contact: store | s | rows removed |\n|---|---:|---:|")
        for name, (secs, n) in erased.items():
            print(f"| {name} | {secs:.2f} | {n:,} |")
        print(f"| total (without MLflow) | {sum(v[0] for v in erased.values()):.2f} | |")
        for name, folder in sizes.items():
            mb = sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file()) / 1e6
            print(f"\n{name}: {mb:,.0f} MB on disk", end="")
        print()


if __name__ == "__main__":
    main()
