"""`inbox demo` then `inbox train lead_scoring`: live sends dated by the wall clock after a simulated history.

The demo loop appends its sends (and their webhook events) to the event log at the current time, months
after the simulated world ends. Before the fix the training range stretched over that gap, the lead
model's validation and test label windows held no conversion, and the baseline's solver failed with "This
solver needs samples of at least 2 classes".
"""
import shutil

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow


def _append_live_round(events_dir, n: int = 300) -> pd.Timestamp:
    """What one demo round writes: sends dated now (decision id, propensity) and their clicks/conversions."""
    from serving.eventsink import append_events, append_sends
    from simulation.eventlog import read_table, table_path

    contacts = read_table("contacts", table_path(events_dir, "contacts"))["contact_id"].to_numpy(np.int64)[:n]
    now = pd.Timestamp.now(tz="UTC").floor("s")
    first = int(read_table("sends", table_path(events_dir, "sends"))["send_id"].max()) + 1
    sends = pd.DataFrame({"send_id": np.arange(first, first + n, dtype=np.int64), "contact_id": contacts,
                          "campaign_id": "demo", "content_id": np.int64(1),
                          "sent_at": pd.to_datetime([now + pd.Timedelta(hours=1)] * n, utc=True),
                          "decision_id": [f"d{i:032x}" for i in range(n)], "propensity": 0.25})
    append_sends(events_dir, sends)
    ev = read_table("events", table_path(events_dir, "events"))
    k = 40
    events = pd.DataFrame({"event_id": np.arange(int(ev["event_id"].max()) + 1, int(ev["event_id"].max()) + 1 + 2 * k),
                           "send_id": np.tile(sends["send_id"].to_numpy()[:k], 2),
                           "contact_id": np.tile(contacts[:k], 2), "type": ["click"] * k + ["conversion"] * k,
                           "occurred_at": pd.to_datetime([now + pd.Timedelta(hours=3)] * k
                                                         + [now + pd.Timedelta(days=2)] * k, utc=True),
                           "value": [None] * k + [100.0] * k})
    append_events(events_dir, events)
    return now


def test_lead_scoring_trains_after_live_sends_months_after_the_world(small_world_dir, tmp_path, monkeypatch):
    from inbox.settings import load_settings
    from models import sampled_log
    from models.training import train_model

    shutil.copytree(small_world_dir / "data", tmp_path / "data")
    monkeypatch.setenv("INBOX_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("INBOX_ARTIFACT_ROOT", str(tmp_path / "mlruns"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    (tmp_path / "mlruns").mkdir()
    settings = load_settings()
    before = sampled_log.data_range(settings.events_dir)
    now = _append_live_round(settings.events_dir)
    assert now - before[1] > pd.Timedelta(days=28)  # the world ends months before the wall clock

    report = sampled_log.data_range_report(settings.events_dir)
    assert (report.first, report.end) == before  # the live stretch is left out of the history ...
    assert report.ignored_sends == 300 and report.ignored_from == (now + pd.Timedelta(hours=1)).floor("D")

    # ... which is what the failure needed: without the rule the range reaches the wall clock
    monkeypatch.setattr(sampled_log, "MAX_GAP", pd.Timedelta(days=100_000))
    stretched = sampled_log.data_range(settings.events_dir)
    assert stretched[1] >= now.ceil("D")
    with pytest.raises(ValueError, match="2 classes|no conversion"):
        train_model("lead_scoring", settings=settings, progress=False, fast=True)
    monkeypatch.undo()
    monkeypatch.setenv("INBOX_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("INBOX_ARTIFACT_ROOT", str(tmp_path / "mlruns"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")

    r = train_model("lead_scoring", settings=load_settings(), progress=False, fast=True)
    assert np.isfinite(r.ours) and 0.5 < r.ours <= 1.0
    import mlflow

    tags = mlflow.MlflowClient().get_run(r.run_id).data.tags
    assert tags["data_range"] == f"{before[0].isoformat()}/{before[1].isoformat()}"
    assert "300 send(s)" in tags["data_range_note"]


def test_history_end_keeps_gaps_inside_the_history_and_drops_a_short_tail():
    from models.sampled_log import history_end

    days = np.r_[np.arange(0, 60), np.arange(80, 120)]  # a 20-day pause inside the history: kept
    assert history_end(days) == len(days) - 1
    tail = np.r_[days, [240, 241]]  # two live days four months later: left out
    assert history_end(tail) == len(days) - 1
    long_tail = np.r_[days, np.arange(240, 280)]  # a later stretch long enough to train on: it is the history
    assert history_end(long_tail) == len(long_tail) - 1
    assert history_end(np.array([0, 1, 2, 50])) == 2  # no stretch long enough: the longest one
