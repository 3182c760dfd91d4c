"""Bandit benchmark: decision throughput and latency (ours vs Vowpal Wabbit, same
run, same contexts), and cumulative regret on the simulated world vs VW.

    .venv/bin/python benchmarks/bench_bandit.py [--seeds 7 11 13] [--decisions 20000] [--quick]

Contexts are the simulated contacts' public attributes one-hot (industry,
company size, seniority, signup source: 23 columns with the bias), 5 variants
with content features. Both sides run single-threaded (one BLAS thread; VW's
Python API is one example per call). "policy" rows time the policy alone
(probability vector + floor + seeded draw); "allocator" rows time
`Allocator.decide`, which also writes every decision to the SQLite WAL log
before returning.
"""
from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table
from threadpoolctl import threadpool_limits

from experiments.bandit import Allocator
from experiments.bandit.agents import LinearAgent, VowpalWabbitAgent
from experiments.bandit.policies import EpsilonGreedy, LinearThompsonSampling, LinUCB
from experiments.bandit.randomness import new_decision_ids, uniforms
from experiments.bandit.simulate import ALL_POLICIES, SimulationConfig, build_stream, run_simulation
from simulation.world import WorldConfig, generate_world


def _table(title: str, df: pd.DataFrame) -> None:
    t = Table(title=title)
    for col in df.columns:
        t.add_column(str(col), justify="left" if df[col].dtype == object else "right")
    for row in df.itertuples(index=False):
        t.add_row(*[str(v) for v in row])
    Console(width=140).print(t)


def _percentiles(samples: list[float]) -> tuple[float, float]:
    a = np.array(samples) * 1e6
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


def speed(world, n_batch: int, n_single: int, n_vw: int) -> pd.DataFrame:
    """Batch throughput per system, then single-decision latency measured round-robin
    (every system decides contact i before any decides contact i + 1), so all of them
    see the same machine load."""
    cfg = SimulationConfig(decisions=n_batch, n_contacts=len(world.contacts), seed=1, days=1)
    stream = build_stream(world, cfg)
    d = stream.X.shape[1]
    rng = np.random.default_rng(0)
    warm = rng.integers(0, n_batch, 5000)
    warm_actions = rng.integers(0, len(stream.Z), 5000)
    rewards = (rng.random(5000) < 0.05).astype(float)
    _, keys = new_decision_ids(n_batch)
    u = uniforms(keys)
    systems = []   # (system, policy, batch decisions/s, single-decision callable)
    for policy in (LinearThompsonSampling(), LinUCB(), EpsilonGreedy()):
        agent = LinearAgent(policy, stream.Z, d, floor=0.02)
        agent.learn(stream.X[warm], warm_actions, rewards, np.full(5000, 0.2))
        agent.decide(stream.X[:100], u[:100])
        t = time.perf_counter()
        agent.decide(stream.X, u)
        batch = n_batch / (time.perf_counter() - t)
        systems.append(("ours: policy", policy.name, batch,
                        lambda i, a=agent: a.decide(stream.X[i : i + 1], u[i : i + 1])))
        if policy.name == "lin_ts":  # worst case: every context distinct (no de-duplication possible)
            dense = np.hstack([np.ones((n_batch, 1)), rng.random((n_batch, d - 1))])
            t = time.perf_counter()
            agent.decide(dense, u)
            systems.append(("ours: policy, all contexts distinct", policy.name,
                            n_batch / (time.perf_counter() - t), None))

    tmp = tempfile.TemporaryDirectory()
    alloc = Allocator.open(tmp.name)
    variants = stream.variants[["content_id", "topic", "format", "has_personalization", "has_urgency",
                                "has_emoji", "subject_length"]]
    alloc.register_campaign("bench", variants, stream.context_names, wait_window="24h", policy="lin_ts")
    ctx = stream.X[:, 1:]
    now = pd.Timestamp("2026-05-01", tz="UTC")
    alloc.decide("bench", stream.contact_ids[:100], ctx[:100], now=now)
    t = time.perf_counter()
    alloc.decide("bench", stream.contact_ids, ctx, now=now)
    systems.append(("ours: allocator + SQLite log", "lin_ts", n_batch / (time.perf_counter() - t),
                    lambda i: alloc.decide("bench", stream.contact_ids[i : i + 1], ctx[i : i + 1], now=now)))

    vws = []
    for explorer in ("epsilon", "squarecb"):
        vw = VowpalWabbitAgent(explorer, stream.shared_lines, stream.action_lines)
        vw.learn_rows(warm, warm_actions, rewards, np.full(5000, 0.2))
        t = time.perf_counter()
        vw.decide_rows(np.arange(n_vw), u[:n_vw])
        systems.append(("Vowpal Wabbit 9.11 cb_explore_adf", vw.name, n_vw / (time.perf_counter() - t),
                        lambda i, v=vw: v.decide_rows(np.array([i]), u[i : i + 1])))
        vws.append(vw)

    timings = {k: [] for k in range(len(systems))}
    for i in range(n_single):
        for k, (_, _, _, call) in enumerate(systems):
            if call is not None:
                t = time.perf_counter()
                call(i)
                timings[k].append(time.perf_counter() - t)
    rows = []
    for k, (system, policy, batch, call) in enumerate(systems):
        p50, p99 = _percentiles(timings[k]) if timings[k] else (float("nan"), float("nan"))
        rows.append((system, policy, batch, p50, p99))
    for vw in vws:
        vw.close()
    alloc.close()
    tmp.cleanup()
    df = pd.DataFrame(rows, columns=["system", "policy", "decisions/s (batch)", "single p50 us", "single p99 us"])
    for col in df.columns[2:]:
        df[col] = df[col].map(lambda v: "-" if v != v else f"{v:,.0f}")
    return df


