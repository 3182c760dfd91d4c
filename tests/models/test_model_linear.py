"""The numpy logistic regression (the lead model's linear part and its baseline)."""
import numpy as np
import pytest


def _data(rng, n=3000):
    X = rng.normal(size=(n, 4)).astype(np.float32)
    X[rng.random(n) < 0.2, 1] = np.nan  # a numeric column with missing values
    X[:, 3] = rng.integers(0, 4, n)  # a categorical column (codes), some missing
    X[rng.random(n) < 0.1, 3] = np.nan
    logit = -2 + X[:, 0] + np.nan_to_num(X[:, 1]) * 0.5 + (X[:, 3] == 2) * 1.0
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return X, y


def test_same_model_as_the_scikit_learn_pipeline():
    """Median imputation + missing indicators + standardization + one-hot, as the former sklearn baseline."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from models.linear import LinearLogit

    X, y = _data(np.random.default_rng(0))
    pre = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler()), [0, 1, 2]),
        ("cat", make_pipeline(SimpleImputer(strategy="constant", fill_value=-1.0),
                              OneHotEncoder(handle_unknown="ignore")), [3]),
    ])
    ref = make_pipeline(pre, LogisticRegression(max_iter=300, C=1.0)).fit(X, y)
    ours = LinearLogit().fit(X, y, categorical=[3])
    Xn, _ = _data(np.random.default_rng(1), 500)
    Xn[:5, 3] = 9  # an unseen category
    assert np.allclose(ours.probability(Xn), ref.predict_proba(Xn)[:, 1], atol=1e-3)  # float32 in sklearn, lbfgs tol


def test_contributions_add_up_and_round_trip():
    from models.linear import LinearLogit

    X, y = _data(np.random.default_rng(2))
    m = LinearLogit(C=0.5).fit(X, y, categorical=[3])
    c = m.contributions(X[:50])
    assert c.shape == (50, 5)
    assert np.allclose(c.sum(axis=1), m.logit(X[:50]))
    assert np.allclose(np.abs(c[:, 2]).max(), np.abs(m.coef[2] * m.design(X[:50])[:, 2]).max())  # pure noise column
    back = LinearLogit.from_dict(__import__("json").loads(__import__("json").dumps(m.to_dict())))
    assert np.array_equal(back.logit(X), m.logit(X))
    with pytest.raises(ValueError, match="X: expected 4"):
        m.logit(X[:, :3])


def test_recency_kernels_fit_a_decaying_effect_and_round_trip():
    """A response that decays with the days since an event (NaN = never): one linear term misses the shape,
    the exp(-days / tau) kernels fit it; their contributions belong to the days-since column."""
    import json

    from models import metrics as M
    from models.linear import LinearLogit

    rng = np.random.default_rng(3)
    n = 20_000
    days = rng.exponential(8.0, n).astype(np.float32)
    days[rng.random(n) < 0.4] = np.nan
    X = np.column_stack([days, rng.normal(size=n)]).astype(np.float32)
    logit = -3 + 3.0 * np.exp(-np.nan_to_num(days, nan=np.inf) / 1.0) + 0.5 * X[:, 1]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    plain = LinearLogit().fit(X, y, categorical=[])
    kernels = LinearLogit(recency_days=[0.5, 1.0, 3.0, 10.0]).fit(X, y, categorical=[], recency=[0])
    assert M.auc(y, kernels.logit(X)) > M.auc(y, plain.logit(X)) + 0.02
    c = kernels.contributions(X[:100])
    assert c.shape == (100, 3) and np.allclose(c.sum(axis=1), kernels.logit(X[:100]))
    back = LinearLogit.from_dict(json.loads(json.dumps(kernels.to_dict())))
    assert np.array_equal(back.logit(X), kernels.logit(X))
    old = {k: v for k, v in plain.to_dict().items() if k not in ("recency", "recency_days")}  # a version before
    assert np.array_equal(LinearLogit.from_dict(old).logit(X), plain.logit(X))
    with pytest.raises(ValueError, match="recency"):
        LinearLogit(recency_days=[1.0]).fit(X, y, categorical=[1], recency=[1])
