"""`inbox ab ...` end to end: files in, tables/JSON out, an MLflow run recorded (sqlite in tmp)."""
from __future__ import annotations

import json

import pytest

from abtest_fixtures import recipient_table
from inbox.cli import main


@pytest.fixture()
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("INBOX_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("INBOX_ARTIFACT_ROOT", str(tmp_path / "mlruns"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    (tmp_path / "mlruns").mkdir()
    return tmp_path


def test_analyze_json_and_mlflow_run(env, capsys):
    import mlflow

    path = env / "results.parquet"
    recipient_table(n=5000, seed=2, variants=("a", "b", "c"), open_lift=0.03, rho_pre=0.7).to_parquet(path)
    code = main(["ab", "analyze", str(path), "--variant", "variant", "--control", "a",
                 "--metric", "open:binary", "--metric", "score:continuous", "--metric", "cto:ratio(click,open)",
                 "--guardrail", "unsubscribe:binary", "--covariate", "pre", "--split", "a=1,b=1,c=1".replace("1", "0.333333333"),
                 "--sequential", "--json"])
    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    rows = {(r["metric"], r["variant"]): r for r in payload["results"]}
    assert set(rows) == {(m, v) for m in ("open", "score", "cto", "unsubscribe") for v in ("b", "c")}
    assert rows[("score", "b")]["variance_reduction"] > 0.3
    assert rows[("unsubscribe", "b")]["abs_ci_high"] is None  # one-sided bound: JSON null, not inf
    assert payload["srm"]["mismatch"] is False and payload["mlflow_run_id"]
    mlflow.set_tracking_uri(f"sqlite:///{env / 'mlruns' / 'mlflow.db'}")
    run = mlflow.get_run(payload["mlflow_run_id"])
    assert run.data.params["control"] == "a"
    # a few headline metrics, not one per metric x variant x statistic
    assert run.data.metrics["open/min_p_adjusted"] == pytest.approx(min(rows[("open", v)]["p_adjusted"] for v in "bc"))
    assert run.data.metrics["open/best_rel_lift"] == pytest.approx(max(rows[("open", v)]["rel_lift"] for v in "bc"))
    assert run.data.metrics["unsubscribe/harmful_variants"] == sum(bool(rows[("unsubscribe", v)]["harm"]) for v in "bc")
    assert len(run.data.metrics) <= 12
    table = mlflow.load_table("tables/ab_results.json", run_ids=[run.info.run_id])
    assert len(table) == 8 and table.set_index(["metric", "variant"]).loc[("open", "b"), "p_value"] == pytest.approx(
        rows[("open", "b")]["p_value"])
    assert run.data.tags["mlflow.note.content"].startswith("A/B/n analysis of 5,000 recipients")
    assert mlflow.get_experiment(run.info.experiment_id).name == "inbox/ab-tests"
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)}
    plots = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "plots")}
    assert "ab_results.json" in artifacts and plots == {"plots/lift.png", "plots/posteriors.png"}
    assert str(env) in run.info.artifact_uri  # under INBOX_ARTIFACT_ROOT, never the repo


def test_analyze_table_output_from_csv(env, capsys):
    path = env / "results.csv"
    recipient_table(n=3000, seed=4).to_csv(path, index=False)
    code = main(["ab", "analyze", str(path), "--variant", "variant", "--control", "a",
                 "--metric", "open:binary", "--metric", "revenue:continuous", "--no-mlflow"])
    out = capsys.readouterr().out
    assert code == 0 and "Lift vs control 'a'" in out and "SRM check" in out and "revenue" in out


@pytest.mark.parametrize("argv,message", [
    (["--control", "zz", "--metric", "open:binary"], "control 'zz' not found"),
    (["--control", "a", "--metric", "revenue:binary"], "declared binary"),
    (["--control", "a", "--metric", "nope:binary"], "missing column(s) ['nope']"),
    (["--control", "a", "--metric", "open:binary", "--split", "a:0.5"], "NAME=WEIGHT"),
])
def test_analyze_bad_input_exits_2_with_message(env, capsys, argv, message):
    path = env / "results.parquet"
    recipient_table(n=500, seed=1).to_parquet(path)
    assert main(["ab", "analyze", str(path), "--variant", "variant", "--no-mlflow", *argv]) == 2
    assert message in capsys.readouterr().err


def test_design_commands(env, capsys):
    from experiments.abtest.sizing import sample_size
    from experiments.abtest.test_roll import test_and_roll as plan_test_and_roll

    assert main(["ab", "design", "sample-size", "--baseline", "0.03", "--mde", "0.1", "--relative",
                 "--variants", "3", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["n_per_variant"] == sample_size("binary", 0.1, baseline=0.03, relative=True, variants=3).n_per_variant
    assert main(["ab", "design", "mde", "--baseline", "0.03", "--n-per-variant", "20000"]) == 0
    assert "mde_abs" in capsys.readouterr().out
    assert main(["ab", "design", "test-roll", "--population", "100000", "--prior-mean", "0.03",
                 "--prior-sd", "0.01", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_per_arm"] == plan_test_and_roll(100000, 0.03, 0.01).n_per_arm
    out_csv = env / "design.csv"
    assert main(["ab", "design", "factorial", "--factor", "subject=Save 20%|Last chance", "--factor",
                 "sender=Team,CEO", "--factor", "content=short,long", "--factor", "send_hour=9,17",
                 "--fraction", "1", "--out", str(out_csv)]) == 0
    out = capsys.readouterr().out
    assert "resolution IV" in out and "I = ABCD" in out and out_csv.exists()


def test_effects_command(env, capsys):
    import numpy as np

    from experiments.abtest.factorial import factorial_design

    d = factorial_design(["subject=s0,s1", "sender=team,ceo"])
    df = d.assign(np.arange(4000), seed=0)
    df["click"] = (np.random.default_rng(0).random(4000) < np.where(df.subject == "s1", 0.2, 0.1)).astype(int)
    path = env / "mvt.parquet"
    df.to_parquet(path)
    assert main(["ab", "effects", str(path), "--factor", "subject", "--factor", "sender", "--outcome", "click",
                 "--json"]) == 0
    rows = {r["term"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["subject"]["ci_low"] <= 0.1 <= rows["subject"]["ci_high"]


def test_analyze_sequential_replay_over_time(env, capsys):
    import numpy as np
    import pandas as pd

    df = recipient_table(n=4000, seed=12, open_lift=0.04)
    df["sent_at"] = pd.Timestamp("2026-05-01", tz="UTC") + pd.to_timedelta(np.arange(len(df)), unit="min")
    path = env / "running.parquet"
    df.to_parquet(path)
    assert main(["ab", "analyze", str(path), "--variant", "variant", "--control", "a", "--metric", "open:binary",
                 "--time", "sent_at", "--no-mlflow"]) == 2
    assert "add --sequential" in capsys.readouterr().err
    assert main(["ab", "analyze", str(path), "--variant", "variant", "--control", "a", "--metric", "open:binary",
                 "--sequential", "--time", "sent_at", "--looks", "8", "--no-mlflow", "--json"]) == 0
    history = json.loads(capsys.readouterr().out)["sequential_history"]
    assert [h["look"] for h in history] == list(range(1, 9))
    assert history[-1]["n"] == int((df.variant == "b").sum())
