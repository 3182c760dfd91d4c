"""Paired comparisons of two scorers on the same test rows: DeLong's test for AUCs, a paired bootstrap for means.

Two models scored on the same rows are correlated; comparing their point
estimates (or two separate confidence intervals) ignores that. Both tests here
work on the difference:

* `delong`: the difference of two correlated AUCs with DeLong's variance
  (DeLong, DeLong & Clarke-Pearson, "Comparing the areas under two or more
  correlated receiver operating characteristic curves: a nonparametric
  approach", Biometrics 44(3), 1988), computed with the midrank algorithm of
  Sun & Xu, "Fast implementation of DeLong's algorithm for comparing the areas
  under correlated receiver operating characteristic curves", IEEE Signal
  Processing Letters 21(11), 2014 (O(n log n), no pairwise matrix);
* `bootstrap_auc`: the same difference by a paired percentile bootstrap over
  rows (Efron & Tibshirani, *An Introduction to the Bootstrap*, 1993), the
  check of DeLong's normal approximation;
* `bootstrap_mean`: a paired bootstrap of the difference of two per-unit means
  (NDCG@k per contact, uplift per contact): resampling units keeps each unit's
  pair together.

Each returns a `PairedTest` (plain record): the two values, their difference,
a two-sided CI of it, the statistic, one-sided p-values for superiority
(H0: diff <= 0) and non-inferiority (H0: diff <= -margin).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

LEVEL = 0.95


@dataclass(frozen=True)
class PairedTest:
    method: str  # "delong", "bootstrap"
    metric: str
    ours: float
    reference: float
    diff: float  # ours - reference
    ci_low: float  # two-sided LEVEL interval of diff
    ci_high: float
    statistic: float  # z = diff / se (bootstrap: se from the replicates)
    p_superior: float  # one-sided, H0: diff <= 0
    p_noninferior: float  # one-sided, H0: diff <= -margin
    margin: float = 0.0

    @property
    def wins(self) -> bool:
        """The whole CI of the difference is above zero."""
        return bool(self.ci_low > 0)

    @property
    def significantly_worse(self) -> bool:
        """The whole CI of the difference is below zero."""
        return bool(self.ci_high < 0)

    @property
    def noninferior(self) -> bool:
        return bool(self.p_noninferior < 1 - LEVEL)

    def as_metrics(self, prefix: str) -> dict[str, float]:
        """MLflow metrics `<prefix>_diff`, `_ci_low`, `_ci_high`, `_z`, `_p`, `_p_noninferior`."""
        return {f"{prefix}_diff": self.diff, f"{prefix}_ci_low": self.ci_low, f"{prefix}_ci_high": self.ci_high,
                f"{prefix}_z": self.statistic, f"{prefix}_p": self.p_superior,
                f"{prefix}_p_noninferior": self.p_noninferior}

    def as_dict(self) -> dict:
        return asdict(self)


def _binary(y) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or not np.isin(y, (0, 1)).all():
        raise ValueError("y: expected a 1-d array of 0/1 labels")
    if y.min() == y.max():
        raise ValueError("y: both classes are needed to compare AUCs")
    return y.astype(bool)


def _scores(name: str, s, n: int) -> np.ndarray:
    s = np.asarray(s, dtype=float)
    if s.shape != (n,) or not np.isfinite(s).all():
        raise ValueError(f"{name}: expected {n} finite scores, one per label")
    return s


def delong_components(y, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(AUC per scorer, V10 [k, m] positives' placements, V01 [k, n] negatives' placements).

    `scores` is [k, rows]. Sun & Xu (2014), Algorithm 1: midranks of the positives among all rows,
    among the positives only, and likewise for the negatives.
    """
    pos = _binary(y)
    scores = np.atleast_2d(np.asarray(scores, dtype=float))
    x, z = scores[:, pos], scores[:, ~pos]
    m, n = x.shape[1], z.shape[1]
    tz = stats.rankdata(np.concatenate([x, z], axis=1), axis=1)
    tx = stats.rankdata(x, axis=1)
    ty = stats.rankdata(z, axis=1)
    auc = tz[:, :m].sum(axis=1) / (m * n) - (m + 1.0) / (2.0 * n)
    v10 = (tz[:, :m] - tx) / n
    v01 = 1.0 - (tz[:, m:] - ty) / m
    return auc, v10, v01


def _test(method, metric, ours, ref, diff, se, ci, margin) -> PairedTest:
    z = diff / se if se > 0 else (np.inf if diff > 0 else (-np.inf if diff < 0 else 0.0))
    p_sup = float(stats.norm.sf(z)) if se > 0 else float(diff <= 0)
    p_ni = float(stats.norm.sf((diff + margin) / se)) if se > 0 else float(diff + margin <= 0)
    return PairedTest(method, metric, float(ours), float(ref), float(diff), float(ci[0]), float(ci[1]),
                      float(z), p_sup, p_ni, float(margin))


