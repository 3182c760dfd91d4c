"""Nothing outside the process steers the allocator (issue 13): rewards are bounded and dated
after their decision, and the learner never lets a poisoned update reach the policy that serves."""
import numpy as np
import pandas as pd
import pytest

from experiments.bandit import Allocator, PolicyStateError
from experiments.bandit.learner import RefusedUpdate, check_posterior
from experiments.bandit.linear import LinearPosterior
from experiments.bandit.snapshots import CampaignState, Snapshot

T0 = pd.Timestamp("2026-05-01 09:00", tz="UTC")


@pytest.mark.parametrize("value", [1e300, -1e300, 2.0, -0.5, float("inf"), float("nan")])
def test_reward_outside_the_declared_range_is_refused_naming_the_field(allocator, make_contexts, value):
    did = allocator.choose("spring", [1], make_contexts(1), now=T0)["decision_id"][0]
    with pytest.raises(ValueError, match=r"^reward: ") as info:
        allocator.reward(did, value, T0 + pd.Timedelta("1h"), event_id="e1")
    assert "finite" in str(info.value) or "outside the campaign's declared range [0, 1]" in str(info.value)
    assert len(allocator.log.rewards()) == 0
    audit = allocator.log.audit()
    assert audit["decision_id"].tolist() == [did] and audit["reason"].iloc[0].startswith("reward: ")
    # the ends of the range are in it
    assert allocator.reward(did, 0.0, T0 + pd.Timedelta("1h"), event_id="e2") == "accepted"
    assert allocator.reward(did, 1.0, T0 + pd.Timedelta("1h"), event_id="e3") == "accepted"


def test_reward_dated_before_its_decision_is_refused(allocator, make_contexts):
    did = allocator.choose("spring", [1], make_contexts(1), now=T0)["decision_id"][0]
    for when in (T0 - pd.Timedelta("1h"), pd.Timestamp("2015-01-01", tz="UTC"), T0 - pd.Timedelta("1001ms")):
        with pytest.raises(ValueError, match=r"^occurred_at: .* is before the decision it rewards"):
            allocator.reward(did, 1.0, when, event_id=f"early-{when.value}")
    assert len(allocator.log.rewards()) == 0 and len(allocator.log.audit()) == 3
    # a provider's whole-second timestamp may read up to 1 s before the decision
    assert allocator.reward(did, 1.0, T0 - pd.Timedelta("999ms"), event_id="same-second") == "accepted"


def test_batch_rewards_refuse_row_by_row(allocator, make_contexts):
    """Webhooks and event ingestion send batches: one bad row is refused (and audited), the others land."""
    out = allocator.choose("spring", np.arange(4), make_contexts(4), now=T0)
    ids = out["decision_id"].tolist()
    when = [T0 + pd.Timedelta("1h")] * 3 + [T0 - pd.Timedelta("1d")]
    statuses = allocator.rewards(ids, [1.0, 1e300, float("nan"), 1.0], when, ["a", "b", "c", "d"])
    assert statuses == ["accepted", "rejected", "rejected", "rejected"]
    reasons = allocator.log.audit()["reason"].tolist()
    assert [r.split(":", 1)[0] for r in reasons] == ["reward", "reward", "occurred_at"]
    assert allocator.log.rewards()["event_id"].tolist() == ["a"]


def test_declared_range_admits_revenue_and_is_validated(tmp_path, variants, make_contexts):
    alloc = Allocator.open(tmp_path / "revenue")
    alloc.register_campaign("shop", variants, ["x1"], reward_event="conversion", reward_value="value",
                            reward_range=(0, 500))
    did = alloc.choose("shop", [1], None, now=T0)["decision_id"][0]
    assert alloc.reward(did, 249.0, T0 + pd.Timedelta("1h"), event_id="order-1") == "accepted"
    with pytest.raises(ValueError, match=r"reward: 501\.0 is outside the campaign's declared range \[0, 500\]"):
        alloc.reward(did, 501.0, T0 + pd.Timedelta("1h"), event_id="order-2")
    for bad, message in (((1, 0), "lo must be below hi"), ((0, float("inf")), "finite"), ((0, 1e300), "finite"),
                         ("0-1", "two numbers"), ((0, 1, 2), "two numbers")):
        with pytest.raises(ValueError, match=f"reward_range: .*{message}"):
            alloc.register_campaign("bad", variants, ["x1"], reward_range=bad)
    with pytest.raises(ValueError, match="default_reward: .* outside reward_range"):
        alloc.register_campaign("bad", variants, ["x1"], default_reward=-1.0)
    alloc.close()


