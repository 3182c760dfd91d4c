"""Seeding the consent ledger from the event log: peak memory and seconds, streamed (this tree) against
the whole-table seeding of BASELINE (privacy/seed.py loaded from git), in the same run.

    .venv/bin/python benchmarks/bench_consent_seed.py                       # 200k and 1M contacts
    .venv/bin/python benchmarks/bench_consent_seed.py --sizes 50000 --batch-rows 65536

The event log is synthetic and cheap (`bench_generate`-style numpy, no world): contacts.parquet with
the columns seeding reads (unique shuffled ids, distinct addresses, 70 % consent, created in 2025,
zstd, pyarrow's default row groups like `simulation.eventlog`) and events.parquet with EVENTS_PER_CONTACT events
per contact, ~2 % of them unsubscribes or complaints. Each seeding runs in a fresh Python process
(peak RSS = its VmHWM, which exec resets; a child's ru_maxrss can carry the parent's peak; CPU =
its rusage user + system, steadier than wall time on a shared machine) on its own copy of the log,
with the same installation key:

- "first": an empty ledger seeded from the log;
- "again": the seeded ledger, the contacts re-imported with 10 % of the consents flipped.

The "imports only" row is a process that imports the same modules and seeds nothing: the floor both
builds start from. After both builds the two ledgers are compared table by table (the run's clock
replaced by "now"); a difference aborts the benchmark.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BASELINE = "55214a7"  # the last commit whose privacy/seed.py read the contacts whole
EVENTS_PER_CONTACT = 5
KEY = "5e" * 32


# --- the synthetic event log ---------------------------------------------------------------------------------
def write_log(events_dir: Path, n: int, seed: int = 0) -> Path:
    """contacts.parquet and events.parquet of `n` contacts; also contacts_again.parquet (10 % flipped)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    events_dir.mkdir(parents=True, exist_ok=True)
    ids = rng.permutation(n).astype(np.int64) + 1_000_000
    emails = pc.binary_join_element_wise(
        pa.array(np.char.add("person.", ids.astype(str))), pa.array(np.full(n, "example.org")), "@")
    created = (np.int64(1_735_689_600_000_000) + rng.integers(0, 300 * 86_400, n) * 1_000_000).astype(np.int64)  # 2025
    consent = rng.random(n) < 0.7

    def contacts(c: np.ndarray) -> pa.Table:
        return pa.table({"contact_id": ids, "email": emails,
                         "created_at": pa.array(created, pa.timestamp("us", tz="UTC")), "consent": c})

    pq.write_table(contacts(consent), events_dir / "contacts.parquet", compression="zstd")
    pq.write_table(contacts(consent ^ (rng.random(n) < 0.1)), events_dir.parent / "contacts_again.parquet",
                   compression="zstd")
    m = n * EVENTS_PER_CONTACT
    types = np.array(["delivered", "open", "click", "unsubscribe", "complaint"])[
        rng.choice(5, m, p=[0.6, 0.3, 0.08, 0.015, 0.005])]
    occurred = (np.int64(1_767_225_600_000_000) + rng.integers(0, 90 * 86_400, m) * 1_000_000).astype(np.int64)  # 2026 Q1
    pq.write_table(pa.table({"event_id": np.arange(m, dtype=np.int64), "send_id": np.arange(m, dtype=np.int64),
                             "contact_id": ids[rng.integers(0, n, m)], "type": types,
                             "occurred_at": pa.array(occurred, pa.timestamp("us", tz="UTC")),
                             "value": pa.nulls(m, pa.float64())}), events_dir / "events.parquet", compression="zstd")
    return events_dir


