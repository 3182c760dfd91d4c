"""Benchmark: build feature snapshots over a ~10M-event log (seconds, peak memory).

The event log is synthesized directly with numpy in the event-log schema (fast and
independent of the simulator): N contacts, one send a day on average, delivered /
open / click / conversion / unsubscribe events with realistic rates. Each build runs
in a fresh process (wall, CPU of all threads, peak RSS; DuckDB runs in-process with
memory_limit and threads=2). `--baseline REV` also builds, on the same event log in
the same run, with the `features` package of git revision REV (e.g. the commit
before a change), so the two figures share the machine's load.

    .venv/bin/python benchmarks/bench_features.py [--contacts 50000 --days 120 --events 10e6]
        [--baseline b21fdfa] [--keep DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from revisions import export_package  # noqa: E402

import numpy as np
import pandas as pd

TOPICS = ["product", "education", "case_study", "event", "promotion", "news"]
ZONES = ["America/New_York", "America/Los_Angeles", "Europe/Berlin", "Europe/London", "Asia/Tokyo", "UTC"]


def synthetic_event_log(events_dir, n_contacts=50_000, n_days=120, target_events=10_000_000, seed=7) -> dict:
    """Write a synthetic event log; returns row counts. ~target_events events."""
    from simulation.eventlog import write_event_log

    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2026-05-01", tz="UTC")
    # events per send ~ 1 delivered + 0.45 open + 0.12 click + small rest ~= 1.6
    n_sends = int(target_events / 1.6)
    contacts = pd.DataFrame({
        "contact_id": np.arange(n_contacts, dtype=np.int64),
        "email": [f"user{i}@{['acme.com', 'gmail.com', 'gmial.com', 'mailinator.com'][i % 4]}" for i in range(n_contacts)],
        "created_at": start - pd.to_timedelta(rng.integers(1, 400, n_contacts), unit="D"),
        "industry": rng.choice(["saas", "retail", "finance", "health"], n_contacts),
        "company_size": rng.choice(["1-10", "11-50", "51-200", "201-1000", "1000+"], n_contacts),
        "seniority": rng.choice(["ic", "manager", "director", "executive"], n_contacts),
        "country": rng.choice(["US", "DE", "GB", "JP"], n_contacts),
        "timezone": rng.choice(ZONES, n_contacts),
        "signup_source": rng.choice(["form", "webinar", "import", "referral", "purchase"], n_contacts),
        "consent": rng.random(n_contacts) < 0.95,
    })
    n_content = 60
    content = pd.DataFrame({
        "content_id": np.arange(n_content, dtype=np.int64), "name": [f"c{i}" for i in range(n_content)],
        "topic": [TOPICS[i % len(TOPICS)] for i in range(n_content)],
        "format": rng.choice(["newsletter", "plain", "promo", "digest"], n_content),
        "subject": [f"subject {i}" for i in range(n_content)],
        "subject_length": rng.integers(10, 80, n_content).astype(np.int32),
        "has_personalization": rng.random(n_content) < 0.3, "has_urgency": rng.random(n_content) < 0.2,
        "has_emoji": rng.random(n_content) < 0.1, "created_at": [start - pd.Timedelta(days=30)] * n_content,
    })
    sent_us = start.value // 1000 + rng.integers(0, n_days * 86_400_000_000, n_sends)
    sends = pd.DataFrame({
        "send_id": np.arange(n_sends, dtype=np.int64),
        "contact_id": rng.integers(0, n_contacts, n_sends),
        "campaign_id": "camp",
        "content_id": rng.integers(0, n_content, n_sends),
        "sent_at": pd.to_datetime(sent_us, unit="us", utc=True),
        "decision_id": None, "propensity": np.nan,
    })
    engagement = rng.beta(2, 3, n_contacts)[sends["contact_id"].to_numpy()]
    delivered = rng.random(n_sends) < 0.98
    opened = delivered & (rng.random(n_sends) < 0.46 * engagement / 0.4)
    clicked = opened & (rng.random(n_sends) < 0.27)
    converted = clicked & (rng.random(n_sends) < 0.05)
    unsub = delivered & (rng.random(n_sends) < 0.002)
    bounce = ~delivered
    parts = []
    hour = 3_600_000_000
    for kind, mask, delay in (("delivered", delivered, 60_000_000), ("open", opened, 3 * hour),
                              ("click", clicked, 4 * hour), ("conversion", converted, 48 * hour),
                              ("unsubscribe", unsub, 5 * hour), ("bounce", bounce, 60_000_000)):
        idx = np.flatnonzero(mask)
        parts.append(pd.DataFrame({"send_id": idx, "type": kind,
                                   "occurred_us": sent_us[idx] + rng.exponential(delay, len(idx)).astype(np.int64),
                                   "value": np.where(kind == "conversion", rng.gamma(2, 50, len(idx)), np.nan)}))
    events = pd.concat(parts, ignore_index=True)
    events["contact_id"] = sends["contact_id"].to_numpy()[events["send_id"].to_numpy()]
    events["occurred_at"] = pd.to_datetime(events.pop("occurred_us"), unit="us", utc=True)
    events.insert(0, "event_id", np.arange(len(events), dtype=np.int64))
    write_event_log(events_dir, {"contacts": contacts, "content": content, "sends": sends, "events": events})
    return {"contacts": len(contacts), "sends": len(sends), "events": len(events)}


_BUILD = """
import json, os, resource, sys, time
sys.path.insert(0, sys.argv[1])
import features
assert features.__file__.startswith(sys.argv[1]), f"imported {features.__file__}, not from {sys.argv[1]}"
from features.pipeline import PipelineConfig, build_features
t = time.perf_counter(); load0 = os.getloadavg()[0]
summary = build_features(sys.argv[2], sys.argv[3], config=PipelineConfig(cadence_days=int(sys.argv[4])))
wall = time.perf_counter() - t
r = resource.getrusage(resource.RUSAGE_SELF)
# peak RSS of this process: VmHWM (ru_maxrss of a child can carry its parent's peak across fork/exec)
hwm_kib = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({"wall": wall, "cpu": r.ru_utime + r.ru_stime, "rss_mib": hwm_kib / 1024,
                  "load": (load0 + os.getloadavg()[0]) / 2, "summary": summary}))
