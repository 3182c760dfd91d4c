"""Benchmark: every step of the loop at several list sizes (wall time, peak RSS, disk).

For each size a fresh workspace is created and the steps of `inbox demo` run one
after the other, each as its own process (the CLI a user would type), so every
step's memory is its own:

    simulate, features build, features apply, features materialize,
    train lead_scoring, train send_time, train content_preference, publish,
    serve (service start to ready: every worker loaded; per-worker RSS), loop (two send rounds).

Memory is sampled every 0.2 s over the step's whole process tree (a served step
has a BentoML arbiter and its workers): "peak RSS" is the largest single process,
"tree" the largest sum. The kernel's own high-water mark of the direct child
(`wait4` rusage) is taken when it is larger than the sampled one. Disk is the size
of `data/` after the step. "s / 1k contacts" shows whether a step's cost grows
faster than the list.

    .venv/bin/python benchmarks/bench_scale.py [--sizes 50000,200000,1000000] [--days 120] [--seed 7]
        [--workdir DIR] [--keep] [--steps simulate,features_build,...] [--reuse] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
INBOX = [sys.executable, "-m", "inbox.cli"]
GiB = 1024 ** 3

SERVE_SNIPPET = textwrap.dedent("""
    import json, sys, time
    import psutil
    from inbox.settings import load_settings
    from serving.runner import start_service
    settings = load_settings()
    t0 = time.perf_counter()
    with start_service(settings, timeout=600) as svc:
        ready = time.perf_counter() - t0
        tree = psutil.Process(svc.process.pid)
        workers = [p.memory_info().rss for p in tree.children(recursive=True)]
        print(json.dumps({"ready_seconds": ready, "worker_rss": workers}))
""")

LOOP_SNIPPET = textwrap.dedent("""
    import json
    from inbox.settings import load_settings
    from serving.demo_loop import run_demo_loop
    out = run_demo_loop(load_settings(), recipients=int(__import__('sys').argv[1]), progress=False)
    print(json.dumps({k: v for k, v in out.items() if k != "rounds"}, default=str))
