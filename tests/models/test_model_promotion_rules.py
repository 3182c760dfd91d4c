"""Promotion rules of `models.registry.decide` on a real sqlite MLflow registry."""
import mlflow
import numpy as np
import pytest

from models import registry
from models.paired import delong


@pytest.fixture()
def two_versions(tmp_path):
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = mlflow.create_experiment("promotion-rules", artifact_location=str(tmp_path / "artifacts"))
    versions = []
    for _ in range(2):
        with mlflow.start_run(experiment_id=exp) as run:
            mlflow.log_text("model", "model/MLmodel")
            versions.append(registry.register(f"runs:/{run.info.run_id}/model", "toy", run.info.run_id))
    client = mlflow.MlflowClient()
    client.set_registered_model_alias("toy", registry.CHAMPION, versions[0])
    yield versions
    mlflow.set_tracking_uri(None)


def _scores(shift: float, n: int = 4000, seed: int = 0):
    """Labels, a champion's scores and a challenger whose signal is `shift` stronger (same rows, correlated)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.2).astype(int)
    common = rng.normal(size=n)
    champion = y + common + rng.normal(scale=0.8, size=n)
    challenger = y * (1 + shift) + common + rng.normal(scale=0.8, size=n)
    return y, challenger, champion


def test_worse_challenger_keeps_the_champion(two_versions):
    v1, v2 = two_versions
    y, ch, champ = _scores(-0.3)
    decision = registry.decide("toy", "auc", v2, 0.70, lambda v: delong(y, ch, champ))
    assert not decision.promoted and registry.champion_version("toy") == v1
    assert "does not win" in decision.reason and decision.vs_champion["ci_high"] < 0


def test_a_higher_point_estimate_without_a_paired_win_keeps_the_champion(two_versions):
    """The old gate promoted on a strict '>' of point estimates; a difference inside the noise does not move it."""
    v1, v2 = two_versions
    y, ch, champ = _scores(0.01, n=1500, seed=1)
    t = delong(y, ch, champ)
    assert t.diff > 0 and t.ci_low < 0  # better point estimate, CI straddles zero
    decision = registry.decide("toy", "auc", v2, t.ours, lambda v: t)
    assert not decision.promoted and registry.champion_version("toy") == v1
    assert "CI [" in decision.reason


def test_paired_winner_takes_the_champion_unless_a_baseline_beats_it(two_versions):
    v1, v2 = two_versions
    y, ch, champ = _scores(0.4)
    worse_than_baseline = delong(*_scores(-0.4, seed=1))
    blocked = registry.decide("toy", "auc", v2, 0.80, lambda v: delong(y, ch, champ), worse_than_baseline,
                              baseline_name="logistic regression")
    assert not blocked.promoted and registry.champion_version("toy") == v1
    assert "significantly worse than the baseline logistic regression" in blocked.reason
    decision = registry.decide("toy", "auc", v2, 0.80, lambda v: delong(y, ch, champ), delong(*_scores(0.0, seed=2)))
    assert decision.promoted and registry.champion_version("toy") == v2
    assert decision.vs_champion["ci_low"] > 0 and decision.vs_baseline is not None


def test_a_first_version_worse_than_an_unservable_baseline_still_serves(two_versions, tmp_path):
    """Nothing else could serve: the first version is champion and the reason names what it lost to; with a
    servable baseline it is not promoted."""
    exp = mlflow.create_experiment("first-version", artifact_location=str(tmp_path / "first"))
    worse = delong(*_scores(-0.4, seed=1))
    for name, servable in (("fresh_a", False), ("fresh_b", True)):
        with mlflow.start_run(experiment_id=exp) as run:
            mlflow.log_text("model", "model/MLmodel")
            v = registry.register(f"runs:/{run.info.run_id}/model", name, run.info.run_id)
        d = registry.decide(name, "auc", v, 0.6, lambda version: worse, worse, "structural logit",
                            baseline_servable=servable)
        assert d.promoted is (not servable) and (registry.champion_version(name) == v) is (not servable)
        assert "structural logit" in d.reason


def test_incompatible_champion_is_replaced_and_the_reason_says_so(two_versions):
    v1, v2 = two_versions

    def cannot_score(version):
        raise ValueError("The number of features in data (57) is not the same as it was in training data (55)")

    decision = registry.decide("toy", "auc", v2, 0.60, cannot_score)
    assert decision.promoted and registry.champion_version("toy") == v2
    assert "incompatible" in decision.reason and "57" in decision.reason
