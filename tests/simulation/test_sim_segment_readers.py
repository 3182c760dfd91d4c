"""Every reader of the event log sees a log grown by appends exactly as the same log written whole."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from serving.eventsink import append_events, append_sends
from simulation.eventlog import read_event_log, table_files, write_event_log


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    """(whole, appended): one simulated log written at once, and the same log as a base file holding
    60 % of the sends and events plus appended batches (overlapping, so some keys come twice)."""
    from simulation.history import simulate_history
    from simulation.world import WorldConfig, generate_world

    tables = simulate_history(generate_world(WorldConfig(n_contacts=400, n_days=40, seed=5)), progress=False)
    whole = tmp_path_factory.mktemp("whole")
    write_event_log(whole, tables)
    appended = tmp_path_factory.mktemp("appended")
    sends, events = tables["sends"], tables["events"].sample(frac=1.0, random_state=0)  # any order
    cut_s, cut_e = int(len(sends) * 0.6), int(len(events) * 0.6)
    write_event_log(appended, {**tables, "sends": sends.iloc[:cut_s], "events": events.iloc[:cut_e]})
    for part in np.array_split(np.arange(cut_s - 50, len(sends)), 2):
        append_sends(appended, sends.iloc[part])
    for part in np.array_split(np.arange(cut_e - 100, len(events)), 7):
        append_events(appended, events.iloc[part])
    assert len(table_files(appended, "events")) > 1 and len(table_files(appended, "sends")) > 1
    return whole, appended


def _same_rows(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert len(a) == len(b)
    cols = list(a.columns)
    pd.testing.assert_frame_equal(a.sort_values(cols).reset_index(drop=True),
                                  b[cols].sort_values(cols).reset_index(drop=True), check_like=True)


def test_read_event_log_sees_every_row_once(logs):
    whole, appended = (read_event_log(d) for d in logs)
    for name in whole:
        _same_rows(whole[name], appended[name])


def test_feature_build_is_the_same(logs, tmp_path):
    from features.pipeline import build_features

    outs = []
    for i, events_dir in enumerate(logs):
        out = tmp_path / f"features{i}"
        build_features(events_dir, out)
        outs.append({p.name: pd.read_parquet(p) for p in sorted(out.glob("*.parquet"))})
    assert outs[0].keys() == outs[1].keys() and outs[0]
    for name, frame in outs[0].items():
        _same_rows(frame, outs[1][name])


def test_sampled_log_and_data_range_are_the_same(logs):
    from models.sample import ContactSample
    from models.sampled_log import contact_list, data_range, read_sampled_log, read_sends_of

    ids = contact_list(logs[0])["contact_id"].to_numpy()[::3]
    sample = ContactSample(0.3, ids, len(ids), 0, 0, 0)
    got = [read_sampled_log(d, sample, ("open", "click", "unsubscribe")) for d in logs]
    for name in ("contacts", "sends", "events"):
        _same_rows(getattr(got[0], name), getattr(got[1], name))
    assert data_range(logs[0]) == data_range(logs[1])
    _same_rows(read_sends_of(logs[0], ids), read_sends_of(logs[1], ids))


def test_send_lookup_bounces_outcomes_and_next_send_id_are_the_same(logs):
    from experiments.abtest.outcomes import campaign_outcomes, campaign_summary
    from sending.audience import bounce_reasons
    from sending.pipeline import next_send_id
    from serving.send_lookup import sends_table_source
    from simulation.eventlog import table_path

    sends = read_event_log(logs[0])["sends"]
    wanted = np.r_[sends["send_id"].to_numpy()[::5], 10**12]
    found = [sends_table_source(d)(wanted) for d in logs]
    assert len(found[0]) == len(wanted) - 1
    _same_rows(found[0], found[1])
    assert next_send_id(logs[0]) == next_send_id(logs[1]) == int(sends["send_id"].max()) + 1
    contacts = np.sort(sends["contact_id"].unique())
    reasons = [bounce_reasons(table_path(d, "events"), contacts, 1) for d in logs]
    assert (pd.Series(reasons[0]).fillna("") == pd.Series(reasons[1]).fillna("")).all()
    summary = campaign_summary(logs[0])
    _same_rows(summary, campaign_summary(logs[1]))
    campaign = summary.sort_values("sends").campaign_id.iloc[-1]
    _same_rows(*(campaign_outcomes(d, campaign) for d in logs))
