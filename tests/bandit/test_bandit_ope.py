"""Off-policy evaluation: IPS recovers the logging policy, DR is unbiased, CLI evaluate."""
import json

import numpy as np
import pandas as pd
import pytest

from experiments.bandit.ope import (DirectMethod, DoublyRobust, InverseProbabilityWeighting, LoggedBandit,
                                    SelfNormalizedInverseProbabilityWeighting)


def _softmax(s):
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _synthetic(n, K=4, reps=1, seed=0):
    """Replicated logs with known truth: mu(x, a) = sigmoid(x . beta_a), softmax logging policy."""
    rng = np.random.default_rng(seed)
    beta = rng.normal(size=(3, K))
    X = rng.normal(size=(reps, n, 3))
    mu = 1 / (1 + np.exp(-(X @ beta)))
    logging = _softmax(0.8 * (X @ rng.normal(size=(3, K))))
    u = rng.random((reps, n, 1))
    action = (logging.cumsum(-1) < u).sum(-1).clip(0, K - 1)
    idx = np.indices(action.shape)
    reward = (rng.random((reps, n)) < mu[idx[0], idx[1], action]).astype(float)
    pscore = logging[idx[0], idx[1], action]
    return X, mu, logging, action, reward, pscore


def test_ips_of_logging_policy_recovers_its_mean_reward():
    X, mu, logging, action, reward, pscore = _synthetic(20_000)
    data = LoggedBandit(X[0], action[0], reward[0], pscore[0], 4)
    est = InverseProbabilityWeighting().estimate(data, logging[0])
    assert est.value == pytest.approx(reward[0].mean(), abs=1e-12)
    true_value = (logging[0] * mu[0]).sum(1).mean()
    assert est.ci_low <= true_value <= est.ci_high


def test_dr_unbiased_with_wrong_reward_model_and_dm_is_not():
    reps, n, K = 200, 1000, 4
    X, mu, logging, action, reward, pscore = _synthetic(n, K, reps, seed=1)
    target = _softmax(3.0 * mu)  # the evaluated policy leans to good actions
    truth = (target * mu).sum(-1).mean()
    q_wrong = mu + 0.15  # a biased reward model
    dr, dm, snips = [], [], []
    for r in range(reps):
        data = LoggedBandit(X[r], action[r], reward[r], pscore[r], K)
        dr.append(DoublyRobust().estimate(data, target[r], q_wrong[r]).value)
        dm.append(DirectMethod().estimate(data, target[r], q_wrong[r]).value)
        snips.append(SelfNormalizedInverseProbabilityWeighting().estimate(data, target[r]).value)
    dr = np.array(dr)
    se = dr.std(ddof=1) / np.sqrt(reps)
    assert abs(dr.mean() - truth) < 4 * se + 1e-3
    assert abs(np.mean(dm) - truth) > 0.1
    assert abs(np.mean(snips) - truth) < 0.01


def test_ci_covers_truth_for_every_estimator():
    X, mu, logging, action, reward, pscore = _synthetic(30_000, seed=2)
    data = LoggedBandit(X[0], action[0], reward[0], pscore[0], 4)
    target = _softmax(2.0 * mu[0])
    truth = (target * mu[0]).sum(1).mean()
    for est in (InverseProbabilityWeighting(), SelfNormalizedInverseProbabilityWeighting(), DoublyRobust()):
        e = est.estimate(data, target, mu[0])
        assert e.ci_low <= truth <= e.ci_high, est.name
        assert e.ci_high - e.ci_low < 0.05


def test_ips_on_allocator_log_equals_mean_reward(allocator, make_contexts):
    """The logged probability vectors are the serving policy: IPS of it on its own log = mean reward."""
    ts = pd.Timestamp("2026-05-01", tz="UTC")
    out = allocator.choose("spring", np.arange(2000), make_contexts(2000), now=ts)
    rng = np.random.default_rng(0)
    r = (rng.random(2000) < np.where(out["variant"] == 12, 0.3, 0.1)).astype(float)
    allocator.rewards(out["decision_id"], r, [ts + pd.Timedelta("1h")] * 2000, [f"e{i}" for i in range(2000)])
    log = allocator.log.joined("spring", 0, 2**62, "first", 0.0)
    probs = np.vstack(allocator.log.decisions("spring")["probabilities"])
    eligible = np.asarray(log["eligible"].iloc[0])
    action = np.searchsorted(eligible, log["variant"].to_numpy())
    data = LoggedBandit(np.vstack(log["context"]), action, log["reward"].to_numpy(), log["propensity"].to_numpy(), 4)
    assert InverseProbabilityWeighting().estimate(data, probs).value == pytest.approx(r.mean(), abs=1e-12)


def _log_frame(n=6000, seed=3):
    rng = np.random.default_rng(seed)
    segment = rng.choice(["smb", "mid", "ent"], n)
    score = rng.normal(size=n)
    action = rng.choice(["a", "b", "c"], n)
    best = np.select([segment == "smb", segment == "mid"], ["a", "b"], "c")
    p = np.where(action == best, 0.3, 0.05) + 0.02 * (score > 0)
    return pd.DataFrame({
        "ts": pd.date_range("2026-05-01", periods=n, freq="min", tz="UTC"),
        "segment": segment, "score": score, "variant": action,
        "clicked": (rng.random(n) < p).astype(int), "p": np.full(n, 1 / 3),
        "topic": pd.Series(action).map({"a": "product", "b": "event", "c": "news"}),
    })


def test_cli_evaluate_json_and_table(tmp_path, capsys):
    from inbox.cli import main

    path = tmp_path / "log.parquet"
    _log_frame().to_parquet(path)
    code = main(["bandit", "evaluate", str(path), "--action", "variant", "--reward", "clicked",
                 "--propensity", "p", "--context", "segment", "score", "--action-feature", "topic",
                 "--timestamp", "ts", "--json"])
    assert code == 0
    rows = pd.DataFrame(json.loads(capsys.readouterr().out))
    assert set(rows["policy"]) == {"uniform", "logged", "learned"}
    assert set(rows["estimator"]) == {"ips", "snips", "dm", "dr"}
    dr = rows[rows["estimator"] == "dr"].set_index("policy")
    assert dr.loc["learned", "ci_low"] > dr.loc["uniform", "value"]   # the learned policy finds the best variant
    assert 0.25 < dr.loc["learned", "value"] < 0.36                    # truth ~0.30 (+0.01 score bonus) at eps=0.05
    csv = tmp_path / "log.csv"
    _log_frame().to_csv(csv, index=False)
    assert main(["bandit", "evaluate", str(csv), "--action", "variant", "--reward", "clicked",
                 "--propensity", "p", "--context", "segment", "score"]) == 0
    assert "learned" in capsys.readouterr().out
    assert main(["bandit", "evaluate", str(csv), "--action", "nope", "--reward", "clicked",
                 "--propensity", "p", "--context", "segment"]) == 2
    assert "missing columns ['nope']" in capsys.readouterr().err
