"""Paired tests: DeLong (fast midrank algorithm) against its definition, a hand-computed value, the bootstrap."""
import numpy as np
import pytest


def _correlated(rng, n, shift_b=0.0, base_rate=0.2):
    y = (rng.random(n) < base_rate).astype(int)
    common = rng.normal(size=n)
    a = y * 1.0 + common + rng.normal(scale=0.8, size=n)
    b = y * (1.0 + shift_b) + common + rng.normal(scale=0.8, size=n)
    return y, a, b


def test_components_equal_the_pairwise_definition_with_ties():
    """V10_i = mean_j psi(x_i, y_j), V01_j = mean_i psi(x_i, y_j), psi = 1 / 0.5 / 0 (DeLong 1988, eq. 3)."""
    from sklearn.metrics import roc_auc_score

    from models.paired import delong_components

    rng = np.random.default_rng(3)
    y = (rng.random(80) < 0.3).astype(int)
    s = np.round(rng.normal(size=(2, 80)) + y, 1)  # rounded: many ties
    auc, v10, v01 = delong_components(y, s)
    for k in range(2):
        x, z = s[k, y == 1], s[k, y == 0]
        psi = (x[:, None] > z[None, :]) + 0.5 * (x[:, None] == z[None, :])
        assert np.allclose(v10[k], psi.mean(axis=1)) and np.allclose(v01[k], psi.mean(axis=0))
        assert auc[k] == pytest.approx(roc_auc_score(y, s[k]), abs=1e-12)


def test_variance_of_a_hand_computed_example():
    """Positives 0.8, 0.6, 0.3; negatives 0.7, 0.2: V10 = (1, .5, .5), V01 = (1/3, 1), AUC = 2/3,
    var = var(V10)/3 + var(V01)/2 = (1/12)/3 + (2/9)/2 = 5/36."""
    from models.paired import auc_variance, delong

    y = np.array([1, 1, 1, 0, 0])
    s = np.array([0.8, 0.6, 0.3, 0.7, 0.2])
    assert auc_variance(y, s) == pytest.approx(5 / 36, abs=1e-12)
    t = delong(y, s, s.copy())  # the same scorer twice: no difference, no variance
    assert t.ours == pytest.approx(2 / 3) and t.diff == 0 and t.ci_low == t.ci_high == 0


def test_delong_agrees_with_the_paired_bootstrap():
    from models.paired import bootstrap_auc, delong

    y, a, b = _correlated(np.random.default_rng(0), 3000, shift_b=-0.25)
    d, bs = delong(y, a, b), bootstrap_auc(y, a, b, replicates=600, seed=1)
    assert d.diff == pytest.approx(bs.diff, abs=1e-12)  # the same two AUCs
    se_d, se_b = d.diff / d.statistic, bs.diff / bs.statistic
    assert se_b == pytest.approx(se_d, rel=0.15)
    assert d.ci_low == pytest.approx(bs.ci_low, abs=0.6 * se_d) and d.ci_high == pytest.approx(bs.ci_high, abs=0.6 * se_d)
    assert d.wins and bs.wins and d.p_superior < 0.01


def test_delong_size_under_the_null_and_noninferiority():
    """Equal true AUCs: the one-sided test rejects about 5 % of the time; a margin turns a tie into non-inferiority."""
    from models.paired import delong

    rng = np.random.default_rng(1)
    p = np.array([delong(*_correlated(rng, 400)).p_superior for _ in range(300)])
    assert 0.02 <= (p < 0.05).mean() <= 0.09
    y, a, b = _correlated(np.random.default_rng(2), 20000)
    t = delong(y, a, b, margin=0.02)
    assert abs(t.diff) < 0.01 and t.noninferior and not t.wins and not t.significantly_worse
    assert set(t.as_metrics("x")) == {"x_diff", "x_ci_low", "x_ci_high", "x_z", "x_p", "x_p_noninferior"}


def test_bootstrap_mean_pairs_units():
    from models.paired import bootstrap_mean

    rng = np.random.default_rng(4)
    unit = rng.normal(size=2000) * 3  # large between-unit spread, small paired difference
    t = bootstrap_mean(unit + 0.1 + rng.normal(scale=0.2, size=2000), unit, "ndcg@3", replicates=1000)
    assert t.wins and t.p_superior < 0.01 and 0.08 < t.diff < 0.12
    with pytest.raises(ValueError, match="aligned"):
        bootstrap_mean(np.ones(3), np.ones(4), "x")
    from models.paired import delong

    with pytest.raises(ValueError, match="both classes"):
        delong(np.zeros(5), np.ones(5), np.ones(5))
