"""The request path's fast implementations give exactly the reference results.

`serving.fast_slots.FastSlots` vs `SendTimePlanner.best_slots` (DST changes,
half-hour zones, quiet hours, windows with no allowed slot, all three fallback
levels; on the DataFrame and on the column mapping), `content_order` (separate
towers) vs `ordered_content(content_rankings(...))`, array lead scores vs the
model's `score`, and the one-statement contact-side read vs one read per
service, on the session's world.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

ZONES = ["America/New_York", "Europe/Berlin", "Asia/Kolkata", "Asia/Kathmandu", "Australia/Lord_Howe",
         "America/Sao_Paulo", "UTC", "Pacific/Chatham"]
UNKNOWN = 10**15

WINDOWS = [
    ("2026-03-07T00:00Z", "2026-03-10T00:00Z", (21, 7)),   # US spring-forward (Mar 8)
    ("2026-03-28T13:20Z", "2026-03-30T05:00Z", (22, 6)),   # EU spring-forward (Mar 29), unaligned start
    ("2026-10-24T00:00Z", "2026-10-26T12:00Z", (21, 7)),   # EU fall-back (Oct 25): a repeated local hour
    ("2026-11-01T00:00Z", "2026-11-02T12:00Z", None),      # US fall-back, no quiet hours
    ("2026-06-01T03:00Z", "2026-06-01T05:00Z", (21, 7)),   # short window: quiet everywhere it is night
    ("2026-06-01T00:00Z", "2026-06-10T00:00Z", (8, 20)),   # > a week: every hour-of-week repeats
]


@pytest.fixture(scope="module")
def state(serving_world):
    from serving.state import ServingState

    st = ServingState.load(serving_world)
    yield st
    st.close()


@pytest.fixture(scope="module")
def batch(state):
    from serving.predict import ContactFeatures

    ids = np.append(np.asarray(state.timezones.index[:300], dtype=np.int64), UNKNOWN)
    feats = ContactFeatures.read(state, ids, request_time=pd.Timestamp("2026-03-07T00:00Z").to_pydatetime())
    zones = np.array([ZONES[i % len(ZONES)] for i in range(len(ids))], dtype=object)
    return feats, zones


@pytest.fixture(scope="module")
def accelerated(state, batch):
    """The warm-up's verified accelerations (mapping-aware encoders, slot-grid cache, towers) installed."""
    from serving.warmup import warm_up

    warm_up(state, sample_size=100)
    return state


@pytest.mark.parametrize("given", ["frame", "mapping"])
@pytest.mark.parametrize("start,end,quiet", WINDOWS)
def test_fast_slots_equal_reference(accelerated, batch, start, end, quiet, given):
    state = accelerated
    feats, zones = batch
    if given == "mapping" and not state.fast_slots.accepts_mapping:
        pytest.skip("the send-time model's profile helpers take no column mapping")
    model = state.models["send_time"]
    ref = model.best_slots(feats.merged, zones, start, end, quiet_hours=quiet)
    got = state.fast_slots.best_slots(feats.merged if given == "frame" else feats.columns, zones, start, end,
                                      quiet_hours=quiet)
    assert set(ref["level"]) == {"contact", "segment", "population"}  # every fallback level exercised
    assert np.array_equal(got.contact_id, ref["contact_id"].to_numpy())
    assert np.array_equal(got.level, ref["level"].to_numpy())
    assert np.array_equal(got.send_at, ref["send_at"].dt.tz_convert(None).to_numpy(), equal_nan=True)
    assert got.local_time.tolist() == ref["local_time"].tolist()
    np.testing.assert_allclose(got.probability, ref["probability"].to_numpy(), rtol=0, atol=1e-9)
    pd.testing.assert_frame_equal(got.frame(), ref, check_exact=True)
    # a second call hits the per-window cache and still agrees
    again = state.fast_slots.best_slots(feats.merged, zones, start, end, quiet_hours=quiet)
    assert np.array_equal(again.send_at, got.send_at, equal_nan=True)


