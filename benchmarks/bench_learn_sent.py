"""What `learn_from: sent` costs the learner: the learn query and a whole `learn`, with and without it.

    .venv/bin/python benchmarks/bench_learn_sent.py [--decisions 1000000] [--rounds 3] [--postgres]

One decision log (SQLite WAL in a temp dir; `--postgres` also a throwaway PostgreSQL cluster from
`inbox.services`) holds one campaign with `--decisions` closed decisions (4 variants, 3 context
features), 10% of them rewarded and 97% marked sent (3% logged but never mailed). The same rows are
read by the shared `joined_query` with `learn_from='all'` (the baseline: today's query) and 'sent'
(the EXISTS on `sent` and `rewards` per decision), baseline first, after one untimed read of each:
the SQL alone (execute + fetchall on a connection of its own), then `DecisionLog.joined` (the SQL plus
decoding the vectors into a DataFrame: what `learn` reads);
then `Allocator.learn` from scratch (a fresh snapshot directory each time) under each setting.
A cell is the best of the rounds (wall seconds); peak RSS of the process is printed below the table.
"""
from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

T0_US = 1_777_626_000_000_000  # 2026-05-01 09:00 UTC
WINDOW_US = 3_600_000_000
VARIANTS = pd.DataFrame({"content_id": [0, 1, 2, 3], "topic": ["product", "education", "event", "product"],
                         "subject_length": [38, 21, 45, 52], "has_emoji": [True, False, False, True]})


def fill(log, n: int, seed: int = 7, batch: int = 20_000) -> None:
    """`n` decisions of campaign `bench` (registered by the caller), 10% rewarded, 97% marked sent."""
    from experiments.bandit.decision_log import DecisionBatch
    from experiments.bandit.randomness import new_decision_ids

    rng = np.random.default_rng(seed)
    eligible = np.arange(4, dtype=np.int64)
    for lo in range(0, n, batch):
        m = min(batch, n - lo)
        ids, _ = new_decision_ids(m)  # random, as served: index probes land at random places
        probs = rng.dirichlet(np.ones(4), m)
        variant = np.array([rng.choice(4, p=p) for p in probs[:64]] + list(rng.integers(0, 4, m - min(m, 64))),
                           dtype=np.int64)
        log.log_decisions(DecisionBatch(
            decision_id=ids, campaign_id="bench", decided_at=T0_US + lo, contact_id=np.arange(lo, lo + m),
            eligible=eligible, context=rng.random((m, 3)), probabilities=probs, variant=variant,
            propensity=probs[np.arange(m), variant], policy_version=0, mode=np.full(m, "policy", dtype=object),
            policy_choice=variant), window_us=WINDOW_US)
        rewarded = [d for d in ids if rng.random() < 0.10]
        log.add_rewards(rewarded, np.ones(len(rewarded)), np.full(len(rewarded), T0_US + lo + 60_000_000),
                        [f"e{d}" for d in rewarded], T0_US + lo + 60_000_000)
        mailed = [d for d in ids if rng.random() < 0.97]
        log.mark_sent(mailed, T0_US + lo + 1)


def best(fn, rounds: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(rounds):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def measure(name: str, log, snapshots_factory, rounds: int, connect) -> list[dict]:
    """`connect()`: a DB-API connection of its own to the same log, for the SQL alone (no decoding)."""
    from experiments.bandit import Allocator
    from experiments.bandit.decision_log import joined_query

    rows = []
    upto = T0_US + 10**13
    db = connect()
    marker = "?" if name == "SQLite" else "%s"
    for mode in ("all", "sent"):  # the SQL alone: execute + fetchall
        sql, params = joined_query(marker, "bench", 0, upto, "first", 0.0, (0.0, 1.0), mode)
        db.execute(sql, params).fetchall()  # warm
        secs, out = best(lambda: db.execute(sql, params).fetchall(), rounds)
        rows.append({"log": name, "what": f"SQL only, learn_from={mode}", "seconds": secs,
                     "rows": sum(r[-1] for r in out)})
    db.close()
    for mode in ("all", "sent"):  # warm the page cache for both before timing either
        log.joined("bench", 0, upto, "first", 0.0, (0.0, 1.0), mode)
    for mode in ("all", "sent"):  # the query alone, baseline first
        secs, df = best(lambda: log.joined("bench", 0, upto, "first", 0.0, (0.0, 1.0), mode), rounds)
        rows.append({"log": name, "what": f"learn query, learn_from={mode}", "seconds": secs,
                     "rows": int(df["mailed"].sum())})
    _, config = log.campaign("bench")
    for mode in ("all", "sent"):  # a whole learn from scratch
        log.save_campaign("bench", {**config, "learn_from": mode})
        timings = []
        for _ in range(rounds):
            alloc = Allocator(log, snapshots_factory())
            t = time.perf_counter()
            version = alloc.learn(now=pd.Timestamp(upto + WINDOW_US, unit="us", tz="UTC"))
            timings.append(time.perf_counter() - t)
            n = alloc.snapshots.read(version).campaigns["bench"].posterior.n
        rows.append({"log": name, "what": f"Allocator.learn, learn_from={mode}", "seconds": min(timings), "rows": n})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--decisions", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--postgres", action="store_true", help="also on a throwaway PostgreSQL cluster")
    args = ap.parse_args(argv)
    from threadpoolctl import threadpool_limits

    from experiments.bandit import Allocator
    from experiments.bandit.decision_log import SQLiteDecisionLog
    from experiments.bandit.snapshots import SnapshotStore

    results = []
    with tempfile.TemporaryDirectory() as tmp, threadpool_limits(1):
        counter = iter(range(10**6))
        snaps = lambda: SnapshotStore(Path(tmp) / f"snap{next(counter)}")  # noqa: E731
        log = SQLiteDecisionLog(Path(tmp) / "decisions.db")
        Allocator(log, snaps()).register_campaign("bench", VARIANTS, ["x1", "x2", "x3"], wait_window="1h")
        t = time.perf_counter()
        fill(log, args.decisions)
        print(f"SQLite log filled with {args.decisions:,} decisions in {time.perf_counter() - t:.0f} s")
        import sqlite3

        results += measure("SQLite", log, snaps, args.rounds, lambda: sqlite3.connect(Path(tmp) / "decisions.db"))
        log.close()
        if args.postgres:
            from experiments.bandit.decision_log_postgres import PostgresDecisionLog
            from inbox.services import postgres_server

            with postgres_server() as pg:
                plog = PostgresDecisionLog(pg.create_database("bench_learn_sent"))
                Allocator(plog, snaps()).register_campaign("bench", VARIANTS, ["x1", "x2", "x3"], wait_window="1h")
                t = time.perf_counter()
                fill(plog, args.decisions)
                print(f"PostgreSQL log filled in {time.perf_counter() - t:.0f} s")
                import psycopg

                results += measure("PostgreSQL", plog, snaps, args.rounds, lambda: psycopg.connect(plog.url))
                plog.close()
    table = pd.DataFrame(results)
    base = table.groupby(["log", table["what"].str.split(",").str[0]])["seconds"].transform("first")
    table["vs all"] = (table["seconds"] / base).map("{:.2f}x".format)
    table["seconds"] = table["seconds"].map("{:.2f}".format)
    table["rows"] = table["rows"].map("{:,}".format)
    print(f"\n{args.decisions:,} closed decisions, 10% rewarded, 97% marked sent; best of {args.rounds}")
    print(table.to_string(index=False))
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
