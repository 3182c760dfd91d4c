"""The decision log and snapshots on PostgreSQL: same answers as SQLite, shared by replicas."""
import threading

import numpy as np
import pandas as pd
import pytest

from experiments.bandit import Allocator, UnknownDecisionError
from experiments.bandit.backends import DECISION_LOG_ENV

pytestmark = pytest.mark.server

T0 = pd.Timestamp("2026-05-01 09:00", tz="UTC")
VARIANTS = pd.DataFrame({"content_id": [10, 11, 12, 13], "topic": ["product", "education", "product", "event"],
                         "subject_length": [30, 42, 55, 20], "has_emoji": [False, True, False, True]})


def _scenario(alloc: Allocator) -> dict:
    """Register, decide with fixed ids, reward (accepted, duplicate, late, unknown, refused), learn twice."""
    alloc.register_campaign("spring", VARIANTS, ["x1"], wait_window="1h", floor=0.01)
    ids = [f"d{i}" for i in range(400)]
    x = pd.DataFrame({"x1": (np.arange(400) % 2).astype(float)})
    out = alloc.choose("spring", np.arange(400), x, now=T0, decision_ids=ids)
    good = (out["variant"] == 12).to_numpy()
    statuses = alloc.rewards(ids[:300] + [ids[0], ids[1], "nope"], np.r_[good[:300].astype(float), 1.0, 2.0, 1.0],
                             [T0 + pd.Timedelta("5m")] * 300 + [T0 + pd.Timedelta("5m"), T0 + pd.Timedelta("5m"), T0],
                             [f"e{i}" for i in range(300)] + ["e0", "e-refused", "e-unknown"])
    late = alloc.reward(ids[350], 1.0, T0 + pd.Timedelta("2h"), event_id="late")
    v1 = alloc.learn(now=T0 + pd.Timedelta("2h"))
    alloc.reload()
    after = alloc.choose("spring", np.arange(400), x, now=T0 + pd.Timedelta("3h"), decision_ids=[f"n{i}" for i in range(400)])
    v2 = alloc.learn(now=T0 + pd.Timedelta("5h"))
    snap = alloc.snapshots.read(v2)
    return {"statuses": statuses, "late": late, "versions": (v1, v2), "after": after,
            "joined": alloc.log.joined("spring", 0, 2**62, "first", 0.0),
            "decisions": alloc.log.decisions("spring"), "A": snap.campaigns["spring"].posterior.A,
            "b": snap.campaigns["spring"].posterior.b, "audit": alloc.log.audit()["reason"].tolist()}


def test_postgres_log_answers_as_sqlite(tmp_path, pg_url, monkeypatch):
    sqlite = Allocator.open(tmp_path / "sqlite")
    monkeypatch.setenv(DECISION_LOG_ENV, pg_url)
    pg = Allocator.open(tmp_path / "unused")
    assert type(pg.log).__name__ == "PostgresDecisionLog" and not (tmp_path / "unused" / "decisions.db").exists()
    a, b = _scenario(sqlite), _scenario(pg)
    assert a["statuses"] == b["statuses"] and b["statuses"][-3:] == ["duplicate", "rejected", "unknown"]
    assert a["late"] == b["late"] == "late" and a["versions"] == b["versions"] == (1, 2)
    pd.testing.assert_frame_equal(a["after"], b["after"])
    for key in ("joined", "decisions"):
        left, right = a[key], b[key]
        assert list(left.columns) == list(right.columns)
        for col in left.columns:
            if left[col].dtype == object and isinstance(left[col].iloc[0], np.ndarray):
                np.testing.assert_array_equal(np.vstack(left[col]), np.vstack(right[col]))
            else:
                np.testing.assert_array_equal(left[col].to_numpy(), right[col].to_numpy())
    np.testing.assert_array_equal(a["A"], b["A"])
    np.testing.assert_array_equal(a["b"], b["b"])
    assert a["audit"] == b["audit"]
    with pytest.raises(UnknownDecisionError):
        pg.reward("nope-again", 1.0, T0, event_id="x")
    with pytest.raises(Exception):  # a decision id is logged once
        pg.choose("spring", [1], None, now=T0, decision_ids=["d1"])
    sqlite.close(), pg.close()


