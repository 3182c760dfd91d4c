"""The project's one MLflow convention, shared by models, the bandit and A/B analyses.

Every run goes to experiment `inbox/<name>` in the installation's tracking store
(`settings.tracking_uri`, SQLite by default), with artifacts under
`settings.artifact_root` (MLflow would otherwise put them under `./mlruns`
relative to the working directory). Lives in `inbox/` so that `experiments`
does not import `models` (DESIGN's dependency direction).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from inbox.settings import Settings

EXPERIMENT_PREFIX = "inbox"


def configure(settings: "Settings", experiment: str) -> str:
    """Point MLflow at the installation's store and select (or create) `inbox/<experiment>`.

    Returns the experiment id.
    """
    import mlflow

    mlflow.set_tracking_uri(settings.tracking_uri)
    name = f"{EXPERIMENT_PREFIX}/{experiment}"
    client = mlflow.MlflowClient()
    found = client.get_experiment_by_name(name)
    if found is None:
        location = Path(settings.artifact_root) / "artifacts"
        location.mkdir(parents=True, exist_ok=True)
        exp_id = client.create_experiment(name, artifact_location=location.resolve().as_uri())
    else:
        exp_id = found.experiment_id
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id
