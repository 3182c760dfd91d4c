import numpy as np
import pandas as pd
import pytest

from models.split import TimeSplit, check_no_future_rows


def test_blocks_follow_time_and_purge_label_windows():
    split = TimeSplit("2026-05-01", "2026-06-01", "2026-07-01", "2026-08-01", pd.Timedelta(days=10))
    ts = pd.to_datetime(["2026-05-02", "2026-05-25", "2026-06-05", "2026-06-25", "2026-07-05", "2026-07-25"], utc=True)
    blocks = split.assign(ts)
    # 05-25 + 10 d crosses into validation, 06-25 into test, 07-25 past the end: purged
    assert blocks.tolist() == ["train", "", "valid", "", "test", ""]


def test_from_fractions_orders_blocks():
    split = TimeSplit.from_fractions("2026-05-01", "2026-09-01", "1D", valid=0.2, test=0.25)
    assert split.start < split.valid_start < split.test_start < split.end
    with pytest.raises(ValueError, match="fractions"):
        TimeSplit.from_fractions("2026-05-01", "2026-09-01", "1D", valid=0.6, test=0.5)


def test_check_no_future_rows_detects_leak():
    t = pd.to_datetime(["2026-05-01", "2026-05-10"], utc=True)
    check_no_future_rows(t, pd.to_datetime(["2026-05-20"], utc=True), [], "5D")
    with pytest.raises(AssertionError):
        check_no_future_rows(t, pd.to_datetime(["2026-05-12"], utc=True), [], "5D")


def test_lead_scoring_training_set_has_no_future_rows(model_settings):
    from models.harness import TrainingContext
    from models.lead_scoring import LeadScoringConfig, LeadScoringSpec

    spec = LeadScoringSpec(LeadScoringConfig.fast())
    prepared = spec.prepare(TrainingContext(model_settings))
    train, valid, test = prepared.train, prepared.valid, prepared.test
    assert len(train) and len(valid) and len(test)
    h = prepared.split.horizon
    # every training label window ends before the first validation snapshot
    assert (train["event_timestamp"] + h).max() <= valid["event_timestamp"].min()
    assert (valid["event_timestamp"] + h).max() <= test["event_timestamp"].min()
    check_no_future_rows(train["event_timestamp"], valid["event_timestamp"], test["event_timestamp"], h)
    # features are point-in-time: a training row's engagement counts only see the past
    sends = TrainingContext(model_settings).events["sends"]
    row = train.sort_values("sends_total").iloc[-1]
    seen = ((sends["contact_id"] == row["contact_id"]) & (sends["sent_at"] < row["event_timestamp"])).sum()
    assert row["sends_total"] <= seen
    assert set(np.unique(prepared.frame["block"])) == {"train", "valid", "test"}
