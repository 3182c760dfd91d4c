"""MLflow plumbing shared by every model: tracking URI, experiments, run tags, plots.

The tracking store is SQLite (`settings.tracking_uri`); artifacts go under
`settings.artifact_root` (MLflow would otherwise put them under `./mlruns`
relative to the working directory). Pip requirements are pinned explicitly
from the installed versions: logging a model then takes ~1 s instead of the
~3 s MLflow spends inferring them.
"""
from __future__ import annotations

import functools
import importlib.metadata
import subprocess
from pathlib import Path

from inbox.tracking import EXPERIMENT_PREFIX, configure  # noqa: F401  (re-exported for models)


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
