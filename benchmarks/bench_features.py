"""Benchmark: build feature snapshots over a ~10M-event log (seconds, peak memory).

The event log is synthesized directly with numpy in the event-log schema (fast and
independent of the simulator): N contacts, one send a day on average, delivered /
open / click / conversion / unsubscribe events with realistic rates. Peak memory is
the process's max RSS (DuckDB runs in-process with memory_limit and threads=2).

    .venv/bin/python benchmarks/bench_features.py [--contacts 50000 --days 120 --events 10e6]
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

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


def main(argv=None) -> int:
    from rich.console import Console
    from rich.table import Table

    from features.pipeline import PipelineConfig, build_features

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--contacts", type=int, default=50_000)
    p.add_argument("--days", type=int, default=120)
    p.add_argument("--events", type=float, default=10e6)
    p.add_argument("--cadence", type=int, default=1)
    args = p.parse_args(argv)
    console = Console(width=150)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        counts = synthetic_event_log(tmp / "events", args.contacts, args.days, int(args.events))
        gen_s = time.perf_counter() - t
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        console.print(f"event log: {counts} in {gen_s:.1f} s (generator peak RSS {rss_before:.0f} MiB)")
        import gc

        gc.collect()
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        load0 = os.getloadavg()[0]
        summary = build_features(tmp / "events", tmp / "features",
                                 config=PipelineConfig(cadence_days=args.cadence, memory_limit="3GB", threads=2),
                                 progress=lambda m: console.print(f"  {m} ({time.perf_counter() - t:.1f} s)"))
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu_s = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
        load = (load0 + os.getloadavg()[0]) / 2
        peak = cpu1.ru_maxrss / 1024
        size = sum(f.stat().st_size for f in (tmp / "features").glob("*.parquet")) / 2**20
    table = Table(title=f"features over {counts['events'] / 1e6:.1f}M events ({counts['contacts']:,} contacts, "
                        f"{summary['snapshots']} {'daily' if args.cadence == 1 else f'{args.cadence}-day'} snapshots)")
    for col in ("step", "value", "target"):
        table.add_column(col)
    table.add_row("build_features seconds", f"{summary['seconds']:.1f}", "<= 60")
    table.add_row("CPU seconds (all threads)", f"{cpu_s:.1f}", "")
    table.add_row(f"machine load average during the run ({os.cpu_count()} cores)", f"{load:.1f}", "")
    table.add_row("peak RSS (process, MiB)", f"{peak:.0f}", "<= 4096")
    table.add_row("peak RSS before build (event generator)", f"{rss_before:.0f}", "")
    table.add_row("contact snapshot rows", f"{summary['contact_engagement']:,}", "")
    table.add_row("feature files (MiB)", f"{size:.0f}", "")
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