def delong(y, ours, reference, margin: float = 0.0) -> PairedTest:
    """DeLong's paired test of AUC(ours) - AUC(reference) on the same rows (normal approximation)."""
    y = np.asarray(y)
    ours, reference = _scores("ours", ours, len(y)), _scores("reference", reference, len(y))
    auc, v10, v01 = delong_components(y, np.vstack([ours, reference]))
    m, n = v10.shape[1], v01.shape[1]
    cov = np.cov(v10) / m + np.cov(v01) / n
    diff = auc[0] - auc[1]
    se = float(np.sqrt(max(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1], 0.0)))
    q = stats.norm.ppf(0.5 + LEVEL / 2)
    return _test("delong", "auc", auc[0], auc[1], diff, se, (diff - q * se, diff + q * se), margin)


def auc_variance(y, scores) -> float:
    """DeLong's variance of one AUC."""
    _, v10, v01 = delong_components(y, np.asarray(scores, dtype=float)[None, :])
    return float(np.var(v10[0], ddof=1) / v10.shape[1] + np.var(v01[0], ddof=1) / v01.shape[1])


def _weighted_auc(order_groups, pos_sorted: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUC per row of `weights` [B, rows in score order], ties counted half (one pass over sorted rows)."""
    starts = order_groups
    wp = np.add.reduceat(weights * pos_sorted, starts, axis=1)
    wn = np.add.reduceat(weights * ~pos_sorted, starts, axis=1)
    below = np.cumsum(wn, axis=1) - wn
    return (wp * (below + 0.5 * wn)).sum(axis=1) / (wp.sum(axis=1) * wn.sum(axis=1))


def _replicate_counts(rng, n: int, size: int) -> np.ndarray:
    return rng.multinomial(n, np.full(n, 1.0 / n), size=size).astype(np.float64)


def _from_replicates(method, metric, ours, ref, reps: np.ndarray, margin) -> PairedTest:
    diff = ours - ref
    lo, hi = np.quantile(reps, [0.5 - LEVEL / 2, 0.5 + LEVEL / 2])
    se = float(np.std(reps, ddof=1))
    b = len(reps)
    p_sup = (1 + np.count_nonzero(reps <= 0)) / (b + 1)
    p_ni = (1 + np.count_nonzero(reps <= -margin)) / (b + 1)
    return PairedTest(method, metric, float(ours), float(ref), float(diff), float(lo), float(hi),
                      float(diff / se) if se > 0 else 0.0, float(p_sup), float(p_ni), float(margin))


def bootstrap_auc(y, ours, reference, replicates: int = 1000, seed: int = 0, margin: float = 0.0,
                  chunk: int = 50) -> PairedTest:
    """Paired percentile bootstrap over rows of AUC(ours) - AUC(reference)."""
    pos = _binary(y)
    ours, reference = _scores("ours", ours, len(pos)), _scores("reference", reference, len(pos))
    rng = np.random.default_rng(seed)
    prepared = []
    for s in (ours, reference):
        order = np.argsort(s, kind="stable")
        ss = s[order]
        prepared.append((order, np.r_[0, np.flatnonzero(ss[1:] != ss[:-1]) + 1], pos[order]))
    full = np.ones((1, len(pos)))
    point = [float(_weighted_auc(st, p, full[:, o])[0]) for o, st, p in prepared]
    reps = []
    for lo in range(0, replicates, chunk):
        w = _replicate_counts(rng, len(pos), min(chunk, replicates - lo))
        a, b = (_weighted_auc(st, p, w[:, o]) for o, st, p in prepared)
        reps.append(a - b)
    return _from_replicates("bootstrap", "auc", point[0], point[1], np.concatenate(reps), margin)


def bootstrap_mean(ours, reference, metric: str, replicates: int = 2000, seed: int = 0,
                   margin: float = 0.0, chunk: int = 200) -> PairedTest:
    """Paired bootstrap over units of mean(ours) - mean(reference), `ours`/`reference` aligned per unit."""
    ours, reference = np.asarray(ours, dtype=float), np.asarray(reference, dtype=float)
    if ours.shape != reference.shape or ours.ndim != 1 or len(ours) < 2:
        raise ValueError("ours, reference: expected two aligned 1-d arrays of per-unit values (>= 2 units)")
    if not (np.isfinite(ours).all() and np.isfinite(reference).all()):
        raise ValueError("ours, reference: per-unit values must be finite")
    d = ours - reference
    rng = np.random.default_rng(seed)
    reps = np.concatenate([_replicate_counts(rng, len(d), min(chunk, replicates - lo)) @ d / len(d)
                           for lo in range(0, replicates, chunk)])
    return _from_replicates("bootstrap", metric, ours.mean(), reference.mean(), reps, margin)