def test_short_quiet_window_leaves_some_contacts_without_a_slot(state, batch):
    feats, zones = batch
    got = state.fast_slots.best_slots(feats.merged, zones, *WINDOWS[4][:2], quiet_hours=WINDOWS[4][2])
    none = np.isnat(got.send_at)
    assert none.any() and (~none).any()
    assert np.isnan(got.probability[none]).all() and all(v is None for v in got.local_time[none])


def test_fast_slots_reject_what_the_reference_rejects(state, batch):
    feats, zones = batch
    fast = state.fast_slots
    with pytest.raises(ValueError, match="timezone"):
        fast.best_slots(feats.merged, np.full(len(zones), "Mars/Olympus", dtype=object), *WINDOWS[0])
    with pytest.raises(ValueError, match="window_end"):
        fast.best_slots(feats.merged, zones, WINDOWS[0][1], WINDOWS[0][0])
    with pytest.raises(ValueError, match="quiet_hours"):
        fast.best_slots(feats.merged, zones, WINDOWS[0][0], WINDOWS[0][1], quiet_hours=(25, 3))


@pytest.mark.parametrize("rows", [301, 1, 2])
@pytest.mark.parametrize("subset,k", [(None, 3), (None, None), ("some", 2), ("two", None)])
def test_content_order_equals_rankings(accelerated, batch, subset, k, rows):
    from serving.predict import ContactFeatures, content_order, content_rankings, ordered_content

    state = accelerated
    feats, _ = batch
    if rows < len(feats.contact_ids):
        feats = ContactFeatures.read(state, feats.contact_ids[-rows:])  # the unknown contact included
    catalog = state.catalog["content_id"].to_numpy()
    content_ids = {None: None, "some": catalog[::2][::-1], "two": catalog[:2]}[subset]
    ref = ordered_content(content_rankings(state, feats, content_ids, k), feats.contact_ids)
    assert content_order(state, feats, content_ids, k) == ref
    assert content_order(state, feats, content_ids, k) == ref  # again: the towers once the set is verified
    with pytest.raises(ValueError, match="content_ids"):
        content_order(state, feats, [UNKNOWN], k)


def test_content_towers_give_the_module_scores(accelerated, batch):
    from serving.predict import candidate_matrix

    state = accelerated
    feats, _ = batch
    towers = state.content_towers
    assert towers is not None and towers.verified(None)
    model = state.models["content_preference"]
    key, _, B = candidate_matrix(state, None)
    A = model.contact_encoder.transform(feats.merged)
    for rows in (A, A[:1], A[5:8]):
        n, m = len(rows), len(B)
        X = np.ascontiguousarray(np.hstack([np.repeat(rows, m, axis=0), np.tile(B, (n, 1))]), dtype=np.float32)
        assert np.array_equal(towers.scores(rows, key, B), model.predict_matrix(X).reshape(n, m))


def test_lead_score_arrays_equal_model_scores(accelerated, batch):
    from serving.predict import lead_score_arrays, lead_scores

    feats, _ = batch
    ref = lead_scores(accelerated, feats, reasons=False)
    got = lead_score_arrays(accelerated, feats)
    assert np.array_equal(got.probability, ref["probability"].to_numpy())
    assert np.array_equal(got.score, ref["score"].to_numpy())
    assert got.tier.tolist() == ref["tier"].tolist()


def test_one_read_equals_one_read_per_service(state, batch):
    from serving.predict import ContactFeatures, no_features, read_separately

    feats, _ = batch
    when = pd.Timestamp("2026-03-08T09:00Z").to_pydatetime()
    ref = read_separately(state, feats.contact_ids, when)
    got = ContactFeatures.read(state, feats.contact_ids, request_time=when)
    assert list(got.columns) == list(ref.columns)
    pd.testing.assert_frame_equal(got.merged, ref, check_exact=True)
    lead = state.reader.read("lead_scoring", feats.contact_ids)
    assert np.array_equal(got.fallback, no_features(lead))
    assert got.fallback[-1] and not got.fallback[:-1].all()


def test_warm_up_installs_the_verified_fast_paths(accelerated):
    from serving.accelerate import BlockTransform

    state = accelerated
    assert state.fast_slots.verified
    assert isinstance(state.models["lead_scoring"].encoder.transform, BlockTransform)
    assert state.content_towers is not None and state.content_towers.verified(None)
