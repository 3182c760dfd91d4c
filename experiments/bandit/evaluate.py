"""Off-policy evaluation of a logged table (CSV or Parquet).

Documented columns (names are given on the command line):

| column            | required | meaning                                                     |
|-------------------|----------|-------------------------------------------------------------|
| context (1..n)    | yes      | numeric, or categorical (one-hot encoded)                   |
| action            | yes      | the logged variant (any type; the distinct values are the actions) |
| reward            | yes      | numeric reward of the logged action                         |
| propensity        | yes      | logging probability of the logged action, in (0, 1]         |
| action features   | no       | per-row features of the logged action (first value per action is used) |
| position          | no       | slot on the page/email; used as an extra categorical context |
| timestamp         | no       | orders the rows for the earlier/later split (else file order) |

The log is split in time: policies are learned on the earlier slice
(`train_share`) and evaluated on the later one. Evaluated policies:
`uniform`, `logged` (the logging policy itself: its IPS/SNIPS estimate is the
on-policy mean; DM/DR need its full distribution, which a log of chosen
propensities does not hold, so they are left empty), and `learned` (a ridge
reward model fitted on the earlier slice, greedy with epsilon exploration).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import norm

from .ope import ESTIMATORS, LoggedBandit, RewardModel, cross_fitted_rewards, greedy_with_epsilon


@dataclass(frozen=True)
class LogColumns:
    action: str
    reward: str
    propensity: str
    context: tuple[str, ...]
    action_features: tuple[str, ...] = ()
    position: str | None = None
    timestamp: str | None = None


def read_log(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"LOGS: no such file {path}")
    if path.suffix.lower() in (".parquet", ".pq"):
        return pd.read_parquet(path)
    if path.suffix.lower() in (".csv", ".txt", ".gz"):
        return pd.read_csv(path)
    raise ValueError(f"LOGS: expected a .csv or .parquet file, got {path.name}")


def to_logged_bandit(df: pd.DataFrame, cols: LogColumns) -> tuple[LoggedBandit, list]:
    """Validate the columns and build the OPE input; returns (data, action values)."""
    needed = [cols.action, cols.reward, cols.propensity, *cols.context, *cols.action_features]
    needed += [c for c in (cols.position, cols.timestamp) if c]
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise ValueError(f"LOGS: missing columns {missing}; the file has {list(df.columns)}")
    if not cols.context:
        raise ValueError("--context: give at least one context column")
    if cols.timestamp:
        df = df.sort_values(cols.timestamp, kind="stable")
    for name in (cols.reward, cols.propensity):
        if not pd.api.types.is_numeric_dtype(df[name]):
            raise ValueError(f"{name}: must be numeric")
        if df[name].isna().any():
            raise ValueError(f"{name}: has missing values")
    p = df[cols.propensity].to_numpy(float)
    if ((p <= 0) | (p > 1)).any():
        raise ValueError(f"{cols.propensity}: propensities must be in (0, 1]")
    codes, actions = pd.factorize(df[cols.action], sort=True)
    if (codes < 0).any():
        raise ValueError(f"{cols.action}: has missing values")
    context_cols = list(cols.context) + ([cols.position] if cols.position else [])
    parts = []
    for c in context_cols:
        s = df[c]
        if pd.api.types.is_numeric_dtype(s) and c != cols.position:
            parts.append(s.fillna(0).to_numpy(float)[:, None])
        else:
            parts.append(pd.get_dummies(s.astype(str), prefix=c).to_numpy(float))
    action_context = None
    if cols.action_features:
        first = df.assign(_a=codes).groupby("_a")[list(cols.action_features)].first()
        action_context = pd.get_dummies(first, dtype=float).to_numpy(float)
    data = LoggedBandit(np.hstack(parts), codes.astype(np.int64), df[cols.reward].to_numpy(float), p,
                        len(actions), action_context)
    return data, list(actions)


def evaluate_log(data: LoggedBandit, train_share: float = 0.5, epsilon: float = 0.05,
                 alpha: float = 0.05) -> pd.DataFrame:
    """Rows (policy, estimator, value, ci_low, ci_high, std_error, n) on the later slice."""
    if not 0 < train_share < 1:
        raise ValueError("train_share: must be in (0, 1)")
    cut = int(len(data) * train_share)
    if cut < 2 or len(data) - cut < 2:
        raise ValueError("LOGS: too few rows to split into an earlier and a later slice")
    train, test = data.subset(np.arange(cut)), data.subset(np.arange(cut, len(data)))
    q_test = cross_fitted_rewards(test)
    learned_scores = RewardModel(data.n_actions, data.action_context).fit(train).predict(test.context)
    policies = {
        "uniform": np.full((len(test), data.n_actions), 1.0 / data.n_actions),
        "learned": greedy_with_epsilon(learned_scores, epsilon),
    }
    rows = []
    for name, dist in policies.items():
        for est in ESTIMATORS:
            rows.append({"policy": name, **asdict(est.estimate(test, dist, q_test, alpha))})
    on_policy = test.reward
    for est in ("ips", "snips"):
        mean = float(on_policy.mean())
        se = float(on_policy.std(ddof=1) / np.sqrt(len(test)))
        z = norm.ppf(1 - alpha / 2)
        rows.append({"policy": "logged", "estimator": est, "value": mean, "ci_low": mean - z * se,
                     "ci_high": mean + z * se, "std_error": se, "n": len(test)})
    for est in ("dm", "dr"):
        rows.append({"policy": "logged", "estimator": est, "value": np.nan, "ci_low": np.nan, "ci_high": np.nan,
                     "std_error": np.nan, "n": len(test)})
    order = {"uniform": 0, "logged": 1, "learned": 2}
    out = pd.DataFrame(rows)
    return out.sort_values(["policy", "estimator"], key=lambda s: s.map(order) if s.name == "policy" else s,
                           kind="stable").reset_index(drop=True)