def _sent_scenario(alloc: Allocator) -> dict:
    """A `learn_from='sent'` campaign: 100 decisions, 30 rewarded, 50 more marked sent, 20 never mailed."""
    alloc.register_campaign("mailed", VARIANTS, ["x1"], wait_window="1h", learn_from="sent")
    ids = [f"m{i:03d}" for i in range(100)]
    alloc.choose("mailed", np.arange(100), pd.DataFrame({"x1": (np.arange(100) % 3).astype(float)}), now=T0,
                 decision_ids=ids)
    alloc.rewards(ids[:30], np.ones(30), [T0 + pd.Timedelta("5m")] * 30, [f"r{i}" for i in range(30)])
    marks = [alloc.mark_sent(ids[20:80] + ["unknown-id"], T0 + pd.Timedelta("1m")),
             alloc.mark_sent(ids[20:80], [T0 + pd.Timedelta("2m")] * 60)]
    version = alloc.learn(now=T0 + pd.Timedelta("2h"))
    post = alloc.snapshots.read(version).campaigns["mailed"].posterior
    out = {"marks": marks, "unsent": alloc.learn_unsent, "meta": alloc.snapshots.read(version).meta,
            "sent": alloc.log.sent(), "joined": alloc.log.joined("mailed", 0, 2**62, "first", 0.0, None, "sent"),
            "n": post.n, "A": post.A, "b": post.b}
    alloc.close()
    return out


def test_sent_marks_and_learn_from_sent_answer_as_sqlite(tmp_path, pg_url, monkeypatch):
    a = _sent_scenario(Allocator.open(tmp_path / "sqlite"))
    monkeypatch.setenv(DECISION_LOG_ENV, pg_url)
    b = _sent_scenario(Allocator.open(tmp_path / "unused"))
    for r in (a, b):
        assert [(m.marked, m.already, m.unknown) for m in r["marks"]] == [(60, 0, ["unknown-id"]), (0, 60, [])]
        assert r["unsent"] == {"mailed": 20} and r["meta"]["unsent"] == {"mailed": 20} and r["n"] == 80
        assert r["joined"]["mailed"].tolist() == [1] * 80 + [0] * 20
    pd.testing.assert_frame_equal(a["sent"], b["sent"])
    assert (a["sent"]["sent_at"] == (T0 + pd.Timedelta("1m")).value // 1000).all()  # the first mark's time
    np.testing.assert_array_equal(a["A"], b["A"])
    np.testing.assert_array_equal(a["b"], b["b"])


def test_replicas_share_decisions_rewards_and_snapshots(tmp_path, pg_url, monkeypatch):
    """Two serving processes and a learner on one database: each decision is visible to the others at
    once, a reward reaches its decision through either replica, the learner's snapshot reaches both."""
    monkeypatch.setenv(DECISION_LOG_ENV, pg_url)
    one, two, learner = (Allocator.open(tmp_path / name) for name in ("one", "two", "learner"))
    one.register_campaign("spring", VARIANTS, ["x1"], wait_window="1h", floor=0.01)
    outs = []
    errors = []

    def serve(alloc, first):
        try:
            for k in range(25):  # 25 small batches each, concurrently
                outs.append(alloc.choose("spring", np.arange(first + 40 * k, first + 40 * k + 40), None, now=T0))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=serve, args=(a, f)) for a, f in ((one, 0), (two, 100_000))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    out = pd.concat(outs, ignore_index=True)
    logged = learner.log.decisions("spring")
    assert len(logged) == len(out) == 2000 and logged["decision_id"].is_unique
    assert set(logged["decision_id"]) == set(out["decision_id"])
    # each replica receives the rewards of the other's decisions (a webhook hits any replica)
    good = (out["variant"] == 12).to_numpy().astype(float)
    half = len(out) // 2
    s1 = one.rewards(out["decision_id"][half:], good[half:], [T0 + pd.Timedelta("5m")] * (len(out) - half),
                     [f"a{i}" for i in range(half, len(out))])
    s2 = two.rewards(out["decision_id"][:half], good[:half], [T0 + pd.Timedelta("5m")] * half,
                     [f"a{i}" for i in range(half)])
    assert set(s1) == set(s2) == {"accepted"}
    assert set(two.rewards(out["decision_id"][:3], good[:3], [T0 + pd.Timedelta("5m")] * 3, ["a0", "a1", "a2"])) == {"duplicate"}
    version = learner.learn(now=T0 + pd.Timedelta("2h"))
    snap = learner.snapshots.read(version)
    assert snap.campaigns["spring"].posterior.n == 2000
    assert one.reload() and two.reload() and one.policy_version == two.policy_version == version
    after = two.choose("spring", np.arange(2000), None, now=T0 + pd.Timedelta("3h"))
    assert (after["variant"] == 12).mean() > 0.8
    assert not (tmp_path / "learner" / "snapshots").exists()
    for a in (one, two, learner):
        a.close()


