"""Logistic regression on an encoded feature matrix, kept as plain numbers.

The lead model's linear part and its logistic-regression baseline are this
one class. Design matrix: each numeric column median-imputed (plus a 0/1
missing indicator when training had missing values) and standardized; each
categorical column (integer codes from `models.encoding`, missing -> -1)
one-hot over the codes seen in training (an unseen code is all zeros); each
recency column (days since an event, NaN = never) also expanded into decay
kernels exp(-days / tau), 0 when never, because a response to a recent email is
still on its way (the conversion delay) and decays with it, a shape no single
linear term has; the one-hot and kernel columns centred on their training means so that per-feature
contributions are Shapley values of the linear model under feature
independence (coef x (x - E x); Lundberg & Lee, "A unified approach to
interpreting model predictions", NeurIPS 2017). Fitted by scikit-learn's
`LogisticRegression` (L2, lbfgs); stored as JSON-able lists, applied in numpy.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class LinearLogit:
    C: float = 1.0
    max_iter: int = 300
    categorical: list[int] = field(default_factory=list)  # column indices of the encoded matrix
    n_columns: int = 0
    median: list[float] = field(default_factory=list)  # per numeric column (non-categorical, in order)
    center: list[float] = field(default_factory=list)  # per design column
    scale: list[float] = field(default_factory=list)
    with_indicator: list[bool] = field(default_factory=list)  # per numeric column
    codes: dict[int, list[float]] = field(default_factory=dict)  # categorical column -> codes seen
    recency: list[int] = field(default_factory=list)  # numeric "days since" columns expanded into decay kernels
    recency_days: list[float] = field(default_factory=list)  # the kernels' time constants (days)
    coef: list[float] = field(default_factory=list)
    intercept: float = 0.0

    # --- design -----------------------------------------------------------------
    @property
    def numeric(self) -> list[int]:
        cats = set(self.categorical)
        return [j for j in range(self.n_columns) if j not in cats]

    def _raw_design(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(design before centring/scaling, owner column index per design column)."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_columns:
            raise ValueError(f"X: expected {self.n_columns} encoded feature columns, got shape {X.shape}")
        parts, owner = [], []
        num = self.numeric
        values = X[:, num]
        missing = np.isnan(values)
        parts.append(np.where(missing, np.asarray(self.median)[None, :], values))
        owner += num
        flags = np.asarray(self.with_indicator, dtype=bool)
        parts.append(missing[:, flags].astype(np.float64))
        owner += [j for j, f in zip(num, flags) if f]
        for j in self.categorical:
            code = np.where(np.isnan(X[:, j]), -1.0, X[:, j])
            seen = np.asarray(self.codes[j])
            parts.append((code[:, None] == seen[None, :]).astype(np.float64))
            owner += [j] * len(seen)
        if self.recency and self.recency_days:
            days = X[:, self.recency][:, :, None] / np.asarray(self.recency_days, dtype=float)[None, None, :]
            parts.append(np.where(np.isnan(days), 0.0, np.exp(-days)).reshape(len(X), -1))
            owner += [j for j in self.recency for _ in self.recency_days]
        return np.hstack(parts), np.asarray(owner, dtype=np.int64)

    def design(self, X: np.ndarray) -> np.ndarray:
        raw, _ = self._raw_design(X)
        return (raw - np.asarray(self.center)) / np.asarray(self.scale)

    # --- fit / predict ------------------------------------------------------------
    def fit(self, X: np.ndarray, y: np.ndarray, categorical: list[int], threads: int = 1,
            recency: list[int] = ()) -> "LinearLogit":
        """Fit on encoded `X`; `recency`: numeric columns (days since an event) to expand into the kernels
        of `recency_days`."""
        from sklearn.linear_model import LogisticRegression
        from threadpoolctl import threadpool_limits

        X = np.asarray(X, dtype=np.float64)
        self.n_columns, self.categorical = X.shape[1], sorted(int(j) for j in categorical)
        self.recency = sorted(int(j) for j in recency)
        if set(self.recency) & set(self.categorical) or any(not 0 <= j < self.n_columns for j in self.recency):
            raise ValueError(f"recency: expected numeric column indices, got {list(recency)}")
        if any(not (np.isfinite(t) and t > 0) for t in self.recency_days):
            raise ValueError(f"recency_days: expected positive time constants, got {self.recency_days}")
        num = self.numeric
        values = X[:, num]
        with np.errstate(all="ignore"):
            med = np.nanmedian(values, axis=0) if len(values) else np.zeros(len(num))
        self.median = np.where(np.isfinite(med), med, 0.0).tolist()
        self.with_indicator = np.isnan(values).any(axis=0).tolist()
        self.codes = {j: np.unique(np.where(np.isnan(X[:, j]), -1.0, X[:, j])).tolist() for j in self.categorical}
        raw, owner = self._raw_design(X)
        center = raw.mean(axis=0)
        scale = raw.std(axis=0)
        is_onehot = np.isin(owner, self.categorical)
        scale = np.where(is_onehot | (scale == 0), 1.0, scale)  # one-hots centred, not scaled (kernels: scaled)
        self.center, self.scale = center.tolist(), scale.tolist()
        with threadpool_limits(limits=threads):  # BLAS spinning threads on a shared box
            lr = LogisticRegression(C=self.C, max_iter=self.max_iter).fit((raw - center) / scale, np.asarray(y))
        self.coef, self.intercept = lr.coef_[0].tolist(), float(lr.intercept_[0])
        return self

    def logit(self, X: np.ndarray) -> np.ndarray:
        return self.design(X) @ np.asarray(self.coef) + self.intercept

    def probability(self, X: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.logit(X)))

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """[rows, n_columns + 1]: each encoded column's share of the logit, the intercept last (the layout of
        LightGBM's `pred_contrib`)."""
        raw, owner = self._raw_design(X)
        terms = (raw - np.asarray(self.center)) / np.asarray(self.scale) * np.asarray(self.coef)
        out = np.zeros((len(raw), self.n_columns + 1))
        np.add.at(out.T, owner, terms.T)
        out[:, -1] = self.intercept
        return out

    # --- persistence ----------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"C": self.C, "max_iter": self.max_iter, "categorical": list(self.categorical),
                "n_columns": self.n_columns, "median": list(self.median), "center": list(self.center),
                "scale": list(self.scale), "with_indicator": [bool(v) for v in self.with_indicator],
                "codes": {str(k): list(v) for k, v in self.codes.items()}, "recency": list(self.recency),
                "recency_days": list(self.recency_days), "coef": list(self.coef), "intercept": self.intercept}

    @classmethod
    def from_dict(cls, d: dict) -> "LinearLogit":
        return cls(C=float(d["C"]), max_iter=int(d["max_iter"]), categorical=[int(j) for j in d["categorical"]],
                   n_columns=int(d["n_columns"]), median=list(d["median"]), center=list(d["center"]),
                   scale=list(d["scale"]), with_indicator=[bool(v) for v in d["with_indicator"]],
                   codes={int(k): list(v) for k, v in d["codes"].items()},
                   recency=[int(j) for j in d.get("recency", [])],  # absent in versions before the kernels
                   recency_days=[float(t) for t in d.get("recency_days", [])], coef=list(d["coef"]),
                   intercept=float(d["intercept"]))
