"""The response model: properties of the ground truth and agreement of samples with probabilities."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from simulation import catalog
from simulation.response import ResponseModel, recent_send_counts, send_to_conversion_cdf, to_utc_us
from simulation.world import World

TUESDAY = np.datetime64("2026-06-02T00:00", "us")
SATURDAY = np.datetime64("2026-06-06T00:00", "us")


def _hours(h: float) -> np.timedelta64:
    return np.timedelta64(int(h * 3600e6), "us")


def test_unconditional_chain_is_consistent(small_world):
    n = len(small_world.contacts)
    ids = np.arange(n)
    p = small_world.response.probabilities(ids, ids % len(small_world.content), TUESDAY + _hours(13))
    np.testing.assert_allclose(p["delivered"] + p["bounce"], 1.0)
    assert (p["open"] <= p["delivered"]).all() and (p["click"] <= p["open"]).all()
    assert (p["conversion"] <= p["click"]).all() and (p["open_24h"] <= p["open"]).all()
    assert (p["open_24h"] > 0.9 * p["open"]).all()
    assert (p["unsubscribe"] <= p["delivered"]).all() and (p["complaint"] < p["unsubscribe"] + 0.01).all()
    assert (p["expected_value"] >= 0).all() and p["expected_value"].sum() > 0
    rates = {k: float(np.mean(v)) for k, v in p.items()}
    assert 0.1 < rates["open"] < 0.45 and 0.01 < rates["click"] < 0.08
    assert 0.0005 < rates["conversion"] < 0.01 and rates["unsubscribe"] < 0.01


def test_preferred_local_hours_beat_other_hours(small_world):
    rm, tr = small_world.response, small_world.traits
    ids = np.arange(len(small_world.contacts))
    content = np.zeros_like(ids)
    for day, peak in ((TUESDAY, tr.peak_hour_weekday), (SATURDAY, tr.peak_hour_weekend)):
        at_peak = rm.utc_at_local(ids, day + (peak * 3600e6).astype("timedelta64[us]"))
        away = rm.utc_at_local(ids, day + (((peak + 8) % 24) * 3600e6).astype("timedelta64[us]"))
        p_peak = rm.probabilities(ids, content, at_peak)["open"]
        p_away = rm.probabilities(ids, content, away)["open"]
        live = tr.bounce_probability < 0.5
        assert (p_peak[live] > p_away[live]).all()


def test_best_daytime_slot_roughly_doubles_opens_over_a_random_one(small_world):
    """The gain a perfect send-time model has over random slots 07:00-21:00 local."""
    rm = small_world.response
    ids = np.arange(len(small_world.contacts))
    slots = np.arange(7, 21.01, 0.5)
    local = TUESDAY + (slots * 3600e6).astype("timedelta64[us]")
    p = np.stack([rm.probabilities(ids, 0, rm.utc_at_local(ids, t))["open"] for t in local])
    gain = p.max(axis=0).sum() / p.mean(axis=0).sum()
    assert 1.5 < gain < 3.0, gain


def test_local_time_follows_dst_and_odd_offsets(small_world):
    rm = small_world.response
    contacts = small_world.contacts
    ny = int(contacts.loc[contacts["timezone"] == "America/New_York", "contact_id"].iloc[0])
    ktm = contacts.loc[contacts["timezone"] == "Asia/Kathmandu", "contact_id"]
    noon = pd.to_datetime(["2026-01-15 12:00", "2026-07-15 12:00"], utc=True)
    hour, weekday = rm.local_hour(np.array([ny, ny]), pd.Series(noon))
    np.testing.assert_allclose(hour, [7.0, 8.0])  # EST then EDT
    assert list(weekday) == [3, 2]
    if len(ktm):
        h, _ = rm.local_hour(np.array([int(ktm.iloc[0])]), pd.Series(noon[:1]))
        np.testing.assert_allclose(h, [17.75])


def _with_traits(world: World, **changes) -> ResponseModel:
    return ResponseModel(dataclasses.replace(world, traits=dataclasses.replace(world.traits, **changes)))


def test_topic_affinity_raises_clicks_and_lowers_unsubscribes(small_world):
    ids = np.arange(len(small_world.contacts))
    t = TUESDAY + _hours(10)
    topic = small_world.content["topic"].iloc[0]
    j = small_world.traits.topics.index(topic)
    affinity = small_world.traits.topic_affinity.copy()
    affinity[:, j] += 1.0
    fond = _with_traits(small_world, topic_affinity=affinity)
    base = small_world.response.probabilities(ids, 0, t)
    more = fond.probabilities(ids, 0, t)
    live = base["delivered"] > 0.5
    assert (more["click"][live] > base["click"][live]).all()
    assert (more["unsubscribe"] < base["unsubscribe"]).all()
    assert more["click"].sum() > 1.8 * base["click"].sum()


def test_click_prefers_the_contacts_favourite_topic(small_world):
    """A content model can learn: among items, the best topic for a contact gets more clicks."""
    rm, tr = small_world.response, small_world.traits
    content = small_world.content
    ids = np.arange(len(small_world.contacts))
    topic_idx = pd.Categorical(content["topic"], categories=tr.topics).codes
    clicks = np.stack([rm.probabilities(ids, k, TUESDAY + _hours(10))["click"] for k in content["content_id"]])
    aff = tr.topic_affinity[:, topic_idx].T  # items x contacts
    corr = np.mean([np.corrcoef(aff[:, i], clicks[:, i])[0, 1] for i in range(0, len(ids), 7)])
    assert corr > 0.5


def test_fatigue_lowers_opens_and_raises_unsubscribes(small_world):
    ids = np.arange(len(small_world.contacts))
    t = TUESDAY + _hours(10)
    fresh = small_world.response.probabilities(ids, 0, t, recent_sends=0)
    tired = small_world.response.probabilities(ids, 0, t, recent_sends=np.full(len(ids), 6))
    live = fresh["delivered"] > 0.5
    assert (tired["open"][live] < fresh["open"][live]).all()
    assert (tired["unsubscribe"] > fresh["unsubscribe"]).all()
    assert tired["unsubscribe"].mean() > 2 * fresh["unsubscribe"].mean()


def test_sample_frequencies_match_probabilities(small_world):
    rm = small_world.response
    n_contacts = len(small_world.contacts)
    reps = 60
    ids = np.tile(np.arange(n_contacts), reps)
    content = ids % len(small_world.content)
    rng = np.random.default_rng(0)
    t = TUESDAY + (rng.uniform(0, 24 * 7, len(ids)) * 3600e6).astype("timedelta64[us]")
    recent = rng.integers(0, 5, len(ids))
    p = rm.probabilities(ids, content, t, recent)
    events = rm.sample(ids, content, t, np.random.default_rng(1), recent_sends=recent)
    counts = events["type"].value_counts()
    for kind in ("bounce", "delivered", "open", "click", "conversion", "unsubscribe", "complaint"):
        expected = p[kind].sum()
        sd = np.sqrt((p[kind] * (1 - p[kind])).sum())
        assert abs(counts.get(kind, 0) - expected) < 4 * sd + 1, (kind, counts.get(kind, 0), expected)
    conv = events[events["type"] == "conversion"]
    assert conv["value"].gt(0).all() and events.loc[events["type"] != "conversion", "value"].isna().all()
    np.testing.assert_allclose(conv["value"].sum(), p["expected_value"].sum(), rtol=0.15)
    # one send never opens twice; clicks need opens; events follow their send
    per_send = events.pivot_table(index="row", columns="type", values="value", aggfunc="size", fill_value=0)
    assert per_send.max().max() == 1
    assert (per_send["click"] <= per_send["open"]).all() and (per_send["open"] <= per_send["delivered"]).all()
    sent = pd.Series(t[events["row"].to_numpy()]).dt.tz_localize("UTC")
    delay_h = (events["occurred_at"].reset_index(drop=True) - sent).dt.total_seconds() / 3600
    assert (delay_h > 0).all()
    by_type = delay_h.groupby(events["type"].to_numpy()).median()
    assert 1.0 < by_type["open"] < 2.2 and by_type["delivered"] < 0.02
    assert 20 < by_type["conversion"] < 40
    opened = events[events["type"] == "open"]
    within_24h = (delay_h[events["type"].to_numpy() == "open"] <= 24).sum()
    assert abs(within_24h - p["open_24h"].sum()) < 4 * np.sqrt(p["open_24h"].sum()) + 0.01 * len(opened)


def test_sampling_is_reproducible_for_an_rng(small_world):
    ids = np.arange(200)
    a = small_world.response.sample(ids, 1, TUESDAY, np.random.default_rng(3))
    b = small_world.response.sample(ids, 1, TUESDAY, np.random.default_rng(3))
    pd.testing.assert_frame_equal(a, b)
    assert list(a.columns) == ["row", "type", "occurred_at", "value"]
    assert str(a["occurred_at"].dtype) == "datetime64[us, UTC]"


def test_conversion_within_matches_monte_carlo(small_world):
    rm = small_world.response
    rng = np.random.default_rng(4)
    n = len(small_world.contacts)
    sends = pd.DataFrame({
        "contact_id": np.repeat(np.arange(n), 3),
        "content_id": rng.integers(0, len(small_world.content), 3 * n),
        "sent_at": pd.Series(TUESDAY + (rng.uniform(0, 24 * 10, 3 * n) * 3600e6).astype("timedelta64[us]"))
        .dt.tz_localize("UTC"),
    })
    start, end = pd.Timestamp("2026-06-05", tz="UTC"), pd.Timestamp("2026-06-12", tz="UTC")
    oracle = rm.conversion_within(np.arange(n), start, end, sends)
    assert oracle.shape == (n,) and (oracle >= 0).all() and (oracle < 1).all()
    recent = recent_send_counts(sends["contact_id"].to_numpy(), to_utc_us(sends["sent_at"]))
    hits = np.zeros(n)
    reps = 40
    for r in range(reps):
        ev = rm.sample(sends["contact_id"].to_numpy(), sends["content_id"].to_numpy(), sends["sent_at"],
                       np.random.default_rng(100 + r), recent_sends=recent)
        ev = ev[(ev["type"] == "conversion") & (ev["occurred_at"] >= start) & (ev["occurred_at"] < end)]
        hits[np.unique(sends["contact_id"].to_numpy()[ev["row"].to_numpy()])] += 1
    expected, observed = oracle.sum() * reps, hits.sum()
    assert abs(observed - expected) < 4 * np.sqrt(expected) + 5, (observed, expected)
    # the oracle ranks contacts: top decile converts far more often than the bottom half
    order = np.argsort(oracle)
    assert hits[order[-n // 10:]].mean() > 3 * hits[order[: n // 2]].mean()
    # a longer window can only add conversions; a window before every send has none
    longer = rm.conversion_within(np.arange(n), start, end + pd.Timedelta(days=30), sends)
    assert (longer >= oracle - 1e-12).all()
    before = rm.conversion_within(np.arange(n), pd.Timestamp("2026-01-01", tz="UTC"),
                                  pd.Timestamp("2026-02-01", tz="UTC"), sends)
    assert (before == 0).all()
    assert rm.conversion_within(np.array([n + 7]), start, end, sends.iloc[:0])[0] == 0


def test_send_to_conversion_cdf_is_a_cdf():
    s = np.array([-1.0, 0.0, 3600.0, 86400.0, 7 * 86400.0, 400 * 86400.0])
    c = send_to_conversion_cdf(s)
    assert c[0] == 0 and c[1] == 0 and (np.diff(c) >= 0).all() and c[-1] == pytest.approx(1.0)
    assert 0.2 < send_to_conversion_cdf(86400.0 * 1.5) < 0.8


def test_recent_send_counts_on_a_hand_made_table():
    day = 86400 * 10**6
    contact = np.array([1, 1, 1, 2, 1, 2])
    t = np.array([0, 1, 8, 2, 7, 2]) * day
    # contact 1 at days 0, 1, 7, 8; contact 2 twice at day 2 (same instant: neither counts the other)
    np.testing.assert_array_equal(recent_send_counts(contact, t), [0, 1, 2, 0, 2, 0])


def test_bad_inputs_are_named(small_world):
    rm = small_world.response
    n = len(small_world.contacts)
    with pytest.raises(ValueError, match="contact_ids: unknown id"):
        rm.probabilities([0, n + 3], [0, 0], TUESDAY)
    with pytest.raises(ValueError, match="content_ids: unknown id"):
        rm.probabilities([0], [10_000], TUESDAY)
    with pytest.raises(ValueError, match="contact_ids: expected integer"):
        rm.probabilities([0.5], [0], TUESDAY)
    with pytest.raises(ValueError, match="naive"):
        rm.probabilities([0], [0], pd.Series(pd.to_datetime(["2026-06-02 10:00"])))
    with pytest.raises(ValueError, match="lengths differ"):
        rm.probabilities([0, 1, 2], [0, 1], TUESDAY)
    with pytest.raises(ValueError, match="recent_sends"):
        rm.probabilities([0], [0], TUESDAY, recent_sends=[-1])
    with pytest.raises(ValueError, match="missing column 'sent_at'"):
        rm.conversion_within([0], TUESDAY, TUESDAY, pd.DataFrame({"contact_id": [0], "content_id": [0]}))


def test_broadcasting_and_timezone_aware_inputs_agree(small_world):
    rm = small_world.response
    ids = np.arange(50)
    t_np = TUESDAY + _hours(9)
    t_pd = pd.Series([pd.Timestamp("2026-06-02 11:00", tz="Europe/Berlin")] * 50)  # 09:00 UTC
    a = rm.probabilities(ids, 3, t_np)
    b = rm.probabilities(ids, np.full(50, 3), t_pd)
    for key in a:
        np.testing.assert_allclose(a[key], b[key])
    assert set(a) == {"bounce", "delivered", "open", "click", "conversion", "unsubscribe", "complaint",
                      "open_24h", "expected_value"}
    assert catalog.TOPICS == small_world.traits.topics
