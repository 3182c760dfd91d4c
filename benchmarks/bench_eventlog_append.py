"""Appending to a large `events` table: segments (this tree) against the whole-file rewrite of a
baseline tree (a `git worktree` of the commit before segments), in the same run.

    .venv/bin/python benchmarks/bench_eventlog_append.py \\
        --base-tree BASE --work WORK --sizes 10000000 50000000

The table is synthetic (numpy, no world), built once per size under `--work` and reused: event ids
0..n-1 as the simulator writes them, send and contact ids, a type among the contract's, increasing
`occurred_at`, a value for conversions; zstd, pyarrow's default row groups (what `write_event_log`
writes). Each run starts from a hard link of it (neither tree modifies the file in place).

Batches are `serving.eventsink.append_events` calls (lock, validation, dedup, write), with fresh
63-bit event ids like the webhook's hashed ids: a webhook flush (`--webhook-batch` rows) and a send
round (`--round-batch` rows). Every phase runs in a fresh Python process whose PYTHONPATH is the tree
under test; it reports wall seconds per append (mean and max: merges make some appends slower), CPU
seconds (rusage user + system) per append and its peak RSS (VmHWM; exec resets it). The baseline,
which rewrites the table on every append, runs fewer appends (`--baseline-appends`).

"read" phases time `--reads` full DuckDB scans of every column of the table (what the features build does)
over the table's files: the baseline's one file; this tree's files after all its appends, then
again after a full merge of them into one file ("compact", timed too). Last, `--webhook-history`
random-id rows are appended (untimed) and webhook appends timed again: hashed ids spread over the
whole key range, so statistics exclude no segment holding them and every dedup reads their keys.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CHUNK = 1 << 20


def build_table(path: Path, n: int, seed: int = 0) -> None:
    """A synthetic events.parquet of `n` rows, written chunk by chunk (temp file, then rename)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sys.path.insert(0, str(ROOT))
    from simulation.schema import EVENT_TYPES, TABLES

    schema = TABLES["events"].arrow
    rng = np.random.default_rng(seed)
    start_us = 1_735_689_600_000_000  # 2025-01-01
    span_us = 180 * 86_400 * 1_000_000
    tmp = path.with_suffix(".parquet.tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    probs = np.array([0.45, 0.3, 0.12, 0.03, 0.02, 0.02, 0.01, 0.05])
    with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
        for lo in range(0, n, CHUNK):
            m = min(CHUNK, n - lo)
            ids = np.arange(lo, lo + m, dtype=np.int64)
            kinds = rng.choice(len(EVENT_TYPES), size=m, p=probs)
            value = np.where(np.array(EVENT_TYPES)[kinds] == "conversion", rng.gamma(2.0, 40.0, m), np.nan)
            occurred = start_us + ids * (span_us // max(n, 1)) + rng.integers(0, 3_600_000_000, m)
            writer.write_table(pa.table({
                "event_id": ids,
                "send_id": ids // 2,
                "contact_id": rng.integers(0, max(n // 50, 1), m, dtype=np.int64),
                "type": pa.array(np.array(EVENT_TYPES, dtype=object)[kinds], pa.string()),
                "occurred_at": pa.array(occurred, pa.timestamp("us", tz="UTC")),
                "value": pa.array(value, mask=np.isnan(value)),
            }, schema=schema))
    os.replace(tmp, path)


def batch_frame(rows: int, rng: np.random.Generator):
    import pandas as pd

    return pd.DataFrame({
        "event_id": rng.integers(0, 2**63 - 1, rows, dtype=np.int64),
        "send_id": rng.integers(0, 10**9, rows, dtype=np.int64),
        "contact_id": rng.integers(0, 10**6, rows, dtype=np.int64),
        "type": rng.choice(["delivered", "open", "click"], rows),
        "occurred_at": pd.Timestamp("2025-07-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 86_400, rows), unit="s"),
        "value": np.nan,
    })


# --- child phases (run with PYTHONPATH = the tree under test) ---------------------------------------------------
def _files(events_dir: Path) -> list[str]:
    try:
        from simulation.eventlog import table_files
    except ImportError:  # the baseline tree: one file per table
        return [str(events_dir / "events.parquet")]
    return [str(p) for p in table_files(events_dir, "events")]


def _peak_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(phase: str, events_dir: Path, rows: int, appends: int, seed: int) -> dict:
    import duckdb

    from serving.eventsink import append_events

    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    walls = []
    out: dict = {}
    if phase == "append":
        rng = np.random.default_rng(seed)
        frames = [batch_frame(rows, rng) for _ in range(appends)]
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        for frame in frames:
            t0 = time.perf_counter()
            added = append_events(events_dir, frame)
            walls.append(time.perf_counter() - t0)
            assert added == rows, (added, rows)
    elif phase == "read":
        con = duckdb.connect()
        con.execute("SET threads=2")
        for _ in range(appends):  # repeated scans: the file cache is warm after the first
            t0 = time.perf_counter()
            got = con.execute(
                "SELECT count(*), count(DISTINCT type), sum(send_id), sum(contact_id), min(occurred_at), "
                "max(occurred_at), sum(value), max(event_id) FROM read_parquet(?)", [_files(events_dir)]).fetchone()
            walls.append(time.perf_counter() - t0)
        out["rows"] = int(got[0])
    elif phase == "prefill":  # untimed: `rows` random-id rows appended in batches of 1M
        rng = np.random.default_rng(seed)
        for lo in range(0, rows, CHUNK):
            append_events(events_dir, batch_frame(min(CHUNK, rows - lo), rng))
        walls.append(0.0)
    elif phase == "compact":
        from simulation.eventlog import compact_table
        from simulation.segments import eventlog_lock

        t0 = time.perf_counter()
        with eventlog_lock(events_dir):
            compact_table(events_dir, "events", full=True)
        walls.append(time.perf_counter() - t0)
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    out.update(wall_mean=float(np.mean(walls)), wall_max=float(np.max(walls)), cpu_per=cpu / len(walls),
               peak_mib=_peak_mib(), files=len(_files(events_dir)), n=len(walls))
    return out


def run_child(tree: Path, phase: str, events_dir: Path, rows: int = 0, appends: int = 1, seed: int = 0) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", phase, "--events-dir", str(events_dir),
           "--rows", str(rows), "--appends", str(appends), "--seed", str(seed)]
    done = subprocess.run(cmd, env=env, cwd=str(tree), capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{phase} in {tree} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def fresh_copy(table: Path, run_dir: Path) -> Path:
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    os.link(table, run_dir / "events.parquet")  # both trees replace the name, never write the inode
    return run_dir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000_000, 50_000_000])
    ap.add_argument("--base-tree", type=Path, help="a worktree of the baseline commit (git worktree add DIR REV); required")
    ap.add_argument("--work", type=Path, help="scratch directory for the synthetic tables and runs; required")
    ap.add_argument("--webhook-batch", type=int, default=2_000)
    ap.add_argument("--webhook-appends", type=int, default=100)
    ap.add_argument("--round-batch", type=int, default=100_000)
    ap.add_argument("--round-appends", type=int, default=10)
    ap.add_argument("--baseline-appends", type=int, default=2)
    ap.add_argument("--reads", type=int, default=3, help="full scans per read phase")
    ap.add_argument("--webhook-history", type=int, default=10_000_000,
                    help="then append this many random-id rows and time webhook appends again (0: skip)")
    ap.add_argument("--child")
    ap.add_argument("--events-dir", type=Path)
    ap.add_argument("--rows", type=int, default=0)
    ap.add_argument("--appends", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.events_dir, args.rows, args.appends, args.seed)))
        return
    if args.base_tree is None or args.work is None:
        ap.error("--base-tree and --work are required")
    if not (args.base_tree / "simulation" / "eventlog.py").exists():
        raise SystemExit(f"--base-tree {args.base_tree}: not a checkout (git worktree add --detach it at the baseline)")
    trees = {"baseline": args.base_tree, "segments": ROOT}
    head = "{:<6} {:<9} {:<8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>6} {:>12}"
    rows_out = [head.format("table", "tree", "phase", "batch", "wall s", "max s", "CPU s", "peak MiB", "files",
                            "rows read")]
    for n in args.sizes:
        table = args.work / f"synthetic-{n}" / "events.parquet"
        if not table.exists():
            t0 = time.perf_counter()
            build_table(table, n)
            print(f"built {table} ({n:,} rows) in {time.perf_counter() - t0:.0f} s", flush=True)
        for name, tree in trees.items():
            run_dir = fresh_copy(table, args.work / f"run-{name}-{n}")
            webhook_k = args.baseline_appends if name == "baseline" else args.webhook_appends
            round_k = args.baseline_appends if name == "baseline" else args.round_appends
            phases = [("append", args.webhook_batch, webhook_k), ("append", args.round_batch, round_k),
                      ("read", 0, args.reads)]
            if name == "segments":
                phases += [("compact", 0, 1), ("read", 0, args.reads)]
                if args.webhook_history:
                    phases += [("prefill", args.webhook_history, 1), ("append", args.webhook_batch, 20)]
            for seed, (phase, rows, k) in enumerate(phases):
                r = run_child(tree, phase, run_dir, rows, k, seed)
                if phase == "prefill":
                    continue
                label = {"read": "read*"}.get(phase, phase) if seed > 3 else phase
                if seed > 5:
                    label = f"append+{args.webhook_history // 1_000_000}M"
                line = head.format(f"{n // 1_000_000}M", name, label,
                                   f"{rows:,}" if rows else "-", f"{r['wall_mean']:.3f}", f"{r['wall_max']:.3f}",
                                   f"{r['cpu_per']:.3f}", f"{r['peak_mib']:.0f}", r["files"],
                                   f"{r['rows']:,}" if "rows" in r else "")
                rows_out.append(line)
                print(line, flush=True)
            shutil.rmtree(run_dir)
    print()
    print(f"per append (webhook x{args.webhook_appends}, round x{args.round_appends}; baseline x{args.baseline_appends}); "
          f"read* = after the full compaction; append+{args.webhook_history // 1_000_000}M = webhook appends x20 after "
          f"{args.webhook_history:,} more random-id rows were appended (their keys are read for every dedup)")
    print("\n".join(rows_out))


if __name__ == "__main__":
    main()