def regret(seeds: list[int], decisions: int, n_contacts: int) -> pd.DataFrame:
    tables = []
    for seed in seeds:
        cfg = SimulationConfig(decisions=decisions, seed=seed, n_contacts=n_contacts, policies=ALL_POLICIES)
        result = run_simulation(cfg)
        t = result.table()
        t["seed"] = seed
        t["oracle_clicks"] = result.oracle_reward
        tables.append(t)
    all_runs = pd.concat(tables)
    g = all_runs.groupby("policy", sort=False)
    out = pd.DataFrame({
        "policy": list(g.groups),
        "regret mean": g["regret"].mean().map("{:.1f}".format).to_numpy(),
        "regret per seed": g["regret"].apply(lambda s: " / ".join(f"{v:.0f}" for v in s)).to_numpy(),
        "clicks mean": g["clicks"].mean().map("{:.0f}".format).to_numpy(),
        "decisions/s": g["decisions_per_s"].mean().map("{:,.0f}".format).to_numpy(),
    })
    return out, float(all_runs.groupby("seed")["oracle_clicks"].first().mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[7, 11, 13])
    ap.add_argument("--decisions", type=int, default=20_000)
    ap.add_argument("--contacts", type=int, default=20_000)
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    ap.add_argument("--speed-only", action="store_true", help="skip the regret simulation")
    args = ap.parse_args()
    if args.quick:
        args.seeds, args.decisions, args.contacts = [7], 3000, 3000
    with threadpool_limits(1):
        world = generate_world(WorldConfig(n_contacts=args.contacts, seed=1))
        n_batch = 5000 if args.quick else 50_000
        _table(f"Decision speed ({n_batch:,} contexts batched; single decisions one at a time; 1 thread)",
               speed(world, n_batch, 300 if args.quick else 2000, 1000 if args.quick else 5000))
        if args.speed_only:
            return
        table, oracle = regret(args.seeds, args.decisions, args.contacts)
        _table(f"Cumulative regret vs per-contact oracle, T={args.decisions:,}, seeds {args.seeds} "
               f"(oracle ~{oracle:,.0f} expected clicks); lower is better", table)


if __name__ == "__main__":
    main()
