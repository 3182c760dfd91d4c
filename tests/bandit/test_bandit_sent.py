"""Decisions never mailed are not learned as "sent and ignored": sent marks, `learn_from`, erasure."""
import numpy as np
import pandas as pd
import pytest

from experiments.bandit import Allocator

T0 = pd.Timestamp("2026-05-01 09:00", tz="UTC")
N, UNSENT = 300, 20  # the last UNSENT decisions are logged but never mailed (no mark, no reward)


def _decide_and_reward(alloc: Allocator, campaign: str, learn_from: str, rows: slice, make_contexts) -> list[str]:
    """The same decisions (fixed ids, same contexts: same choices) and rewards in any log; returns the ids."""
    alloc.register_campaign(campaign, _variants(), ["x1", "x2", "x3"], wait_window="1h", learn_from=learn_from)
    ids = [f"dec-{i:04d}" for i in range(N)][rows]
    x = make_contexts(N, seed=3).iloc[rows].reset_index(drop=True)
    out = alloc.choose(campaign, np.arange(N)[rows], x, now=T0, decision_ids=ids)
    paid = [d for d, v in zip(ids, out["variant"]) if v == 12 and int(d[-4:]) < N - UNSENT]
    alloc.rewards(paid, np.ones(len(paid)), [T0 + pd.Timedelta("10m")] * len(paid), [f"e-{d}" for d in paid])
    return ids


def _variants() -> pd.DataFrame:
    return pd.DataFrame({"content_id": [10, 11, 12, 13], "topic": ["product", "education", "product", "event"],
                         "subject_length": [30, 42, 55, 20], "has_emoji": [False, True, False, True]})


def _posterior(alloc: Allocator, version: int, campaign: str):
    return alloc.snapshots.read(version).campaigns[campaign].posterior


