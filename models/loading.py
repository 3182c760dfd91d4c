"""Load registered models as native fast predictors (no pyfunc wrapper on the hot path).

`load_champion("lead_scoring")` resolves `models:/lead_scoring@champion`,
downloads (or, for the local store, just locates) the model directory and
builds the model's predictor class from the native flavor files: a LightGBM
`Booster` scoring numpy arrays, or the exported torch module. Each predictor
has `.version` (registry version) and `.feature_service` (Feast service).
"""
from __future__ import annotations

import importlib
from pathlib import Path

MODEL_NAMES = ("lead_scoring", "send_time", "content_preference")
RELOCATED_TO_TAG = "relocated_to_version"  # set by `inbox relocate` on a version whose files were elsewhere
PREDICTORS = {
    "lead_scoring": "models.lead_scorer:LeadScorer",
    "send_time": "models.send_time:SendTimePlanner",
    "content_preference": "models.content_preference:ContentRanker",
}


def _predictor_class(name: str):
    if name not in PREDICTORS:
        raise ValueError(f"model: unknown model {name!r}; expected one of {', '.join(MODEL_NAMES)}")
    module, cls = PREDICTORS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def _client(tracking_uri: str | None):
    import mlflow

    from inbox.tracking import set_tracking_uri

    if tracking_uri is not None:
        set_tracking_uri(tracking_uri)
    elif not mlflow.is_tracking_uri_set():
        from inbox.settings import load_settings

        set_tracking_uri(load_settings().tracking_uri)
    return mlflow.MlflowClient()


def model_dir(name: str, version: str, tracking_uri: str | None = None) -> Path:
    """Local directory of a registered model version (MLmodel + flavor files + extra_files).

    With a SQLite tracking store, a version whose files are outside the store's directories (the
    store was copied or moved after it was registered) raises `inbox.locations.ForeignPathError`
    instead of loading the original directory's model."""
    import mlflow

    client = _client(tracking_uri)
    check_version_location(client, name, version)
    return Path(mlflow.artifacts.download_artifacts(f"models:/{name}/{version}"))


def check_version_location(client, name: str, version: str) -> None:
    from inbox.locations import ForeignPathError, outside
    from inbox.settings import load_settings
    from inbox.tracking import local_artifact_roots

    settings = load_settings()
    roots = local_artifact_roots(client.tracking_uri, settings.artifact_root)
    if roots is None:
        return
    stale = outside(client.get_model_version_download_uri(name, version), roots)
    if stale:
        moved = client.get_model_version(name, version).tags.get(RELOCATED_TO_TAG)
        detail = f"; `inbox relocate` registered this directory's copy as version {moved}" if moved else ""
        raise ForeignPathError(f"model {name!r} version {version}", stale, roots[-1], detail=detail)


def load_version(name: str, version: str | int, tracking_uri: str | None = None):
    cls = _predictor_class(name)
    version = str(version)
    return cls.load(model_dir(name, version, tracking_uri), version=version)


def load_alias(name: str, alias: str, tracking_uri: str | None = None):
    from mlflow.exceptions import MlflowException

    cls = _predictor_class(name)
    client = _client(tracking_uri)
    try:
        version = client.get_model_version_by_alias(name, alias).version
    except MlflowException as exc:
        raise LookupError(
            f"no version of {name!r} has alias {alias!r} in {client.tracking_uri} (run `inbox train {name}`)"
        ) from exc
    return cls.load(model_dir(name, version, tracking_uri), version=str(version))


def load_champion(name: str, tracking_uri: str | None = None):
    """Native predictor for `models:/<name>@champion`."""
    return load_alias(name, "champion", tracking_uri)