def test_ingested_events_outside_the_range_are_rejected(tmp_path, variants):
    alloc = Allocator.open(tmp_path / "ingest")
    alloc.register_campaign("shop", variants, ["x1"], reward_event="conversion", reward_value="value",
                            reward_range=(0, 100))
    out = alloc.choose("shop", [1, 2], None, now=T0)
    sends = pd.DataFrame({"send_id": [1, 2], "campaign_id": "shop", "decision_id": out["decision_id"]})
    events = pd.DataFrame({"event_id": ["c1", "c2"], "send_id": [1, 2], "type": "conversion",
                           "occurred_at": [T0 + pd.Timedelta("1h")] * 2, "value": [40.0, 1e300]})
    assert alloc.ingest_events(events, sends)["status"].tolist() == ["accepted", "rejected"]
    alloc.close()


# --- learning and serving -----------------------------------------------------------
def test_a_1e300_reward_cannot_break_decide(tmp_path, variants, make_contexts):
    """The attack of issue 13 in process: 2,000 decisions, a reward of 1e300, learn, reload:
    the reward is refused, the new snapshot is finite and decide keeps answering."""
    server = Allocator.open(tmp_path / "b")
    server.register_campaign("spring", variants, ["x1"], wait_window="1h")
    out = server.choose("spring", np.arange(2000), make_contexts(2000)[["x1"]], now=T0)
    with pytest.raises(ValueError, match="^reward: "):
        server.reward(out["decision_id"][0], 1e300, T0 + pd.Timedelta("5m"), event_id="poison")
    server.rewards(out["decision_id"][1:40], np.ones(39), [T0 + pd.Timedelta("5m")] * 39,
                   [f"e{i}" for i in range(39)])
    trainer = Allocator.open(tmp_path / "b")
    version = trainer.learn(now=T0 + pd.Timedelta("2h"))
    assert trainer.learn_refusals == {}
    assert server.reload() and server.policy_version == version
    check_posterior(server._snapshot.campaigns["spring"].posterior)
    batch = server.decide("spring", np.arange(100), make_contexts(100)[["x1"]], now=T0 + pd.Timedelta("3h"))
    assert np.isfinite(batch.probabilities).all() and np.allclose(batch.probabilities.sum(axis=1), 1.0)
    server.close()
    trainer.close()


