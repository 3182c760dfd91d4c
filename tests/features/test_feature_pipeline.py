"""The pipeline's numbers on a hand-made event log, checked against hand computation."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from features.pipeline import PipelineConfig, build_features
from tests.features.eventlog_fixtures import tiny_event_log, ts

JUNE1 = ts("2026-06-01")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    d = tmp_path_factory.mktemp("pipeline")
    tiny_event_log(d / "events")
    summary = build_features(d / "events", d / "features", config=PipelineConfig(half_life_days=14))
    tables = {n: pd.read_parquet(d / "features" / f"{n}.parquet") for n in
              ("contact_engagement", "contact_send_time", "contact_send_hours", "contact_topics", "contact_profile",
               "content_features")}
    return summary, tables


def row(df, contact_id, when=JUNE1, key="contact_id"):
    hit = df[(df[key] == contact_id) & (df["event_timestamp"] == when)]
    assert len(hit) == 1, f"no single row for {key}={contact_id} at {when}"
    return hit.iloc[0]


def test_one_row_per_contact_per_day_after_creation(built):
    summary, t = built
    eng = t["contact_engagement"]
    assert summary["first_snapshot"] == "2026-05-02" and summary["last_snapshot"] == "2026-06-01"
    assert not eng.duplicated(["contact_id", "event_timestamp"]).any()
    # contact 3 was created 2026-05-20: its first snapshot is 2026-05-21
    assert eng.loc[eng.contact_id == 3, "event_timestamp"].min() == ts("2026-05-21")
    assert (eng.groupby("contact_id").size().loc[[1, 2]] == 31).all()
    assert str(eng["event_timestamp"].dt.tz) == "UTC"


def test_window_counts(built):
    _, t = built
    r = row(t["contact_engagement"], 1)
    # sends May 1, 5, 10, 20, 28; window [Jun 1 - w, Jun 1)
    assert (r.sends_7d, r.sends_30d, r.sends_90d) == (1, 4, 5)
    # first opens May 1, May 5, May 20, May 31 (the second open of send 100 is not counted)
    assert (r.opens_7d, r.opens_30d, r.opens_90d) == (1, 3, 4)
    assert (r.clicks_7d, r.clicks_30d, r.clicks_90d) == (0, 1, 2)
    assert (r.conversions_30d, r.revenue_90d) == (1, 120.0)
    assert (r.sends_total, r.opens_total, r.clicks_total) == (5, 4, 2)


def test_shrinkage_to_population_rate(built):
    _, t = built
    r = row(t["contact_engagement"], 1)
    # population over [May 2, Jun 1): sends 4 (contact 1) + 2 (contact 2); first opens 3 + 1
    p_open = 4 / 6
    assert r.open_rate_30d == pytest.approx((3 + 10 * p_open) / (4 + 10))
    # a contact with no sends gets exactly the population rate
    assert row(t["contact_engagement"], 3).open_rate_30d == pytest.approx(p_open)


def test_recency_and_fatigue(built):
    _, t = built
    r1, r2 = row(t["contact_engagement"], 1), row(t["contact_engagement"], 2)
    assert r1.days_since_last_open == pytest.approx(2 / 24)            # May 31 22:00
    assert r1.days_since_last_click == pytest.approx(11 + 13 / 24 + 55 / 1440)  # May 20 10:05
    assert r1.days_since_last_send == pytest.approx(3 + 15 / 24)      # May 28 09:00
    assert math.isnan(row(t["contact_engagement"], 3).days_since_last_open)
    assert r1.sends_since_last_open == 0 and r2.sends_since_last_open == 1
    assert bool(r2.unsubscribed) and not bool(r1.unsubscribed)
    assert r1.tenure_days == pytest.approx(61.0)


def test_decayed_engagement_score(built):
    _, t = built
    weights = {"open": 1.0, "click": 3.0, "conversion": 10.0}
    facts = [("open", "2026-05-01 15:00"), ("open", "2026-05-05 16:00"), ("open", "2026-05-20 10:00"),
             ("open", "2026-05-31 22:00"), ("click", "2026-05-01 15:10"), ("click", "2026-05-20 10:05"),
             ("conversion", "2026-05-07 12:00")]
    expected = sum(weights[k] * 0.5 ** ((JUNE1 - ts(at)).total_seconds() / 86400 / 14) for k, at in facts)
    assert row(t["contact_engagement"], 1).engagement_score == pytest.approx(expected)
    # only events strictly before the snapshot: on May 20 the 10:00 open is not in yet
    may20 = row(t["contact_engagement"], 1, ts("2026-05-20"))
    before = [f for f in facts if ts(f[1]) < ts("2026-05-20")]
    expected20 = sum(weights[k] * 0.5 ** ((ts("2026-05-20") - ts(at)).total_seconds() / 86400 / 14) for k, at in before)
    assert may20.engagement_score == pytest.approx(expected20)
    assert may20.opens_total == 2


def test_local_hour_profile(built):
    _, t = built
    r = row(t["contact_send_time"], 1)
    # contact 1 (New York) first opens: Fri 11:00, Tue 12:00, Wed 06:00 local, Sun 18:00 local
    assert (r.opens_weekday, r.opens_weekend) == (3, 1)
    # population weekday prior: hours 6, 11, 12 one open each; weekend: 18 (contact 1), 11 (contact 2)
    a = 5.0
    assert r.open_share_wd_h11 == pytest.approx((1 + a / 3) / (3 + a))
    assert r.open_share_wd_h10 == pytest.approx(0.0)
    assert r.open_share_we_h18 == pytest.approx((1 + a * 0.5) / (1 + a))
    assert r.best_hour_weekend == 18
    shares = [r[f"open_share_wd_h{h:02d}"] for h in range(24)]
    assert sum(shares) == pytest.approx(1.0, rel=1e-5)


def test_send_hour_counts_are_sparse_and_cumulative(built):
    _, t = built
    sh = t["contact_send_hours"]
    # contact 1 (New York) sends by LOCAL send hour: Fri May 1 10:00 (opened May 1), Tue May 5 10:00
    # (opened May 5), Sun May 10 08:00 (not opened), Wed May 20 05:00 (opened May 20), Thu May 28 05:00
    # (opened May 31). A row only on the first snapshot and where the counts change.
    c1 = sh[sh.contact_id == 1].set_index("event_timestamp")
    assert list(c1.index) == [ts(d) for d in ("2026-05-02", "2026-05-06", "2026-05-11", "2026-05-21",
                                              "2026-05-29", "2026-06-01")]
    r = c1.loc[JUNE1]
    assert (r.sent_wd_h10, r.sent_opened_wd_h10, r.sent_wd_h05, r.sent_opened_wd_h05) == (2, 2, 2, 2)
    assert (r.sent_we_h08, r.sent_opened_we_h08, r.sends_weekday, r.sends_weekend) == (1, 0, 4, 1)
    # the May 28 send counts from May 29, its open (May 31) only from June 1
    may29 = c1.loc[ts("2026-05-29")]
    assert (may29.sent_wd_h05, may29.sent_opened_wd_h05) == (2, 1)
    counts = [c for c in sh.columns if c.startswith("sent_")]
    assert len(counts) == 96 and all(str(sh[c].dtype) == "int32" for c in counts)
    # contact 2 (Berlin): Sun May 3 10:00 opened, Mon May 25 10:00 not; a zero row at its first snapshot
    c2 = sh[sh.contact_id == 2].set_index("event_timestamp")
    assert list(c2.index) == [ts("2026-05-02"), ts("2026-05-04"), ts("2026-05-26")]
    assert c2.loc[ts("2026-05-02"), counts].sum() == 0
    assert (c2.iloc[-1].sent_we_h10, c2.iloc[-1].sent_opened_we_h10, c2.iloc[-1].sent_wd_h10,
            c2.iloc[-1].sent_opened_wd_h10) == (1, 1, 1, 0)
    # contact 3 (no sends, created May 20): one zero row at its first snapshot
    c3 = sh[sh.contact_id == 3]
    assert c3["event_timestamp"].tolist() == [ts("2026-05-21")] and c3[counts].to_numpy().sum() == 0
    # the row sums, and no rates / lifts left in the daily send-time view
    assert (sh["sends_weekday"] == sh[[f"sent_wd_h{h:02d}" for h in range(24)]].sum(axis=1)).all()
    assert not [c for c in t["contact_send_time"].columns if c.startswith(("send_rate_", "send_lift_", "sends_"))]


def test_topic_affinity(built):
    _, t = built
    r = row(t["contact_topics"], 1)
    # product (content 10) over 90 days: contact 1 sends 3 (May 1, 10, 20), clicks 2; population 4 sends, 3 clicks
    assert r.click_affinity_product == pytest.approx((2 + 10 * 0.75) / (3 + 10))
    assert r.click_affinity_education == pytest.approx(0.0)


def test_profile_and_content(built):
    _, t = built
    prof = t["contact_profile"].set_index("contact_id")
    assert prof.loc[2, "email_typo_suspected"] and prof.loc[2, "email_suggested_domain"] == "gmail.com"
    assert prof.loc[3, "email_role_account"] and prof.loc[3, "email_disposable"]
    assert prof.loc[1, "event_timestamp"] == ts("2026-04-01")
    c = row(t["content_features"], 10, key="content_id")
    # content 10: sends May 1, 3, 10, 20 -> 4; first opens 3, clicks 3; population: 7 sends, 5 opens, 3+0 clicks
    assert c.content_sends_total == 4
    assert c.content_click_rate == pytest.approx((3 + 10 * 3 / 7) / (4 + 10))
    assert c.content_topic == "product"


def test_bad_inputs_are_named(tmp_path):
    tiny_event_log(tmp_path / "events")
    (tmp_path / "events" / "sends.parquet").unlink()
    with pytest.raises(FileNotFoundError, match="sends"):
        build_features(tmp_path / "events", tmp_path / "out")
    with pytest.raises(ValueError, match="half_life_days"):
        PipelineConfig(half_life_days=0)


@pytest.mark.parametrize("bad_id", [99, 0, -5])
def test_unknown_contact_is_named(tmp_path, bad_id):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from simulation.eventlog import SchemaError

    tiny_event_log(tmp_path / "events")
    path = tmp_path / "events" / "sends.parquet"
    sends = pq.read_table(path)
    ids = sends.column("contact_id").to_numpy().copy()
    ids[2] = bad_id
    pq.write_table(sends.set_column(sends.schema.get_field_index("contact_id"), "contact_id", pa.array(ids)), path)
    with pytest.raises(SchemaError, match=f"unknown contact id {bad_id}"):
        build_features(tmp_path / "events", tmp_path / "out")


def test_a_failed_build_keeps_the_previous_tables(tmp_path, monkeypatch):
    import features.pipeline as pipeline

    tiny_event_log(tmp_path / "events")
    build_features(tmp_path / "events", tmp_path / "out")
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    assert len(before) == 6

    def fail(*args):  # the last step fails, after the contact and content tables were written
        raise RuntimeError("profile step failed")

    monkeypatch.setattr(pipeline, "_write_profile", fail)
    with pytest.raises(RuntimeError, match="profile step failed"):
        build_features(tmp_path / "events", tmp_path / "out", config=PipelineConfig(half_life_days=7))
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == before  # no staging dir left either
