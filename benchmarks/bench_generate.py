"""Benchmark: generate ~10M events with the vectorized simulator.

Times world generation, history simulation and the validated Parquet write,
reports events/s and peak RSS, and compares against a naive baseline measured
in the same run: the same response model driven one send at a time (a Python
loop over `DataFrame.itertuples`, as a per-row implementation would), timed on
a slice and extrapolated to the full number of sends.

    .venv/bin/python benchmarks/bench_generate.py               # ~10M events
    .venv/bin/python benchmarks/bench_generate.py --contacts 50000
"""
from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulation.eventlog import write_event_log  # noqa: E402
from simulation.history import simulate_history  # noqa: E402
from simulation.world import WorldConfig, generate_world  # noqa: E402


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def naive_seconds_per_send(world, sends, n: int) -> float:
    """Per-row baseline: one response-model call per send (probabilities + sampling)."""
    rng = np.random.default_rng(0)
    slice_ = sends.iloc[:n]
    t0 = time.perf_counter()
    for row in slice_.itertuples(index=False):
        world.response.sample(np.array([row.contact_id]), np.array([row.content_id]),
                              np.array([row.sent_at.to_datetime64()], dtype="datetime64[us]"), rng)
    return (time.perf_counter() - t0) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--contacts", type=int, default=360_000)
    ap.add_argument("--days", type=int, default=120)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--baseline-sends", type=int, default=2_000, help="sends timed for the per-row baseline")
    args = ap.parse_args()

    from rich.console import Console
    from rich.table import Table

    t0 = time.perf_counter()
    world = generate_world(WorldConfig(n_contacts=args.contacts, n_days=args.days, seed=args.seed))
    t_world = time.perf_counter() - t0
    t0 = time.perf_counter()
    tables = simulate_history(world, progress=True)
    t_history = time.perf_counter() - t0
    rss_simulate = peak_rss_mib()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        write_event_log(tmp, tables)
        t_write = time.perf_counter() - t0
        size_mib = sum(p.stat().st_size for p in Path(tmp).iterdir()) / 2**20
    n_sends, n_events = len(tables["sends"]), len(tables["events"])
    per_send = naive_seconds_per_send(world, tables["sends"], min(args.baseline_sends, n_sends))

    table = Table(title=f"bench_generate: {args.contacts:,} contacts x {args.days} days")
    for col in ("step", "contacts", "sends", "events", "seconds", "events/s", "peak RSS MiB"):
        table.add_column(col, justify="right" if col != "step" else "left")
    gen = t_world + t_history
    table.add_row("world", f"{args.contacts:,}", "", "", f"{t_world:.1f}", "", "")
    table.add_row("history (vectorized)", f"{args.contacts:,}", f"{n_sends:,}", f"{n_events:,}", f"{t_history:.1f}",
                  f"{n_events / t_history:,.0f}", f"{rss_simulate:,.0f}")
    table.add_row("world + history", "", f"{n_sends:,}", f"{n_events:,}", f"{gen:.1f}", f"{n_events / gen:,.0f}", "")
    table.add_row("write Parquet (validated)", "", "", f"{n_events:,}", f"{t_write:.1f}",
                  f"{n_events / t_write:,.0f}", f"{peak_rss_mib():,.0f}")
    naive_total = per_send * n_sends
    table.add_row("baseline: per-row loop*", "", f"{n_sends:,}",
                  f"{n_events:,}", f"{naive_total:,.0f}", f"{n_events / naive_total:,.0f}", "")
    console = Console(width=150)
    console.print(table)
    console.print(f"Parquet files: {size_mib:,.0f} MiB. *per-row baseline: {args.baseline_sends:,} sends timed one "
                  f"model call each ({per_send * 1e3:.2f} ms/send), extrapolated to all sends.")
    console.print(f"speed-up of the vectorized history over the per-row baseline: {naive_total / t_history:,.0f}x")


if __name__ == "__main__":
    main()
