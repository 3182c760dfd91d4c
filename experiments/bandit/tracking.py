"""MLflow logging for the bandit (the only bandit module that imports mlflow, lazily):
simulation runs and promotion-gate comparisons, in experiments
`inbox/bandit-simulation` and `inbox/bandit-promotion`.
"""
from __future__ import annotations


def _configure(settings, experiment: str) -> None:
    # the project's one MLflow convention (experiment `inbox/<name>`, artifacts under artifact_root)
    from inbox.tracking import configure

    configure(settings, experiment)


def log_simulation(result, settings=None) -> str:
    """One run: config as params, per-policy regret/reward/throughput as metrics, the plot."""
    import mlflow

    from inbox.settings import load_settings

    from .plots import simulation_figure
    from .simulate import config_params

    settings = settings or load_settings()
    _configure(settings, "bandit-simulation")
    with mlflow.start_run(run_name=f"simulate-T{result.config.decisions}-seed{result.config.seed}") as run:
        mlflow.log_params(config_params(result.config))
        mlflow.log_metric("oracle_expected_clicks", result.oracle_reward)
        for row in result.table().to_dict("records"):
            name = row.pop("policy")
            for key, value in row.items():
                mlflow.log_metric(f"{name}.{key}", float(value))
        fig = simulation_figure(result)
        mlflow.log_figure(fig, "cumulative_regret_reward.png")
        mlflow.log_table(result.table(), "results.json")
        return run.info.run_id


def log_gate(decision, campaign_id: str, settings=None) -> str:
    """One run per gate decision: candidate DR interval vs the live policy's estimate."""
    import mlflow

    from inbox.settings import load_settings

    settings = settings or load_settings()
    _configure(settings, "bandit-promotion")
    with mlflow.start_run(run_name=f"gate-{campaign_id}-v{decision.candidate_version}") as run:
        mlflow.log_params({"campaign_id": campaign_id, "candidate_version": decision.candidate_version,
                           "live_version": decision.live_version, "promoted": decision.promote})
        mlflow.log_metrics({
            "candidate_dr": decision.candidate.value, "candidate_dr_ci_low": decision.candidate.ci_low,
            "candidate_dr_ci_high": decision.candidate.ci_high, "live_estimate": decision.live.value,
            "n": float(decision.candidate.n),
        })
        mlflow.set_tag("reason", decision.reason)
        return run.info.run_id