def _poison(alloc, value):
    """What a log written before rewards were validated (or edited by hand) may hold."""
    did = alloc.choose("spring", [1], None, now=T0)["decision_id"][0]
    alloc.log._db.execute("INSERT INTO rewards (event_id, decision_id, reward, occurred_at, received_at, late)"
                          " VALUES (?, ?, ?, ?, ?, 0)", (f"p{value}", did, value, T0.value // 1000 + 1, 0))
    return did


def test_stored_rewards_outside_the_range_are_not_learned(tmp_path, variants):
    alloc = Allocator.open(tmp_path / "legacy")
    alloc.register_campaign("spring", variants, ["x1"], wait_window="1h")
    for value in (1e300, float("inf"), -5.0):
        _poison(alloc, value)
    alloc.learn(now=T0 + pd.Timedelta("2h"))
    post = alloc.snapshots.read(alloc.snapshots.newest()).campaigns["spring"].posterior
    assert post.n == 3 and post.b.sum() == 0  # learned as decisions without a reward (default 0)
    alloc.close()


def test_learner_refuses_a_poisoned_update_and_keeps_the_last_good_state(tmp_path, variants, make_contexts):
    """A campaign whose declared range was bypassed (a config edited in the log): the update is
    refused, the campaign keeps its last good state and cutoff, other campaigns still learn."""
    alloc = Allocator.open(tmp_path / "refuse")
    for cid in ("spring", "other"):
        alloc.register_campaign(cid, variants, ["x1"], wait_window="1h")
    warm = alloc.choose("spring", np.arange(50), make_contexts(50)[["x1"]], now=T0 - pd.Timedelta("1d"))
    alloc.rewards(warm["decision_id"][:10], np.ones(10), [T0 - pd.Timedelta("23h")] * 10,
                  [f"w{i}" for i in range(10)])
    good = alloc.learn(now=T0 - pd.Timedelta("12h"))
    good_state = alloc.snapshots.read(good).campaigns["spring"]
    _, config = alloc.log.campaign("spring")
    alloc.log.save_campaign("spring", {**config, "reward_range": [-1e308, 1e308]})
    alloc._cache.clear()
    _poison(alloc, 1e300)
    alloc.choose("other", np.arange(5), None, now=T0)
    version = alloc.learn(now=T0 + pd.Timedelta("2h"))
    assert set(alloc.learn_refusals) == {"spring"} and "posterior mean reaches" in alloc.learn_refusals["spring"]
    assert "last good state kept" in alloc.learn_refusals["spring"]
    snap = alloc.snapshots.read(version)
    assert snap.meta["refused"] == alloc.learn_refusals
    kept = snap.campaigns["spring"]
    np.testing.assert_array_equal(kept.posterior.b, good_state.posterior.b)
    assert kept.cutoff_us == good_state.cutoff_us and kept.posterior.n == good_state.posterior.n
    assert snap.campaigns["other"].posterior.n == 5
    assert alloc.reload()
    batch = alloc.decide("spring", np.arange(10), make_contexts(10)[["x1"]], now=T0 + pd.Timedelta("3h"))
    assert np.isfinite(batch.probabilities).all()
    alloc.close()


def test_fold_refuses_non_finite_rewards(variants):
    """SQLite cannot store NaN and the join drops inf; another DecisionLog might hand them over."""
    from experiments.bandit.features import VariantEncoder
    from experiments.bandit.learner import fold_closed_decisions

    Z = VariantEncoder.fit(variants).encode(variants)
    config = {"context_features": [], "n_slots": len(variants), "ridge": 1.0}
    rows = pd.DataFrame({"decision_id": ["a", "b"], "context": [np.zeros(0), np.zeros(0)], "variant": [10, 11],
                         "reward": [1.0, np.nan]})
    slot_of = {v: i for i, v in enumerate(variants["content_id"])}
    with pytest.raises(RefusedUpdate, match=r"1 of 2 decisions .* non-finite reward \(e\.g\. decision 'b'\)"):
        fold_closed_decisions(rows, 10, config, Z, slot_of, None)
    assert fold_closed_decisions(rows.iloc[:1], 10, config, Z, slot_of, None).posterior.n == 1


def test_learn_cli_reports_a_refusal(bandit_env, variants, capsys):
    from experiments.bandit.cli import _learn
    from inbox.settings import load_settings

    alloc = Allocator.open(load_settings().bandit_dir)
    alloc.register_campaign("spring", variants, ["x1"], wait_window="1h")
    _, config = alloc.log.campaign("spring")
    alloc.log.save_campaign("spring", {**config, "reward_range": [-1e308, 1e308]})
    did = alloc.choose("spring", [1], None, now=pd.Timestamp.now(tz="UTC") - pd.Timedelta("3h"))["decision_id"][0]
    alloc.log._db.execute("INSERT INTO rewards VALUES ('p', ?, 1e300, ?, 0, 0)",
                          (did, (pd.Timestamp.now(tz="UTC") - pd.Timedelta("170m")).value // 1000))
    alloc.close()
    assert _learn(type("Args", (), {"gate": False, "now": None})()) == 1
    err = capsys.readouterr().err
    assert "spring: update refused, last good state kept" in err and "posterior mean reaches" in err


def test_reload_skips_a_poisoned_snapshot_and_keeps_serving(tmp_path, variants, make_contexts):
    alloc = Allocator.open(tmp_path / "reload")
    alloc.register_campaign("spring", variants, ["x1"], wait_window="1h")
    alloc.choose("spring", np.arange(20), make_contexts(20)[["x1"]], now=T0)
    good = alloc.learn(now=T0 + pd.Timedelta("2h"))
    assert alloc.reload() and alloc.policy_version == good
    state = alloc.snapshots.read(good).campaigns["spring"]
    b = state.posterior.b.copy()
    b[0] = np.inf
    bad = LinearPosterior(state.posterior.A, b, state.posterior.n, state.posterior.ridge)
    alloc.snapshots.write(Snapshot(version=good + 1, campaigns={"spring": CampaignState(bad, state.cutoff_us)}))
    assert not alloc.reload()
    assert alloc.policy_version == good
    assert alloc.reload_refused[0] == good + 1 and "not finite" in alloc.reload_refused[1]
    batch = alloc.decide("spring", np.arange(5), make_contexts(5)[["x1"]], now=T0 + pd.Timedelta("3h"))
    assert np.isfinite(batch.probabilities).all() and batch.policy_version == good
    # a process starting now (e.g. a serving worker) loads the newest good snapshot, not the prior
    fresh = Allocator.open(tmp_path / "reload")
    assert fresh.policy_version == good and fresh.reload_refused[0] == good + 1
    fresh.close()
    alloc.close()


def test_decide_never_logs_non_finite_probabilities(allocator, make_contexts):
    """Defence in depth: a policy that somehow gives NaN probabilities raises a server fault and logs nothing."""
    dim = allocator._posterior("spring", allocator._campaign("spring")).dim
    post = LinearPosterior.prior(dim)
    post.b[:] = np.nan
    allocator._snapshot = Snapshot(version=99, campaigns={"spring": CampaignState(post)})
    with pytest.raises(PolicyStateError, match="cannot be used .*; no decision logged"):
        allocator.decide("spring", np.arange(3), make_contexts(3), now=T0)
    assert len(allocator.log.decisions("spring")) == 0

    class NaNScorer:
        def probabilities(self, X):
            return np.full((len(X), 4), np.nan)

    allocator._scorer = lambda *args: NaNScorer()
    with pytest.raises(PolicyStateError, match="non-finite probabilities; no decision logged"):
        allocator.decide("spring", np.arange(3), make_contexts(3), now=T0)
    assert len(allocator.log.decisions("spring")) == 0


def test_check_posterior():
    post = LinearPosterior.prior(3)
    check_posterior(post)
    post.A[0, 0] = -1.0
    with pytest.raises(RefusedUpdate, match="not positive definite"):
        check_posterior(post)
