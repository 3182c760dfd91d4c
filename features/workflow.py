"""The features steps as one workflow with progress and a summary (used by the CLI and `inbox demo`)."""
from __future__ import annotations

import time
from contextlib import contextmanager
from datetime import datetime, timezone


@contextmanager
def _progress(enabled: bool, label: str):
    if not enabled:
        yield lambda msg: None
        return
    from rich.console import Console

    console = Console(stderr=True)
    with console.status(label) as status:
        yield lambda msg: status.update(f"{label}: {msg}")


def build(settings=None, config=None, progress: bool = True) -> dict:
    from features.pipeline import build_features
    from inbox.settings import load_settings

    settings = settings or load_settings()
    from privacy.seed import seed_consent

    seed_consent(settings)  # consent ledger up to date with the event log before anything is served
    with _progress(progress, "building features") as say:
        return build_features(settings.events_dir, settings.features_dir, config=config, progress=say)


def apply_repo(settings=None, progress: bool = True) -> dict:
    import warnings

    from features.store import apply, get_store
    from inbox.settings import load_settings

    settings = settings or load_settings()
    with _progress(progress, "feast apply"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="On demand feature view is an experimental feature")
        t = time.perf_counter()
        out = apply(get_store(settings), features_dir=settings.features_dir)
        out["seconds"] = round(time.perf_counter() - t, 2)
        return out


def materialize_online(settings=None, end: datetime | None = None, progress: bool = True) -> dict:
    from features.store import get_store, materialize
    from inbox.settings import load_settings

    settings = settings or load_settings()
    with _progress(progress, "materializing") as say:
        t = time.perf_counter()
        rows = materialize(get_store(settings), end=end or datetime.now(timezone.utc),
                           progress=lambda view, n, s: say(f"{view}: {n:,} rows in {s:.1f} s"))
        secs = time.perf_counter() - t
    out = {f"{view} rows": n for view, n in rows.items()}
    out["seconds"] = round(secs, 2)
    return out


def build_apply_materialize(settings=None, progress: bool = True, config=None) -> dict:
    """Build feature tables, apply the Feast repo, materialize the newest snapshots; a summary dict."""
    from inbox.settings import load_settings

    settings = settings or load_settings()
    return {
        "build": build(settings, config, progress),
        "apply": apply_repo(settings, progress),
        "materialize": materialize_online(settings, progress=progress),
    }


def print_summary(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="features")
    table.add_column("step")
    table.add_column("item")
    table.add_column("value", justify="right")
    for step, items in summary.items():
        for k, v in items.items():
            if isinstance(v, (list, tuple)):
                v = ", ".join(map(str, v))
            table.add_row(step, str(k), f"{v:,}" if isinstance(v, int) else str(v))
    Console().print(table)
