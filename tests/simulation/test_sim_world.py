"""World generation: validated config, deterministic, realistic attributes, traits, save/load."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from disposable_email_domains import blocklist

from simulation import catalog
from simulation.eventlog import validate
from simulation.world import World, WorldConfig, generate_world


@pytest.mark.parametrize("field,value", [
    ("n_contacts", 0), ("n_contacts", -5), ("n_contacts", 2.5), ("n_days", 0), ("n_content", 0),
    ("seed", -1), ("start", "yesterday"), ("start", "2026-05-01 10:00"), ("consent_share", 1.5),
    ("audience_share", (0.0, 0.5)), ("audience_share", (0.8, 0.5)), ("variants_per_campaign", (3, 2)),
    ("variants_per_campaign", (1, 500)),
])
def test_config_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=f"WorldConfig.{field}"):
        WorldConfig(**{field: value})


def test_config_is_frozen_and_round_trips_json():
    cfg = WorldConfig(n_contacts=10, seed=3, audience_share=(0.2, 0.4))
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.n_contacts = 5
    assert WorldConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(ValueError, match="unknown field"):
        WorldConfig.from_json('{"n_contacts": 3, "colour": 1}')
    assert cfg.end_ts - cfg.start_ts == pd.Timedelta(days=cfg.n_days)


def test_tables_follow_the_contract(small_world):
    validate("contacts", small_world.contacts)
    validate("content", small_world.content)
    assert len(small_world.contacts) == small_world.config.n_contacts
    assert len(small_world.content) == small_world.config.n_content
    assert len(small_world.traits) == small_world.config.n_contacts


def test_same_seed_same_world_other_seed_differs():
    a = generate_world(WorldConfig(n_contacts=500, seed=1))
    b = generate_world(WorldConfig(n_contacts=500, seed=1))
    c = generate_world(WorldConfig(n_contacts=500, seed=2))
    pd.testing.assert_frame_equal(a.contacts, b.contacts)
    pd.testing.assert_frame_equal(a.content, b.content)
    np.testing.assert_array_equal(a.traits.topic_affinity, b.traits.topic_affinity)
    assert not a.contacts["email"].equals(c.contacts["email"])
    assert not np.allclose(a.traits.base_engagement, c.traits.base_engagement)


def test_time_zones_span_continents_and_match_countries(small_world):
    contacts = small_world.contacts
    zones = set(contacts["timezone"])
    assert {"America/New_York", "Europe/Berlin", "Asia/Kolkata"} <= zones
    assert len({z.split("/")[0] for z in zones}) >= 4  # America, Europe, Asia, Australia, ...
    allowed = {(c, z) for c, z, _ in catalog.TIMEZONES}
    assert set(zip(contacts["country"], contacts["timezone"])) <= allowed


def test_emails_cover_every_domain_kind(small_world):
    emails = small_world.contacts["email"]
    kind = small_world.traits.domain_kind
    domain = emails.str.split("@").str[1].to_numpy()
    local = emails.str.split("@").str[0].to_numpy()
    assert set(kind) == set(catalog.DOMAIN_KINDS)
    assert np.isin(domain[kind == "free_mail"], catalog.FREE_MAIL_DOMAINS).all()
    assert np.isin(domain[kind == "typo"], catalog.TYPO_DOMAINS).all()
    assert all(d in blocklist for d in domain[kind == "disposable"])
    assert np.isin(local[kind == "role"], catalog.ROLE_LOCAL_PARTS).all()
    assert not np.isin(domain[kind == "corporate"], catalog.FREE_MAIL_DOMAINS + catalog.TYPO_DOMAINS).any()
    assert emails.str.fullmatch(r"[a-z0-9._+-]+@[a-z0-9.-]+\.[a-z]+").all()
    assert 0.9 < small_world.contacts["consent"].mean() < 1.0


def test_content_has_topics_formats_and_subject_traits(small_world):
    content = small_world.content
    assert set(content["topic"]) == set(catalog.TOPICS)
    assert content["subject_length"].eq(content["subject"].str.len()).all()
    assert content["has_personalization"].eq(content["subject"].str.contains("{first_name}", regex=False)).all()
    for flag in ("has_personalization", "has_urgency", "has_emoji"):
        assert 0 < content[flag].mean() < 1


def _r2_from_segments(world, values: np.ndarray) -> float:
    """Share of a trait's variance explained by the public attributes (segment means)."""
    c = world.contacts
    key = c["industry"] + c["company_size"] + c["seniority"] + c["signup_source"] + world.traits.domain_kind
    seg_mean = pd.Series(values).groupby(key.to_numpy()).transform("mean").to_numpy()
    return 1 - np.var(values - seg_mean) / np.var(values)


def test_traits_are_partly_predictable_and_partly_idiosyncratic():
    world = generate_world(WorldConfig(n_contacts=20_000, seed=5))
    tr = world.traits
    for name, values in [("engagement", tr.base_engagement), ("conversion", tr.conversion_propensity),
                         ("affinity", tr.topic_affinity[:, catalog.TOPICS.index("promotion")])]:
        r2 = _r2_from_segments(world, values)
        assert 0.1 < r2 < 0.85, (name, r2)
    # preferred hours differ by seniority, weekday and weekend differ
    peak = pd.Series(tr.peak_hour_weekday).groupby(world.contacts["seniority"].to_numpy()).median()
    assert peak["executive"] < peak["ic"]
    assert np.mean(np.abs(tr.peak_hour_weekday - tr.peak_hour_weekend) > 1.0) > 0.5
    assert (tr.fatigue_sensitivity > 0).all()
    # invalid addresses concentrate on typo / disposable domains
    invalid = tr.bounce_probability > 0.5
    assert invalid[tr.domain_kind == "typo"].mean() > 0.5 > invalid[tr.domain_kind == "corporate"].mean()


def test_save_and_load_round_trip(tmp_path, small_world):
    small_world.save(tmp_path / "world")
    back = World.load(tmp_path / "world")
    assert back.config == small_world.config
    pd.testing.assert_frame_equal(back.contacts, validate("contacts", small_world.contacts).to_pandas())
    for f in dataclasses.fields(small_world.traits):
        a, b = getattr(small_world.traits, f.name), getattr(back.traits, f.name)
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(back.content_traits.click_appeal, small_world.content_traits.click_appeal)
    assert not [p for p in (tmp_path / "world").iterdir() if p.name.startswith(".")]
    ids = np.arange(5)
    t = np.full(5, np.datetime64("2026-06-02T09:00", "us"))
    for key, v in small_world.response.probabilities(ids, ids, t).items():
        np.testing.assert_allclose(back.response.probabilities(ids, ids, t)[key], v)


def test_load_names_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        World.load(tmp_path)
