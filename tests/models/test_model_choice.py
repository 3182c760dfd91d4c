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
