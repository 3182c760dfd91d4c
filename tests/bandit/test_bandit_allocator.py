"""Allocator: logging before return, rewards, learning, snapshots, guardrails."""
import numpy as np
import pandas as pd
import pytest

from experiments.bandit import Allocator, UnknownDecisionError

T0 = pd.Timestamp("2026-05-01 09:00", tz="UTC")


def test_decisions_logged_with_the_probability_used(allocator, make_contexts):
    out = allocator.choose("spring", np.arange(300), make_contexts(300), now=T0)
    log = allocator.log.decisions("spring").set_index("decision_id").loc[out["decision_id"]]
    assert len(log) == 300
    probs = np.vstack(out["probabilities"].to_list())
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert probs.min() >= 0.02 - 1e-12
    chosen = [list(e).index(v) for e, v in zip(log["eligible"], log["variant"])]
    np.testing.assert_array_equal(log["propensity"].to_numpy(), np.vstack(log["probabilities"])[np.arange(300), chosen])
    np.testing.assert_array_equal(log["propensity"].to_numpy(), out["propensity"].to_numpy())
    np.testing.assert_array_equal(log["variant"].to_numpy(), out["variant"].to_numpy())
    assert (log["decided_at"] == T0).all()
    np.testing.assert_allclose(np.vstack(log["context"]), make_contexts(300).to_numpy())


def test_same_decision_id_same_choice(allocator, make_contexts):
    ids = [f"send-{i}" for i in range(200)]
    a = allocator.choose("spring", np.arange(200), make_contexts(200), now=T0, decision_ids=ids)
    # replay the same ids (e.g. in a second log) with the same policy version and context
    from experiments.bandit import Allocator as A

    other = A.open(allocator.log.path.parent / "replay")
    other.register_campaign("spring", pd.DataFrame({
        "content_id": [10, 11, 12, 13], "topic": ["product", "education", "product", "event"],
        "subject_length": [30, 42, 55, 20], "has_emoji": [False, True, False, True]}),
        ["x1", "x2", "x3"], wait_window="48h", floor=0.02)
    b = other.choose("spring", np.arange(200), make_contexts(200), now=T0, decision_ids=ids)
    np.testing.assert_array_equal(a["variant"], b["variant"])
    np.testing.assert_array_equal(a["propensity"], b["propensity"])
    with pytest.raises(Exception):  # a decision id is logged once
        allocator.choose("spring", [1], make_contexts(1), now=T0, decision_ids=["send-1"])
    other.close()


def test_reward_ingestion_idempotent_late_and_unknown(allocator, make_contexts):
    out = allocator.choose("spring", np.arange(3), make_contexts(3), now=T0)
    d0, d1 = out["decision_id"][:2]
    assert allocator.reward(d0, 1.0, T0 + pd.Timedelta("2h"), event_id=101) == "accepted"
    assert allocator.reward(d0, 1.0, T0 + pd.Timedelta("2h"), event_id=101) == "duplicate"
    assert allocator.reward(d1, 1.0, T0 + pd.Timedelta("49h"), event_id=102) == "late"
    with pytest.raises(UnknownDecisionError, match="unknown decision 'nope'"):
        allocator.reward("nope", 1.0, T0, event_id=103)
    audit = allocator.log.audit()
    assert audit["decision_id"].tolist() == ["nope"] and audit["reason"].iloc[0] == "unknown decision id"
    rewards = allocator.log.rewards()
    assert len(rewards) == 2 and rewards.set_index("event_id").loc["102", "late"] == 1
    with pytest.raises(ValueError, match="timezone-aware"):
        allocator.reward(d0, 1.0, pd.Timestamp("2026-05-01"), event_id=104)


def test_aggregation_first_and_sum(tmp_path, variants):
    alloc = Allocator.open(tmp_path / "agg")
    for name, agg in (("first", "first"), ("sum", "sum")):
        alloc.register_campaign(name, variants, ["x1"], wait_window="1h", aggregation=agg, default_reward=-1.0,
                                reward_range=(-1.0, 3.0))
        out = alloc.choose(name, [1, 2], None, now=T0)
        did = out["decision_id"][0]
        alloc.rewards([did, did], [2.0, 3.0], [T0 + pd.Timedelta("20m"), T0 + pd.Timedelta("10m")],
                      [f"{name}-a", f"{name}-b"])
        joined = alloc.log.joined(name, 0, 2**62, agg, -1.0).set_index("decision_id")
        assert joined.loc[did, "reward"] == (3.0 if agg == "first" else 5.0)
        assert joined.loc[out["decision_id"][1], "reward"] == -1.0
    alloc.close()


