"""Model choice is part of training: when the baseline beats ours on the same rows, the baseline is served."""
import numpy as np
import pytest

pytestmark = pytest.mark.slow


def test_a_winning_baseline_is_registered_and_served(model_settings):
    import mlflow

    from models.datasets import latest_contact_features
    from models.loading import load_champion
    from models.training import train_model

    # ours crippled on purpose: one depth-1 tree, no linear part; the logistic regression beats it
    weak = {"linear_base": "false", "num_boost_round": "1", "num_leaves": "2", "max_depth": "1"}
    r = train_model("lead_scoring", settings=model_settings, progress=False, fast=True, overrides=weak)
    run = mlflow.MlflowClient().get_run(r.run_id)
    m = run.data.metrics
    assert m["paired_vs_logreg_ci_high"] < 0 and m["test_auc"] < m["test_auc_baseline_logreg"]
    assert r.model_choice == "baseline: logistic regression" == run.data.tags["model_choice"]
    assert r.promoted  # the first version, and it is the baseline
    served = load_champion("lead_scoring")
    assert served.linear is not None and served.booster.num_trees() == 1
    frame = latest_contact_features(("lead_scoring",), model_settings).head(300)
    X = served.matrix(frame)
    assert np.allclose(served.raw_probability(X), served.linear.probability(X))  # the trees add nothing
    scores = served.score(frame.head(20))
    assert scores["reasons_positive"].map(len).sum() > 0  # reasons from the linear contributions


def test_a_winning_structural_regression_is_registered_and_served_as_towers(model_settings):
    import mlflow

    from models.datasets import latest_contact_features
    from models.harness import TrainingContext
    from models.loading import load_champion
    from models.training import train_model

    # ours crippled on purpose: one epoch at a learning rate that leaves the two-tower near its initial weights
    weak = {"epochs": "1", "learning_rate": "1e-7", "test_fraction": "0.4"}  # more test contacts: a clear loss
    r = train_model("content_preference", settings=model_settings, progress=False, fast=True, overrides=weak)
    run = mlflow.MlflowClient().get_run(r.run_id)
    m = run.data.metrics
    assert m["paired_vs_structural_logit_ci_high"] < 0 and m["ndcg_at_3"] < m["ndcg_at_3_baseline_structural_logit"]
    assert r.model_choice == "baseline: structural logistic regression" == run.data.tags["model_choice"]
    assert r.promoted
    served = load_champion("content_preference")
    assert served.inputs == "structural"
    # what is served ranks the test rows exactly as the evaluated baseline did
    from models.training import make_spec

    spec = make_spec("content_preference", fast=True, overrides=weak)
    prepared = spec.prepare(TrainingContext(model_settings, fast=True))
    g = spec._test_groups(prepared)
    from models import metrics as M

    got = M.ranking_metrics(g["contact_id"], g["clicked"], spec.test_scores(served, prepared, None), k=3)["ndcg@3"]
    assert got == pytest.approx(m["ndcg_at_3_baseline_structural_logit"], abs=1e-9)
    contacts = latest_contact_features(served.services, model_settings).head(50)
    assert served.contact_vectors(contacts).shape == (50, served.tower_width)
    # `inbox score content_preference` ranks with it
    from models.scoring import score_all

    top = score_all("content_preference", model_settings, k=2)
    assert top.attrs["model_version"] == served.version and set(top["rank"]) == {1, 2}
    assert top["contact_id"].nunique() * 2 == len(top)
