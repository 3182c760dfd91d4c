"""The feature build on Spark (local[2]): what each task loads and its memory, this tree against a
baseline tree (a `git worktree` of the commit before per-range facts) in the same run.

    flock /work/scale/big.lock .venv/bin/python benchmarks/bench_spark_build.py \\
        --base-tree /work/scale/sparkfacts/base --work /work/scale/sparkfacts/bench \\
        --events /work/scale/scoring/w200k/data/events /work/scale/scoring/w1m/data/events

Each build (`features.pipeline.build_features` with `features.spark_build.spark_contact_snapshots`,
`--partitions` ranges) runs in a fresh Python process whose PYTHONPATH is the tree under test; the
event log is only read. While it runs, a thread of this process polls it and its descendants every
0.2 s: the peak RSS (VmHWM) of the build process (the driver), of the JVM and of each Python worker
Spark started (workers are reused across tasks, so a worker's peak is that of the largest task it
ran), and the largest fact file (`*.pkl`) in the build's staging directory, which is what one task
unpickles. Polled from outside, a build that dies is measured up to then. Wall time is the whole
build and its contact-snapshot step (progress messages). The four contact tables of both trees are
compared (in slices, NaN equal) and then deleted. A failed build is reported with its first cause
(the process's stderr is kept beside its output folder).

`--embedded` also runs this tree's embedded build (no Spark) and compares the Spark tables to its
tables: at sizes where the baseline fails, that is the equality check. `--driver-memory` sets the
driver JVM's heap of both trees: the baseline gathers each result
partition of the tables in that heap.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MIB = 1 << 20


def _status_kib(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


class Poller(threading.Thread):
    """Peak VmHWM of a build process (the driver), the JVM and the Python workers below it, and the
    largest fact file; polled from outside, so a build that dies is measured up to then."""

    def __init__(self, root: int, out_dir: Path):
        super().__init__(daemon=True)
        self.root, self.out_dir, self.stop = root, out_dir, threading.Event()
        self.workers: dict[int, int] = {}
        self.jvm = self.driver = 0
        self.biggest_file = 0
        self.files = 0

    def run(self) -> None:
        seen_files: set[str] = set()
        while not self.stop.wait(0.2):
            self.driver = max(self.driver, _status_kib(self.root, "VmHWM") * 1024)
            for pid in _descendants(self.root):
                try:
                    cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    continue
                hwm = _status_kib(pid, "VmHWM") * 1024
                if b"java" in cmd.split(b"\0")[0]:
                    self.jvm = max(self.jvm, hwm)
                elif b"pyspark" in cmd or b"python" in cmd.split(b"\0")[0]:
                    self.workers[pid] = max(self.workers.get(pid, 0), hwm)
            for f in self.out_dir.glob(".build-*/**/*.pkl"):
                try:
                    self.biggest_file = max(self.biggest_file, f.stat().st_size)
                    seen_files.add(f.name)
                except OSError:
                    pass
            self.files = len(seen_files)


def child(events: str, out: str, partitions: int) -> None:
    """One build with the tree on PYTHONPATH (partitions 0: the embedded build, no Spark); prints a JSON line."""
    import features.spark_build as sb
    from features.pipeline import build_features
    from models.spark_scoring import spark_session

    out_dir = Path(out)
    marks: dict[str, float] = {}

    def say(msg: str) -> None:
        for key in ("contact snapshots", "content features"):
            if msg == key:
                marks[key] = time.perf_counter()

    spark = spark_session("local[2]") if partitions else None
    summary, error = {}, None
    try:
        t0 = time.perf_counter()
        step = sb.spark_contact_snapshots(spark, partitions) if partitions else None
        try:
            summary = build_features(events, out_dir, contact_snapshots=step, progress=say)
        except Exception as exc:  # e.g. the driver's JVM out of heap: the tasks' peaks are still measured
            lines = [x.strip() for x in str(exc).splitlines()]
            error = next((x for x in lines if x.startswith("Caused by:")), lines[0] if lines else type(exc).__name__)
        wall = time.perf_counter() - t0
        time.sleep(0.5)  # a last poll of the workers
    finally:
        if spark is not None:
            spark.stop()
    tasks = getattr(step, "tasks", None)
    end = marks.get("content features", time.perf_counter() if error else None)
    print(json.dumps({
        "code": sb.__file__, "wall_s": wall, "snapshots_s": end - marks["contact snapshots"], "error": error,
        "driver_hwm": _status_kib(os.getpid(), "VmHWM") * 1024, "rows": summary.get("contact_engagement"),
        "task_facts": [t["facts"] for t in tasks] if tasks else None,
        "facts_total": getattr(step, "facts_total", None),
    }))


def run_tree(tree: Path, events: Path, out: Path, partitions: int, driver_memory: str | None) -> dict:
    """One build in a fresh process; a failed build is a result too (its last error line)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    if driver_memory:  # read by pyspark when it starts the JVM
        env["PYSPARK_SUBMIT_ARGS"] = f"--driver-memory {driver_memory} pyspark-shell"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_spark_build.py"), "--child", str(events), str(out),
           str(partitions)]
    out.parent.mkdir(parents=True, exist_ok=True)
    log = out.parent / f"{out.name}.log"
    t0 = time.perf_counter()
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd, env=env, cwd=str(tree), stdout=subprocess.PIPE, stderr=err, text=True)
        poller = Poller(proc.pid, out)
        poller.start()
        stdout, _ = proc.communicate()
        poller.stop.set()
        poller.join()
    measured = {"jvm_hwm": poller.jvm, "worker_hwm": sorted(poller.workers.values(), reverse=True),
                "fact_file_max": poller.biggest_file, "fact_files": poller.files}
    if proc.returncode:
        lines = [line.strip() for line in log.read_text().splitlines()]
        causes = [x for x in lines if x.startswith("Caused by:") or "Error:" in x]
        return {"code": str(tree), "wall_s": time.perf_counter() - t0, "snapshots_s": None, "rows": None,
                "error": (causes or [f"exit code {proc.returncode}"])[0], "driver_hwm": poller.driver,
                "task_facts": None, **measured}
    log.unlink()
    result = {**json.loads(stdout.strip().splitlines()[-1]), **measured}
    if not result["code"].startswith(str(tree)):
        raise SystemExit(f"{tree}: the build ran {result['code']}, not the tree under test")
    return result


