"""A small simulated world with features, built once per session in a tmp dir."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def small_world_dir(tmp_path_factory):
    from features.pipeline import build_features
    from simulation.eventlog import write_event_log
    from simulation.history import simulate_history
    from simulation.world import WorldConfig, generate_world

    root = tmp_path_factory.mktemp("models_world")
    world = generate_world(WorldConfig(n_contacts=2500, n_days=70, seed=11))
    world.save(root / "data" / "world")
    write_event_log(root / "data" / "events", simulate_history(world, progress=False))
    build_features(root / "data" / "events", root / "data" / "features")
    from features.store import apply, get_store

    apply(get_store(feast_dir=root / "data" / "feast"), features_dir=root / "data" / "features")
    return root


@pytest.fixture()
def model_settings(small_world_dir, tmp_path, monkeypatch):
    """Settings on the shared world with a fresh MLflow store (sqlite) per test."""
    from inbox.settings import load_settings

    monkeypatch.setenv("INBOX_DATA_DIR", str(small_world_dir / "data"))
    monkeypatch.setenv("INBOX_ARTIFACT_ROOT", str(tmp_path / "mlruns"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    (tmp_path / "mlruns").mkdir()
    return load_settings()
