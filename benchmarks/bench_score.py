"""Benchmark: `inbox score` peak RSS and wall time, streaming (this tree) vs the in-memory baseline, same run.

For each world (a data dir with features built and applied) and each model, `inbox score MODEL --out F`
runs as its own process: the baseline once, then the streaming CLI once per `--batch` size:

    new       this tree: batches of contacts read, scored and appended to the file (`--batch N`)
    baseline  the same CLI with the `models` package of `--baseline REV` first on sys.path (git archive;
              default: the last revision whose score_all held every contact's features and every output row)

Peak RSS is the kernel's high-water mark of the process and CPU its user + system seconds (`wait4` rusage;
CPU is less sensitive than wall time to other load on the machine), wall time is process start to
exit (imports and model loading included; the feature tables are read once beforehand so neither run
pays a cold page cache). Both outputs are compared: same rows, same contacts, largest
difference of the score column. The models are one MLflow store's champions (`--mlruns`, e.g. a 50k
world's), scoring each world's features: the cost is the list's, not the training's.

    .venv/bin/python benchmarks/bench_score.py --world 50k=W50K/data --world 1M=W1M/data --mlruns W50K/mlruns
        [--models lead_scoring,send_time] [--baseline REV] [--batch 20000[,5000,...]] [--lock FILE]
        [--json out.json] [--keep DIR]
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from revisions import REPO, export_package  # noqa: E402

GiB = 1024 ** 3
BASELINE = "23360ad~1"  # the commit before `inbox score` streamed
WINDOW = "2026-09-01T00:00Z"  # send_time: a fixed window, the same for both runs
SCORE_COLUMN = {"lead_scoring": "probability", "send_time": "probability", "content_preference": "score"}


@contextlib.contextmanager
def held(lock: Path | None):
    """The shared big-run lock (flock) for the duration of one run; nothing when no lock file is given."""
    if lock is None:
        yield
        return
    with open(lock, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def run_score(model: str, data_dir: Path, mlruns: Path, out: Path, pythonpath: Path, cwd: Path,
              extra: list[str], lock: Path | None) -> dict:
    """One `inbox score` process: wall seconds, peak RSS (bytes), CPU seconds, exit code."""
    env = {**os.environ, "INBOX_DATA_DIR": str(data_dir), "INBOX_ARTIFACT_ROOT": str(mlruns),
           "PYTHONPATH": str(pythonpath)}
    env.pop("MLFLOW_TRACKING_URI", None)
    cmd = [sys.executable, "-m", "inbox.cli", "score", model, "--out", str(out), *extra]
    if model == "send_time":
        cmd += ["--window-start", WINDOW]
    log = out.with_suffix(".log")
    with held(lock), open(log, "wb") as sink:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=sink, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)  # the child's own rusage: ru_maxrss is its peak
        wall = time.perf_counter() - t0
    text = log.read_text(errors="replace")
    log.unlink()
    code = proc.returncode = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {code}:\n{text[-2000:]}")
    return {"seconds": wall, "peak_rss": usage.ru_maxrss * 1024, "cpu_seconds": usage.ru_utime + usage.ru_stime,
            "output": text.strip().splitlines()[-1:]}


def warm(data_dir: Path) -> None:
    """Read the world's feature tables once so both runs find them in the page cache (neither pays the cold read)."""
    for path in sorted((data_dir / "features").glob("*.parquet")):
        with open(path, "rb") as fh:
            while fh.read(1 << 24):
                pass


def compare(model: str, new: Path, old: Path) -> dict:
    """Rows, contacts and the largest score difference of the two outputs (read one column at a time)."""
    import numpy as np
    import pyarrow.parquet as pq

    a, b = pq.ParquetFile(new), pq.ParquetFile(old)
    ids_a = a.read(columns=["contact_id"]).column(0).to_numpy()
    ids_b = b.read(columns=["contact_id"]).column(0).to_numpy()
    same_ids = bool(np.array_equal(ids_a, ids_b))
    col = SCORE_COLUMN[model]
    sa = a.read(columns=[col]).column(0).to_numpy(zero_copy_only=False)
    sb = b.read(columns=[col]).column(0).to_numpy(zero_copy_only=False)
    diff = float(np.nanmax(np.abs(sa - sb))) if same_ids and len(sa) else float("nan")
    return {"rows": int(a.metadata.num_rows), "same_rows": same_ids, "max_score_diff": diff}


