"""Webhook journal flushes after many hashed-id events: this tree (two-phase flush, no lookup in the
table) against a baseline tree (a `git worktree` of the commit before it), in the same run.

    .venv/bin/python benchmarks/bench_journal_flush.py --base-tree BASE --work WORK \\
        --table WORK/synthetic-10000000/events.parquet --history 10000000

Each tree starts from a hard link of a synthetic `events.parquet` (`--table`, e.g. the sequential-id
table `bench_eventlog_append.py` builds), then `--history` events with random 63-bit ids (like
`serving.webhooks.stable_event_id`) go through the journal in batches of `--history-batch`
(`EventJournal.append` + `flush`; "prefill", timed as a whole), then `--flushes` webhook batches of
`--batch` rows: the append to the journal and the flush are timed apart. Each phase runs in a fresh
Python process whose PYTHONPATH is the tree under test; it reports wall seconds (mean and max: merges
make some flushes slower), CPU seconds (rusage user + system) and peak RSS (VmHWM).
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
sys.path.insert(0, str(Path(__file__).resolve().parent))


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def child(phase: str, events_dir: Path, rows: int, batch: int, seed: int) -> dict:
    from bench_eventlog_append import _peak_mib, batch_frame
    from serving.eventsink import EventJournal, flush
    from simulation.eventlog import table_files

    rng = np.random.default_rng(seed)
    appends, flushes, cpus = [], [], []
    added = 0
    t_all, cpu_all = time.perf_counter(), _cpu()
    for lo in range(0, rows, batch):
        frame = batch_frame(min(batch, rows - lo), rng)
        t0 = time.perf_counter()
        journal = EventJournal(events_dir)
        recorded, _ = journal.append(frame)
        journal.close()
        t1, c1 = time.perf_counter(), _cpu()
        added += flush(events_dir)
        flushes.append(time.perf_counter() - t1)
        cpus.append(_cpu() - c1)
        appends.append(t1 - t0)
        assert recorded == len(frame)
    assert added == rows, (added, rows)
    return dict(total=time.perf_counter() - t_all, cpu_total=_cpu() - cpu_all, append_mean=float(np.mean(appends)),
                flush_mean=float(np.mean(flushes)), flush_max=float(np.max(flushes)),
                flush_cpu=float(np.mean(cpus)), peak_mib=_peak_mib(), n=len(flushes),
                files=len(table_files(events_dir, "events")))


def run_child(tree: Path, phase: str, events_dir: Path, rows: int, batch: int, seed: int) -> dict:
    env = {**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{ROOT / 'benchmarks'}"}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", phase, "--events-dir", str(events_dir),
           "--rows", str(rows), "--batch", str(batch), "--seed", str(seed)]
    done = subprocess.run(cmd, env=env, cwd=str(tree), capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{phase} in {tree} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-tree", type=Path, help="a worktree of the baseline commit (git worktree add DIR REV); required")
    ap.add_argument("--work", type=Path, help="scratch directory for the runs; required")
    ap.add_argument("--table", type=Path, help="a synthetic events table (bench_eventlog_append.py builds one); required")
    ap.add_argument("--history", type=int, nargs="+", default=[10_000_000])
    ap.add_argument("--history-batch", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=2_000)
    ap.add_argument("--flushes", type=int, default=20)
    ap.add_argument("--child")
    ap.add_argument("--events-dir", type=Path)
    ap.add_argument("--rows", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.events_dir, args.rows, args.batch, args.seed)))
        return
    if args.base_tree is None or args.work is None or args.table is None:
        ap.error("--base-tree, --work and --table are required")
    if not (args.base_tree / "serving" / "eventsink.py").exists():
        raise SystemExit(f"--base-tree {args.base_tree}: not a checkout (git worktree add --detach it at the baseline)")
    import pyarrow.parquet as pq

    base_rows = pq.read_metadata(args.table).num_rows
    trees = {"baseline": args.base_tree, "two-phase": ROOT}
    head = "{:<9} {:<10} {:<8} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>6}"
    out = [head.format("history", "tree", "phase", "batch", "append s", "flush s", "max s", "CPU s", "peak MiB",
                       "files")]
    for history in args.history:
        for name, tree in trees.items():
            run_dir = args.work / f"run-{name}-{history}"
            if run_dir.exists():
                shutil.rmtree(run_dir)
            run_dir.mkdir(parents=True)
            os.link(args.table, run_dir / "events.parquet")  # neither tree writes the base file's inode
            for seed, (phase, rows, batch) in enumerate([("prefill", history, args.history_batch),
                                                         ("flush", args.flushes * args.batch, args.batch)]):
                r = run_child(tree, phase, run_dir, rows, batch, seed)
                if phase == "prefill":
                    line = head.format(f"{history / 1e6:g}M", name, phase, f"{batch:,}", "-",
                                       f"{r['total']:.1f} tot", f"{r['flush_max']:.2f}", f"{r['cpu_total']:.1f} tot",
                                       f"{r['peak_mib']:.0f}", r["files"])
                else:
                    line = head.format(f"{history / 1e6:g}M", name, phase, f"{batch:,}", f"{r['append_mean']:.3f}",
                                       f"{r['flush_mean']:.3f}", f"{r['flush_max']:.3f}", f"{r['flush_cpu']:.3f}",
                                       f"{r['peak_mib']:.0f}", r["files"])
                out.append(line)
                print(line, flush=True)
            shutil.rmtree(run_dir)
    print()
    print(f"table: {args.table} ({base_rows:,} sequential-id rows) + history random-id rows through the journal "
          f"(prefill: batches of {args.history_batch:,}, journal append + flush, totals); flush: {args.flushes} "
          f"webhook batches of {args.batch:,}, means per batch (append = into the journal, flush = into the table)")
    print("\n".join(out))


if __name__ == "__main__":
    main()
