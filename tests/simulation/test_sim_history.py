"""History generation: determinism, contract, and the rules a real send log obeys."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from inbox.cli import main as inbox_main
from simulation.eventlog import read_event_log, validate
from simulation.history import plan_campaigns, simulate_history
from simulation.world import World, WorldConfig, generate_world

TINY = WorldConfig(n_contacts=1_200, n_days=30, seed=3)


def test_same_seed_same_tables_other_seed_differs():
    a = simulate_history(generate_world(TINY), progress=False)
    b = simulate_history(generate_world(TINY), progress=False)
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name])
    c = simulate_history(generate_world(WorldConfig(n_contacts=1_200, n_days=30, seed=4)), progress=False)
    assert len(c["sends"]) != len(a["sends"]) or not c["sends"]["contact_id"].equals(a["sends"]["contact_id"])


def test_tables_follow_the_contract(small_history):
    for name, df in small_history.items():
        validate(name, df)
    assert str(small_history["events"]["occurred_at"].dtype) == "datetime64[us, UTC]"
    assert small_history["sends"]["send_id"].is_monotonic_increasing
    assert small_history["sends"]["sent_at"].is_monotonic_increasing
    assert small_history["events"]["occurred_at"].is_monotonic_increasing


def test_rates_are_plausible(small_history):
    events, sends = small_history["events"], small_history["sends"]
    counts = events["type"].value_counts()
    delivered = counts["delivered"]
    assert 0.9 < delivered / len(sends) <= 1.0
    assert 0.15 < counts["open"] / delivered < 0.40
    assert 0.05 < counts["click"] / counts["open"] < 0.25
    assert 0.03 < counts["conversion"] / counts["click"] < 0.3
    assert 0.0005 < counts["unsubscribe"] / delivered < 0.01
    assert counts["complaint"] < counts["unsubscribe"]
    per_contact = sends.groupby("contact_id").size()
    assert 5 < per_contact.median() < 40


def test_events_follow_their_sends(small_history, small_world):
    sends = small_history["sends"].set_index("send_id")
    events = small_history["events"]
    joined = events.join(sends[["contact_id", "sent_at"]], on="send_id", rsuffix="_send")
    assert joined["sent_at"].notna().all()
    assert (joined["contact_id"] == joined["contact_id_send"]).all()
    assert (joined["occurred_at"] > joined["sent_at"]).all()
    assert (events["occurred_at"] < small_world.config.end_ts).all()
    # at most one of each response per send; clicks need opens, opens need delivery
    per_send = events.groupby(["send_id", "type"]).size().unstack(fill_value=0)
    assert per_send.to_numpy().max() == 1
    assert ((per_send["open"] == 0) | (per_send["delivered"] == 1)).all()
    assert ((per_send["click"] == 0) | (per_send["open"] == 1)).all()
    assert ((per_send["bounce"] + per_send["delivered"]) <= 1).all()
    conv = events[events["type"] == "conversion"]
    assert conv["value"].gt(0).all() and events.loc[events["type"] != "conversion", "value"].isna().all()


def test_no_mail_after_unsubscribe_bounce_or_complaint(small_history, small_world):
    events, sends = small_history["events"], small_history["sends"]
    stop = events[events["type"].isin(["unsubscribe", "bounce", "complaint"])].groupby("contact_id")["occurred_at"].min()
    assert len(stop) > 10
    later = sends.join(stop.rename("stopped_at"), on="contact_id")
    assert not (later["sent_at"] > later["stopped_at"]).any()
    contacts = small_world.contacts.set_index("contact_id")
    s = sends.join(contacts[["created_at", "consent"]], on="contact_id")
    assert s["consent"].all()
    assert (s["sent_at"] > s["created_at"]).all()
    content = small_world.content.set_index("content_id")["created_at"]
    assert (sends["sent_at"] > sends["content_id"].map(content)).all()


def test_sends_cover_mixed_local_hours(small_history, small_world):
    sends = small_history["sends"]
    hour, weekday = small_world.response.local_hour(sends["contact_id"].to_numpy(), sends["sent_at"])
    tz = small_world.contacts["timezone"].to_numpy()[sends["contact_id"].to_numpy()]
    ny = np.floor(hour[tz == "America/New_York"]).astype(int)
    assert len(np.unique(ny)) >= 18
    counts = np.bincount(np.floor(hour).astype(int), minlength=24)
    assert counts[6:22].min() > 0.2 * counts.max()
    assert (weekday >= 5).mean() > 0.05


def test_logged_campaigns_look_like_a_uniform_allocator(small_history, small_world):
    sends = small_history["sends"]
    logged = sends["decision_id"].notna()
    assert logged.any() and (~logged).any()
    assert (logged == sends["propensity"].notna()).all()
    assert sends.loc[logged, "decision_id"].is_unique
    plan = plan_campaigns(small_world).set_index("campaign_id")
    n_variants = sends["campaign_id"].map(plan["variants"].map(len))
    np.testing.assert_allclose(sends.loc[logged, "propensity"], 1.0 / n_variants[logged])
    per_campaign = sends.groupby("campaign_id")["decision_id"].apply(lambda s: s.notna().mean())
    assert set(per_campaign.unique()) <= {0.0, 1.0}
    # each campaign sends only its variants, about evenly
    used = sends.groupby("campaign_id")["content_id"].agg(lambda s: tuple(sorted(set(s))))
    assert (used == plan.loc[used.index, "variants"]).all()
    shares = sends.groupby(["campaign_id", "content_id"]).size() / sends.groupby("campaign_id").size()
    expected = 1.0 / shares.index.get_level_values(0).map(plan["variants"].map(len))
    assert np.abs(shares.to_numpy() - expected.to_numpy()).max() < 0.08


def test_send_time_and_affinity_are_visible_in_the_history(small_history, small_world):
    """What models must learn is in the data: opens at the preferred hour, clicks on the liked topic."""
    sends, events = small_history["sends"], small_history["events"]
    tr = small_world.traits
    c = sends["contact_id"].to_numpy()
    hour, weekday = small_world.response.local_hour(c, sends["sent_at"])
    peak = np.where(weekday >= 5, tr.peak_hour_weekend[c], tr.peak_hour_weekday[c])
    d = np.abs(hour - peak)
    near = np.minimum(d, 24 - d) < 1.5
    opened = sends["send_id"].isin(events.loc[events["type"] == "open", "send_id"]).to_numpy()
    assert opened[near].mean() > 1.4 * opened[~near].mean()
    topic = pd.Categorical(sends["content_id"].map(small_world.content.set_index("content_id")["topic"]),
                           categories=tr.topics).codes
    aff = tr.topic_affinity[c, topic]
    clicked = sends["send_id"].isin(events.loc[events["type"] == "click", "send_id"]).to_numpy()
    hi = aff > np.quantile(aff, 0.75)
    lo = aff < np.quantile(aff, 0.25)
    assert clicked[opened & hi].mean() > 2 * clicked[opened & lo].mean()


def test_cli_writes_event_log_and_ground_truth(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("INBOX_DATA_DIR", str(tmp_path / "default"))
    code = inbox_main(["simulate", "--contacts", "600", "--days", "14", "--seed", "2", "--out",
                       str(tmp_path / "data"), "--quiet"])
    assert code == 0
    out = capsys.readouterr().out
    assert "sends" in out and "open rate" in out
    tables = read_event_log(tmp_path / "data" / "events")
    assert len(tables["contacts"]) == 600 and len(tables["events"]) > 0
    world = World.load(tmp_path / "data" / "world")
    assert world.config == WorldConfig(n_contacts=600, n_days=14, seed=2)
    assert not (tmp_path / "default").exists()


def test_cli_rejects_bad_numbers(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("INBOX_DATA_DIR", str(tmp_path))
    assert inbox_main(["simulate", "--contacts", "0"]) == 2
    assert "n_contacts" in capsys.readouterr().err
    assert inbox_main(["simulate", "--days", "-3"]) == 2
    assert list(tmp_path.iterdir()) == []


def test_simulate_to_disk_uses_settings(tmp_path, monkeypatch):
    from inbox.settings import load_settings
    from simulation.cli import simulate_to_disk

    monkeypatch.setenv("INBOX_DATA_DIR", str(tmp_path))
    settings = load_settings()
    summary = simulate_to_disk(WorldConfig(n_contacts=400, n_days=10, seed=9), settings=settings, progress=False)
    assert summary["contacts"] == 400 and summary["sends"] > 0
    assert summary["events"] == sum(summary["events_by_type"].values())
    assert 0 < summary["open_rate"] < 1
    for name in ("contacts", "content", "sends", "events"):
        assert (settings.events_dir / f"{name}.parquet").exists()
    assert (settings.world_dir / "traits.npz").exists()
    with pytest.raises(ValueError):
        simulate_to_disk(WorldConfig(n_contacts=-1), settings=settings, progress=False)


def test_arrow_tables_hold_the_same_data_in_the_contract_types(small_world, small_history):
    from simulation.cli import summarize
    from simulation.schema import TABLES

    arrow = simulate_history(small_world, progress=False, as_arrow=True)
    for name in ("sends", "events"):
        assert [f.type for f in arrow[name].schema] == [f.type for f in TABLES[name].arrow]  # the writer casts nothing
        assert validate(name, arrow[name]).equals(validate(name, small_history[name]))
    assert arrow["sends"]["decision_id"].null_count == small_history["sends"]["decision_id"].isna().sum() > 0
    assert summarize(arrow) == summarize(small_history)