def test_erase_contact(pg_url):
    from experiments.bandit.backends import open_log_and_snapshots
    from experiments.bandit.snapshots import Snapshot

    alloc = Allocator(*open_log_and_snapshots("unused", url=pg_url))
    alloc.register_campaign("spring", VARIANTS, ["x1"], wait_window="1h")
    out = alloc.choose("spring", [1, 2, 2, 3], None, now=T0)
    alloc.rewards(out["decision_id"][1:3], [1.0, 5.0], [T0] * 2, ["r1", "r2"])  # 5.0: refused, audited
    alloc.mark_sent(out["decision_id"][:2].tolist(), T0)
    assert alloc.log.erase_contact([2]) == {"decisions": 2, "rewards": 1, "reward_audit": 1, "sent_marks": 1}
    assert alloc.log.erase_contact([2]) == {"decisions": 0, "rewards": 0, "reward_audit": 0, "sent_marks": 0}
    assert sorted(alloc.log.decisions()["contact_id"]) == [1, 3]
    assert alloc.log.sent()["decision_id"].tolist() == [out["decision_id"][0]]
    alloc.snapshots.write(Snapshot(version=1))
    with pytest.raises(Exception, match="already written"):  # two learners never overwrite each other
        alloc.snapshots.write(Snapshot(version=1))
    alloc.close()


def test_bad_url_names_the_setting(monkeypatch, tmp_path):
    monkeypatch.setenv(DECISION_LOG_ENV, "mysql://x")
    with pytest.raises(ValueError, match=DECISION_LOG_ENV):
        Allocator.open(tmp_path)


def test_reward_check_may_read_the_log(pg_url):
    """The allocator's reward check reads the campaign from the log while add_rewards holds it (no deadlock)."""
    from experiments.bandit.backends import open_log_and_snapshots

    alloc = Allocator(*open_log_and_snapshots("unused", url=pg_url))
    alloc.register_campaign("spring", VARIANTS, ["x1"], wait_window="1h")
    out = alloc.choose("spring", [1], None, now=T0)
    result = []
    check = lambda cid, r, occ, dec: None if alloc.log.campaign(cid)[0] == 1 else "stale"  # noqa: E731
    worker = threading.Thread(target=lambda: result.append(alloc.log.add_rewards(
        out["decision_id"].tolist(), [1.0], [int(T0.timestamp() * 1e6)], ["e1"], 0, validate=check)))
    worker.start()
    worker.join(20)
    assert not worker.is_alive() and result == [["accepted"]]
    alloc.close()
