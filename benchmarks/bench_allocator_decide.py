"""Allocator.decide cost per call (choose + SQLite log commit), this tree vs a baseline revision.

    .venv/bin/python benchmarks/bench_allocator_decide.py [--baseline d3e41ac] [--world /tmp/prof/w]
        [--sizes 1 10 100 1000] [--rounds 3]

What `serving/decide.py` pays in the allocator: `Allocator.decide(campaign, contact_ids,
context)` with a (n, 2) float context, decision ids generated, every decision committed to
the WAL decision log before the call returns. Each version runs in its own interpreter on
its own fresh copy of the same bandit directory (`--world DIR`: DIR/data/bandit with its
campaign `bench`; default: a new campaign `bench` with 4 variants and the context features
engagement_score, open_rate_30d), one BLAS thread. The baseline's `experiments` package is
`git archive`d into a temp dir (the working tree is untouched) and put first on PYTHONPATH;
each worker prints the file it imported, so the table shows which code ran.

Versions alternate `--rounds` times (current, baseline, current, ...) so both see the same
machine load; a cell is the median over rounds of each round's median over blocks of CPU
time (`time.process_time`, all threads: the WAL checkpointer's too) per decide, plus wall
p50/p99/p99.9 per call (calls back to back: a WAL checkpoint inside a commit shows in the
tail). The load average during each version's runs is printed with the table.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from revisions import export_package  # noqa: E402

CALLS = {1: 3000, 10: 2000, 100: 600, 1000: 100}  # decides per size and round
BLOCKS = 10
CONTEXT = ["engagement_score", "open_rate_30d"]


def _bench_campaign(bandit_dir: Path) -> None:
    """A campaign like the profiling world's `bench`: 4 variants with features, 2 context features."""
    import pandas as pd

    from experiments.bandit import Allocator

    variants = pd.DataFrame({
        "content_id": [0, 1, 2, 3],
        "topic": ["product", "education", "event", "product"],
        "subject_length": [38, 21, 45, 52],
        "has_emoji": [True, False, False, True],
    })
    alloc = Allocator.open(bandit_dir)
    alloc.register_campaign("bench", variants, CONTEXT, reward_event="click", wait_window="48h",
                            policy="lin_ts", floor=0.02)
    alloc.close()


def worker(bandit_dir: str, sizes: list[int]) -> dict:
    """Runs in a fresh interpreter: per batch size, CPU ms per decide and wall percentiles."""
    import time

    import numpy as np
    from threadpoolctl import threadpool_limits

    import experiments.bandit as bandit
    from experiments.bandit import Allocator

    threadpool_limits(1)
    alloc = Allocator.open(bandit_dir)
    rng = np.random.default_rng(0)
    out = {"code": str(Path(bandit.__file__).parent), "policy_version": alloc.policy_version, "sizes": {}}
    for n in sizes:
        calls = CALLS.get(n, max(20, 100_000 // n))
        ids = [rng.choice(3000, n, replace=n > 3000) for _ in range(calls)]
        ctx = [rng.random((n, len(CONTEXT))) for _ in range(calls)]
        for i in range(min(200, calls)):  # warm-up: scorer cache, SQLite page cache
            alloc.decide("bench", ids[i], ctx[i])
        block = max(1, calls // BLOCKS)
        cpu, wall = [], []
        for start in range(0, calls - block + 1, block):
            c0 = time.process_time()
            for i in range(start, start + block):
                t0 = time.perf_counter()
                alloc.decide("bench", ids[i], ctx[i])
                wall.append(time.perf_counter() - t0)
            cpu.append((time.process_time() - c0) / block)
        out["sizes"][str(n)] = {"cpu_ms": 1e3 * float(np.median(cpu)), "calls": len(wall),
                                **{f"p{q}_ms": 1e3 * float(np.percentile(wall, q)) for q in (50, 99, 99.9)}}
    alloc.close()
    return out


def run_worker(code_root: Path | None, bandit_src: Path, scratch: Path, sizes: list[int]) -> dict:
    """One measurement round of one version on a fresh copy of the bandit directory."""
    if scratch.exists():
        shutil.rmtree(scratch)
    shutil.copytree(bandit_src, scratch)
    env = dict(os.environ)
    if code_root is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(code_root), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    load_before = os.getloadavg()[0]
    done = subprocess.run([sys.executable, __file__, "--worker", str(scratch), "--sizes", *map(str, sizes)],
                          env=env, cwd=str(code_root or Path(__file__).resolve().parents[1]),
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"worker ({code_root or 'current'}) failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["load"] = (load_before + os.getloadavg()[0]) / 2
    shutil.rmtree(scratch)
    return result


def main(argv=None) -> int:
    import numpy as np
    from rich.console import Console
    from rich.table import Table

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--baseline", help="git revision whose experiments package is measured too (same run)")
    p.add_argument("--world", type=Path, help="a world directory whose data/bandit holds campaign 'bench'")
    p.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 100, 1000])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.sizes)))
        return 0
    if any(n < 1 for n in args.sizes):
        raise SystemExit("--sizes: batch sizes must be >= 1")
    console = Console(width=150)
    with tempfile.TemporaryDirectory(prefix="bench_allocator_") as tmp:
        tmp = Path(tmp)
        bandit_src = tmp / "bandit"
        if args.world:
            src = args.world / "data" / "bandit"
            if not (src / "decisions.db").exists():
                raise SystemExit(f"--world: no decision log at {src / 'decisions.db'}")
            shutil.copytree(src, bandit_src)
        else:
            _bench_campaign(bandit_src)
        versions = {"current": None}
        if args.baseline:
            versions[f"baseline {args.baseline}"] = export_package(args.baseline, tmp / "baseline_src", "experiments")
        runs: dict[str, list[dict]] = {name: [] for name in versions}
        for r in range(args.rounds):
            for name, root in versions.items():
                console.print(f"round {r + 1}/{args.rounds}: {name} ...")
                runs[name].append(run_worker(root, bandit_src, tmp / "scratch", args.sizes))
    table = Table(title="Allocator.decide: choose + SQLite WAL log commit, per call (median over rounds)")
    table.add_column("contacts", justify="right")
    for name in runs:
        table.add_column(f"{name}\nCPU ms", justify="right")
        table.add_column(f"{name}\nwall p50 / p99 / p99.9 ms", justify="right")
    if args.baseline:
        table.add_column("CPU\nbaseline / current", justify="right")
    for n in args.sizes:
        cells, cpu = [], {}
        for name, results in runs.items():
            cell = {k: float(np.median([res["sizes"][str(n)][k] for res in results]))
                    for k in ("cpu_ms", "p50_ms", "p99_ms", "p99.9_ms")}
            cpu[name] = cell["cpu_ms"]
            cells += [f"{cell['cpu_ms']:.3f}", f"{cell['p50_ms']:.3f} / {cell['p99_ms']:.2f} / {cell['p99.9_ms']:.1f}"]
        if args.baseline:
            base, cur = cpu[f"baseline {args.baseline}"], cpu["current"]
            cells.append(f"{base / cur:.2f}x")
        table.add_row(f"{n:,}", *cells)
    console.print(table)
    for name, results in runs.items():
        loads = ", ".join(f"{res['load']:.2f}" for res in results)
        console.print(f"{name}: code {results[0]['code']}, policy version {results[0]['policy_version']}, "
                      f"1-min load average per round: {loads}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
