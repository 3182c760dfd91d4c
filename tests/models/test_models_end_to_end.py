"""Train all three models on a small world into a real sqlite MLflow store, then use them."""
import json

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture()
def trained(model_settings):
    from models.training import train_all

    results = train_all(settings=model_settings, progress=False, fast=True)
    return model_settings, {r["model"]: r for r in results}


def test_train_register_load_and_promotion(trained):
    import mlflow

    from models.datasets import latest_contact_features
    from models.loading import load_champion
    from models.datasets import latest_content_features
    from models.training import train_model

    settings, results = trained
    client = mlflow.MlflowClient(settings.tracking_uri)
    for name, r in results.items():
        assert r["version"] == "1" and r["promoted"]
        assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
        run = client.get_run(r["run_id"])
        assert run.data.tags["feature_service"] == name
        assert "git_commit" in run.data.tags and "data_range" in run.data.tags
        assert np.isfinite([r["ours"], r["baseline"], r["oracle"]]).all()
        assert len(run.inputs.dataset_inputs) == 3  # training, validation, test sets

    # native predictors honour the contracts
    lead = load_champion("lead_scoring")
    frame = latest_contact_features(("lead_scoring",), settings).head(200)
    scores = lead.score(frame)
    assert list(scores.columns) == ["contact_id", "probability", "score", "tier", "reasons_positive",
                                    "reasons_negative"]
    assert scores["score"].between(0, 100).all() and set(scores["tier"]) <= set("ABCD")
    assert scores["reasons_positive"].map(len).max() <= 3 and scores["reasons_positive"].map(len).sum() > 0
    assert (scores.sort_values("score")["tier"].iloc[-1] <= scores.sort_values("score")["tier"].iloc[0])

    send = load_champion("send_time")
    st = latest_contact_features(("send_time", "lead_scoring"), settings).head(100)
    slots = send.best_slots(st, st["timezone"], "2026-07-15T00:00Z", "2026-07-16T00:00Z")
    assert set(slots["level"]) <= {"contact", "segment", "population"}
    local_hours = [t.tz_convert(z).hour for t, z in zip(slots["send_at"], st["timezone"])]
    assert all(7 <= h < 21 for h in local_hours)  # default quiet hours honoured

    ranker = load_champion("content_preference")
    content = latest_content_features(settings)
    trained_on = set(pd.read_parquet(settings.events_dir / "sends.parquet")["content_id"])
    unseen = content.assign(content_id=content["content_id"] + 10_000)  # never-sent ids, same features
    catalog = pd.concat([content, unseen.head(3)], ignore_index=True)
    cf = latest_contact_features(("content_preference", "lead_scoring"), settings).head(20)
    ranking = ranker.rank(cf, catalog, k=None)
    assert len(ranking) == len(cf) * len(catalog)
    assert np.isfinite(ranking["score"]).all()
    new = ranking[ranking["content_id"] >= 10_000]
    assert not set(new["content_id"]) & trained_on
    assert len(new) == 60 and new["score"].nunique() > 1  # unseen content is ranked from its features
    assert (ranking.groupby("contact_id")["rank"].apply(lambda r: sorted(r) == list(range(1, len(catalog) + 1)))).all()

    # a deliberately worse challenger does not take the champion alias
    worse = train_model("lead_scoring", settings=settings, progress=False, fast=True,
                        overrides={"num_boost_round": 1, "num_leaves": 2, "learning_rate": 0.001,
                                   "calibration": "platt"})
    assert worse.version == "2" and not worse.promoted
    assert str(client.get_model_version_by_alias("lead_scoring", "champion").version) == "1"
    assert str(client.get_model_version_by_alias("lead_scoring", "challenger").version) == "2"
    run = client.get_run(worse.run_id)
    assert run.data.tags["promotion.decision"] == "rejected"
    assert run.data.metrics["champion_auc"] > run.data.metrics["test_auc"]
    decision = json.loads(mlflow.artifacts.load_text(f"runs:/{worse.run_id}/promotion.json"))
    assert decision["champion_version"] == "1" and decision["promoted"] is False
    assert load_champion("lead_scoring").version == "1"
