"""`inbox simulate`: draw a world, simulate its history, write the event log and the ground truth."""
from __future__ import annotations

import argparse
import time


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "simulate",
        help="simulate a synthetic world and write its event log",
        description="Generate contacts, content and campaign history with known ground truth. "
        "Writes the event log to <data>/events and the latent ground truth to <data>/world.",
    )
    p.add_argument("--contacts", type=int, default=50_000, help="number of contacts (default 50000)")
    p.add_argument("--days", type=int, default=120, help="days of history (default 120)")
    p.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    p.add_argument("--start", default="2026-05-01", help="first day of the history (default 2026-05-01)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="data directory (events in DIR/events, ground truth in DIR/world); default: INBOX_DATA_DIR")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from dataclasses import replace
    from pathlib import Path

    from inbox.settings import load_settings
    from simulation.world import WorldConfig

    settings = load_settings()
    if args.out:
        settings = replace(settings, data_dir=Path(args.out).resolve())
    config = WorldConfig(n_contacts=args.contacts, n_days=args.days, seed=args.seed, start=args.start)
    summary = simulate_to_disk(config, settings=settings, progress=not args.quiet)
    print_summary(summary)
    return 0


def simulate_to_disk(config=None, settings=None, progress: bool = True) -> dict:
    """Generate `config`'s world and history; write events and ground truth; return a summary.

    Events go to `settings.events_dir` (validated, atomic per table), the ground
    truth to `settings.world_dir`. The summary holds counts and rates (flat
    values) plus `events_by_type` and `paths` (dicts).
    """
    from inbox.settings import load_settings
    from simulation.eventlog import write_event_log
    from simulation.history import simulate_history
    from simulation.world import WorldConfig, generate_world

    config = config or WorldConfig()
    settings = settings or load_settings()
    t0 = time.perf_counter()
    world = generate_world(config)
    tables = simulate_history(world, progress=progress, as_arrow=True)
    seconds_simulate = time.perf_counter() - t0
    write_event_log(settings.events_dir, tables)
    world.save(settings.world_dir)
    from privacy.seed import seed_consent

    seed_consent(settings, new_world=True)  # a new world: a new consent ledger (privacy.seed)
    summary = summarize(tables)
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    summary["seconds_simulate"] = round(seconds_simulate, 2)
    summary["paths"] = {"events": str(settings.events_dir), "world": str(settings.world_dir)}
    return summary


def summarize(tables: dict) -> dict:
    """Counts and rates of an event log (sends and events as Arrow tables or DataFrames)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    def arrow(t):
        return t if isinstance(t, pa.Table) else pa.Table.from_pandas(t, preserve_index=False)

    sends, events = arrow(tables["sends"]), arrow(tables["events"])
    by_type = {str(v["values"]): int(v["counts"]) for v in pc.value_counts(events["type"]).to_pylist()}
    count = {t: by_type.get(t, 0) for t in
             ("delivered", "open", "click", "conversion", "unsubscribe", "bounce", "complaint")}
    delivered = max(count["delivered"], 1)
    value = pc.fill_null(events["value"], 0.0).to_numpy() if events.num_rows else np.zeros(0)
    return {
        "contacts": len(tables["contacts"]),
        "content": len(tables["content"]),
        "campaigns": pc.count_distinct(sends["campaign_id"]).as_py() if sends.num_rows else 0,
        "sends": sends.num_rows,
        "events": events.num_rows,
        "open_rate": count["open"] / delivered,
        "click_rate": count["click"] / delivered,
        "conversion_rate": count["conversion"] / delivered,
        "unsubscribe_rate": count["unsubscribe"] / delivered,
        "bounce_rate": count["bounce"] / max(sends.num_rows, 1),
        "revenue": float(value.sum()),
        "logged_sends": sends.num_rows - sends["decision_id"].null_count,
        "events_by_type": count,
    }


def print_summary(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="simulated event log")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key in ("contacts", "content", "campaigns", "sends", "logged_sends", "events"):
        table.add_row(key, f"{summary[key]:,}")
    for kind, n in summary["events_by_type"].items():
        table.add_row(f"  {kind}", f"{n:,}")
    for key in ("open_rate", "click_rate", "conversion_rate", "unsubscribe_rate", "bounce_rate"):
        label = key.replace("_", " ") + (" (per send)" if key == "bounce_rate" else " (per delivered)")
        table.add_row(label, f"{summary[key]:.2%}")
    table.add_row("revenue", f"{summary['revenue']:,.0f}")
    if "seconds" in summary:
        table.add_row("seconds", f"{summary['seconds']:.1f}")
    console = Console()
    console.print(table)
    if "paths" in summary:
        console.print(f"events: {summary['paths']['events']}   ground truth: {summary['paths']['world']}")
