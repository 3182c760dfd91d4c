"""Lead scoring refit on train + validation with a cross-fitted calibrator."""
import numpy as np
import pandas as pd

from models.lead_scoring import validation_folds


def test_validation_folds_split_by_contact_and_are_seeded():
    ids = np.repeat(np.arange(1_000, dtype=np.int64), 3)
    folds = validation_folds(ids, 2, seed=7)
    assert set(folds) == {0, 1}
    assert pd.Series(folds).groupby(ids).nunique().max() == 1  # a contact's rows share one fold
    assert 400 < (folds[::3] == 0).sum() < 600
    np.testing.assert_array_equal(folds, validation_folds(ids, 2, seed=7))
    assert (folds != validation_folds(ids, 2, seed=8)).any()


def test_refit_uses_validation_rows_and_out_of_fold_calibration(model_settings):
    from dataclasses import replace

    from models.harness import TrainingContext
    from models.lead_scoring import LABEL, LeadScoringConfig, LeadScoringSpec

    ctx = TrainingContext(model_settings)
    refit = LeadScoringSpec(LeadScoringConfig.fast())
    prepared = refit.prepare(ctx)
    scorer = refit.fit(prepared, ctx)
    valid = prepared.valid
    in_sample = scorer.raw_probability(scorer.matrix(valid))
    # the calibrator saw predictions of models that had not seen those rows, not the final model's
    assert not np.allclose(prepared.extra["raw_valid"], in_sample)
    assert len(prepared.extra["raw_valid"]) == len(valid)
    # the baseline is fit on the same rows as the model (train + validation)
    assert len(refit._fitting_rows(prepared)) == len(prepared.train) + len(valid)
    plain = LeadScoringSpec(replace(LeadScoringConfig.fast(), refit_with_validation=False))
    assert len(plain._fitting_rows(prepared)) == len(prepared.train)
    p = scorer.probability(prepared.test)
    assert np.isfinite(p).all() and (0 < p).all() and (p < 1).all()
    assert prepared.test[LABEL].isin([0, 1]).all()


def test_set_parses_booleans_by_word():
    import pytest

    from models.training import make_spec

    assert make_spec("lead_scoring", overrides={"refit_with_validation": "False"}).config.refit_with_validation is False
    assert make_spec("lead_scoring", overrides={"refit_with_validation": "true"}).config.refit_with_validation is True
    with pytest.raises(ValueError, match="refit_with_validation"):
        make_spec("lead_scoring", overrides={"refit_with_validation": "maybe"})