# --- one seeding in a child process --------------------------------------------------------------------------
def seed_module(build: str, work: Path):
    """privacy.seed of this tree ("streamed"), or of BASELINE loaded from git ("whole table")."""
    if build == "streamed":
        import privacy.seed

        return privacy.seed
    import importlib.util

    path = work / "baseline_seed.py"
    if not path.exists():
        src = subprocess.run(["git", "show", f"{BASELINE}:privacy/seed.py"], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout
        path.write_text(src)
    spec = importlib.util.spec_from_file_location("baseline_seed", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def vm_hwm_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def child(args) -> None:
    import pandas  # noqa: F401  (both builds import it: part of the floor)
    import pyarrow.dataset  # noqa: F401

    from inbox.settings import load_settings
    from privacy.consent import ConsentLedger  # noqa: F401
    from privacy.suppression import email_digests  # noqa: F401

    module = None if args.child == "none" else seed_module(args.child, Path(args.work))
    settings = load_settings()
    t, cpu = time.perf_counter(), cpu_seconds()
    kwargs = {"batch_rows": args.batch_rows} if args.child == "streamed" else {}
    counts = module.seed_consent(settings, force=True, **kwargs) if module else {}
    print(json.dumps({"seconds": time.perf_counter() - t, "cpu": cpu_seconds() - cpu, "peak_mib": vm_hwm_mib(),
                      "counts": counts}))


def cpu_seconds() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run_child(build: str, data_dir: Path, work: Path, batch_rows: int) -> dict:
    env = {**os.environ, "INBOX_DATA_DIR": str(data_dir), "INBOX_ARTIFACT_ROOT": str(data_dir.parent / "mlruns"),
           "INBOX_SECRET_KEY": KEY, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, __file__, "--child", build, "--work", str(work),
                          "--batch-rows", str(batch_rows)], env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- comparing the two ledgers -------------------------------------------------------------------------------
def ledger_digest(db_path: Path, started_us: int) -> dict[str, str]:
    """sha256 per table of the ledger's rows in a fixed order; a time from this benchmark's run (a
    consent change is dated "now") is written as 'now', recording times are left out (BASELINE read
    the clock for each kind of row, this tree once per seeding)."""
    db = sqlite3.connect(db_path)
    now = f"CASE WHEN occurred_us >= {int(started_us)} THEN 'now' ELSE occurred_us END"
    try:
        queries = {
            "events": f"SELECT seq, contact_id, kind, topic, source, {now}, ref FROM events ORDER BY seq",
            "state": f"SELECT contact_id, topic, kind, {now} FROM state ORDER BY 1, 2",
            "contacts": "SELECT contact_id, email_digest FROM contacts ORDER BY 1",
            "suppressed_contacts": "SELECT contact_id FROM suppressed_contacts ORDER BY 1",
        }
        out = {}
        for table, sql in queries.items():
            h = hashlib.sha256()
            for row in db.execute(sql):
                h.update(repr(row).encode())
            out[table] = h.hexdigest()
        return out
    finally:
        db.close()


def measure(n: int, work: Path, batch_rows: int) -> dict:
    log = work / f"log-{n}"
    started_us = time.time_ns() // 1000  # the synthetic log's times are all before this
    t = time.perf_counter()
    write_log(log / "events", n)
    print(f"  {n:,} contacts: log written in {time.perf_counter() - t:.1f} s", flush=True)
    results = {"imports only": {"first": run_child("none", work / "empty" / "data", work, batch_rows)}}
    builds = ("whole table", "streamed") if n % 2 else ("streamed", "whole table")  # alternate who goes first
    digests = {}
    for build in builds:
        data = work / f"{build.replace(' ', '-')}-{n}" / "data"
        shutil.copytree(log / "events", data / "events")
        r = {"first": run_child("baseline" if build == "whole table" else "streamed", data, work, batch_rows)}
        shutil.copyfile(log / "contacts_again.parquet", data / "events" / "contacts.parquet")
        r["again"] = run_child("baseline" if build == "whole table" else "streamed", data, work, batch_rows)
        digests[build] = ledger_digest(data / "privacy" / "consent.db", started_us)
        results[build] = r
        print(f"    {build}: first {r['first']['seconds']:.1f} s / {r['first']['peak_mib']:.0f} MiB, "
              f"again {r['again']['seconds']:.1f} s / {r['again']['peak_mib']:.0f} MiB", flush=True)
        shutil.rmtree(data.parent)
    if digests["whole table"] != digests["streamed"]:
        raise SystemExit(f"the ledgers differ at {n:,} contacts: {digests}")
    for phase in ("first", "again"):
        if results["whole table"][phase]["counts"] != results["streamed"][phase]["counts"]:
            raise SystemExit(f"the counts differ at {n:,} contacts ({phase}): {results}")
    shutil.rmtree(log)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[200_000, 1_000_000])
    ap.add_argument("--batch-rows", type=int, default=None, help="the streamed build's batch (default: its BATCH_ROWS)")
    ap.add_argument("--child", choices=["none", "baseline", "streamed"], help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.batch_rows is None:
        from privacy.seed import BATCH_ROWS

        args.batch_rows = BATCH_ROWS
    if args.child:
        child(args)
        return
    work = Path(tempfile.mkdtemp(prefix="bench_consent_seed_"))
    print(f"work dir {work}; baseline = privacy/seed.py at {BASELINE}; streamed batch {args.batch_rows:,} rows")
    all_results = {}
    try:
        for n in args.sizes:
            all_results[n] = measure(n, work, args.batch_rows)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\nledgers identical (every table) between the two builds at every size\n")
    print("| contacts | build | phase | seconds | CPU s | peak RSS MiB | above imports MiB | imports / opt-outs / contacts |")
    print("|---:|---|---|---:|---:|---:|---:|---|")
    for n, results in all_results.items():
        floor = results["imports only"]["first"]["peak_mib"]
        print(f"| {n:,} | imports only | | | | {floor:.0f} | 0 | |")
        for build in ("whole table", "streamed"):
            for phase in ("first", "again"):
                r = results[build][phase]
                c = r["counts"]
                print(f"| {n:,} | {build} | {phase} | {r['seconds']:.1f} | {r['cpu']:.1f} | {r['peak_mib']:.0f} | "
                      f"{r['peak_mib'] - floor:.0f} | {c['imports']:,} / {c['opt_outs']:,} / {c['contacts']:,} |")


if __name__ == "__main__":
    main()