def _slices(path: Path, size: int = 1 << 16):
    """A Parquet file's rows as Arrow tables of `size` rows (row groups may differ between the two files)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    carry = None
    for batch in pq.ParquetFile(path).iter_batches(batch_size=size):
        carry = pa.Table.from_batches([batch]) if carry is None else pa.concat_tables([carry, pa.Table.from_batches([batch])])
        while carry.num_rows >= size:
            yield carry.slice(0, size).combine_chunks()
            carry = carry.slice(size)
    if carry is not None and carry.num_rows:
        yield carry.combine_chunks()


def same_tables(a: Path, b: Path) -> bool:
    """The four contact tables hold the same rows in the same order (NaN equal to NaN), read in slices."""
    import itertools

    import pandas as pd
    import pyarrow.parquet as pq

    sys.path.insert(0, str(ROOT))
    from features.pipeline import CONTACT_TABLES, TABLE_FILES

    for name in CONTACT_TABLES:
        fa, fb = a / TABLE_FILES[name], b / TABLE_FILES[name]
        if not pq.read_schema(fa).equals(pq.read_schema(fb)):
            return False
        for x, y in itertools.zip_longest(_slices(fa), _slices(fb)):
            if x is None or y is None:
                return False
            if not x.equals(y):  # Arrow's equality has NaN != NaN: compare those slices as pandas
                try:
                    pd.testing.assert_frame_equal(x.to_pandas(), y.to_pandas(), check_exact=True)
                except AssertionError:
                    return False
    return True


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        return child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-tree", type=Path, required=True, help="checkout of the baseline commit")
    ap.add_argument("--work", type=Path, required=True, help="scratch folder for the builds' outputs")
    ap.add_argument("--events", type=Path, nargs="+", required=True, help="event-log folders (only read)")
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--embedded", action="store_true",
                    help="also run the embedded build of this tree and compare this tree's Spark tables to it")
    ap.add_argument("--driver-memory", default=None, help="the Spark driver's JVM heap for both trees, e.g. 6g")
    args = ap.parse_args()
    if not (args.base_tree / "features" / "spark_build.py").exists():
        raise SystemExit(f"--base-tree {args.base_tree}: not a checkout (git worktree add --detach it at the baseline)")
    rows = []
    for events in args.events:
        results = {}
        world = events.parent.parent.name if events.parent.name == "data" else events.parent.name
        runs = [("baseline", args.base_tree, args.partitions), ("this tree", ROOT, args.partitions)]
        runs += [("embedded, this tree", ROOT, 0)] if args.embedded else []
        outs = {}
        for label, tree, partitions in runs:
            outs[label] = out = args.work / f"{world}-{label.replace(' ', '_').replace(',', '')}"
            shutil.rmtree(out, ignore_errors=True)
            results[label] = run_tree(tree, events, out, partitions, args.driver_memory)
            print(f"{events}: {label}: {json.dumps(results[label])}", file=sys.stderr, flush=True)
        equal = {}
        for label, other in (("this tree", "baseline"), ("this tree", "embedded, this tree")):
            if other in results and not results[label]["error"] and not results[other]["error"]:
                verdict = f"{other}: {'yes' if same_tables(outs[label], outs[other]) else 'NO'}"
                equal[label] = f"{equal[label]}; {verdict}" if label in equal else verdict
        for out in outs.values():
            shutil.rmtree(out, ignore_errors=True)
        for label, r in results.items():
            rows.append((world, label, r, equal.get(label, "-")))
    print(f"\nSpark local[2], {args.partitions} partitions, driver memory {args.driver_memory or 'default (1g)'}; "
          "peak RSS = VmHWM; worker = a Python worker Spark started (reused across tasks)\n")
    print("| world | code | rows (engagement) | build s | snapshot step s | largest fact file MiB | fact files "
          "| worker peak MiB (max / sum) | driver peak MiB | JVM peak MiB | facts per task (largest / total) | contact tables equal to |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for world, label, r, equal in rows:
        w = r["worker_hwm"]
        facts = (f"{max(r['task_facts']):,} / {r['facts_total']:,}" if r["task_facts"]
                 else "all (one file)" if w else "all (one process)")
        snap = "-" if r["snapshots_s"] is None else f"{r['snapshots_s']:.0f}"
        rows_or_error = f"{r['rows']:,}" if r["rows"] is not None else f"FAILED after {r['wall_s']:.0f} s: {r['error'][:110]}"
        print(f"| {world} | {label} | {rows_or_error} | {r['wall_s']:.0f} | {snap} | "
              f"{r['fact_file_max'] / MIB:,.0f} | {r['fact_files']} | {max(w, default=0) / MIB:,.0f} / {sum(w) / MIB:,.0f} | "
              f"{r['driver_hwm'] / MIB:,.0f} | {r['jvm_hwm'] / MIB:,.0f} | {facts} | {equal} |")


if __name__ == "__main__":
    main()
