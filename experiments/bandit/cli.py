"""`inbox bandit ...`: simulate against the simulated world, evaluate a logged table, learn."""
from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("bandit", help="contextual-bandit allocator: simulate, evaluate, learn",
                              description="Contextual-bandit allocator tools.")
    sub = p.add_subparsers(dest="bandit_command", metavar="SUBCOMMAND", required=True)

    s = sub.add_parser("simulate", help="LinTS, LinUCB, eps-greedy, uniform and Vowpal Wabbit on one simulated stream",
                       description="Run a campaign against the simulated world with delayed click rewards; "
                       "report cumulative reward, regret vs the per-contact oracle and decisions/s; log to MLflow.")
    s.add_argument("--decisions", type=int, default=20_000, help="decisions T (default 20000)")
    s.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    s.add_argument("--contacts", type=int, default=20_000, help="contacts in the world (default 20000)")
    s.add_argument("--variants", type=int, default=5, help="variants in the campaign (default 5)")
    s.add_argument("--days", type=float, default=14.0, help="days the decisions span (default 14)")
    s.add_argument("--wait-window", type=float, default=24.0, metavar="HOURS", help="reward wait window (default 24)")
    s.add_argument("--update-every", type=float, default=1.0, metavar="HOURS", help="learner mini-batch period (default 1)")
    s.add_argument("--policies", default=None, help="comma-separated subset of lin_ts,lin_ucb,eps_greedy,uniform,"
                   "vw_epsilon,vw_squarecb (default all)")
    s.add_argument("--no-mlflow", action="store_true", help="do not log the run to MLflow")
    s.add_argument("--json", action="store_true", help="print the result table as JSON")
    s.set_defaults(func=_simulate)

    e = sub.add_parser("evaluate", help="off-policy evaluation (IPS, SNIPS, DM, DR) of a logged table",
                       description="Evaluate uniform, the logged policy and a policy learned on the earlier slice, "
                       "on the later slice of a CSV/Parquet log. See experiments/bandit/evaluate.py for columns.")
    e.add_argument("logs", metavar="LOGS", help="CSV or Parquet file")
    e.add_argument("--action", required=True, help="column of the logged action")
    e.add_argument("--reward", required=True, help="column of the reward")
    e.add_argument("--propensity", required=True, help="column of the logging propensity, in (0, 1]")
    e.add_argument("--context", nargs="+", required=True, metavar="COL", help="context columns")
    e.add_argument("--action-feature", nargs="*", default=[], metavar="COL", help="action feature columns")
    e.add_argument("--position", default=None, help="optional position column")
    e.add_argument("--timestamp", default=None, help="optional timestamp column (orders the split)")
    e.add_argument("--train-share", type=float, default=0.5, help="earlier slice share (default 0.5)")
    e.add_argument("--epsilon", type=float, default=0.05, help="exploration of the learned policy (default 0.05)")
    e.add_argument("--json", action="store_true", help="print JSON instead of a table")
    e.set_defaults(func=_evaluate)

    learn = sub.add_parser("learn", help="fold closed decisions of the decision log into a new snapshot")
    learn.add_argument("--gate", action="store_true", help="new snapshots go live only through the DR promotion gate; "
                       "says whether the pending candidate went live and logs an MLflow run")
    learn.add_argument("--now", help="learn as of this time (ISO 8601, UTC if no zone; default: the clock), e.g. to "
                       "replay a log")
    learn.set_defaults(func=_learn)

    lf = sub.add_parser("learn-from", help="switch what a campaign learns from: every closed decision ('all') or "
                        "only those marked sent or rewarded ('sent'); from the next learn on")
    lf.add_argument("campaign", help="campaign id")
    lf.add_argument("learn_from", choices=("all", "sent"))
    lf.set_defaults(func=_learn_from)


