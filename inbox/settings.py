"""Paths and URIs for one installation, overridable by environment variables.

Everything is relative to the working directory by default, so a project
checkout is a self-contained workspace:

| setting          | env var                | default                          |
|------------------|------------------------|----------------------------------|
| data_dir         | INBOX_DATA_DIR         | ./data                           |
| tracking_uri     | MLFLOW_TRACKING_URI    | sqlite:///mlruns/mlflow.db       |
| artifact_root    | INBOX_ARTIFACT_ROOT    | ./mlruns                         |
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    tracking_uri: str
    artifact_root: Path

    @property
    def events_dir(self) -> Path:
        """Raw event log (Parquet tables: contacts, content, sends, events)."""
        return self.data_dir / "events"

    @property
    def world_dir(self) -> Path:
        """The simulator's ground truth (latent traits), never read by models."""
        return self.data_dir / "world"

    @property
    def features_dir(self) -> Path:
        """Feature tables built from the event log (Feast offline sources)."""
        return self.data_dir / "features"

    @property
    def feast_dir(self) -> Path:
        """Feast registry and online store files."""
        return self.data_dir / "feast"

    @property
    def bandit_dir(self) -> Path:
        """Decision log and policy snapshots."""
        return self.data_dir / "bandit"


def load_settings() -> Settings:
    data_dir = Path(os.environ.get("INBOX_DATA_DIR", "data")).resolve()
    artifact_root = Path(os.environ.get("INBOX_ARTIFACT_ROOT", "mlruns")).resolve()
    tracking_uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{artifact_root / 'mlflow.db'}"
    return Settings(data_dir=data_dir, tracking_uri=tracking_uri, artifact_root=artifact_root)
