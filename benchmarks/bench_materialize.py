"""Benchmark: materialize 100k contacts into the online store, batch store vs Feast's stock SQLite.

Same run, same feature tables (one snapshot per contact, every contact feature view:
engagement, send-time profile, send-hour counts, topics, profile; ~200 features per contact):

- batch store, fast path (`features.store.materialize`: DuckDB latest-per-entity +
  vectorized protobuf encoding + one executemany transaction per view);
- batch store through Feast's own `store.materialize` (Feast builds Value protos in
  Python, then our `online_write_batch` writes one row per entity);
- Feast's stock SQLite store (`type: sqlite`, one row per entity x feature), measured
  on a subset of contacts and extrapolated linearly (it is linear: one upsert per value).

    .venv/bin/python benchmarks/bench_materialize.py [--contacts 100000 --stock-contacts 5000]
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

warnings.filterwarnings("ignore")

def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


CONTACT_VIEWS = ["contact_engagement", "contact_send_time", "contact_send_hours", "contact_topics", "contact_profile"]


def prepare_feature_tables(root: Path, n_contacts: int) -> Path:
    """Synthetic event log (a week of sends) -> feature tables with one snapshot per contact."""
    from bench_features import synthetic_event_log

    from features.pipeline import build_features

    synthetic_event_log(root / "events", n_contacts=n_contacts, n_days=7, target_events=n_contacts * 8, seed=11)
    build_features(root / "events", root / "features", as_of_dates=["2026-05-08"])
    return root / "features"


def subset_tables(features_dir: Path, out_dir: Path, n: int) -> Path:
    """The first n contacts of every contact table (content table unchanged)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    out_dir.mkdir(parents=True, exist_ok=True)
    for f in features_dir.glob("*.parquet"):
        t = pq.read_table(f)
        if "contact_id" in t.column_names:
            t = t.filter(pc.less(t.column("contact_id"), n))
        pq.write_table(t, out_dir / f.name)
    return out_dir


def main(argv=None) -> int:
    from rich.console import Console
    from rich.table import Table

    from features.store import STOCK_STORE_TYPE, apply, get_store, materialize

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--contacts", type=int, default=100_000)
    p.add_argument("--stock-contacts", type=int, default=5_000)
    p.add_argument("--feast-path-contacts", type=int, default=20_000)
    args = p.parse_args(argv)
    console = Console(width=150)
    end = datetime(2026, 5, 9, tzinfo=timezone.utc)
    start = datetime(2000, 1, 1, tzinfo=timezone.utc)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        console.print(f"building feature tables for {args.contacts:,} contacts ...")
        feats = prepare_feature_tables(tmp, args.contacts)

        def measured(fn) -> tuple[float, float]:
            t, c = time.perf_counter(), cpu_seconds()
            fn()
            return time.perf_counter() - t, cpu_seconds() - c

        batch = get_store(feast_dir=tmp / "feast_batch")
        n_features = apply(batch, features_dir=feats)["features"]
        written = {}
        secs, cpu = measured(lambda: written.update(materialize(batch, end=end, views=CONTACT_VIEWS)))
        n_feat_contact = sum(len(v.features) for v in batch.list_feature_views() if v.name in CONTACT_VIEWS)
        rows.append(("batch store, fast path", written["contact_engagement"], secs, cpu, "measured"))

        for label, n, store_type, note in (
            ("batch store via Feast materialize()", args.feast_path_contacts, None, "measured on {n:,}"),
            ("Feast stock SQLite store", args.stock_contacts, STOCK_STORE_TYPE, "measured on {n:,}, extrapolated"),
        ):
            small = subset_tables(feats, tmp / f"features_{n}", n)
            kw = {"online_store_type": store_type} if store_type else {}
            other = get_store(feast_dir=tmp / f"feast_{len(rows)}", **kw)
            apply(other, features_dir=small)
            secs, cpu = measured(lambda: other.materialize(start_date=start, end_date=end,
                                                           feature_views=CONTACT_VIEWS))
            rows.append((label, n, secs, cpu, note.format(n=n)))

    table = Table(title=f"materialize {args.contacts:,} contacts x {n_feat_contact} features "
                        f"({len(CONTACT_VIEWS)} contact views; {n_features} features in the repo); "
                        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for col in ("online store / path", "contacts", "wall s", "contacts/s (wall)", "contacts per CPU-s",
                f"wall for {args.contacts:,}", "note"):
        table.add_column(col)
    base = rows[-1][1] / rows[-1][2]
    for name, n, secs, cpu, note in rows:
        rate = n / secs
        table.add_row(name, f"{n:,}", f"{secs:.2f}", f"{rate:,.0f} ({rate / base:.0f}x stock)",
                      f"{n / cpu:,.0f}", f"{args.contacts / rate:.1f} s", note)
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