def main(argv=None) -> int:
    from rich.console import Console
    from rich.table import Table

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--world", action="append", required=True, metavar="LABEL=DATA_DIR",
                   help="a world's data dir with features built and applied (repeatable, smallest first)")
    p.add_argument("--mlruns", required=True, type=Path, help="MLflow store (INBOX_ARTIFACT_ROOT) with the champions")
    p.add_argument("--models", default="lead_scoring,send_time")
    p.add_argument("--baseline", default=BASELINE, help=f"git revision of the in-memory baseline (default {BASELINE})")
    p.add_argument("--batch", default="20000",
                   help="contacts per batch of the streaming run; a comma list runs one streaming run per size")
    p.add_argument("--lock", type=Path, help="flock this file around each run (shared big-run lock)")
    p.add_argument("--json", type=Path, help="write the rows as JSON")
    p.add_argument("--keep", type=Path, help="keep the score files in this directory")
    args = p.parse_args(argv)
    worlds = []
    for spec in args.world:
        label, sep, path = spec.partition("=")
        if not sep or not Path(path, "features").is_dir():
            p.error(f"--world: expected LABEL=DATA_DIR with a features/ directory, got {spec!r}")
        worlds.append((label, Path(path)))
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    try:
        batches = [int(b) for b in args.batch.split(",")]
    except ValueError:
        p.error(f"--batch: expected integers separated by commas, got {args.batch!r}")

    console = Console(width=200)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_score_") as tmp:
        tmp = Path(tmp)
        out_dir = args.keep or tmp / "out"
        out_dir.mkdir(parents=True, exist_ok=True)
        old_src = export_package(args.baseline, tmp / "baseline_src", "models")
        for label, data in worlds:
            warm(data)
            for model in models:
                old_out = out_dir / f"{label}_{model}_old.parquet"
                old = run_score(model, data, args.mlruns, old_out, old_src, tmp, [], args.lock)
                console.print(f"{label} {model} baseline: {old['seconds']:.1f} s, {old['peak_rss'] / GiB:.2f} GiB")
                for batch in batches:
                    new_out = out_dir / f"{label}_{model}_b{batch}.parquet"
                    new = run_score(model, data, args.mlruns, new_out, REPO, tmp, ["--batch", str(batch)], args.lock)
                    console.print(f"{label} {model} batch {batch:,}: {new['seconds']:.1f} s, "
                                  f"{new['peak_rss'] / GiB:.2f} GiB")
                    rows.append({"world": label, "model": model, "batch": batch, "new": new, "baseline": old,
                                 **compare(model, new_out, old_out)})
                    if args.keep is None:
                        new_out.unlink()
                if args.keep is None:
                    old_out.unlink()

    table = Table(title=f"inbox score: streaming vs the in-memory score_all of {args.baseline}")
    for col in ("world", "model", "rows", "batch", "baseline s", "new s", "baseline CPU s", "new CPU s",
                "baseline peak RSS", "new peak RSS", "RSS ratio", "same rows", "max |score diff|"):
        table.add_column(col, justify="left" if col in ("world", "model") else "right")
    for r in rows:
        table.add_row(r["world"], r["model"], f"{r['rows']:,}", f"{r['batch']:,}", f"{r['baseline']['seconds']:.1f}",
                      f"{r['new']['seconds']:.1f}", f"{r['baseline']['cpu_seconds']:.1f}",
                      f"{r['new']['cpu_seconds']:.1f}", f"{r['baseline']['peak_rss'] / GiB:.2f} GiB",
                      f"{r['new']['peak_rss'] / GiB:.2f} GiB", f"{r['new']['peak_rss'] / r['baseline']['peak_rss']:.2f}",
                      "yes" if r["same_rows"] else "NO", f"{r['max_score_diff']:.1e}")
    console.print(table)
    console.print(f"load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2, default=str))
    return 0 if all(r["same_rows"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
