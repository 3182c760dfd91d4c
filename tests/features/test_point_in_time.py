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