def _print_table(df, title: str, json_out: bool) -> None:
    if json_out:
        print(df.to_json(orient="records", indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for i, col in enumerate(df.columns):
        table.add_column(str(col), justify="left" if df[col].dtype == object else "right", no_wrap=i == 0)
    for row in df.itertuples(index=False):
        table.add_row(*[v if isinstance(v, str) else ("" if v != v else f"{v:,.4f}" if isinstance(v, float) else f"{v:,}")
                        for v in row])
    Console().print(table)


def _simulate(args: argparse.Namespace) -> int:
    import pandas as pd
    from rich.progress import Progress

    from .simulate import ALL_POLICIES, SimulationConfig, run_simulation

    policies = tuple(p.strip() for p in args.policies.split(",")) if args.policies else ALL_POLICIES
    config = SimulationConfig(decisions=args.decisions, seed=args.seed, n_contacts=args.contacts,
                              n_variants=args.variants, days=args.days, wait_window_hours=args.wait_window,
                              update_every_hours=args.update_every, policies=policies)
    with Progress(transient=True, disable=args.json) as progress:
        task = progress.add_task("simulating", total=len(policies))

        def step(name: str) -> None:
            progress.update(task, description=f"simulating {name}", advance=0 if name == policies[0] else 1)

        result = run_simulation(config, progress=step)
    table = result.table()
    if not args.json:
        table = pd.DataFrame({
            "policy": table["policy"], "clicks": table["clicks"], "CTR": table["ctr"].map("{:.4f}".format),
            "exp. CTR": table["expected_ctr"].map("{:.4f}".format), "regret": table["regret"].map("{:.1f}".format),
            "decisions/s": table["decisions_per_s"].map("{:,.0f}".format),
            "learn s": table["learn_s"].map("{:.2f}".format)})
    _print_table(table, f"T={config.decisions} decisions, seed {config.seed}; oracle expected clicks "
                 f"{result.oracle_reward:,.1f}", args.json)
    if not args.no_mlflow:
        from .tracking import log_simulation

        run_id = log_simulation(result)
        if not args.json:
            print(f"MLflow run {run_id} (experiment inbox/bandit-simulation)")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from .evaluate import LogColumns, evaluate_log, read_log, to_logged_bandit

    cols = LogColumns(args.action, args.reward, args.propensity, tuple(args.context), tuple(args.action_feature),
                      args.position, args.timestamp)
    data, actions = to_logged_bandit(read_log(args.logs), cols)
    result = evaluate_log(data, train_share=args.train_share, epsilon=args.epsilon)
    _print_table(result, f"{args.logs}: {len(data):,} rows, {len(actions)} actions; estimates on the later "
                 f"{1 - args.train_share:.0%}", args.json)
    return 0


def _learn_from(args: argparse.Namespace) -> int:
    from inbox.settings import load_settings

    from . import Allocator

    alloc = Allocator.open(load_settings().bandit_dir)
    try:
        before = alloc.set_learn_from(args.campaign, args.learn_from)
    finally:
        alloc.close()
    what = {"all": "every closed decision", "sent": "closed decisions marked sent or rewarded"}
    print(f"{args.campaign}: learns from {what[args.learn_from]} (learn_from: {args.learn_from}, was {before}), "
          "from the next learn on")
    return 0


def _learn(args: argparse.Namespace) -> int:
    from inbox.settings import load_settings

    from . import Allocator

    now = None
    if args.now:
        import pandas as pd

        from inbox.cli import parse_utc

        now = pd.Timestamp(parse_utc("--now", args.now))
    settings = load_settings()
    alloc = Allocator.open(settings.bandit_dir)
    try:
        if not alloc.log.campaign_ids():
            print(f"no campaigns registered in {alloc.log.path}; nothing to learn")
            return 0
        live_before, newest_before = alloc.snapshots.newest(live_only=True), alloc.snapshots.newest()
        candidate = newest_before if args.gate and newest_before > live_before else None
        version = alloc.learn(now=now, gate=args.gate, track=False)
        live_after = alloc.snapshots.newest(live_only=True)
        for cid, decision in alloc.gate_decisions:
            print(f"{cid}: {'promote' if decision.promote else 'keep live'}: {decision.reason}")
        for cid, why in alloc.learn_refusals.items():
            print(f"{cid}: {why}", file=sys.stderr)
        for cid, n in alloc.learn_unsent.items():
            print(f"{cid}: {n:,} closed decisions not learned from: never marked sent nor rewarded (learn_from: sent)")
        if not args.gate:
            print(f"snapshot v{version} written and live")
            return 1 if alloc.learn_refusals else 0
        note = None
        if candidate is None:
            outcome = f"no candidate was pending; v{live_after} is live"
        elif live_after != live_before:
            outcome = f"candidate v{candidate} went live (was v{live_before})"
        elif not alloc.gate_decisions:
            outcome = f"candidate v{candidate} did not go live; v{live_before} stays live"
            note = "Not evaluated: too few served decisions have closed since the candidate's cutoff."
        else:
            outcome = f"candidate v{candidate} did not go live; v{live_before} stays live"
        print(outcome + (f" ({note[0].lower()}{note[1:-1]})" if note else ""))
        print(f"snapshot v{version} written as a candidate (it serves only after a later learn --gate promotes it)")
        from .tracking import log_learn

        run_id = log_learn(alloc.gate_decisions, version, live_before, live_after, candidate, settings, note)
        print(f"MLflow run {run_id} (experiment inbox/bandit-promotion)")
        return 1 if alloc.learn_refusals else 0
    finally:
        alloc.close()


def race_and_log(settings=None, contacts: int = 20_000, seed: int = 7, decisions: int = 5_000) -> dict:
    """Race the policies on a simulated campaign and log the run (what `inbox demo` runs); a short summary."""
    from .simulate import SimulationConfig, run_simulation
    from .tracking import log_simulation

    config = SimulationConfig(decisions=decisions, n_contacts=min(contacts, 20_000), n_variants=5, days=5,
                              wait_window_hours=12, seed=seed)
    result = run_simulation(config)
    table = result.table().set_index("policy")
    best = table["regret"].idxmin()
    return {"decisions": decisions, "best_policy": best, "best_regret": float(table.loc[best, "regret"]),
            "uniform_regret": float(table.loc["uniform", "regret"]) if "uniform" in table.index else None,
            "run_id": log_simulation(result, settings)}
