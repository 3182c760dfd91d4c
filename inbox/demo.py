"""`inbox demo`: the whole loop on embedded defaults, one laptop, no services to install.

world -> event log -> features (Feast apply + materialize) -> three models (MLflow)
-> an A/B analysis and a bandit policy race (MLflow) -> published predictions
(online store) -> BentoML service -> two send rounds with learning in between
-> summary.

Each step is a function of the package that owns it; this module checks the
options before any work starts, orders the steps, times them and prints what
each returned (`inbox.demo_summary`).
"""
from __future__ import annotations

import argparse
import os
import time


STEPS = ["simulate", "features", "train", "experiments", "publish", "loop"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo",
        help="run the whole loop end to end on a simulated world",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--contacts", type=int, default=50_000, help="contacts in the simulated world (default 50000)")
    p.add_argument("--days", type=int, default=120, help="days of history (default 120)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument(
        "--until",
        choices=STEPS,
        default="loop",
        help="stop after this step (default: run everything)",
    )
    p.add_argument("--recipients", type=int, default=2_000, help="recipients per send round (default 2000)")
    p.set_defaults(func=run_demo)


def _positive(name: str, value: int) -> int:
    if value <= 0:
        raise ValueError(f"--{name} must be a positive integer, got {value}")
    return value


def check_options(args: argparse.Namespace) -> None:
    """Refuse combinations that would fail part-way, before any step runs."""
    _positive("contacts", args.contacts)
    _positive("days", args.days)
    _positive("recipients", args.recipients)
    last = STEPS.index(args.until)
    if last >= STEPS.index("train"):
        from models.lead_scoring import LeadScoringConfig

        cfg = LeadScoringConfig()
        needed = cfg.warmup_days + 3 * cfg.horizon_days
        if args.days < needed:
            raise ValueError(f"--days {args.days}: training needs at least {needed} days of history (warm-up "
                             f"{cfg.warmup_days} + train, validation and test label windows of {cfg.horizon_days}); "
                             f"use --days {needed} or more, or --until features")
    if last >= STEPS.index("loop") and args.recipients > args.contacts:
        raise ValueError(f"--recipients {args.recipients:,} exceeds --contacts {args.contacts:,}")


def run_demo(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from inbox.settings import load_settings

    check_options(args)
    settings = load_settings()
    # the demo shows one progress line per step; MLflow's per-download bars (inherited by the steps) are noise
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    console = Console()
    last = STEPS.index(args.until)
    timings: list[tuple[str, float]] = []
    results: dict[str, object] = {}

    def step(name: str, fn, *fn_args, **fn_kwargs):
        console.rule(f"[bold]{name}")
        t0 = time.perf_counter()
        out = in_child_process(fn, *fn_args, **fn_kwargs)
        timings.append((name, time.perf_counter() - t0))
        results[name] = out
        return out

    from simulation.world import WorldConfig

    config = WorldConfig(n_contacts=args.contacts, n_days=args.days, seed=args.seed)
    step("simulate", "simulation.cli:simulate_to_disk", config, settings=settings, progress=True)
    if last >= 1:
        step("features", "features.cli:build_apply_materialize", settings=settings, progress=True)
    if last >= 2:
        step("train", "models.cli:train_all", settings=settings, progress=True)
    if last >= 3:
        step("experiments", "inbox.demo:run_experiments", settings=settings, contacts=args.contacts, seed=args.seed)
    if last >= 4:
        step("publish", "serving.publish:publish", settings=settings, progress=True)
    if last >= 5:
        step("loop", "serving.demo_loop:run_demo_loop", settings=settings, recipients=args.recipients,
             progress=True)

    from inbox.demo_summary import describe

    summary = Table(title="inbox demo", show_lines=True)
    summary.add_column("step", no_wrap=True)
    summary.add_column("seconds", justify="right", no_wrap=True)
    summary.add_column("result")
    for name, seconds in timings:
        summary.add_row(name, f"{seconds:,.1f}", describe(name, results[name]))
    console.print(summary)
    console.print(f"Review the runs: mlflow ui --backend-store-uri {settings.tracking_uri}")
    return 0


def run_experiments(settings, contacts: int, seed: int) -> dict:
    """The demo's experiment step: an A/B analysis of the event log and a bandit policy race, both logged."""
    from experiments.abtest.campaign_analysis import analyse_and_log
    from experiments.bandit.cli import race_and_log

    print("A/B: analysing the largest uniform campaign of the event log", flush=True)
    ab = analyse_and_log(settings)
    print(f"A/B: campaign {ab['campaign']} logged to inbox/ab-tests; racing bandit policies", flush=True)
    bandit = race_and_log(settings, contacts=contacts, seed=seed)
    print("bandit: policy race logged to inbox/bandit-simulation", flush=True)
    return {"ab": ab, "bandit": bandit}


def _call(target: str, args: tuple, kwargs: dict):
    import importlib

    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)(*args, **kwargs)


def in_child_process(target: str, *args, **kwargs):
    """`module:function(*args, **kwargs)` in a fresh (spawned) process; its result or its exception.

    Each step's memory is its own and is returned to the system when the step ends: a 1M-contact
    world's simulate, feature build and training would otherwise add their high-water marks (and
    allocator fragmentation) up in one process."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_call, target, args, kwargs).result()
