"""The structural logistic regression is served in the two-tower's form: the towers give its probabilities."""
import numpy as np
import pandas as pd
import pytest


@pytest.fixture(scope="module")
def fitted(small_world_dir, tmp_path_factory):
    from inbox.settings import load_settings
    from models import structural_logit
    from models.content_preference_training import ContentPreferenceSpec
    from models.harness import TrainingContext

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INBOX_DATA_DIR", str(small_world_dir / "data"))
        mp.setenv("INBOX_ARTIFACT_ROOT", str(tmp_path_factory.mktemp("structural") / "mlruns"))
        spec = ContentPreferenceSpec(ContentPreferenceSpec().config.fast())
        prepared = spec.prepare(TrainingContext(load_settings(), fast=True))
    train = prepared.train
    reg = structural_logit.Regression.fit(spec._contact_part(train), spec._content_part(train),
                                          train["clicked"].to_numpy())
    return spec, prepared, reg, reg.ranker()


def _with_unknowns(spec, frame: pd.DataFrame):
    """Test rows, a quarter of them with an item, an industry and a format never seen in training."""
    contact, content = spec._contact_part(frame).copy(), spec._content_part(frame).copy()
    odd = np.arange(len(frame)) % 4 == 0
    content.loc[odd, "content_id"] = 10**9
    content.loc[odd, "content_format"] = "hologram"
    contact.loc[np.arange(len(frame)) % 4 == 1, "industry"] = "piracy"
    return contact, content


def test_the_towers_give_the_regressions_probabilities(fitted):
    spec, prepared, reg, ranker = fitted
    contact, content = _with_unknowns(spec, prepared.test)
    want = reg.probability(contact, content)
    got = ranker.predict_pairs(contact, content)
    assert np.abs(got - want).max() < 2e-5, np.abs(got - want).max()
    assert want.std() > 0.01  # a regression that ranks, not a constant
    # contact and content vectors computed apart (as served) give the same scores
    u, v = ranker.contact_vectors(contact.head(40)), ranker.content_vectors(content.head(40))
    assert np.allclose(np.diag(ranker.scores_from_sides(u, v)), want[:40], atol=2e-5)


def test_an_unknown_item_falls_back_to_its_traits(fitted):
    spec, prepared, reg, ranker = fitted
    seen = prepared.test[prepared.test["content_id"].isin(prepared.train["content_id"])].head(50)
    assert len(seen) == 50
    contact, content = spec._contact_part(seen), spec._content_part(seen)
    unknown = content.assign(content_id=10**9)
    moved = ranker.predict_pairs(contact, unknown) != ranker.predict_pairs(contact, content)
    assert moved.all()  # the item's own term was dropped
    assert np.allclose(ranker.predict_pairs(contact, unknown), reg.probability(contact, unknown), atol=2e-5)


def test_a_logged_structural_ranker_loads_with_the_same_scores(fitted, tmp_path):
    import mlflow

    from models.content_preference import ContentRanker

    spec, prepared, reg, ranker = fitted
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        mlflow.set_experiment("structural-logit")  # not an experiment id another test left active in another store
        with mlflow.start_run():
            info = spec.log_model(ranker, prepared)
        loaded = ContentRanker.load(mlflow.artifacts.download_artifacts(info.model_uri))
    finally:
        mlflow.set_tracking_uri(before)
    assert loaded.inputs == "structural" and loaded.tower_width == ranker.tower_width
    test = prepared.test.head(500)
    contact, content = spec._contact_part(test), spec._content_part(test)
    assert np.allclose(loaded.predict_pairs(contact, content), ranker.predict_pairs(contact, content), atol=1e-6)
    ranked = loaded.rank(contact.drop_duplicates("contact_id").head(5), content.drop_duplicates("content_id"), k=3)
    assert set(ranked["rank"]) == {1, 2, 3} and ranked["contact_id"].nunique() == 5


def test_the_regression_refuses_training_rows_without_a_category(fitted):
    from models import structural_logit

    spec, prepared, _, _ = fitted
    train = prepared.train.head(200)
    content = spec._content_part(train).drop(columns=["content_format"])
    with pytest.raises(KeyError, match="content_format"):
        structural_logit.Regression.fit(spec._contact_part(train), content, train["clicked"].to_numpy())


def test_a_missing_category_is_one_category_whichever_store_it_came_from():
    from models.structural_logit import contact_view

    frame = pd.DataFrame({"industry": pd.Series([None, np.nan, "saas"], dtype=object),
                          "seniority": pd.array([pd.NA, "vp", "vp"], dtype="string"),
                          "email_free_mail": pd.Series([True, None, False], dtype=object),
                          "clicks_total": [1, 2, None], "click_rate_90d": [0.1, None, 0.0], "click_affinity_news": [0.2, 0.0, None]})
    view = contact_view(frame)
    assert view["industry"].tolist() == ["nan", "nan", "saas"]
    assert view["seniority"].tolist() == ["nan", "vp", "vp"]
    assert view["free_mail"].tolist() == ["True", "nan", "False"]
    assert np.isfinite(view[["log_click_affinity_news", "log_clicks_total", "click_rate_90d"]].to_numpy()).all()
