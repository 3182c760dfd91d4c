"""Feature map over shared context x variant features.

A variant a has a feature vector z_a (bias, numeric columns, one-hot
categorical columns) and a slot s_a (its own identity). For a context x
(bias + numeric context columns) the joint feature vector is

    phi(x, a) = [ vec(x z_a^T) ; e_{s_a} (x) x ]

The first block is shared by all variants: a variant never seen before gets
its predicted reward from its features (the "prior from features" of
Li et al. 2010, hybrid LinUCB). The second block is a per-variant correction
that is learned once the variant has data. Slots are appended when variants
are added, so the parameter vector only grows at its end (see
`LinearPosterior.grow`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass
class VariantEncoder:
    """Turns a variants table (content_id + feature columns) into z vectors.

    Numeric/bool columns are standardized with the registration mean and
    standard deviation (so a prior N(0, I) means the same for every column);
    text/categorical columns are one-hot encoded with the vocabulary seen at
    registration (a later unseen category encodes as all zeros for that column).
    """

    numeric: list[str] = field(default_factory=list)
    categorical: dict[str, list[str]] = field(default_factory=dict)
    center: list[float] = field(default_factory=list)
    scale: list[float] = field(default_factory=list)

    @classmethod
    def fit(cls, variants: pd.DataFrame, id_column: str = "content_id") -> "VariantEncoder":
        numeric, categorical = [], {}
        for col in variants.columns:
            if col == id_column:
                continue
            series = variants[col]
            if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
                numeric.append(col)
            else:
                categorical[col] = sorted(series.dropna().astype(str).unique().tolist())
        values = variants[numeric].astype(float).to_numpy()
        center = values.mean(axis=0) if len(values) else np.zeros(len(numeric))
        spread = values.std(axis=0) if len(values) else np.ones(len(numeric))
        spread = np.where(spread > 0, spread, 1.0)
        return cls(numeric, categorical, center.tolist(), spread.tolist())

    @property
    def width(self) -> int:
        """Length of z including the bias."""
        return 1 + len(self.numeric) + sum(len(v) for v in self.categorical.values())

    def encode(self, variants: pd.DataFrame) -> np.ndarray:
        missing = [c for c in [*self.numeric, *self.categorical] if c not in variants.columns]
        if missing:
            raise ValueError(f"variants: missing feature columns {missing}")
        parts = [np.ones((len(variants), 1))]
        if self.numeric:
            values = variants[self.numeric].astype(float).to_numpy()
            if not np.isfinite(values).all():
                raise ValueError("variants: numeric feature columns must be finite")
            parts.append((values - np.asarray(self.center)) / np.asarray(self.scale))
        for col, vocab in self.categorical.items():
            values = variants[col].astype(str).to_numpy()
            parts.append((values[:, None] == np.asarray(vocab, dtype=object)[None, :]).astype(float))
        return np.hstack(parts)

    def to_dict(self) -> dict:
        return {"numeric": self.numeric, "categorical": self.categorical,
                "center": self.center, "scale": self.scale}

    @classmethod
    def from_dict(cls, data: dict) -> "VariantEncoder":
        return cls(list(data["numeric"]), {k: list(v) for k, v in data["categorical"].items()},
                   list(data["center"]), list(data["scale"]))


def context_matrix(context: pd.DataFrame | np.ndarray | None, names: list[str], n: int) -> np.ndarray:
    """(n, 1 + len(names)) matrix: bias then the named numeric columns (missing -> 0)."""
    if isinstance(context, np.ndarray):
        if context.shape != (n, len(names)):
            raise ValueError(f"context: expected shape {(n, len(names))}, got {context.shape}")
        X = np.empty((n, 1 + len(names)))
        X[:, 0] = 1.0
        X[:, 1:] = context
        finite = np.isfinite(X)
        if not finite.all():
            X[~finite] = 0.0
        return X
    X = np.zeros((n, 1 + len(names)))
    X[:, 0] = 1.0
    if context is None:
        return X
    if len(context) != n:
        raise ValueError(f"context: {len(context)} rows for {n} contacts")
    for j, name in enumerate(names):
        if name in context.columns:
            try:
                X[:, 1 + j] = pd.to_numeric(context[name]).fillna(0.0).to_numpy(dtype=float)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"context: column {name!r} must be numeric") from exc
    return X


def joint_features(X: np.ndarray, Z: np.ndarray, slots: np.ndarray, n_slots: int) -> np.ndarray:
    """phi(x_n, a_n) for paired rows: X (n, d), Z (n, f) = z of each row's variant, slots (n,)."""
    n, d = X.shape
    shared = (X[:, :, None] * Z[:, None, :]).reshape(n, -1)
    own = np.zeros((n, n_slots, d))
    own[np.arange(n), slots] = X
    return np.hstack([shared, own.reshape(n, -1)])


def arm_weights(theta: np.ndarray, d: int, Z: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """Per-arm weight vectors W so that score(x, a) = x . W[..., a].

    theta: (D,) or (M, D) parameter draws; Z: (K, f) eligible variants' z;
    returns (d, K) or (M, d, K).
    """
    f = Z.shape[1]
    single = theta.ndim == 1
    T = theta[None] if single else theta
    shared = T[:, : d * f].reshape(len(T), d, f)
    own = T[:, d * f :].reshape(len(T), -1, d)
    W = shared @ Z.T + own[:, slots, :].transpose(0, 2, 1)
    return W[0] if single else W


def arm_projections(d: int, Z: np.ndarray, slots: np.ndarray, n_slots: int) -> np.ndarray:
    """P (K, D, d) with phi(x, a_k) = P[k] @ x; used for per-arm score variances."""
    K, f = Z.shape
    D = d * (f + n_slots)
    P = np.zeros((K, D, d))
    eye = np.eye(d)
    for k in range(K):  # K variants, once per snapshot, not per decision
        P[k, : d * f] = np.kron(eye, Z[k][:, None])
        P[k, d * f + slots[k] * d : d * f + (slots[k] + 1) * d] = eye
    return P
