"""`serving.contact_table`: the precomputed per-contact inputs give the live path's answers, and
a write to the online store sends requests back to the live path until a rebuild catches up."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

UNKNOWN = 10**15
WINDOWS = [
    (pd.Timestamp("2026-03-07T00:00Z"), pd.Timestamp("2026-03-10T00:00Z"), (21, 7)),  # US DST change
    (pd.Timestamp("2026-10-24T00:00Z"), pd.Timestamp("2026-10-26T12:00Z"), None),     # EU DST change
    (pd.Timestamp("2026-06-01T13:20Z"), pd.Timestamp("2026-06-02T05:00Z"), (22, 6)),  # unaligned start
]


@pytest.fixture(scope="module")
def state(serving_world):
    from serving.state import ServingState
    from serving.warmup import warm_up

    st = ServingState.load(serving_world)
    warm_up(st, sample_size=100, contact_table="foreground")
    yield st
    st.close()


@pytest.fixture(scope="module")
def batches(state):
    from serving.predict import ContactFeatures

    table = state.contact_table()
    assert table is not None, "the warm-up builds the table"
    ids = np.append(table.ids, UNKNOWN)
    when = WINDOWS[0][0].to_pydatetime()
    return (ContactFeatures.read_live(state, ids, request_time=when),
            ContactFeatures.read(state, ids, request_time=when))


def test_every_component_verified_and_used(state, batches):
    table = state.contact_table()
    assert table.checks == {"lead": True, "slots": True, "tower": True} and state.tables.status == "ready"
    live, fast = batches
    assert live.table is None and fast.table is table
    assert len(table.ids) >= 500
    assert fast.fallback[-1] and live.fallback[-1] and not fast.fallback[:-1].all()
    assert np.array_equal(live.fallback, fast.fallback)


def test_columns_equal_the_live_read(state, batches):
    live, fast = batches
    assert list(fast.columns) == list(live.columns)
    for name in live.columns:
        a, b = live.columns[name], fast.columns[name]
        if a.dtype == object or b.dtype == object:
            assert pd.Series(a, dtype=object).equals(pd.Series(b, dtype=object)), name
        else:
            assert np.array_equal(a, b, equal_nan=True), name


def test_lead_scores_equal(state, batches):
    from serving.predict import lead_score_arrays

    live, fast = batches
    a, b = lead_score_arrays(state, live), lead_score_arrays(state, fast)
    assert np.array_equal(a.probability, b.probability)
    assert np.array_equal(a.score, b.score) and np.array_equal(a.tier, b.tier)


@pytest.mark.parametrize("start,end,quiet", WINDOWS)
def test_send_slots_equal(state, batches, start, end, quiet):
    """Same level, slot and probability as the live path on the whole batch and on single contacts
    (a contact's send-hour posterior no longer depends on its batch: `models.peak_posterior.FLOAT`)."""
    from serving.predict import ContactFeatures, slot_choice

    live, fast = batches
    a, b = slot_choice(state, live, start, end, quiet), slot_choice(state, fast, start, end, quiet)
    assert set(a.level) == {"contact", "segment", "population"}
    assert np.array_equal(a.level, b.level)
    assert np.array_equal(a.send_at, b.send_at, equal_nan=True)
    assert np.array_equal(a.probability, b.probability, equal_nan=True)
    for i in np.flatnonzero(a.level == "contact")[:40]:
        one = slot_choice(state, ContactFeatures.read_live(state, live.contact_ids[i:i + 1],
                                                           request_time=start.to_pydatetime()), start, end, quiet)
        assert one.send_at[0] == a.send_at[i] and one.probability[0] == a.probability[i]


def test_one_contact_slots_equal_the_batch(state, batches):
    """The single-contact shortcut of the slot choice gives each contact's row of the batch's answer."""
    from serving.predict import ContactFeatures, slot_choice

    _, fast = batches
    for start, end, quiet in WINDOWS:
        whole = slot_choice(state, fast, start, end, quiet)
        for i in range(0, len(fast.contact_ids), 7):
            one = slot_choice(state, ContactFeatures.read(state, fast.contact_ids[i:i + 1],
                                                          request_time=start.to_pydatetime()), start, end, quiet)
            assert one.level[0] == whole.level[i] and one.local_time[0] == whole.local_time[i]
            assert one.send_at[0] == whole.send_at[i] or (np.isnat(one.send_at[0]) and np.isnat(whole.send_at[i]))
            assert one.probability[0] == whole.probability[i] or (np.isnan(one.probability[0])
                                                                  and np.isnan(whole.probability[i]))


def test_content_orders_equal(state, batches):
    from serving.predict import content_order

    live, fast = batches
    assert content_order(state, live, None, None) == content_order(state, fast, None, None)
    some = state.catalog["content_id"].to_numpy()[:5].tolist()
    assert content_order(state, live, some, 3) == content_order(state, fast, some, 3)


@pytest.mark.parametrize("names", [["engagement_score", "open_rate_30d"], ["lead_probability", "industry", "nope"],
                                   ["local_hour", "engagement_score"]])
def test_bandit_context_equal(state, batches, names):
    from serving.predict import bandit_context, lead_score_arrays

    live, fast = batches
    config = {"context_features": names}
    want = bandit_context(config, live, lead_score_arrays(state, live))
    assert np.array_equal(bandit_context(config, fast, lead_score_arrays(state, fast)), want)
    one = bandit_context(config, type(fast).from_table(state, fast.table, fast.contact_ids[5:6],
                                                         WINDOWS[0][0].to_pydatetime()), None)
    assert np.array_equal(one, want[5:6])


def test_decide_reads_the_table_for_one_recipient(state):
    from serving.predict import ContactFeatures

    table = state.contact_table()
    one = ContactFeatures.read(state, table.ids[:1])
    assert one.table is table and one.rows.tolist() == [0]
    unknown = ContactFeatures.read(state, [UNKNOWN])
    assert unknown.rows.tolist() == [table.null_row] and unknown.fallback.tolist() == [True]


def _write(store, view, frame):
    store.write_to_online_store(feature_view_name=view, df=frame)


def test_store_write_goes_live_then_rebuilds(state, serving_world):
    """A write to the online store: the next request is served live (and sees the new value at once);
    the rebuilt table then carries it too. The contact's row is restored afterwards."""
    from features.store import get_store
    from serving.predict import ContactFeatures, lead_score_arrays

    old = state.contact_table()
    store = get_store(serving_world)
    view = next(v for v in store.list_feature_views() if "engagement_score" in [f.name for f in v.features])
    names = [f.name for f in view.features]
    cid = int(old.ids[3])
    stored = state.reader.read_stored(state.contact_services, [cid])
    row = {n: [stored[n][0]] for n in names}
    before = float(row["engagement_score"][0])
    changed = pd.DataFrame({**row, "contact_id": [cid], "engagement_score": [before + 50.0],
                            "event_timestamp": [datetime.now(timezone.utc)]})
    try:
        _write(store, view.name, changed)
        time.sleep(state.tables.check_every)
        assert state.contact_table() is None  # stale: served live, a rebuild started
        live = ContactFeatures.read(state, [cid])
        assert live.table is None and float(live.columns["engagement_score"][0]) == before + 50.0
        deadline = time.monotonic() + 120
        table = None
        while table is None and time.monotonic() < deadline:
            time.sleep(0.2)
            table = state.contact_table()
        assert table is not None and table is not old and state.tables.rebuilds >= 1
        fast = ContactFeatures.read(state, [cid])
        assert fast.table is table and float(fast.columns["engagement_score"][0]) == before + 50.0
        assert np.array_equal(lead_score_arrays(state, fast).probability, lead_score_arrays(state, live).probability)
    finally:
        restore = changed.assign(engagement_score=[before],
                                 event_timestamp=[datetime.now(timezone.utc) + timedelta(seconds=1)])
        _write(store, view.name, restore)
    time.sleep(state.tables.check_every)
    assert float(ContactFeatures.read(state, [cid]).columns["engagement_score"][0]) == before