""")


def steps(size: int, days: int, seed: int, recipients: int) -> list[tuple[str, list[str]]]:
    py = [sys.executable, "-c"]
    return [
        ("simulate", INBOX + ["simulate", "--contacts", str(size), "--days", str(days), "--seed", str(seed)]),
        ("features_build", INBOX + ["features", "build"]),
        ("features_apply", INBOX + ["features", "apply"]),
        ("features_materialize", INBOX + ["features", "materialize"]),
        ("train_lead_scoring", INBOX + ["train", "lead_scoring"]),
        ("train_send_time", INBOX + ["train", "send_time"]),
        ("train_content_preference", INBOX + ["train", "content_preference"]),
        ("publish", INBOX + ["publish"]),
        ("serve", py + [SERVE_SNIPPET]),
        ("loop", py + [LOOP_SNIPPET, str(recipients)]),
    ]


class TreeSampler:
    """Largest single-process RSS and largest tree RSS of a process and its descendants."""

    def __init__(self, pid: int, every: float = 0.2):
        import psutil

        self.root = psutil.Process(pid)
        self.every = every
        self.peak = 0
        self.peak_tree = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:
                return
            rss = []
            for p in procs:
                try:
                    rss.append(p.memory_info().rss)
                except psutil.Error:
                    pass
            if rss:
                self.peak = max(self.peak, max(rss))
                self.peak_tree = max(self.peak_tree, sum(rss))
            self._stop.wait(self.every)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def disk_bytes(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def run_step(name: str, cmd: list[str], env: dict, cwd: Path, log: Path) -> dict:
    t0 = time.perf_counter()
    with open(log, "ab") as out:
        out.write(f"\n==== {name}: {' '.join(cmd[:6])}\n".encode())
        out.flush()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=out)
        sampler = TreeSampler(proc.pid)
        stdout = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        sampler.stop()
        out.write(stdout)
    wall = time.perf_counter() - t0
    peak = max(sampler.peak, usage.ru_maxrss * 1024)
    row = {"step": name, "seconds": wall, "peak_rss": peak, "tree_rss": max(sampler.peak_tree, peak),
           "cpu_seconds": usage.ru_utime + usage.ru_stime, "exit": proc.returncode}
    if name in ("serve", "loop") and proc.returncode == 0:
        try:
            row["detail"] = json.loads(stdout.decode().strip().splitlines()[-1])
        except (ValueError, IndexError):
            pass
    return row


def run_size(size: int, args, root: Path) -> list[dict]:
    work = root / f"n{size}"
    if work.exists() and not args.reuse:
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "INBOX_DATA_DIR": str(work / "data"), "INBOX_ARTIFACT_ROOT": str(work / "mlruns"),
           "PYTHONPATH": str(REPO), "BENTOML_DO_NOT_TRACK": "True"}
    env.pop("MLFLOW_TRACKING_URI", None)
    rows = []
    wanted = set(args.steps.split(",")) if args.steps else None
    for name, cmd in steps(size, args.days, args.seed, args.recipients):
        if wanted is not None and name not in wanted:
            continue
        row = run_step(name, cmd, env, work, work / "bench.log")
        row.update(size=size, disk=disk_bytes(work / "data") + disk_bytes(work / "mlruns"))
        rows.append(row)
        print(format_row(row), flush=True)
        if row["exit"] != 0:
            print(f"  step {name} failed (exit {row['exit']}); see {work / 'bench.log'}", flush=True)
            break
    if not (args.keep or args.reuse):
        shutil.rmtree(work, ignore_errors=True)
    return rows


def format_row(r: dict) -> str:
    extra = ""
    d = r.get("detail") or {}
    if "ready_seconds" in d:
        extra = f"ready {d['ready_seconds']:.1f} s, workers {', '.join(f'{x / GiB:.2f}' for x in d['worker_rss'])} GiB"
    elif "reward_round1" in d:
        extra = f"reward r1 {d['reward_round1']:.4f} r2 {d['reward_round2']:.4f} uniform {d['reward_uniform']:.4f}"
    per_k = r["seconds"] / (r["size"] / 1000)
    return (f"| {r['size']:>9,} | {r['step']:<24} | {r['seconds']:8.1f} | {per_k:7.3f} | {r['peak_rss'] / GiB:6.2f} "
            f"| {r['tree_rss'] / GiB:6.2f} | {r['disk'] / GiB:7.2f} | {'ok' if r['exit'] == 0 else 'FAIL'} | {extra} |")


HEADER = ("| contacts  | step                     | seconds  | s/1k c. | peak RSS GiB | tree GiB | disk GiB | exit | detail |\n"
          "|---:|---|---:|---:|---:|---:|---:|---|---|")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="50000,200000,1000000")
    p.add_argument("--days", type=int, default=120)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--recipients", type=int, default=2000)
    p.add_argument("--workdir", type=Path, default=None, help="where the workspaces go (default: a temp dir)")
    p.add_argument("--keep", action="store_true", help="keep each size's workspace")
    p.add_argument("--steps", default=None, help="comma-separated subset of the steps")
    p.add_argument("--reuse", action="store_true",
                   help="run --steps in the existing workspaces of --workdir (e.g. the later steps after code changes)")
    p.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = p.parse_args(argv)
    try:
        sizes = [int(s) for s in args.sizes.split(",")]
    except ValueError:
        p.error(f"--sizes: expected comma-separated integers, got {args.sizes!r}")
    if any(s <= 0 for s in sizes):
        p.error("--sizes: every size must be positive")
    if args.reuse and args.workdir is None:
        p.error("--reuse needs --workdir (the workspaces to run in)")
    root = args.workdir or Path(tempfile.mkdtemp(prefix="bench-scale-"))
    root.mkdir(parents=True, exist_ok=True)
    print(f"workspaces under {root}; load average {os.getloadavg()[0]:.1f}")
    print(HEADER, flush=True)
    rows = []
    for size in sizes:
        rows += run_size(size, args, root)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))
    over = [r for r in rows if r["peak_rss"] > 8 * GiB]
    print(f"\nsteps over 8 GiB peak RSS: {len(over)}" + "".join(f"\n  {r['size']:,} {r['step']}" for r in over))
    return 0 if not over and all(r["exit"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
