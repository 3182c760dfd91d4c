"""Training in bounded memory: the stable contact sample, the row cap, and reads limited to the sample."""
import numpy as np
import pandas as pd
import pytest


def test_contact_unit_is_splitmix64():
    """The published SplitMix64 outputs for state 0 (Vigna's splitmix64.c): same numbers on any machine."""
    from models.sample import contact_unit

    got = contact_unit(np.array([0, 0x9E3779B97F4A7C15 - (1 << 64)], dtype=np.int64))
    want = np.array([0xE220A8397B1DCDAF >> 11, 0x6E789E6AA1B965F4 >> 11], dtype=np.float64) / float(1 << 53)
    assert np.array_equal(got, want)


def test_sample_is_stable_and_nested():
    from models.sample import contact_unit, in_sample

    ids = np.arange(200_000, dtype=np.int64) * 7 + 3
    u = contact_unit(ids)
    assert ((u >= 0) & (u < 1)).all()
    assert np.array_equal(u, contact_unit(ids.copy()))  # same ids, same numbers, call after call
    assert np.array_equal(contact_unit(ids[::-1])[::-1], u)  # a contact's number does not depend on the others
    low, high = in_sample(ids, 0.05), in_sample(ids, 0.2)
    assert not (low & ~high).any()  # a higher rate gives a superset
    assert abs(low.mean() - 0.05) < 0.003 and abs(high.mean() - 0.2) < 0.005  # ~uniform
    assert in_sample(ids, 1.0).all()


def test_rate_for_cap_is_the_largest_sample_under_the_cap():
    from models.sample import contact_unit, rate_for_cap

    rng = np.random.default_rng(0)
    ids = np.arange(5000, dtype=np.int64)
    rows = rng.integers(0, 30, len(ids))
    for cap in (1, 777, 10_000, int(rows.sum()) - 1):
        s = rate_for_cap(ids, rows, cap)
        keep = contact_unit(ids) < s.rate
        assert np.array_equal(s.ids, ids[keep])
        assert s.rows == rows[keep].sum() <= cap
        nxt = np.argmin(np.where(keep, np.inf, contact_unit(ids)))  # the contact that did not fit
        assert rows[keep].sum() + rows[nxt] > cap
        assert s.params()["sample.rows"] == s.rows and s.params()["sample.max_rows"] == cap
    everyone = rate_for_cap(ids, rows, int(rows.sum()))
    assert everyone.rate == 1.0 and len(everyone.ids) == len(ids)
    with pytest.raises(ValueError, match="max_rows"):
        rate_for_cap(ids, rows, 0)


def test_data_range_and_send_counts_match_the_full_log(model_settings):
    """Statistics-based range and streamed per-contact counts equal the in-memory computation."""
    from models.harness import TrainingContext
    from models.sampled_log import contact_list, data_range, sends_per_contact
    from models.send_time_training import SendTimeSpec
    from simulation.eventlog import read_event_log

    log = read_event_log(model_settings.events_dir)
    first, last = data_range(model_settings.events_dir)
    assert first == log["sends"]["sent_at"].min().floor("D")
    assert last == max(log["sends"]["sent_at"].max(), log["events"]["occurred_at"].max()).ceil("D")
    contacts = contact_list(model_settings.events_dir)
    split = SendTimeSpec().time_split(TrainingContext(model_settings))
    sends = log["sends"]
    inside = sends[split.assign(sends["sent_at"]) != ""]
    want = inside.groupby("contact_id").size().reindex(contacts["contact_id"], fill_value=0).to_numpy()
    ids = contacts["contact_id"].to_numpy(np.int64)
    assert np.array_equal(sends_per_contact(model_settings.events_dir, ids, split), want)


@pytest.mark.parametrize("name", ["lead_scoring", "send_time", "content_preference"])
def test_training_set_reads_only_sampled_contacts_under_the_cap(model_settings, name):
    from models.harness import TrainingContext
    from models.sample import in_sample
    from models.training import make_spec

    ctx = TrainingContext(model_settings, fast=True, max_rows=6000)
    prepared = make_spec(name, fast=True).prepare(ctx)
    s = prepared.sampling
    assert 0 < s["sample.rate"] < 1 and s["sample.rows"] <= 6000 < s["sample.rows_full"]
    assert len(prepared.frame) <= 6000
    ids = prepared.frame["contact_id"].to_numpy(np.int64)
    assert in_sample(ids, s["sample.rate"]).all()
    log = ctx._log[1]  # what was read from the event log
    for table in (log.contacts, log.sends, log.events):
        assert in_sample(table["contact_id"].to_numpy(np.int64), s["sample.rate"]).all()
    assert len(log.contacts) == s["sample.contacts"]
    assert set(log.events["type"]) <= {"conversion", "open", "click"}


def test_contact_sampling_keeps_the_label_rate(model_settings):
    """Whole contacts are sampled (no negative down-sampling): the positive rate stays the population's,
    so probabilities need no reweighting."""
    from models.harness import TrainingContext
    from models.training import make_spec

    full = make_spec("content_preference", fast=True).prepare(TrainingContext(model_settings, fast=True))
    part = make_spec("content_preference", fast=True).prepare(TrainingContext(model_settings, fast=True,
                                                                               max_rows=10_000))
    assert part.sampling["sample.rate"] < 0.5
    p, q, n = full.frame["clicked"].mean(), part.frame["clicked"].mean(), len(part.frame)
    assert abs(q - p) < 4 * np.sqrt(p * (1 - p) / n)


