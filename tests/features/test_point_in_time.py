"""A feature computed from events after the label time never reaches the training row."""
from __future__ import annotations

import warnings

import pandas as pd
import pytest

from tests.features.eventlog_fixtures import tiny_event_log, ts

warnings.filterwarnings("ignore", message="On demand feature view is an experimental feature")


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory):
    from features.pipeline import build_features
    from features.store import apply, get_store, materialize

    d = tmp_path_factory.mktemp("pit")
    tiny_event_log(d / "events")
    build_features(d / "events", d / "features")
    store = get_store(feast_dir=d / "feast")
    apply(store, features_dir=d / "features")
    materialize(store, end=ts("2026-06-02").to_pydatetime())
    return store


def test_conversion_after_label_time_is_invisible(tiny_store):
    from features.training import training_frame

    # contact 1 converts on 2026-05-07 12:00 (120.0 revenue)
    entity = pd.DataFrame({
        "contact_id": [1, 1, 1, 1],
        "event_timestamp": [ts("2026-05-07 11:59"), ts("2026-05-07 13:00"), ts("2026-05-08 00:00"),
                            ts("2026-05-30 00:00")],
    })
    frame = training_frame(entity, "lead_scoring", store=tiny_store)
    assert frame["conversions_total"].tolist() == [0, 0, 1, 1]
    assert frame["revenue_90d"].tolist() == [0.0, 0.0, 120.0, 120.0]
    # send-time service: request-context on-demand features come from the row's own time
    st = training_frame(entity.iloc[[1]], "send_time", store=tiny_store)
    assert st["local_hour"].iloc[0] == 9  # 13:00 UTC in New York (EDT)


def test_training_frame_validates_entity_df(tiny_store):
    from features.training import training_frame

    with pytest.raises(ValueError, match="event_timestamp"):
        training_frame(pd.DataFrame({"contact_id": [1]}), "lead_scoring", store=tiny_store)
    naive = pd.DataFrame({"contact_id": [1], "event_timestamp": [pd.Timestamp("2026-05-07")]})
    with pytest.raises(ValueError, match="timezone-aware"):
        training_frame(naive, "lead_scoring", store=tiny_store)


def test_cli_builds_applies_materializes(tmp_path, monkeypatch):
    from inbox.cli import main

    monkeypatch.setenv("INBOX_DATA_DIR", str(tmp_path))
    tiny_event_log(tmp_path / "events")
    assert main(["features", "build", "--cadence-days", "7"]) == 0
    assert main(["features", "apply"]) == 0
    assert main(["features", "materialize", "--end", "2026-06-02T00:00:00+00:00"]) == 0
    assert (tmp_path / "feast" / "online.db").exists()
    assert main(["features", "materialize", "--end", "yesterday"]) == 2


SEND_HOURS = ["sent_wd_h05", "sent_opened_wd_h05", "sent_wd_h10", "sent_we_h08", "sends_weekday", "sends_weekend"]


def _send_hour_entities():
    # contact 1 (New York): weekday 05:00-local sends on May 20 and May 28 09:00 UTC, opened May 20
    # and May 31 22:00 UTC. Contact 2's last count change is the May 26 snapshot, contact 3's (no
    # sends, created May 20) its only row on May 21: both older than the daily views' 3-day TTL.
    return pd.DataFrame({
        "contact_id": [1, 1, 1, 1, 1, 2, 3, 2],
        "event_timestamp": [ts("2026-05-28 08:59"), ts("2026-05-28 23:59"), ts("2026-05-29 00:00"),
                            ts("2026-05-31 23:00"), ts("2026-06-01 00:00"), ts("2026-06-01 12:00"),
                            ts("2026-06-01 12:00"), ts("2026-05-01 12:00")],
    })


def test_send_hour_counts_point_in_time_and_never_expire(tiny_store):
    """Sparse cumulative counts: nothing from after the row's time, and no TTL cut-off."""
    from features.training import training_frame

    frame = training_frame(_send_hour_entities(), "send_time", store=tiny_store)
    # the May 28 send is invisible until the May 29 snapshot; its May 31 open until June 1
    assert frame["sent_wd_h05"].tolist()[:5] == [1, 1, 2, 2, 2]
    assert frame["sent_opened_wd_h05"].tolist()[:5] == [1, 1, 1, 1, 2]
    assert frame.loc[4, ["sends_weekday", "sends_weekend", "sent_wd_h10", "sent_we_h08"]].tolist() == [4, 1, 2, 1]
    # last change 6 / 11 days before the row (the daily views expire after 3 days): still served
    assert frame.loc[5, ["sends_weekday", "sends_weekend", "sent_we_h10", "sent_opened_we_h10"]].tolist() == [1, 1, 1, 1]
    assert frame.loc[6, SEND_HOURS].tolist() == [0] * len(SEND_HOURS)  # no sends: zeros, not nulls
    assert frame.loc[7, SEND_HOURS].isna().all()  # before the contact's first snapshot: nothing


def test_send_hour_counts_asof_join_equals_feast(tiny_store):
    """models.datasets' merge_asof join (used for training) == Feast's get_historical_features."""
    from types import SimpleNamespace

    from features.training import training_frame
    from models.datasets import feature_frame

    entity = _send_hour_entities()
    feast = training_frame(entity, "send_time", store=tiny_store)
    fast = feature_frame(entity, "send_time", SimpleNamespace(), store=tiny_store)
    counts = [c for c in feast.columns if c.startswith("sent_")] + ["sends_weekday", "sends_weekend"]
    assert len(counts) == 98
    pd.testing.assert_frame_equal(fast[counts].astype(float), feast[counts].astype(float))
    # months after the last change: the counts stay (Feast's dask store drops such an entity row
    # altogether because the DAILY views have expired; the as-of join keeps it per view)
    late = feature_frame(pd.DataFrame({"contact_id": [1], "event_timestamp": [ts("2026-08-15 12:00")]}),
                         "send_time", SimpleNamespace(), store=tiny_store)
    assert late.loc[0, ["sends_weekday", "sent_wd_h10", "sent_opened_wd_h05"]].tolist() == [4, 2, 2]
    assert pd.isna(late.loc[0, "open_share_wd_h10"])