def test_late_rewards_are_not_learned(tmp_path, variants, make_contexts):
    """Two campaigns with identical decisions; one gets its rewards late: its posterior stays at the prior b=0."""
    alloc = Allocator.open(tmp_path / "late")
    for cid in ("on_time", "too_late"):
        alloc.register_campaign(cid, variants, ["x1"], wait_window="1h")
        out = alloc.choose(cid, np.arange(50), make_contexts(50)[["x1"]], now=T0)
        delay = pd.Timedelta("30m") if cid == "on_time" else pd.Timedelta("2h")
        statuses = alloc.rewards(out["decision_id"], np.ones(50), [T0 + delay] * 50, [f"{cid}{i}" for i in range(50)])
        assert set(statuses) == {"accepted" if cid == "on_time" else "late"}
    alloc.learn(now=T0 + pd.Timedelta("3h"))
    snap = alloc.snapshots.read(alloc.snapshots.newest())
    assert snap.campaigns["on_time"].posterior.b.sum() > 0
    assert snap.campaigns["too_late"].posterior.b.sum() == 0
    assert snap.campaigns["too_late"].posterior.n == 50  # the decisions were learned with the default reward
    alloc.close()


def _reward_variant(alloc, out, good, when, prefix):
    rewards = (out["variant"] == good).astype(float).to_numpy()
    alloc.rewards(out["decision_id"], rewards, [when] * len(out), [f"{prefix}{i}" for i in range(len(out))])


def test_learning_hot_reload_and_resume(tmp_path, variants):
    server = Allocator.open(tmp_path / "b")
    server.register_campaign("spring", variants, ["x1"], wait_window="1h", floor=0.01)
    trainer = Allocator.open(tmp_path / "b")  # a second process: the learner
    assert server.policy_version == 0
    out = server.choose("spring", np.arange(2000), None, now=T0)
    _reward_variant(server, out, 12, T0 + pd.Timedelta("5m"), "r")
    v1 = trainer.learn(now=T0 + pd.Timedelta("2h"))
    assert v1 == 1 and server.reload() and server.policy_version == 1
    assert not server.reload()  # nothing newer
    after = server.choose("spring", np.arange(2000), None, now=T0 + pd.Timedelta("3h"))
    assert (after["variant"] == 12).mean() > 0.8
    assert (after["policy_version"] == 1).all()
    # resume: a fresh learner continues from the snapshot without refolding old decisions
    fresh = Allocator.open(tmp_path / "b")
    v2 = fresh.learn(now=T0 + pd.Timedelta("2h"))
    s1, s2 = fresh.snapshots.read(v1), fresh.snapshots.read(v2)
    np.testing.assert_array_equal(s1.campaigns["spring"].posterior.A, s2.campaigns["spring"].posterior.A)
    _reward_variant(server, after, 12, T0 + pd.Timedelta("3h5m"), "s")
    v3 = fresh.learn(now=T0 + pd.Timedelta("5h"))
    assert fresh.snapshots.read(v3).campaigns["spring"].posterior.n == 4000
    assert sorted(p.name for p in (tmp_path / "b" / "snapshots").iterdir()) == [
        "v000001.npz", "v000002.npz", "v000003.npz"]
    for a in (server, trainer, fresh):
        a.close()


def test_variants_added_retired_excluded_without_restart(tmp_path, variants):
    server = Allocator.open(tmp_path / "v")
    server.register_campaign("spring", variants, ["x1"], wait_window="1h")
    admin = Allocator.open(tmp_path / "v", config_ttl=0.0)
    server.config_ttl = 0.0
    admin.retire_variant("spring", 11)
    out = server.choose("spring", np.arange(500), None, now=T0)
    assert 11 not in set(out["variant"]) and len(out["probabilities"][0]) == 3
    new = pd.DataFrame({"content_id": [20], "topic": ["event"], "subject_length": [33], "has_emoji": [False]})
    admin.add_variant("spring", new)
    out = server.choose("spring", np.arange(2000), None, now=T0)
    assert set(out["variant"]) == {10, 12, 13, 20}
    out = server.choose("spring", np.arange(500), None, now=T0, exclude=[10, 20])
    assert set(out["variant"]) <= {12, 13}
    with pytest.raises(ValueError, match="no eligible variant"):
        server.choose("spring", [1], None, now=T0, exclude=[10, 12, 13, 20])
    # learning and serving work with the grown model
    server.rewards(out["decision_id"], np.ones(500), [T0 + pd.Timedelta("1m")] * 500, [f"e{i}" for i in range(500)])
    server.learn(now=T0 + pd.Timedelta("2h"))
    assert server.reload()
    assert len(server.choose("spring", [1], None, now=T0 + pd.Timedelta("3h"))) == 1
    server.close()
    admin.close()