def test_max_rows_is_validated(model_settings):
    from models.harness import TrainingContext

    for bad in (0, -5, 2.5, True):
        with pytest.raises(ValueError, match="max_rows"):
            TrainingContext(model_settings, max_rows=bad)


def test_bounded_feature_read_equals_a_whole_table_join(model_settings):
    """`feature_frame` reads only the picked snapshots; the result equals the as-of join over whole tables."""
    from models import datasets as D

    eng = pd.read_parquet(model_settings.features_dir / "contact_engagement.parquet",
                          columns=["contact_id", "event_timestamp"])
    rng = np.random.default_rng(3)
    entity = eng.sample(3000, random_state=2).reset_index(drop=True)
    entity["event_timestamp"] = entity["event_timestamp"] + pd.to_timedelta(
        rng.integers(-4 * 86400, 6 * 86400, len(entity)), unit="s")  # some before any snapshot, some past the TTL
    entity["content_id"] = rng.integers(0, 48, len(entity))
    services = ("send_time", "lead_scoring", "content_preference")
    got = D.feature_frame(entity, services, model_settings)
    want = entity.reset_index(drop=True).copy()
    want["event_timestamp"] = pd.to_datetime(want["event_timestamp"], utc=True).astype("datetime64[us, UTC]")
    reads, _ = D.plan_reads(services, model_settings)
    for r in reads:  # the plain join: whole table, merge_asof on every column
        table = pd.read_parquet(r.path, columns=None if r.features is None else [r.key, "event_timestamp", *r.features])
        table["event_timestamp"] = table["event_timestamp"].astype("datetime64[us, UTC]")
        table = table.drop(columns=[c for c in table.columns if c in want.columns and c not in (r.key, "event_timestamp")])
        right = table.rename(columns={"event_timestamp": "_feature_ts"}).sort_values("_feature_ts", kind="stable")
        left = want.assign(_row=np.arange(len(want))).sort_values("event_timestamp", kind="stable")
        want = pd.merge_asof(left, right, left_on="event_timestamp", right_on="_feature_ts", by=r.key,
                             direction="backward", allow_exact_matches=True,
                             tolerance=pd.Timedelta(r.ttl) if r.ttl is not None else None)
        want = want.sort_values("_row").drop(columns=["_row", "_feature_ts"]).reset_index(drop=True)
    assert got.isna().any().any() and got.notna().any().all()
    pd.testing.assert_frame_equal(got, want)


def test_run_logs_the_sample(model_settings):
    """`inbox train --max-rows`: the cap, rate and sizes are MLflow params of the run."""
    import mlflow

    from models.training import train_model

    result = train_model("lead_scoring", settings=model_settings, progress=False, fast=True, max_rows=5000)
    params = mlflow.get_run(result.run_id).data.params
    assert params["sample.max_rows"] == "5000" and 0 < float(params["sample.rate"]) < 1
    assert int(params["sample.rows"]) <= 5000
    assert sum(int(params[f"rows_{b}"]) for b in ("train", "valid", "test")) <= 5000


def test_oracle_world_of_some_contacts_answers_like_the_whole_world(model_settings):
    from simulation.world import World

    whole = World.load(model_settings.world_dir)
    ids = np.sort(np.random.default_rng(5).choice(whole.contacts["contact_id"].to_numpy(), 300, replace=False))
    part = World.load(model_settings.world_dir, contact_ids=ids[::-1])
    assert np.array_equal(part.contacts["contact_id"].to_numpy(), ids)
    n = 2000
    rng = np.random.default_rng(6)
    c = rng.choice(ids, n)
    k = rng.choice(whole.content["content_id"].to_numpy(), n)
    t = np.datetime64("2026-06-01T00:00:00", "us") + rng.integers(0, 30 * 86400, n).astype("timedelta64[s]")
    r = rng.integers(0, 4, n)
    a, b = whole.response.probabilities(c, k, t, r), part.response.probabilities(c, k, t, r)
    for name in a:
        assert np.array_equal(a[name], b[name]), name
    with pytest.raises(ValueError, match="not in the world"):
        World.load(model_settings.world_dir, contact_ids=[10**9])


def test_feature_frames_read_once_and_answer_like_separate_calls(model_settings):
    """One pass for several entity frames: each result equals its own `feature_frame` (values and dtypes),
    although the frames' missing values differ (a snapshot time before some contacts existed)."""
    from models.datasets import feature_frame, feature_frames

    contacts = pd.read_parquet(model_settings.events_dir / "contacts.parquet", columns=["contact_id"])
    ids = contacts["contact_id"].to_numpy()[:400]
    early = pd.DataFrame({"contact_id": ids, "event_timestamp": pd.Timestamp("2026-05-03", tz="UTC")})
    late = pd.DataFrame({"contact_id": ids[::2], "event_timestamp": pd.Timestamp("2026-06-20 13:00", tz="UTC")})
    together = feature_frames([late, early], ("send_time", "lead_scoring"), model_settings)
    for got, entity in zip(together, (late, early)):
        pd.testing.assert_frame_equal(got, feature_frame(entity, ("send_time", "lead_scoring"), model_settings))
    assert together[1].isna().any().any()


def test_cli_max_rows_flag():
    import argparse

    from models import cli

    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(["train", "lead_scoring", "--max-rows", "250000"])
    assert args.max_rows == 250_000
    assert parser.parse_args(["train", "all"]).max_rows is None  # the default cap applies
    with pytest.raises(ValueError, match="--max-rows"):
        cli._train(parser.parse_args(["train", "lead_scoring", "--max-rows", "0"]))
