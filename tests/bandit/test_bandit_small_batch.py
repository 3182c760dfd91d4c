"""Small-batch paths (`experiments.bandit.smallbatch`): bit-identical to the vectorized
paths, decision by decision and log row by log row, in every mode; and a decision is
committed to the SQLite log (visible to another connection, surviving a process crash)
when `decide` returns."""
import sqlite3
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from experiments.bandit import Allocator, smallbatch
from experiments.bandit import randomness as rnd
from experiments.bandit.features import context_matrix
from experiments.bandit.linear import LinearPosterior
from experiments.bandit.policies import ArmSet, EpsilonGreedy, LinearThompsonSampling, LinUCB, sample_actions

T0 = pd.Timestamp("2026-05-01 09:00", tz="UTC")
LOG_COLUMNS = ("decision_id, campaign_id, decided_at, contact_id, eligible, context, probabilities, variant,"
               " propensity, policy_version, mode, policy_choice, window_us")


def both_paths(monkeypatch, compute):
    """compute() with the small-batch paths on, then with every batch vectorized."""
    small = compute()
    with monkeypatch.context() as m:
        m.setattr(smallbatch, "LIMIT", 0)
        vectorized = compute()
    return small, vectorized


def assert_same_array(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(a, b)


def test_splitmix64_int_equals_numpy():
    rng = np.random.default_rng(0)
    x = np.concatenate([np.array([0, 1, 2**63 - 1, 2**63, 2**64 - 1], dtype=np.uint64),
                        rng.integers(0, 2**63, 2000, dtype=np.uint64) * np.uint64(2)
                        + rng.integers(0, 2, 2000, dtype=np.uint64)])
    assert [rnd.splitmix64_int(int(v)) for v in x] == rnd.splitmix64(x).tolist()


@pytest.mark.parametrize("n", [0, 1, 2, 7, 16])
def test_keys_ids_and_uniforms_equal_vectorized(monkeypatch, n):
    monkeypatch.setattr(rnd.os, "urandom", lambda k: bytes((3 + i) % 256 for i in range(k)))  # the same ids twice
    (ids, keys), (ids_v, keys_v) = both_paths(monkeypatch, lambda: rnd.new_decision_ids(n))
    assert ids == ids_v
    assert_same_array(keys, keys_v)
    assert_same_array(rnd.decision_keys(ids), keys)
    for stream in (0, 1, 3, 4, 11):
        assert_same_array(*both_paths(monkeypatch, lambda: rnd.uniforms(keys, stream)))


def test_sample_actions_equal_vectorized(monkeypatch):
    rng = np.random.default_rng(1)
    for trial in range(600):
        n, K = int(rng.integers(1, 17)), int(rng.integers(1, 30))
        p = rng.random((n, K)) ** (1 + trial % 9)
        if trial % 2 == 0 and K > 1:
            p[:, (0, int(rng.integers(0, K - 1)))] = 0.0  # exact zeros: flat steps in the CDF (last column kept)
        p /= p.sum(axis=1, keepdims=True)
        u = rng.random(n)
        u[0] = (u[0], 0.0, 1.0 - 2**-53)[trial // 2 % 3]  # both ends of [0, 1)
        assert_same_array(*both_paths(monkeypatch, lambda: sample_actions(p, u)))


@pytest.mark.parametrize("policy", [LinearThompsonSampling(draws=256), LinUCB(), EpsilonGreedy(0.1)])
def test_policy_probabilities_equal_vectorized(monkeypatch, policy):
    rng = np.random.default_rng(2)
    d, K, f = 3, 5, 2
    Z = np.hstack([np.ones((K, 1)), rng.normal(size=(K, f - 1))])
    Z[4] = Z[3]  # two variants with the same features: ties between them are possible
    post = LinearPosterior.prior(d * (f + K))
    scorer = policy.prepare(post, ArmSet(Z, np.arange(K), K, d), seed=3)
    for n in (1, 2, 16):
        X = np.hstack([np.ones((n, 1)), np.round(rng.normal(size=(n, d - 1)), 1)])
        X[0, 1:] = 0.0
        assert_same_array(*both_paths(monkeypatch, lambda: scorer.probabilities(X)))


def test_thompson_exact_ties_equal_vectorized(monkeypatch):
    """Two variants with identical posterior draws tie in every draw: both count, as in the batch path."""
    from experiments.bandit.policies import _TSScorer

    rng = np.random.default_rng(4)
    d, K, M = 3, 4, 64
    bank = rng.normal(size=(d, K, M)).astype(np.float32)
    bank[:, 3] = bank[:, 1]
    scorer = _TSScorer(np.ascontiguousarray(bank.reshape(d, K * M)), M, K)
    X = np.hstack([np.ones((5, 1)), rng.normal(size=(5, d - 1))])
    small, vectorized = both_paths(monkeypatch, lambda: scorer.probabilities(X))
    assert_same_array(small, vectorized)
    assert (small[:, 1] == small[:, 3]).all() and (small[:, 1] > 0).any()


def test_context_matrix_array_cleans_non_finite():
    ctx = np.array([[0.5, np.nan], [np.inf, -2.0]])
    np.testing.assert_array_equal(context_matrix(ctx, ["a", "b"], 2), [[1.0, 0.5, 0.0], [1.0, 0.0, -2.0]])
    with pytest.raises(ValueError, match="context: expected shape"):
        context_matrix(ctx, ["a"], 2)


def _allocator(path, variants, policy, mode):
    alloc = Allocator.open(path)
    alloc.register_campaign("spring", variants, ["x1", "x2", "x3"], wait_window="1h", floor=0.05, policy=policy,
                            control_variant=10)
    if mode == "holdout":
        alloc.set_guardrails("spring", holdout_share=0.5)
    elif mode == "kill_switch":
        alloc.kill_switch("spring", 12)
    elif mode.startswith("apprentice"):
        alloc.set_apprentice("spring", True, baseline=mode.split("_")[1])
    return alloc


def _learned(alloc, make_contexts):
    """A snapshot learned from rewards favouring variant 11, so the policy is not the prior."""
    out = alloc.choose("spring", np.arange(400), make_contexts(400, seed=9), now=T0, decision_ids=[
        f"warm-{i}" for i in range(400)])
    paid = out[out["variant"] == 11]
    alloc.rewards(paid["decision_id"], np.ones(len(paid)), [T0 + pd.Timedelta("5m")] * len(paid),
                  [f"e{i}" for i in range(len(paid))])
    alloc.learn(now=T0 + pd.Timedelta("2h"))
    assert alloc.reload()


def _log_rows(alloc, decision_ids):
    rows = alloc.log._db.execute(f"SELECT {LOG_COLUMNS} FROM decisions ORDER BY seq").fetchall()
    wanted = set(decision_ids)
    return [r for r in rows if r[0] in wanted]


@pytest.mark.parametrize("policy", ["lin_ts", "lin_ucb", "eps_greedy", "uniform"])
@pytest.mark.parametrize("mode", ["policy", "holdout", "kill_switch", "apprentice_control", "apprentice_uniform"])
def test_decide_small_batches_equal_vectorized(tmp_path, monkeypatch, variants, make_contexts, policy, mode):
    """Same decisions, same DecisionBatch fields and same log rows whether a batch takes the
    small-batch paths or the vectorized ones; with generated ids (the OS entropy pinned) and
    with given ids, with and without excluded variants."""
    small = _allocator(tmp_path / "small", variants, policy, mode)
    vectorized = _allocator(tmp_path / "vectorized", variants, policy, mode)
    if policy == "lin_ts" and mode == "policy":
        for alloc in (small, vectorized):
            _learned(alloc, make_contexts)
    pinned = {"seed": 0}  # the OS entropy pinned per request: both allocators get the same (random) ids
    monkeypatch.setattr(rnd.os, "urandom", lambda k: np.random.default_rng(pinned["seed"]).bytes(k))
    requests = []
    for n in (1, 2, 5, 16):
        ctx = make_contexts(n, seed=n)
        arr = ctx.to_numpy() + np.random.default_rng(n).normal(scale=0.3, size=(n, 3))  # continuous contexts
        requests += [(n, ctx, None, None), (n, arr, None, [f"given-{n}-{i}" for i in range(n)]),
                     (n, arr, [13], None)]
    for i, (n, ctx, exclude, given) in enumerate(requests):
        now = T0 + pd.Timedelta(seconds=i)
        pinned["seed"] = i
        ids = np.arange(100 * i, 100 * i + n)
        a = small.decide("spring", ids, ctx, now=now, exclude=exclude, decision_ids=given)
        with monkeypatch.context() as m:
            m.setattr(smallbatch, "LIMIT", 0)
            b = vectorized.decide("spring", ids, ctx, now=now, exclude=exclude, decision_ids=given)
        assert a.decision_id == b.decision_id and a.campaign_id == b.campaign_id
        assert a.decided_at == b.decided_at and a.policy_version == b.policy_version
        for field in ("contact_id", "eligible", "context", "probabilities", "variant", "propensity", "mode",
                      "policy_choice"):
            assert_same_array(getattr(a, field), getattr(b, field))
        assert _log_rows(small, a.decision_id) == _log_rows(vectorized, b.decision_id)
        assert len(_log_rows(small, a.decision_id)) == n
    expected = {"policy": {"policy"}, "holdout": {"policy", "holdout"}, "kill_switch": {"kill_switch"},
                "apprentice_control": {"apprentice"}, "apprentice_uniform": {"apprentice"}}[mode]
    assert set(small.log.decisions("spring")["mode"]) == expected
    small.close()
    vectorized.close()


@pytest.mark.parametrize("n", [1, 100])
def test_decision_visible_to_another_connection_on_return(allocator, make_contexts, n):
    """A reward may arrive (in another worker) right after decide returns: the rows are committed."""
    batch = allocator.decide("spring", np.arange(n), make_contexts(n), now=T0)
    with sqlite3.connect(allocator.log.path) as other:
        rows = other.execute(f"SELECT {LOG_COLUMNS} FROM decisions ORDER BY seq").fetchall()
    assert [r[0] for r in rows] == batch.decision_id
    assert rows == _log_rows(allocator, batch.decision_id)
    assert [r[7] for r in rows] == batch.variant.tolist() and [r[8] for r in rows] == batch.propensity.tolist()


def _registered_log(tmp_path, variants) -> str:
    """A bandit directory with campaign 'spring' (context ["x1"]) registered, for other processes."""
    alloc = Allocator.open(tmp_path / "bandit")
    alloc.register_campaign("spring", variants, ["x1"], wait_window="1h")
    alloc.close()
    return str(tmp_path / "bandit")


def test_decision_survives_a_process_crash_right_after_return(tmp_path, variants):
    bandit_dir = _registered_log(tmp_path, variants)
    script = (
        "import os, sys, numpy as np\n"
        "from experiments.bandit import Allocator\n"
        "a = Allocator.open(sys.argv[1])\n"
        "b = a.decide('spring', [7], np.array([[0.5]]))\n"
        "print(b.decision_id[0], int(b.variant[0]), flush=True)\n"
        "os._exit(3)  # no close, no atexit: as if the worker was killed\n"
    )
    done = subprocess.run([sys.executable, "-c", script, bandit_dir], capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stderr
    decision_id, variant = done.stdout.split()
    reopened = Allocator.open(tmp_path / "bandit")
    log = reopened.log.decisions("spring")
    assert log["decision_id"].tolist() == [decision_id] and log["variant"].tolist() == [int(variant)]
    assert reopened.reward(decision_id, 1.0, pd.Timestamp.now(tz="UTC"), event_id="e1") == "accepted"
    reopened.close()


def _rows_in_main_file(db_path, tmp_path) -> int:
    """Decisions in the database file itself, i.e. already checkpointed out of the WAL."""
    import shutil

    copy = tmp_path / f"main-only-{len(list(tmp_path.iterdir()))}.db"
    shutil.copyfile(db_path, copy)  # without the -wal file
    with sqlite3.connect(copy) as db:
        if not db.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = 'decisions'").fetchone()[0]:
            return 0  # not even the schema has left the WAL yet
        return db.execute("SELECT COUNT(*) FROM decisions").fetchone()[0]


def _open_with_checkpointer(tmp_path, **params):
    from experiments.bandit.checkpointer import WalCheckpointer
    from experiments.bandit.decision_log import SQLiteDecisionLog
    from experiments.bandit.snapshots import SnapshotStore

    log = SQLiteDecisionLog(tmp_path / "bandit" / "decisions.db")
    log._checkpointer = WalCheckpointer(log.path, **params)
    return Allocator(log, SnapshotStore(tmp_path / "bandit" / "snapshots"))


def _wal_frames(alloc) -> int:
    with sqlite3.connect(alloc.log.path) as other:  # a PASSIVE checkpoint reports the frames in the WAL
        return other.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]


def test_wal_checkpoints_run_in_the_background_not_in_the_commit(tmp_path, variants):
    import time

    alloc = _open_with_checkpointer(tmp_path, pages=10**9, interval=3600.0)  # nothing due for an hour
    alloc.register_campaign("spring", variants, ["x1"], wait_window="1h")
    db_path = alloc.log.path
    for i in range(400):  # ~1,400 WAL pages: SQLite's own autocheckpoint (1,000) would have run in a commit
        alloc.decide("spring", [i], np.array([[0.5]]))
    assert alloc.log._db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    assert _rows_in_main_file(db_path, tmp_path) == 0
    alloc.close()  # stops the thread after a last checkpoint
    assert _rows_in_main_file(db_path, tmp_path) == 400
    assert not alloc.log._checkpointer._thread.is_alive()

    alloc = _open_with_checkpointer(tmp_path, pages=100, interval=3600.0)  # due after ~100 pages
    for i in range(50):
        alloc.decide("spring", [i], np.array([[0.5]]))
    deadline = time.monotonic() + 20
    while _rows_in_main_file(db_path, tmp_path) <= 400 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert 400 < _rows_in_main_file(db_path, tmp_path) <= 450  # the thread checkpointed, allocator still open
    alloc.close()


def test_wal_stays_bounded_under_uninterrupted_writes(tmp_path, variants):
    """Commits during a background checkpoint keep the WAL from restarting; past max_frames the
    writer checkpoints once itself, so the WAL does not grow without bound."""
    alloc = _open_with_checkpointer(tmp_path, pages=50, interval=0.01, max_frames=300)
    alloc.register_campaign("spring", variants, ["x1"], wait_window="1h")
    for i in range(3000):  # ~10,000 WAL pages written back to back
        alloc.decide("spring", [i], np.array([[0.5]]))
    assert _wal_frames(alloc) < 2000
    assert len(alloc.log.decisions("spring")) == 3000
    alloc.close()


def test_two_processes_log_concurrently_with_their_checkpointers(tmp_path, variants):
    """Like two serving workers: both write the same log, each with its own checkpoint thread."""
    bandit_dir = _registered_log(tmp_path, variants)
    script = (
        "import sys, numpy as np\n"
        "from experiments.bandit import Allocator\n"
        "from experiments.bandit.checkpointer import WalCheckpointer\n"
        "a = Allocator.open(sys.argv[1])\n"
        "a.log._checkpointer = WalCheckpointer(a.log.path, pages=60, max_frames=600)\n"
        "for i in range(1500):\n"
        "    a.decide('spring', [i], np.array([[0.5]]))\n"
        "a.close()\n"
    )
    workers = [subprocess.Popen([sys.executable, "-c", script, bandit_dir], stderr=subprocess.PIPE, text=True)
               for _ in range(2)]
    for w in workers:
        assert w.wait(timeout=300) == 0, w.stderr.read()
    reopened = Allocator.open(tmp_path / "bandit")
    log = reopened.log.decisions("spring")
    assert len(log) == 3000 and log["decision_id"].is_unique
    reopened.close()


def test_writers_take_the_shared_file_lock(allocator, make_contexts):
    """Every write waits on `<log>.lock` (held here as another process would), not in SQLite's busy
    handler, and goes through as soon as it is released."""
    import fcntl
    import threading
    import time

    path = allocator.log.path.with_name(allocator.log.path.name + ".lock")
    with open(path, "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        done = threading.Event()
        worker = threading.Thread(target=lambda: (allocator.decide("spring", [5], make_contexts(1), now=T0),
                                                  done.set()))
        worker.start()
        time.sleep(0.3)
        assert not done.is_set()  # blocked on the lock
        fcntl.flock(held, fcntl.LOCK_UN)
        worker.join(timeout=30)
    assert done.is_set()
    assert len(allocator.log.decisions("spring")) == 1
