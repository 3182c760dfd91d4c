"""Benchmark: start-up of the `inbox` CLI, a base checkout against this tree, in the same run.

Each command runs as a fresh process (`python -c "from inbox.cli import main; ..."`, what the `inbox`
console script does) with `PYTHONPATH` set to the checkout under test, so the same venv runs both:

    inbox --help
    inbox score lead_scoring --help
    inbox score lead_scoring --out F     (a real pass over a prebuilt world: `--data`, `--mlruns`)
    the same, with no read plan recorded for the world's Feast registry (`models.read_plans`): the first
        join after an apply or materialize; `<data>/feast/read_plans.json` is deleted before each run

Each command runs `--repeat` times per checkout, the two checkouts alternating, and the best wall time
and best CPU time (user + system of the process, `wait4` rusage; steadier than wall time on a loaded
machine) are kept. A second table comes from one extra run of each command with `-X importtime`: for
each heavy library the process imported, the milliseconds spent in its own modules (the tracing itself
slows imports, so these read larger than in an untraced run). The two score files are compared: same
contacts, largest probability difference.

The base is a git worktree of the revision before the change (made when `--base` does not exist):

    .venv/bin/python benchmarks/bench_cli_startup.py --base /work/scale/startup/base --rev 754ca52 \
        --data /work/scale/startup/data --mlruns /work/scale/startup/mlruns [--repeat 3] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("pandas", "scipy", "pyarrow", "feast", "mlflow", "lightgbm", "sklearn", "torch", "dask", "bentoml")
RUNNER = "import sys; from inbox.cli import main; sys.exit(main(sys.argv[1:]))"


SCORE = "inbox score lead_scoring (50k world)"
SCORE_NEW_REGISTRY = "inbox score lead_scoring, no recorded read plan"


def commands(out: Path) -> dict[str, list[str]]:
    score = ["score", "lead_scoring", "--out", str(out)]
    return {"inbox --help": ["--help"], "inbox score lead_scoring --help": ["score", "lead_scoring", "--help"],
            SCORE: score, SCORE_NEW_REGISTRY: score}


def checkout(base: Path, rev: str) -> str:
    """The commit of the base worktree, adding it at `rev` when `base` does not exist yet."""
    if not base.exists():
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(base), rev], check=True,
                       capture_output=True)
    return subprocess.run(["git", "-C", str(base), "rev-parse", "--short", "HEAD"], check=True, capture_output=True,
                          text=True).stdout.strip()


def environment(tree: Path, data: Path, mlruns: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(tree), "INBOX_DATA_DIR": str(data), "INBOX_ARTIFACT_ROOT": str(mlruns)}
    env.pop("MLFLOW_TRACKING_URI", None)  # follows INBOX_ARTIFACT_ROOT
    return env


def run(tree: Path, args: list[str], env: dict[str, str], flags: tuple[str, ...] = ()) -> dict:
    """One process: wall seconds, CPU seconds, its stderr (importtime goes there)."""
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, *flags, "-c", RUNNER, *args], cwd=tree, env=env,
                                stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        err.seek(0)
        text = err.read().decode(errors="replace")
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"inbox {' '.join(args)} in {tree} exited {code}:\n{text[-2000:]}")
    return {"seconds": wall, "cpu_seconds": usage.ru_utime + usage.ru_stime, "stderr": text}


def heavy_imports(importtime: str) -> dict[str, float]:
    """Milliseconds spent importing each HEAVY library's own modules: the self times of the `-X importtime`
    lines whose top-level package is that library, summed (work a library's import does in another
    library's modules, e.g. Feast importing torch, counts for the other)."""
    got = {}
    for line in importtime.splitlines():
        if not line.startswith("import time:"):
            continue
        own, _, name = (part.strip() for part in line[len("import time:"):].split("|"))
        top = name.split(".")[0]
        if top in HEAVY and own.isdigit():
            got[top] = got.get(top, 0.0) + int(own) / 1000
    return got


def same_scores(a: Path, b: Path) -> tuple[bool, float]:
    import numpy as np
    import pyarrow.parquet as pq

    ta, tb = pq.read_table(a, columns=["contact_id", "probability"]), pq.read_table(b, columns=["contact_id",
                                                                                              "probability"])
    same = ta.column(0).equals(tb.column(0))
    diff = float(np.max(np.abs(ta.column(1).to_numpy() - tb.column(1).to_numpy()))) if same and len(ta) else 0.0
    return same, diff


def main(argv=None) -> int:
    from rich.console import Console
    from rich.table import Table

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", type=Path, required=True, help="checkout of the base revision (git worktree)")
    p.add_argument("--rev", default="HEAD~1", help="revision to check out when --base does not exist")
    p.add_argument("--data", type=Path, required=True, help="a prebuilt world's data dir (a copy: score reads it)")
    p.add_argument("--mlruns", type=Path, required=True, help="its MLflow store (INBOX_ARTIFACT_ROOT)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--json", type=Path, help="write the measurements as JSON")
    args = p.parse_args(argv)
    if not (args.data / "features").is_dir() or not (args.mlruns / "mlflow.db").is_file():
        p.error("--data needs a features/ directory and --mlruns an mlflow.db")
    base_commit = checkout(args.base.resolve(), args.rev)
    head_commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                                 text=True, check=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, check=True).stdout.strip()
    trees = {f"base {base_commit}": args.base.resolve(), f"head {head_commit}" + (" +wip" if dirty else ""): REPO}
    console = Console(width=160)
    results: dict[str, dict[str, dict]] = {}
    with tempfile.TemporaryDirectory(prefix="bench_cli_startup_") as tmp:
        outs = {label: Path(tmp) / f"score_{i}.parquet" for i, label in enumerate(trees)}
        for label, tree in trees.items():  # PYTHONPATH must win over the venv's editable install
            where = subprocess.run([sys.executable, "-c", "import inbox.cli; print(inbox.cli.__file__)"], cwd=tree,
                                   env=environment(tree, args.data, args.mlruns), capture_output=True, text=True,
                                   check=True).stdout.strip()
            if not where.startswith(str(tree)):
                raise RuntimeError(f"{label}: inbox.cli came from {where}, not {tree}")
        for name in commands(Path(tmp) / "x.parquet"):
            for _ in range(args.repeat):
                for label, tree in trees.items():  # alternate, so slow drift of the machine hits both
                    if name == SCORE_NEW_REGISTRY:  # as after an apply or materialize: the plan is read from Feast
                        (args.data / "feast" / "read_plans.json").unlink(missing_ok=True)
                    got = run(tree, commands(outs[label])[name], environment(tree, args.data, args.mlruns))
                    best = results.setdefault(name, {}).setdefault(label, {"seconds": [], "cpu_seconds": []})
                    best["seconds"].append(got["seconds"])
                    best["cpu_seconds"].append(got["cpu_seconds"])
            for label, tree in trees.items():
                if name == SCORE_NEW_REGISTRY:
                    (args.data / "feast" / "read_plans.json").unlink(missing_ok=True)
                traced = run(tree, commands(outs[label])[name], environment(tree, args.data, args.mlruns),
                             ("-X", "importtime"))
                results[name][label]["imports_ms"] = heavy_imports(traced["stderr"])
            console.print(f"{name}: " + ", ".join(f"{label} {min(r['seconds']):.2f} s"
                                                  for label, r in results[name].items()))
        same, diff = same_scores(*outs.values())

    base_label, head_label = trees
    table = Table(title=f"inbox start-up: best of {args.repeat} fresh processes (same venv, same world)")
    for col in ("command", "base s", "head s", "base CPU s", "head CPU s", "head / base"):
        table.add_column(col, justify="left" if col == "command" else "right")
    for name, r in results.items():
        b, h = min(r[base_label]["seconds"]), min(r[head_label]["seconds"])
        table.add_row(name, f"{b:.2f}", f"{h:.2f}", f"{min(r[base_label]['cpu_seconds']):.2f}",
                      f"{min(r[head_label]['cpu_seconds']):.2f}", f"{h / b:.2f}")
    console.print(table)
    imports = Table(title="ms importing each library's own modules (-X importtime self times, one traced run each)")
    imports.add_column("command")
    imports.add_column("tree")
    for lib in HEAVY:
        imports.add_column(lib, justify="right")
    for name, r in results.items():
        for label in trees:
            ms = r[label]["imports_ms"]
            imports.add_row(name, label, *(f"{ms[lib]:,.0f}" if lib in ms else "-" for lib in HEAVY))
    console.print(imports)
    console.print(f"base = {base_label} ({args.base}), head = {head_label}; score outputs: "
                  f"{'same contacts' if same else 'DIFFERENT contacts'}, max |probability diff| {diff:.1e}; "
                  f"load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if args.json:
        args.json.write_text(json.dumps({"base": base_label, "head": head_label, "results": results,
                                         "same_contacts": same, "max_probability_diff": diff}, indent=2))
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