"""


def build_in_subprocess(package_root: Path, events: Path, out: Path, cadence: int) -> dict:
    """One feature build in a fresh interpreter whose `features` package comes from package_root."""
    done = subprocess.run([sys.executable, "-c", _BUILD, str(package_root), str(events), str(out), str(cadence)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"feature build with {package_root} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    files = {f.stem: f.stat().st_size / 2**20 for f in out.glob("*.parquet")}
    result["files_mib"] = files
    return result


def main(argv=None) -> int:
    from rich.console import Console
    from rich.table import Table

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--contacts", type=int, default=50_000)
    p.add_argument("--days", type=int, default=120)
    p.add_argument("--events", type=float, default=10e6)
    p.add_argument("--cadence", type=int, default=1)
    p.add_argument("--baseline", help="git revision whose features package is measured too (same run)")
    p.add_argument("--events-dir", type=Path, help="reuse an event log written by an earlier run")
    args = p.parse_args(argv)
    console = Console(width=150)
    repo = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        events = args.events_dir or tmp / "events"
        if args.events_dir is None:
            t = time.perf_counter()
            counts = synthetic_event_log(events, args.contacts, args.days, int(args.events))
            console.print(f"event log: {counts} in {time.perf_counter() - t:.1f} s")
        n_events = pd.read_parquet(events / "events.parquet", columns=["event_id"]).shape[0]
        n_contacts = pd.read_parquet(events / "contacts.parquet", columns=["contact_id"]).shape[0]
        runs = {}
        if args.baseline:
            console.print(f"building with the features package of {args.baseline} ...")
            root = export_package(args.baseline, tmp / "baseline_src", "features")
            runs[f"baseline {args.baseline}"] = build_in_subprocess(root, events, tmp / "baseline", args.cadence)
            shutil.rmtree(tmp / "baseline")
        console.print("building with this working tree ...")
        runs["this tree"] = build_in_subprocess(repo, events, tmp / "current", args.cadence)
    summary = runs["this tree"]["summary"]
    table = Table(title=f"features over {n_events / 1e6:.1f}M events ({n_contacts:,} contacts, "
                        f"{summary['snapshots']} {'daily' if args.cadence == 1 else f'{args.cadence}-day'} snapshots; "
                        f"{os.cpu_count()} cores)")
    table.add_column("measure")
    for name in runs:
        table.add_column(name, justify="right")
    table.add_column("target", justify="right")
    rows = [("build_features wall seconds", lambda r: f"{r['summary']['seconds']:.1f}", "<= 60"),
            ("CPU seconds (all threads)", lambda r: f"{r['cpu']:.1f}", ""),
            ("machine load average during the build", lambda r: f"{r['load']:.1f}", ""),
            ("peak RSS (MiB, VmHWM of the build process)", lambda r: f"{r['rss_mib']:.0f}", "<= 4096"),
            ("feature files (MiB)", lambda r: f"{sum(r['files_mib'].values()):.0f}", ""),
            *[(f"  {t} (MiB)", (lambda t: lambda r: f"{r['files_mib'].get(t, 0):.0f}")(t), "") for t in CONTACT_TABLES],
            *[(f"rows {t}", (lambda t: lambda r: f"{r['summary'].get(t, 0):,}")(t), "") for t in CONTACT_TABLES]]
    for label, fmt, target in rows:
        table.add_row(label, *[fmt(r) for r in runs.values()], target)
    console.print(table)
    return 0


CONTACT_TABLES = ["contact_engagement", "contact_send_time", "contact_send_hours", "contact_topics"]


if __name__ == "__main__":
    sys.exit(main())
