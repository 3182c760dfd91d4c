"""Promotion gate (DR lower bound vs live estimate, logged to MLflow) and the simulation vs Vowpal Wabbit."""
import numpy as np
import pandas as pd
import pytest

from experiments.bandit import Allocator

T0 = pd.Timestamp("2026-05-01 09:00", tz="UTC")


def _serve_and_reward(alloc, when, good, prefix, n=1500):
    # explicit decision ids: the draws (seeded by id) and so the gate's estimates are reproducible
    ids = [f"{prefix}-decision-{i:06d}" for i in range(n)]
    out = alloc.choose("spring", np.arange(n), None, now=when, decision_ids=ids)
    r = (out["variant"] == good).astype(float).to_numpy() if good is not None else np.zeros(n)
    alloc.rewards(out["decision_id"], r, [when + pd.Timedelta("5m")] * n, [f"{prefix}{i}" for i in range(n)])
    return out


def test_gate_promotes_only_a_better_candidate(bandit_env, variants):
    import mlflow

    alloc = Allocator.open(bandit_env / "gate")
    alloc.register_campaign("spring", variants, ["x1"], wait_window="1h", floor=0.05)
    _serve_and_reward(alloc, T0, 12, "a")
    v1 = alloc.learn(now=T0 + pd.Timedelta("2h"), gate=True, track=True)
    assert v1 == 1 and not alloc.reload()           # a candidate is not served
    _serve_and_reward(alloc, T0 + pd.Timedelta("3h"), 12, "b")   # served by the live prior (v0)
    v2 = alloc.learn(now=T0 + pd.Timedelta("5h"), gate=True, track=True)
    (cid, decision), = alloc.gate_decisions
    assert decision.promote and decision.candidate.ci_low > decision.live.value
    assert alloc.reload() and alloc.policy_version == 1
    # the next candidate sees only zero rewards: its DR lower bound cannot beat the live estimate
    _serve_and_reward(alloc, T0 + pd.Timedelta("6h"), None, "c")
    alloc.learn(now=T0 + pd.Timedelta("8h"), gate=True, track=True)
    (_, decision), = alloc.gate_decisions
    assert not decision.promote, decision.reason
    assert not alloc.reload() and alloc.policy_version == 1
    assert alloc.snapshots.versions() == [(1, True), (2, False), (3, False)]
    mlflow.set_tracking_uri(f"sqlite:///{bandit_env / 'mlruns' / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["inbox/bandit-promotion"])
    assert sorted(runs["tags.went_live"]) == ["false", "true"]
    assert all(runs["tags.mlflow.note.content"].str.contains("went live|did not go live"))
    assert v2 == 2
    alloc.close()


@pytest.mark.slow
def test_simulation_against_vowpal_wabbit_logged_to_mlflow(bandit_env, capsys):
    """Our policies and VW on one delayed-reward stream; learning beats uniform; run + plot in MLflow."""
    import mlflow

    from inbox.cli import main

    code = main(["bandit", "simulate", "--decisions", "4000", "--contacts", "3000", "--days", "5",
                 "--wait-window", "12", "--seed", "3"])
    assert code == 0
    out = capsys.readouterr().out
    for name in ("lin_ts", "lin_ucb", "eps_greedy", "uniform", "vw_epsilon", "vw_squarecb"):
        assert name in out
    mlflow.set_tracking_uri(f"sqlite:///{bandit_env / 'mlruns' / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["inbox/bandit-simulation"])
    parent = runs[runs["tags.inbox.kind"] == "bandit_simulation"]
    assert len(parent) == 1
    run = parent.iloc[0]
    children = runs[runs["tags.mlflow.parentRunId"] == run["run_id"]].set_index("tags.policy")
    assert sorted(children.index) == sorted(("lin_ts", "lin_ucb", "eps_greedy", "uniform", "vw_epsilon", "vw_squarecb"))
    client = mlflow.MlflowClient()
    # each policy's regret curve is a step metric of its child run, ending at the table's regret
    curve = {p: client.get_metric_history(children.loc[p, "run_id"], "cumulative_regret")
             for p in ("lin_ts", "lin_ucb", "eps_greedy", "uniform")}
    assert all(len(h) == 100 and h[-1].step == 4000 for h in curve.values())
    assert all(np.all(np.diff([m.step for m in h]) > 0) for h in curve.values())
    table = pd.DataFrame(mlflow.load_table("results.json", run_ids=[run["run_id"]])).set_index("policy")
    assert curve["lin_ts"][-1].value == pytest.approx(table.loc["lin_ts", "regret"])
    assert min(curve[p][-1].value for p in ("lin_ts", "lin_ucb", "eps_greedy")) < curve["uniform"][-1].value
    assert children.loc["lin_ts", "metrics.decisions_per_s"] > children.loc["vw_squarecb", "metrics.decisions_per_s"]
    assert run["tags.mlflow.note.content"].startswith("6 policies")
    artifacts = [a.path for a in client.list_artifacts(run["run_id"], "plots")]
    assert "plots/cumulative_regret_reward.png" in artifacts


def test_run_simulation_python_api_is_deterministic():
    from simulation.world import WorldConfig, generate_world

    from experiments.bandit.simulate import SimulationConfig, run_simulation

    world = generate_world(WorldConfig(n_contacts=1000, seed=5))
    cfg = SimulationConfig(decisions=800, n_contacts=1000, days=2, seed=5, policies=("lin_ts", "uniform"))
    a, b = run_simulation(cfg, world=world), run_simulation(cfg, world=world)
    assert a.table()["regret"].tolist() == b.table()["regret"].tolist()
    ts = a.results[0]
    assert len(ts.cum_regret) == 800 and np.all(np.diff(ts.cum_regret) >= -1e-12)


def test_cli_learn_gate_says_whether_the_candidate_went_live_and_logs_a_run(bandit_env, variants, capsys):
    import mlflow

    from inbox.cli import main

    alloc = Allocator.open(bandit_env / "data" / "bandit")
    alloc.register_campaign("spring", variants, ["x1"], wait_window="1h", floor=0.05)
    _serve_and_reward(alloc, T0, 12, "a")
    alloc.close()
    assert main(["bandit", "learn", "--gate", "--now", str(T0 + pd.Timedelta("2h"))]) == 0
    first = capsys.readouterr().out
    assert "no candidate was pending; v0 is live" in first and "snapshot v1 written as a candidate" in first
    alloc = Allocator.open(bandit_env / "data" / "bandit")
    _serve_and_reward(alloc, T0 + pd.Timedelta("3h"), 12, "b")  # served by v0; v1 learned that 12 is best
    alloc.close()
    assert main(["bandit", "learn", "--gate", "--now", "2026-05-01T14:00"]) == 0
    second = capsys.readouterr().out
    assert "candidate v1 went live (was v0)" in second
    mlflow.set_tracking_uri(f"sqlite:///{bandit_env / 'mlruns' / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["inbox/bandit-promotion"], order_by=["attributes.start_time"])
    assert runs["tags.went_live"].tolist() == ["false", "true"]
    assert runs["tags.mlflow.note.content"].iloc[1].startswith("**candidate v1 went live")
    assert runs["metrics.candidate_dr_ci_low"].iloc[1] > runs["metrics.live_estimate"].iloc[1]
