"""`inbox features build | apply | materialize | all | schema` (stdlib-only imports at module level)."""
from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser("features", help="build feature tables, apply the Feast repo, materialize")
    sub = p.add_subparsers(dest="features_command", metavar="STEP")
    b = sub.add_parser("build", help="event log -> daily feature snapshots (Parquet)")
    b.add_argument("--half-life-days", type=float, default=14.0, help="decay half-life of the engagement score")
    b.add_argument("--cadence-days", type=int, default=1, help="days between snapshots (default 1 = daily)")
    b.set_defaults(func=_build)
    a = sub.add_parser("apply", help="register entities, views and services with Feast")
    a.set_defaults(func=_apply)
    m = sub.add_parser("materialize", help="load the newest snapshots into the online store")
    m.add_argument("--end", help="UTC timestamp (ISO 8601); default: now")
    m.set_defaults(func=_materialize)
    al = sub.add_parser("all", help="build, apply and materialize")
    al.set_defaults(func=_all)
    sc = sub.add_parser("schema", help="the data dictionary: every feature view's fields, types and descriptions")
    sc.add_argument("--view", help="only this feature view")
    sc.set_defaults(func=_schema)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _config(args):
    from features.pipeline import PipelineConfig

    return PipelineConfig(half_life_days=getattr(args, "half_life_days", 14.0),
                          cadence_days=getattr(args, "cadence_days", 1))


def _build(args) -> int:
    from features.workflow import build, print_summary

    print_summary({"build": build(config=_config(args))})
    return 0


def _apply(args) -> int:
    from features.workflow import apply_repo, print_summary

    print_summary({"apply": apply_repo()})
    return 0


def _materialize(args) -> int:
    from features.workflow import materialize_online, print_summary
    from inbox.cli import parse_utc

    end = parse_utc("--end", args.end) if args.end else None
    print_summary({"materialize": materialize_online(end=end)})
    return 0


def _all(args) -> int:
    from features.workflow import build_apply_materialize, print_summary

    print_summary(build_apply_materialize(progress=True, config=_config(args)))
    return 0


def _schema(args) -> int:
    import pyarrow.parquet as pq
    from rich.console import Console
    from rich.table import Table

    from features.definitions import TOPIC_PREFIX, VIEW_DESCRIPTIONS, declared_fields
    from features.pipeline import TABLE_FILES
    from inbox.settings import load_settings

    views = list(VIEW_DESCRIPTIONS)
    if args.view is not None and args.view not in views:
        raise ValueError(f"--view: unknown feature view {args.view!r}; one of {', '.join(views)}")
    topics_file = load_settings().features_dir / TABLE_FILES["contact_topics"]
    topics = ([c[len(TOPIC_PREFIX):] for c in pq.read_schema(topics_file).names if c.startswith(TOPIC_PREFIX)]
              if topics_file.exists() else ["<topic>"])
    console = Console()
    for view in [args.view] if args.view else views:
        table = Table(title=f"{view}: {VIEW_DESCRIPTIONS[view]}", title_justify="left")
        for column in ("feature", "type", "description"):
            table.add_column(column, no_wrap=column != "description")
        for field in declared_fields(view, topics):
            table.add_row(field.name, str(field.dtype), field.description)
        console.print(table)
    return 0


def build_apply_materialize(settings=None, progress: bool = True, config=None) -> dict:
    """Build, apply and materialize; returns {"build": {...}, "apply": {...}, "materialize": {...}}."""
    from features.workflow import build_apply_materialize as run

    return run(settings=settings, progress=progress, config=config)
