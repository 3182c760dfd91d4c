"""Prior-shift corrections (Saerens, Latinne & Decaestecker 2002) on data whose base rate really moved."""
import numpy as np
import pytest


def _label_shifted(rng, n, prior):
    """Scores with p(x | y) fixed and a chosen class prior; returns (y, x)."""
    y = (rng.random(n) < prior).astype(int)
    return y, rng.normal(loc=1.2 * y, size=n)


def _posterior(x, prior):
    """The exact P(y = 1 | x) under `prior` (unit-variance normals at 0 and 1.2)."""
    lr = np.exp(1.2 * x - 0.72)
    return prior * lr / (prior * lr + 1 - prior)


def test_prior_shift_is_bayes_rule_with_the_new_prior():
    from models.drift import prior_shift

    x = np.linspace(-3, 4, 50)
    assert np.allclose(prior_shift(_posterior(x, 0.03), 0.03, 0.015), _posterior(x, 0.015))
    with pytest.raises(ValueError, match="target"):
        prior_shift(x * 0 + 0.5, 0.1, 1.0)


def test_em_recovers_a_moved_prior_and_calibrates():
    from models.drift import em_prior, prior_shift

    rng = np.random.default_rng(0)
    y, x = _label_shifted(rng, 200_000, 0.10)
    p_source = _posterior(x, 0.25)  # calibrated for a period whose base rate was 0.25
    assert p_source.mean() / y.mean() > 1.8  # about 2x too high, as the lead model on a quieter period
    prior = em_prior(p_source, 0.25)
    assert prior == pytest.approx(y.mean(), abs=0.01)
    assert prior_shift(p_source, 0.25, prior).mean() / y.mean() == pytest.approx(1.0, abs=0.05)


def test_send_volume_line_predicts_the_rate_of_a_plan():
    from models.drift import SendVolumePrior

    sends = np.array([9.0, 7.6, 6.5, 6.1, 5.3, 6.7])
    rates = 0.004 + 0.0025 * sends
    prior = SendVolumePrior.fit(rates, sends, source_rate=0.02, horizon_days=30)
    assert prior.rate(3.4) == pytest.approx(0.004 + 0.0025 * 3.4)
    assert (prior.windows, prior.sends_min, prior.sends_max) == (6, 5.3, 9.0)
    with pytest.raises(ValueError, match="sends"):
        SendVolumePrior.fit(rates[:1], sends[:1], 0.02, 30)
    with pytest.raises(ValueError, match="sends"):
        SendVolumePrior.fit(rates, np.full(6, 4.0), 0.02, 30)  # no variation: no line


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), "many", True, None])
def test_planned_sends_must_be_a_finite_non_negative_number(bad):
    from models.drift import SendVolumePrior, check_planned_sends

    prior = SendVolumePrior(0.02, 0.004, 0.0025, 30, 6, 5.3, 9.0)
    with pytest.raises(ValueError, match="^planned_sends: "):
        prior.rate(bad)
    with pytest.raises(ValueError, match="^--planned-sends: "):
        check_planned_sends(bad, field="--planned-sends")
    assert check_planned_sends(0) == 0.0
