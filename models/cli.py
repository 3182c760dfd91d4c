"""`inbox train` and `inbox score` (stdlib-only at import; heavy imports inside handlers)."""
from __future__ import annotations

import argparse

MODEL_CHOICES = ("lead_scoring", "send_time", "content_preference")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train", help="train, register and maybe promote a model (or all three)",
        description="Train on the event log + features, log to MLflow, register as challenger, and promote to "
                    "champion only if it beats the current champion on the same test period.")
    p.add_argument("model", choices=MODEL_CHOICES + ("all",))
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--fast", action="store_true", help="small configs (smoke tests, tiny worlds)")
    p.add_argument("--max-rows", type=int, default=None, metavar="N",
                   help="cap on each model's training rows (all split blocks): a stable contact sample is read so "
                        "the set fits (default 1,000,000: the default 50k-contact world in full)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set num_boost_round=20 (repeatable; single model only)")
    p.set_defaults(func=_train)

    s = subparsers.add_parser(
        "score", help="score every contact of the offline store with a champion model",
        description="Batch scoring with models:/<MODEL>@champion on the newest feature snapshot.")
    s.add_argument("model", choices=MODEL_CHOICES)
    s.add_argument("--out", required=True, help="output .parquet file")
    s.add_argument("--window-start", help="send_time: window start (ISO, with time zone); default next hour")
    s.add_argument("--window-end", help="send_time: window end (ISO, with time zone); default start + 24 h")
    s.add_argument("--quiet-hours", default="21-7", help="send_time: local quiet hours START-END (default 21-7)")
    s.add_argument("--k", type=int, default=3, help="content_preference: top k per contact (default 3)")
    s.add_argument("--no-reasons", action="store_true", help="lead_scoring: skip the per-contact reasons")
    s.add_argument("--planned-sends", metavar="X",
                   help="lead_scoring: your campaign calendar's expected sends per contact over the model's horizon "
                        "(30 days); probabilities are prior-shifted to the conversion rate of that send volume "
                        "(default: no shift, the calibration period's rate)")
    s.add_argument("--include-suppressed", action="store_true",
                   help="also score contacts that may not be mailed (no consent, opted out, suppressed, hard "
                        "bounce, unsubscribe, complaint); their reason goes in a `suppressed` column")
    s.add_argument("--batch", type=int, default=20_000, metavar="N",
                   help="contacts read, scored and written per batch (default 20000; memory follows it)")
    s.set_defaults(func=_score)


def _overrides(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set: expected KEY=VALUE, got {pair!r}")
        out[key.strip()] = value.strip()
    return out


def _train(args: argparse.Namespace) -> int:
    from models.training import MODEL_NAMES, print_summary, train_all, train_model

    overrides = _overrides(args.set)
    if args.max_rows is not None and args.max_rows < 1:
        raise ValueError(f"--max-rows: expected a positive number of rows, got {args.max_rows}")
    if args.model == "all":
        if overrides:
            raise ValueError("--set applies to a single model, not 'all'")
        results = train_all(progress=True, fast=args.fast, seed=args.seed, max_rows=args.max_rows)
    else:
        results = [train_model(args.model, progress=True, fast=args.fast, seed=args.seed,
                               overrides=overrides, max_rows=args.max_rows).as_dict()]
        print_summary(results)
    assert set(r["model"] for r in results) <= set(MODEL_NAMES)
    return 0


def _quiet_hours(text: str) -> tuple[int, int]:
    start, sep, end = text.partition("-")
    try:
        return int(start), int(end)
    except ValueError:
        raise ValueError(f"--quiet-hours: expected START-END hours like 21-7, got {text!r}") from None


def _score(args: argparse.Namespace) -> int:
    import time

    from rich.console import Console

    from models.scoring import score_to_file
    from models.slots import utc_timestamp

    start = utc_timestamp(args.window_start, "--window-start") if args.window_start else None
    end = utc_timestamp(args.window_end, "--window-end") if args.window_end else None
    if start is not None and end is None:
        import pandas as pd

        end = start + pd.Timedelta(hours=24)
    if args.k < 1:
        raise ValueError(f"--k: must be >= 1, got {args.k}")
    if args.batch < 1:
        raise ValueError(f"--batch: must be >= 1, got {args.batch}")
    planned = None
    if args.planned_sends is not None:
        from models.drift import check_planned_sends

        if args.model != "lead_scoring":
            raise ValueError(f"--planned-sends: applies to lead_scoring only, not {args.model}")
        planned = check_planned_sends(args.planned_sends, field="--planned-sends")
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    quiet = _quiet_hours(args.quiet_hours)
    if not args.out.endswith(".parquet"):
        raise ValueError(f"--out: expected a .parquet file name, got {args.out!r}")
    t0 = time.perf_counter()
    console = Console(stderr=True)
    with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task(f"loading {args.model}@champion and features", total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, description=f"scoring {args.model}", completed=done, total=total)

        run, rows = score_to_file(args.model, args.out, window_start=start, window_end=end, quiet_hours=quiet,
                                  k=args.k, reasons=not args.no_reasons, chunk=args.batch,
                                  include_suppressed=args.include_suppressed, progress=advance,
                                  planned_sends=planned)
    left_out = "" if args.include_suppressed else f", {run.suppressed:,} suppressed contacts left out"
    Console().print(f"{args.model} v{run.model_version}: {rows:,} rows{left_out} -> {args.out} "
                    f"({time.perf_counter() - t0:.1f} s)")
    return 0


def train_all(settings=None, progress=True):
    """Entry point for `inbox demo` (see models.training.train_all)."""
    from models.training import train_all as _train_all

    return _train_all(settings=settings, progress=progress)
