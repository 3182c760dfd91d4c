"""Test helper: the shared small world with models trained (fast) into a fresh MLflow store."""
from __future__ import annotations

import contextlib

import pytest


@contextlib.contextmanager
def trained_into_fresh_store(small_world_dir, tmp_path_factory, names, label: str = "trained"):
    """(settings, {name: TrainResult}) with `names` trained into a fresh MLflow store; the env points at the
    world and the store while the context is open (module-scoped fixtures cannot use monkeypatch)."""
    from inbox.settings import load_settings
    from models.training import train_model

    mlruns = tmp_path_factory.mktemp(label) / "mlruns"
    mlruns.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INBOX_DATA_DIR", str(small_world_dir / "data"))
        mp.setenv("INBOX_ARTIFACT_ROOT", str(mlruns))
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{mlruns / 'mlflow.db'}")
        settings = load_settings()
        yield settings, {name: train_model(name, settings=settings, progress=False, fast=True) for name in names}
