"""Benchmark: online read of 1 and 100 contacts, Feast `get_online_features` vs `OnlineReader`.

Same store, same service, same ids (random contacts, a new draw per call). Baselines
in the same run: Feast's Python read on the batch store and on Feast's stock SQLite
store (one row per entity x feature). The scale profile's online store too: the same
views materialized into Feast's own Redis store (a redis-server started on a free
loopback port, `inbox.services`), read by Feast's `get_online_features` and by
`OnlineReader` (one pipelined HMGET per contact; `--no-redis` to skip). Each call is
timed end to end to a DataFrame (`.to_df()` for Feast); p50 / p99 over `--calls` calls
after a warm-up.

    .venv/bin/python benchmarks/bench_online_read.py [--contacts 20000 --calls 300]
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

warnings.filterwarnings("ignore")
REQUEST_TIME = datetime(2026, 5, 8, 15, tzinfo=timezone.utc)


def timed(fn, calls: int, warmup: int = 20) -> tuple[float, float]:
    for _ in range(warmup):
        fn()
    ms = []
    for _ in range(calls):
        t = time.perf_counter()
        fn()
        ms.append((time.perf_counter() - t) * 1000)
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def main(argv=None) -> int:
    from bench_materialize import CONTACT_VIEWS, prepare_feature_tables, subset_tables
    from rich.console import Console
    from rich.table import Table

    from features.online import OnlineReader
    from features.store import STOCK_STORE_TYPE, apply, get_store, materialize

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--contacts", type=int, default=20_000)
    p.add_argument("--stock-contacts", type=int, default=2_000)
    p.add_argument("--calls", type=int, default=300)
    p.add_argument("--no-redis", action="store_true", help="skip the Redis columns")
    args = p.parse_args(argv)
    console = Console(width=150)
    end = datetime(2026, 5, 9, tzinfo=timezone.utc)
    rng = np.random.default_rng(0)
    table = Table(title=f"online read, ms per call (p50 / p99 over {args.calls} calls)")
    columns = ["service", "contacts", "Feast, stock SQLite", "Feast, batch store", "OnlineReader", "speed-up vs Feast"]
    if not args.no_redis:
        columns += ["Feast, Redis", "OnlineReader, Redis", "speed-up vs Feast on Redis"]
    for col in columns:
        table.add_column(col)
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as services:
        tmp = Path(tmp)
        console.print(f"building and materializing {args.contacts:,} contacts ...")
        feats = prepare_feature_tables(tmp, args.contacts)
        store = get_store(feast_dir=tmp / "feast")
        apply(store, features_dir=feats)
        materialize(store, end=end)
        small = subset_tables(feats, tmp / "features_stock", args.stock_contacts)
        stock = get_store(feast_dir=tmp / "feast_stock", online_store_type=STOCK_STORE_TYPE)
        apply(stock, features_dir=small)
        stock.materialize(start_date=datetime(2000, 1, 1, tzinfo=timezone.utc), end_date=end,
                          feature_views=CONTACT_VIEWS)
        reader = OnlineReader(store)
        if not args.no_redis:
            from inbox.services import redis_server

            url = services.enter_context(redis_server(tmp))
            on_redis = get_store(feast_dir=tmp / "feast_redis", online_store=url)
            apply(on_redis, features_dir=feats)
            t0 = time.perf_counter()
            materialize(on_redis, end=end)
            console.print(f"materialized {args.contacts:,} contacts into Redis in {time.perf_counter() - t0:.1f} s")
            redis_reader = OnlineReader(on_redis)
        for svc in ("lead_scoring", "send_time"):
            for n in (1, 100):
                def ids():
                    return rng.integers(0, args.stock_contacts, n)

                def feast_call(s):
                    service = s.get_feature_service(svc)

                    def call():
                        rows = [{"contact_id": int(c)} for c in ids()]
                        if svc == "send_time":
                            for r in rows:
                                r["request_time"] = REQUEST_TIME
                        return s.get_online_features(features=service, entity_rows=rows).to_df()
                    return call

                kw = {"request_time": REQUEST_TIME} if svc == "send_time" else {}
                res = [timed(feast_call(stock), args.calls), timed(feast_call(store), args.calls),
                       timed(lambda: reader.read(svc, ids(), **kw), args.calls)]
                cells = [*[f"{a:.2f} / {b:.2f}" for a, b in res], f"{res[1][0] / res[2][0]:.0f}x (p50)"]
                if not args.no_redis:
                    red = [timed(feast_call(on_redis), args.calls),
                           timed(lambda: redis_reader.read(svc, ids(), **kw), args.calls)]
                    cells += [*[f"{a:.2f} / {b:.2f}" for a, b in red], f"{red[0][0] / red[1][0]:.0f}x (p50)"]
                table.add_row(svc, str(n), *cells)
        reader.close()
        if not args.no_redis:
            redis_reader.close()
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
