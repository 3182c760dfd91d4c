"""Promotion rules of `models.registry.decide` on a real sqlite MLflow registry."""
import mlflow
import pytest

from models import registry


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


def test_worse_challenger_keeps_the_champion(two_versions):
    v1, v2 = two_versions
    decision = registry.decide("toy", "auc", v2, 0.70, lambda v: 0.75)
    assert not decision.promoted and registry.champion_version("toy") == v1
    assert "does not beat" in decision.reason


def test_better_challenger_takes_the_champion(two_versions):
    v1, v2 = two_versions
    decision = registry.decide("toy", "auc", v2, 0.80, lambda v: 0.75)
    assert decision.promoted and registry.champion_version("toy") == v2


def test_incompatible_champion_is_replaced_and_the_reason_says_so(two_versions):
    v1, v2 = two_versions

    def cannot_score(version):
        raise ValueError("The number of features in data (57) is not the same as it was in training data (55)")

    decision = registry.decide("toy", "auc", v2, 0.60, cannot_score)
    assert decision.promoted and registry.champion_version("toy") == v2
    assert "incompatible" in decision.reason and "57" in decision.reason
