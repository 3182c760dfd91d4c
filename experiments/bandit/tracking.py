"""MLflow logging for the bandit (the only bandit module that imports mlflow, lazily).

Two experiments: `inbox/bandit-simulation` (policies raced on a simulated
campaign: one parent run with the table, the plot and the verdict, and one
child run per policy whose cumulative regret and reward are step metrics, so
MLflow's run comparison draws every policy's curve on one chart over the
decisions) and `inbox/bandit-promotion` (each
`learn --gate`: which candidate was evaluated, its doubly-robust interval
against the live policy, and whether it went live).
"""
from __future__ import annotations

CURVE_POINTS = 100  # points per logged curve: enough for the UI's line chart, few rows in the store


def _configure(settings, experiment: str) -> None:
    # the project's one MLflow convention (experiment `inbox/<name>`, artifacts under artifact_root)
    from inbox.tracking import configure

    configure(settings, experiment)


def curve_metrics(policy, points: int = CURVE_POINTS) -> list:
    """`cumulative_regret` and `cumulative_reward` of one policy's result at ~`points` decision counts,
    as MLflow Metric entities (step = decisions made)."""
    import time

    import numpy as np
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    T = len(policy.cum_regret)
    steps = np.unique(np.linspace(1, T, min(points, T)).round().astype(int)) if T else np.zeros(0, int)
    out = []
    for key, curve in (("cumulative_regret", policy.cum_regret), ("cumulative_reward", policy.cum_reward)):
        out += [Metric(key, float(curve[s - 1]), now, int(s)) for s in steps]
    return out


def log_simulation(result, settings=None) -> str:
    """A parent run (config, table, plot, verdict) with one child run per policy (its curves and totals)."""
    import mlflow

    from inbox.settings import load_settings
    from inbox.tracking import describe_run

    from .plots import simulation_figure
    from .simulate import config_params

    settings = settings or load_settings()
    _configure(settings, "bandit-simulation")
    table = result.table()
    best = table.sort_values("regret").iloc[0]
    params = config_params(result.config)
    with mlflow.start_run(run_name=f"simulate-T{result.config.decisions}-seed{result.config.seed}") as run:
        mlflow.set_tag("inbox.kind", "bandit_simulation")
        describe_run(
            f"{len(result.results)} policies on one simulated campaign of {result.config.n_variants} variants, "
            f"{result.config.decisions:,} decisions, rewards delayed (wait window "
            f"{result.config.wait_window_hours:g} h). Lowest regret: **{best['policy']}** "
            f"({best['regret']:,.1f} expected clicks below the per-contact oracle's "
            f"{result.oracle_reward:,.1f}). One child run per policy: compare them to see `cumulative_regret` "
            f"and `cumulative_reward` over the decisions on one chart; table: `results.json`.")
        mlflow.log_params(params)
        mlflow.log_metrics({"oracle_expected_clicks": result.oracle_reward, "best_regret": float(best["regret"])})
        mlflow.set_tag("best_policy", best["policy"])
        mlflow.log_figure(simulation_figure(result), "plots/cumulative_regret_reward.png")
        mlflow.log_table(table, "results.json")
        client = mlflow.MlflowClient()
        for policy, row in zip(result.results, table.to_dict("records")):
            with mlflow.start_run(run_name=policy.name, nested=True) as child:
                mlflow.set_tags({"inbox.kind": "bandit_policy", "policy": policy.name})
                describe_run(f"policy {policy.name} in run {run.info.run_id}: regret {row['regret']:,.1f}, "
                             f"{row['clicks']:,} clicks")
                mlflow.log_params(params)
                metrics = curve_metrics(policy)
                for lo in range(0, len(metrics), 1000):  # MLflow's batch limit
                    client.log_batch(child.info.run_id, metrics=metrics[lo : lo + 1000])
                mlflow.log_metrics({k: float(row[k]) for k in ("regret", "clicks", "ctr", "decisions_per_s")})
        return run.info.run_id


def log_gate(decision, campaign_id: str, settings=None) -> str:
    """One run per gate decision: candidate DR interval vs the live policy's estimate."""
    return log_learn([(campaign_id, decision)], version=None, live_before=decision.live_version,
                     live_after=decision.candidate_version if decision.promote else decision.live_version,
                     candidate=decision.candidate_version, settings=settings)


def log_learn(decisions: list, version: int | None, live_before: int, live_after: int, candidate: int | None,
              settings=None, note: str | None = None) -> str:
    """One run for a gated `learn`: the candidate evaluated (if any), each campaign's gate decision, the outcome."""
    import mlflow

    from inbox.settings import load_settings
    from inbox.tracking import describe_run

    settings = settings or load_settings()
    _configure(settings, "bandit-promotion")
    went_live = live_after != live_before
    outcome = (f"candidate v{candidate} went live" if went_live else
               f"candidate v{candidate} did not go live; v{live_before} stays live" if candidate else
               "no candidate was pending")
    with mlflow.start_run(run_name=f"gate-v{candidate}" if candidate else "learn") as run:
        mlflow.set_tag("inbox.kind", "bandit_gate")
        mlflow.set_tags({"outcome": outcome, "went_live": str(went_live).lower()})
        lines = [f"**{outcome}.**"] + ([note] if note else [])
        for cid, d in decisions:
            lines.append(f"- {cid}: {'promote' if d.promote else 'keep live'}: {d.reason}")
        if version is not None:
            lines.append(f"New snapshot v{version} written as a candidate.")
        describe_run("\n".join(lines))
        mlflow.log_params({"candidate_version": candidate or "none", "live_before": live_before,
                           "live_after": live_after, "new_snapshot": version if version is not None else "none"})
        mlflow.log_metric("went_live", float(went_live))
        for cid, d in decisions:
            prefix = "" if len(decisions) == 1 else f"{cid}/"
            mlflow.log_metrics({
                f"{prefix}candidate_dr": d.candidate.value, f"{prefix}candidate_dr_ci_low": d.candidate.ci_low,
                f"{prefix}candidate_dr_ci_high": d.candidate.ci_high, f"{prefix}live_estimate": d.live.value,
                f"{prefix}n": float(d.candidate.n),
            })
        return run.info.run_id
