"""MLflow plumbing shared by every model: tracking URI, experiments, run tags, plots, registry entries.

The tracking store is SQLite (`settings.tracking_uri`); artifacts go under
`settings.artifact_root` (MLflow would otherwise put them under `./mlruns`
relative to the working directory). Pip requirements are pinned explicitly
from the installed versions, which is faster than letting MLflow infer them.
Registered models and their versions are created with a description through
the client API (`register_version`), and every promotion decision leaves a
champion-vs-challenger table in the challenger's run (`log_comparison`).
"""
from __future__ import annotations

import functools
import importlib.metadata
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

from inbox.tracking import EXPERIMENT_PREFIX, configure, describe_run  # noqa: F401  (re-exported for models)

MODEL_DESCRIPTIONS = {
    "lead_scoring": "Probability that a contact converts within the label window, from its point-in-time "
                    "features (LightGBM, calibrated), with a score, a tier and the reasons behind each score. "
                    "Serving loads `@champion`; every training registers a `@challenger` that replaces the "
                    "champion only when it wins on the same test period.",
    "send_time": "Open probability by local hour of the week per contact (contact, segment and population "
                 "levels); serving picks the best allowed slot in a send window. Aliases as for lead_scoring.",
    "content_preference": "Two-tower ranker: contact and content embedded separately, scored by their dot "
                          "product, so new content is ranked from its features. When the structural logistic "
                          "regression beats it on the same rows, that regression is registered instead, in the same "
                          "two-tower form (linear towers; tag model_choice). Aliases as for lead_scoring.",
}


@functools.lru_cache(maxsize=None)
def pinned(*packages: str) -> tuple[str, ...]:
    """`name==version` for each installed distribution (explicit pip_requirements)."""
    return tuple(f"{p}=={importlib.metadata.version(p)}" for p in packages)


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """The project's current commit (or 'unknown' outside a git checkout)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def log_figure(fig, filename: str) -> None:
    """Log a matplotlib figure under `plots/` of the active run."""
    import mlflow

    mlflow.log_figure(fig, f"plots/{filename}")


PREDICTOR_FILE = "predictor.json"


def write_predictor_metadata(directory, meta: dict):
    """`predictor.json` (logged as the model's extra file: encoders, calibration, fallbacks)."""
    import json

    path = Path(directory) / PREDICTOR_FILE
    path.write_text(json.dumps(meta))
    return path


def read_predictor_metadata(model_dir) -> dict:
    import json

    return json.loads((Path(model_dir) / "extra_files" / PREDICTOR_FILE).read_text())


def read_lightgbm_artifacts(model_dir):
    """(booster, predictor metadata) of a logged LightGBM predictor directory."""
    import lightgbm as lgb

    model_dir = Path(model_dir)
    return lgb.Booster(model_file=str(model_dir / "model.lgb")), read_predictor_metadata(model_dir)


def register_version(model_uri: str, name: str, run_id: str, tags: dict[str, str] | None = None,
                     model_id: str | None = None, description: str | None = None) -> str:
    """Register `model_uri` as a new version of `name` (created with its description when new).

    Uses the client API (`create_registered_model`, `create_model_version`) rather than
    `mlflow.register_model`, which prints "Successfully registered model" to stderr.
    Returns the version.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient()
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description=MODEL_DESCRIPTIONS.get(name))
    version = client.create_model_version(
        name, model_uri, run_id=run_id, tags=tags, model_id=model_id,
        description=description or f"trained in run {run_id}",
    )
    return str(version.version)


def comparison_table(decision) -> "pd.DataFrame":
    """Champion vs challenger as rows of one table (a `models.registry.PromotionDecision`)."""
    import pandas as pd

    rows = [{"role": "challenger", "version": decision.challenger_version, "metric": decision.metric,
             "value": decision.challenger_value}]
    if decision.champion_version is not None:
        rows.append({"role": "champion before", "version": decision.champion_version, "metric": decision.metric,
                     "value": decision.champion_value})
    table = pd.DataFrame(rows)
    table["decision"] = "promoted" if decision.promoted else "rejected"
    table["reason"] = decision.reason
    return table


def log_comparison(decision) -> None:
    """Log `tables/champion_vs_challenger.json` and a headline metric to the active run."""
    import mlflow

    table = comparison_table(decision)
    mlflow.log_table(table, "tables/champion_vs_challenger.json")
    if decision.champion_value is not None and decision.champion_value == decision.champion_value:
        mlflow.log_metric(f"{decision.metric}_minus_champion", decision.challenger_value - decision.champion_value)