def test_unsent_decisions_are_left_out_under_sent_and_default_rewarded_under_all(tmp_path, make_contexts):
    mailed = N - UNSENT
    # "sent": every decision logged, the mailed ones marked (rewarded ones need no mark: a reward proves it)
    a = Allocator.open(tmp_path / "sent")
    ids = _decide_and_reward(a, "spring", "sent", slice(None), make_contexts)
    rewarded = set(a.log.rewards()["decision_id"])
    assert a.mark_sent([d for d in ids[:mailed] if d not in rewarded], T0 + pd.Timedelta("1m")).unknown == []
    v = a.learn(now=T0 + pd.Timedelta("2h"))
    assert a.learn_unsent == {"spring": UNSENT}
    assert a.snapshots.read(v).meta["unsent"] == {"spring": UNSENT}
    # the same campaign in a log that never held the unsent decisions: the same posterior
    b = Allocator.open(tmp_path / "without")
    _decide_and_reward(b, "spring", "all", slice(0, mailed), make_contexts)
    vb = b.learn(now=T0 + pd.Timedelta("2h"))
    pa, pb = _posterior(a, v, "spring"), _posterior(b, vb, "spring")
    assert pa.n == pb.n == mailed and b.learn_unsent == {}
    np.testing.assert_allclose(pa.A, pb.A, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(pa.b, pb.b, rtol=1e-12, atol=1e-12)
    # "all" (the default): the unsent decisions are folded in with the default reward 0
    c = Allocator.open(tmp_path / "all")
    _decide_and_reward(c, "spring", "all", slice(None), make_contexts)
    vc = c.learn(now=T0 + pd.Timedelta("2h"))
    pc = _posterior(c, vc, "spring")
    assert pc.n == N and c.learn_unsent == {} and "unsent" not in c.snapshots.read(vc).meta
    from experiments.bandit.learner import fold_closed_decisions

    cache = c._campaign("spring")
    rows = c.log.joined("spring", 0, 2**62, "first", 0.0).iloc[mailed:]
    assert (rows["reward"] == 0.0).all() and len(rows) == UNSENT
    expected = fold_closed_decisions(rows, 0, cache.config, cache.Z, cache.slot_of, a.snapshots.read(v).campaigns["spring"])
    np.testing.assert_allclose(pc.A, expected.posterior.A, rtol=1e-12)
    np.testing.assert_allclose(pc.b, expected.posterior.b, rtol=1e-12, atol=1e-12)
    assert not np.allclose(pc.A, pa.A)
    # a mark that comes after its window was learned does not fold it in later: the cutoff has passed it
    a.mark_sent(ids[mailed:], T0 + pd.Timedelta("3h"))
    v2 = a.learn(now=T0 + pd.Timedelta("4h"))
    assert _posterior(a, v2, "spring").n == mailed and a.learn_unsent == {}
    for alloc in (a, b, c):
        alloc.close()


def test_mark_sent_is_idempotent_and_reports_unknown_ids(allocator, make_contexts):
    out = allocator.choose("spring", np.arange(4), make_contexts(4), now=T0)
    ids = out["decision_id"].tolist()
    first = allocator.mark_sent(ids[:3] + ["f" * 32, ids[0]], T0 + pd.Timedelta("1m"))
    assert (first.marked, first.already, first.unknown) == (3, 0, ["f" * 32])
    again = allocator.mark_sent(ids, [T0 + pd.Timedelta("5m")] * 4)
    assert (again.marked, again.already, again.unknown) == (1, 3, [])
    sent = allocator.log.sent().set_index("decision_id")["sent_at"]
    assert sorted(sent.index) == sorted(ids)
    assert sent[ids[0]] == (T0 + pd.Timedelta("1m")).value // 1000  # the first mark's time is kept
    assert sent[ids[3]] == (T0 + pd.Timedelta("5m")).value // 1000
    with pytest.raises(ValueError, match="^decision_ids: "):
        allocator.mark_sent(ids[0])
    with pytest.raises(ValueError, match="^decision_ids: "):
        allocator.mark_sent([ids[0], ""])
    with pytest.raises(ValueError, match="^sent_at: "):
        allocator.mark_sent(ids[:2], [T0])
    with pytest.raises(ValueError, match="^learn_from: "):
        allocator.register_campaign("other", _variants(), ["x1"], learn_from="mailed")


def test_erase_removes_sent_marks(allocator, make_contexts):
    out = allocator.choose("spring", [7, 8], make_contexts(2), now=T0)
    allocator.mark_sent(out["decision_id"].tolist(), T0)
    counts = allocator.log.erase_contact([7])
    assert counts["sent_marks"] == 1 and counts["decisions"] == 1
    assert allocator.log.sent()["decision_id"].tolist() == [out["decision_id"][1]]
    assert allocator.log.erase_contact([7])["sent_marks"] == 0


def test_bandit_learn_prints_unsent(bandit_env, capsys, make_contexts):
    from inbox.cli import main

    alloc = Allocator.open(bandit_env / "data" / "bandit")
    alloc.register_campaign("spring", _variants(), ["x1", "x2", "x3"], wait_window="1h", learn_from="sent")
    out = alloc.choose("spring", np.arange(5), make_contexts(5), now=T0)
    alloc.mark_sent(out["decision_id"][:2].tolist(), T0)
    alloc.close()
    assert main(["bandit", "learn", "--now", str(T0 + pd.Timedelta("2h"))]) == 0
    assert "spring: 3 closed decisions not learned from: never marked sent nor rewarded" in capsys.readouterr().out


def test_a_campaign_registered_as_all_switches_to_sent_from_the_next_learn(tmp_path, monkeypatch, make_contexts, capsys):
    from inbox.cli import main
    from inbox.settings import load_settings

    monkeypatch.setenv("INBOX_DATA_DIR", str(tmp_path / "data"))
    alloc = Allocator.open(load_settings().bandit_dir)
    ids = _decide_and_reward(alloc, "spring", "all", slice(None), make_contexts)
    rewarded = set(alloc.log.rewards()["decision_id"])
    alloc.mark_sent([d for d in ids[: N - UNSENT] if d not in rewarded], T0 + pd.Timedelta("1m"))
    alloc.close()
    assert main(["bandit", "learn-from", "spring", "sent"]) == 0
    assert "was all" in capsys.readouterr().out
    assert main(["bandit", "learn-from", "autumn", "sent"]) == 2  # unknown campaign
    assert "unknown campaign 'autumn'" in capsys.readouterr().err
    alloc = Allocator.open(load_settings().bandit_dir)
    try:
        with pytest.raises(ValueError, match="learn_from"):
            alloc.set_learn_from("spring", "some")
        v = alloc.learn(now=T0 + pd.Timedelta("2h"))
        assert alloc.learn_unsent == {"spring": UNSENT}
        assert _posterior(alloc, v, "spring").n == N - UNSENT
    finally:
        alloc.close()
