"""`inbox demo`: the whole loop on embedded defaults, one laptop, no services to install.

world -> event log -> features (Feast apply + materialize) -> three models (MLflow)
-> published predictions (online store) -> BentoML service -> two send rounds with
learning in between -> summary.

Each step is a function of the package that owns it; this module only orders
them, times them and prints what each returned.
"""
from __future__ import annotations

import argparse
import time


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
        choices=["simulate", "features", "train", "publish", "loop"],
        default="loop",
        help="stop after this step (default: run everything)",
    )
    p.add_argument("--recipients", type=int, default=2_000, help="recipients per send round (default 2000)")
    p.set_defaults(func=run_demo)


def _positive(name: str, value: int) -> int:
    if value <= 0:
        raise ValueError(f"--{name} must be a positive integer, got {value}")
    return value


def run_demo(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from inbox.settings import load_settings

    _positive("contacts", args.contacts)
    _positive("days", args.days)
    _positive("recipients", args.recipients)
    settings = load_settings()
    console = Console()
    steps = ["simulate", "features", "train", "publish", "loop"]
    last = steps.index(args.until)
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
        step("publish", "serving.publish:publish", settings=settings, progress=True)
    if last >= 4:
        step("loop", "serving.demo_loop:run_demo_loop", settings=settings, recipients=args.recipients,
             progress=True)

    summary = Table(title="inbox demo", show_lines=False)
    summary.add_column("step")
    summary.add_column("seconds", justify="right")
    summary.add_column("result")
    for name, seconds in timings:
        summary.add_row(name, f"{seconds:,.1f}", _describe(results[name]))
    console.print(summary)
    console.print(f"data: {settings.data_dir}   tracking: {settings.tracking_uri}")
    return 0


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


def _describe(result: object) -> str:
    """One line for the summary table from whatever a step returned."""
    if result is None:
        return ""
    if isinstance(result, dict):
        flat = {}
        for k, v in result.items():
            if isinstance(v, dict):  # one level of nesting: {"build": {...}, "materialize": {...}}
                flat.update({f"{k}.{k2}": v2 for k2, v2 in v.items()})
            else:
                flat[k] = v
        return ", ".join(f"{k}={_fmt(v)}" for k, v in flat.items() if not isinstance(v, (dict, list, tuple)))
    if isinstance(result, list):
        return f"{len(result)} item(s)"
    return str(result)


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:,.4g}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)
