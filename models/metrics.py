"""Evaluation metrics, vectorized over whole test sets."""
from __future__ import annotations

import numpy as np
import pandas as pd


def auc(y, p) -> float:
    """Area under the ROC curve (NaN when only one class is present)."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y)
    if y.min() == y.max():
        return float("nan")
    return float(roc_auc_score(y, p))


def average_precision(y, p) -> float:
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(np.asarray(y), np.asarray(p)))


def log_loss(y, p) -> float:
    p = np.clip(np.asarray(p, dtype=float), 1e-7, 1 - 1e-7)
    y = np.asarray(y, dtype=float)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def expected_calibration_error(y, p, n_bins: int = 10) -> float:
    """ECE with equal-width bins: sum over bins of |mean(y) - mean(p)| weighted by bin share.

    Naeini, Cooper & Hauskrecht, "Obtaining Well Calibrated Probabilities Using
    Bayesian Binning", AAAI 2015; Guo et al., "On Calibration of Modern Neural
    Networks", ICML 2017.
    """
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    count = np.bincount(bins, minlength=n_bins)
    sum_y = np.bincount(bins, weights=y, minlength=n_bins)
    sum_p = np.bincount(bins, weights=p, minlength=n_bins)
    return float(np.abs(sum_y - sum_p).sum() / max(len(y), 1))


def _ranks_within_groups(groups: np.ndarray, scores: np.ndarray, seed: int = 0) -> np.ndarray:
    """1-based rank of each row inside its group by descending score; ties broken by a seeded shuffle."""
    tiebreak = np.random.default_rng(seed).random(len(scores))
    order = np.lexsort((tiebreak, -scores, groups))
    g = groups[order]
    starts = np.r_[0, np.flatnonzero(g[1:] != g[:-1]) + 1]
    pos = np.arange(len(g)) - np.repeat(starts, np.diff(np.r_[starts, len(g)]))
    ranks = np.empty(len(g), dtype=np.int64)
    ranks[order] = pos + 1
    return ranks


def per_group_ranking(groups, relevance, scores, k: int = 3, seed: int = 0) -> pd.DataFrame:
    """Per group (contact) with at least one relevant item: NDCG@k and recall@k, indexed by group, sorted.

    NDCG as in Järvelin & Kekäläinen, "Cumulated gain-based evaluation of IR
    techniques", TOIS 2002 (gain = relevance, discount = log2(rank + 1)).
    """
    groups = np.asarray(groups)
    rel = np.asarray(relevance, dtype=float)
    scores = np.asarray(scores, dtype=float)
    rank = _ranks_within_groups(groups, scores, seed)
    ideal_rank = _ranks_within_groups(groups, rel, seed)
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    frame = pd.DataFrame(
        {
            "g": groups,
            "dcg": np.where(rank <= k, rel * discount[np.minimum(rank, k) - 1], 0.0),
            "idcg": np.where(ideal_rank <= k, rel * discount[np.minimum(ideal_rank, k) - 1], 0.0),
            "hit": np.where(rank <= k, rel > 0, False),
            "rel": rel > 0,
        }
    )
    per = frame.groupby("g", sort=True).sum()
    per = per[per["rel"] > 0]
    return pd.DataFrame({f"ndcg@{k}": per["dcg"] / per["idcg"], f"recall@{k}": per["hit"] / per["rel"]})


def ranking_metrics(groups, relevance, scores, k: int = 3, seed: int = 0) -> dict[str, float]:
    """Mean NDCG@k and recall@k over groups (contacts) with at least one relevant item (`per_group_ranking`)."""
    per = per_group_ranking(groups, relevance, scores, k, seed)
    if per.empty:
        return {f"ndcg@{k}": float("nan"), f"recall@{k}": float("nan"), "groups": 0}
    return {
        f"ndcg@{k}": float(per[f"ndcg@{k}"].mean()),
        f"recall@{k}": float(per[f"recall@{k}"].mean()),
        "groups": int(len(per)),
    }


def cumulative_gain(y, p, points: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """(share of contacts targeted, share of positives captured) when targeting by descending score."""
    y = np.asarray(y, dtype=float)
    order = np.argsort(-np.asarray(p), kind="stable")
    captured = np.cumsum(y[order]) / max(y.sum(), 1.0)
    share = np.arange(1, len(y) + 1) / len(y)
    idx = np.unique(np.linspace(0, len(y) - 1, points).astype(int))
    return np.r_[0.0, share[idx]], np.r_[0.0, captured[idx]]