def test_kill_switch_forces_one_variant(allocator, make_contexts):
    allocator.kill_switch("spring", 13)
    out = allocator.choose("spring", np.arange(300), make_contexts(300), now=T0)
    assert (out["variant"] == 13).all() and (out["propensity"] == 1.0).all() and (out["mode"] == "kill_switch").all()
    with pytest.raises(ValueError, match="kill-switch variant"):
        allocator.choose("spring", [1], make_contexts(1), now=T0, exclude=[13])
    allocator.kill_switch("spring", None)
    out = allocator.choose("spring", np.arange(300), make_contexts(300), now=T0)
    assert out["variant"].nunique() > 1 and (out["mode"] == "policy").all()
    with pytest.raises(ValueError, match="not an active variant"):
        allocator.kill_switch("spring", 99)


def test_holdout_served_by_control_and_stable_per_contact(allocator, make_contexts):
    allocator.set_guardrails("spring", holdout_share=0.2, control_variant=10)
    ids = np.arange(5000)
    out = allocator.choose("spring", ids, make_contexts(5000), now=T0)
    held = out["mode"] == "holdout"
    assert 0.17 < held.mean() < 0.23
    assert (out.loc[held, "variant"] == 10).all() and (out.loc[held, "propensity"] == 1.0).all()
    again = allocator.choose("spring", ids, make_contexts(5000), now=T0)
    assert (again["mode"] == out["mode"]).all()


def test_apprentice_mode_logs_policy_choice_and_agreement(tmp_path, variants):
    alloc = Allocator.open(tmp_path / "app")
    alloc.register_campaign("spring", variants, ["x1"], wait_window="1h", control_variant=10)
    out = alloc.choose("spring", np.arange(1000), None, now=T0)
    _reward_variant(alloc, out, 10, T0 + pd.Timedelta("5m"), "r")  # the control is the best variant
    alloc.learn(now=T0 + pd.Timedelta("2h"))
    alloc.reload()
    alloc.set_apprentice("spring", True)
    served = alloc.choose("spring", np.arange(1000), None, now=T0 + pd.Timedelta("3h"))
    assert (served["variant"] == 10).all() and (served["mode"] == "apprentice").all()
    report = alloc.apprentice_report("spring")
    assert report["decisions"] == 1000 and report["agreement"] > 0.8
    log = alloc.log.decisions("spring")
    assert set(log.loc[log["mode"] == "apprentice", "policy_choice"]) <= {10, 11, 12, 13}
    alloc.close()


def test_bad_input_rejected_with_field_names(allocator, variants):
    with pytest.raises(ValueError, match="campaign_id: unknown campaign"):
        allocator.choose("nope", [1], None)
    with pytest.raises(ValueError, match="context: column 'x1' must be numeric"):
        allocator.choose("spring", [1], pd.DataFrame({"x1": ["a"]}))
    with pytest.raises(ValueError, match="policy: unknown"):
        allocator.register_campaign("x", variants, ["x1"], policy="magic")
    with pytest.raises(ValueError, match="control_variant"):
        allocator.register_campaign("x", variants, ["x1"], holdout_share=0.1)
    with pytest.raises(ValueError, match="wait_window"):
        allocator.register_campaign("x", variants, ["x1"], wait_window="soon")
    for bad in ("", "Product", "a b", "x" * 101, 5):
        with pytest.raises(ValueError, match="topic"):
            allocator.register_campaign("x", variants, ["x1"], topic=bad)
    assert "x" not in allocator.log.campaign_ids()
    allocator.register_campaign("x", variants, ["x1"], topic="product")
    assert allocator.log.campaign("x")[1]["topic"] == "product"


def test_ingest_events_from_event_log_tables(allocator, make_contexts):
    out = allocator.choose("spring", np.arange(3), make_contexts(3), now=T0)
    sends = pd.DataFrame({"send_id": [1, 2, 3, 4], "campaign_id": ["spring"] * 3 + ["other"],
                          "decision_id": list(out["decision_id"]) + [None]})
    at = T0 + pd.Timedelta("1h")
    events = pd.DataFrame({
        "event_id": [100, 101, 102, 103, 104], "send_id": [1, 1, 2, 3, 4],
        "type": ["open", "click", "click", "click", "click"], "occurred_at": [at] * 4 + [at],
        "value": [None] * 5})
    status = allocator.ingest_events(events, sends)
    assert status.set_index("event_id")["status"].to_dict() == {101: "accepted", 102: "accepted", 103: "accepted"}
    again = allocator.ingest_events(events, sends)
    assert set(again["status"]) == {"duplicate"}
