"""Probability calibration fitted on the validation period, stored as plain numbers.

Isotonic regression (Zadrozny & Elkan, "Transforming classifier scores into
accurate multiclass probability estimates", KDD 2002) or Platt scaling (Platt,
"Probabilistic outputs for support vector machines", 1999). The fitted map is
kept as JSON-able arrays so loading a model needs no pickle and applying it is
one `np.interp` (isotonic) or one logistic (Platt).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

METHODS = ("isotonic", "platt")


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return np.log(p) - np.log1p(-p)


@dataclass
class Calibrator:
    method: str = "isotonic"
    x: list[float] = field(default_factory=list)  # isotonic knots (raw probability)
    y: list[float] = field(default_factory=list)  # isotonic values (calibrated probability)
    a: float = 1.0  # Platt: sigmoid(a * logit(p) + b)
    b: float = 0.0

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"calibration method must be one of {METHODS}, got {self.method!r}")

    def fit(self, raw: np.ndarray, y: np.ndarray) -> "Calibrator":
        raw = np.asarray(raw, dtype=float)
        y = np.asarray(y, dtype=float)
        if self.method == "isotonic":
            from sklearn.isotonic import IsotonicRegression

            iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw, y)
            self.x = iso.X_thresholds_.tolist()
            self.y = iso.y_thresholds_.tolist()
        else:
            from sklearn.linear_model import LogisticRegression

            lr = LogisticRegression(C=1e6).fit(_logit(raw)[:, None], y)
            self.a, self.b = float(lr.coef_[0, 0]), float(lr.intercept_[0])
        return self

    def transform(self, raw: np.ndarray) -> np.ndarray:
        raw = np.asarray(raw, dtype=float)
        if self.method == "isotonic":
            return np.interp(raw, self.x, self.y)
        return 1.0 / (1.0 + np.exp(-(self.a * _logit(raw) + self.b)))

    def to_dict(self) -> dict:
        return {"method": self.method, "x": list(self.x), "y": list(self.y), "a": self.a, "b": self.b}

    @classmethod
    def from_dict(cls, d: dict) -> "Calibrator":
        return cls(method=d["method"], x=list(d["x"]), y=list(d["y"]), a=float(d["a"]), b=float(d["b"]))
