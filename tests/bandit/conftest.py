import numpy as np
import pandas as pd
import pytest


@pytest.fixture
def bandit_env(tmp_path, monkeypatch):
    monkeypatch.setenv("INBOX_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("INBOX_ARTIFACT_ROOT", str(tmp_path / "mlruns"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    (tmp_path / "mlruns").mkdir()
    return tmp_path


@pytest.fixture
def variants():
    return pd.DataFrame({
        "content_id": [10, 11, 12, 13],
        "topic": ["product", "education", "product", "event"],
        "subject_length": [30, 42, 55, 20],
        "has_emoji": [False, True, False, True],
    })


@pytest.fixture
def allocator(tmp_path, variants):
    from experiments.bandit import Allocator

    alloc = Allocator.open(tmp_path / "bandit")
    alloc.register_campaign("spring", variants, ["x1", "x2", "x3"], wait_window="48h", floor=0.02)
    yield alloc
    alloc.close()


def contexts(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.integers(0, 2, (n, 3)).astype(float), columns=["x1", "x2", "x3"])


@pytest.fixture
def make_contexts():
    return contexts
