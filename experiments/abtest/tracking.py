"""Log an analysis as an MLflow run: parameters, metrics, the JSON results and the plots.

mlflow is imported lazily (only here), so the statistics never depend on it.
"""
from __future__ import annotations

import re
import tempfile
from pathlib import Path

from experiments.abtest.results import AnalysisResult

DEFAULT_EXPERIMENT = "ab-tests"


def _key(*parts: str) -> str:
    """MLflow keys allow alphanumerics, _ - . space / only."""
    return "/".join(re.sub(r"[^0-9A-Za-z_\-. ]", "_", str(p)) for p in parts)


def log_analysis(
    result: AnalysisResult,
    *,
    tracking_uri: str | None = None,
    artifact_root: str | Path | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
    run_name: str | None = None,
    params: dict | None = None,
    histories: list | None = None,
) -> str:
    """Record ``result`` as one MLflow run; returns the run id."""
    import mlflow

    from experiments.abtest.monitoring import plot_sequential
    from experiments.abtest.plots import plot_lifts, plot_posteriors

    if tracking_uri is None or artifact_root is None:
        from inbox.settings import load_settings

        settings = load_settings()
        tracking_uri = tracking_uri or settings.tracking_uri
        artifact_root = artifact_root or settings.artifact_root
    client_uri = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)
    try:
        if mlflow.get_experiment_by_name(experiment) is None:
            # artifacts under the configured root, never the working directory's ./mlruns
            location = (Path(artifact_root).resolve() / experiment).as_uri()
            mlflow.create_experiment(experiment, artifact_location=location)
        mlflow.set_experiment(experiment)
        with mlflow.start_run(run_name=run_name) as run:
            mlflow.set_tag("inbox.kind", "ab_analysis")
            logged_params = {
                "control": result.control,
                "variants": ",".join(result.variants),
                "metrics": ",".join(dict.fromkeys(r.metric for r in result.records)),
                "covariate": result.covariate or "",
                **{f"settings.{k}": v for k, v in result.settings.to_dict().items()},
                **(params or {}),
            }
            mlflow.log_params({k: str(v)[:6000] for k, v in logged_params.items()})
            metrics = {"srm_p_value": result.srm.p_value, "srm_mismatch": float(result.srm.mismatch)}
            for r in result.records:
                for field in ("abs_lift", "rel_lift", "p_value", "p_adjusted", "chance_to_beat", "expected_loss",
                              "variance_reduction", "seq_p_value"):
                    value = getattr(r, field)
                    if value is not None and value == value and abs(value) != float("inf"):
                        metrics[_key(r.metric, r.variant, field)] = float(value)
            mlflow.log_metrics(metrics)
            mlflow.log_text(result.to_json(), "ab_results.json")
            with tempfile.TemporaryDirectory() as tmp:
                for name, plot in (("lift.png", plot_lifts), ("posteriors.png", plot_posteriors)):
                    fig = plot(result)
                    path = Path(tmp) / name
                    fig.savefig(path, dpi=110)
                    mlflow.log_artifact(str(path), "plots")
                for history in histories or []:  # sequential replays: one plot per metric
                    fig = plot_sequential(history, result.settings.alpha)
                    path = Path(tmp) / f"sequential_{_key(history['metric'].iloc[0])}.png"
                    fig.savefig(path, dpi=110)
                    mlflow.log_artifact(str(path), "plots")
            return run.info.run_id
    finally:
        mlflow.set_tracking_uri(client_uri)
