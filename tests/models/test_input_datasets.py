"""Run-input datasets: the sampled schema and digest match MLflow's own inference over the whole frame."""
import json

import mlflow
import numpy as np
import pandas as pd
import pytest

from models.input_datasets import SCHEMA_SAMPLE_ROWS, FrameDataset


def _frame(n: int = 3 * SCHEMA_SAMPLE_ROWS) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"x": rng.random(n), "n": rng.integers(0, 9, n), "topic": rng.choice(["a", "bb"], n).astype(object),
                         "flag": rng.random(n) < 0.5, "at": pd.date_range("2026-01-01", periods=n, freq="min", tz="UTC"),
                         "label": rng.integers(0, 2, n).astype(np.int8)})


@pytest.fixture()
def own_store(tmp_path):
    """A fresh MLflow store for this test; the previous tracking URI is restored after it."""
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment("input-datasets")  # not an experiment id another test left active in another store
    yield
    mlflow.set_tracking_uri(before)


def test_schema_digest_and_profile_match_the_whole_frame(own_store):
    frame = _frame()
    ours = FrameDataset(frame, "train", targets="label")
    whole = mlflow.data.from_pandas(frame, name="train", targets="label")
    assert ours.schema.to_dict() == whole.schema.to_dict()
    assert ours.digest == whole.digest
    assert ours.profile == {"num_rows": len(frame), "num_elements": frame.size}

    with mlflow.start_run() as run:
        mlflow.log_input(ours, context="training")
    logged = mlflow.get_run(run.info.run_id).inputs.dataset_inputs[0]
    assert logged.dataset.digest == whole.digest
    assert json.loads(logged.dataset.profile)["num_rows"] == len(frame)
    assert json.loads(logged.dataset.schema)["mlflow_colspec"] == whole.schema.to_dict()
    assert {t.key: t.value for t in logged.tags}["mlflow.data.context"] == "training"


def test_a_different_frame_has_a_different_digest():
    frame = _frame()
    changed = frame.assign(x=frame["x"].to_numpy()[::-1])
    assert FrameDataset(frame, "t").digest != FrameDataset(changed, "t").digest
