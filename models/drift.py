"""Probability calibration when the base rate moves between periods (prior shift).

A calibrator fitted on one period is right for that period's base rate; when
the rate of the next period differs, every probability is off by about the
same odds factor. Three corrections a practitioner can apply, compared by the
lead model's evaluation (`calibration_under_drift` table):

* `prior_shift(p, source, target)`: Bayes' rule with a new prior, the odds
  scaled by (target / (1 - target)) / (source / (1 - source)) (Saerens,
  Latinne & Decaestecker, "Adjusting the outputs of a classifier to new a
  priori probabilities: a simple procedure", Neural Computation 14(1), 2002,
  eq. 2.4);
* `em_prior(p, source)`: the new prior estimated from the unlabelled target
  rows by their EM procedure (same paper, section 2.2), assuming p(x | y)
  unchanged;
* `SendVolumePrior`: the new prior from a known driver of the rate, the
  sends per contact planned in the label window (the sender knows its own
  campaign calendar), by the least-squares line of past label windows' rates
  on their send volumes. Stored with the served lead model as plain numbers
  (the calibrator period's rate and the line), so scoring can take the plan
  and `prior_shift` the probabilities to it.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np


def _odds(p):
    p = np.clip(np.asarray(p, dtype=float), 1e-12, 1 - 1e-12)
    return p / (1 - p)


def prior_shift(p, source: float, target: float) -> np.ndarray:
    """Probabilities for a population whose base rate is `target` instead of `source` (Saerens et al. eq. 2.4)."""
    for name, v in (("source", source), ("target", target)):
        if not 0 < v < 1:
            raise ValueError(f"{name}: a base rate must be in (0, 1), got {v}")
    o = _odds(p) * (_odds(target) / _odds(source))
    return o / (1 + o)


def em_prior(p, source: float, tol: float = 1e-8, max_iter: int = 1000) -> float:
    """The target base rate by Saerens et al.'s EM: alternate adjusted posteriors and their mean."""
    p = np.asarray(p, dtype=float)
    if p.ndim != 1 or len(p) == 0 or not np.isfinite(p).all():
        raise ValueError("p: expected a non-empty 1-d array of finite probabilities")
    prior = float(source)
    for _ in range(max_iter):
        new = float(prior_shift(p, source, prior).mean())
        if abs(new - prior) < tol:
            return new
        prior = min(max(new, 1e-9), 1 - 1e-9)
    return prior


def check_planned_sends(value, field: str = "planned_sends") -> float:
    """`value` as a float: finite and >= 0 (sends per contact over the score's horizon), else ValueError naming
    `field`."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{field}: expected a number of sends per contact, got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(v) or v < 0:
        raise ValueError(f"{field}: expected a finite number of sends per contact >= 0, got {value!r}")
    return v


@dataclass(frozen=True)
class SendVolumePrior:
    """Base rate as a line in the sends per contact of the label window, fitted on past label windows.

    `source_rate` is the base rate of the period the calibrator was fitted on; `shift(p, planned_sends)`
    moves calibrated probabilities to the rate the line predicts for the plan (Saerens et al. 2002, eq. 2.4).
    The shift is monotone: rankings (and AUC) are unchanged.
    """

    source_rate: float  # base rate of the calibrator's period
    intercept: float  # rate = intercept + slope * sends per contact in the label window
    slope: float
    horizon_days: int  # the label window the sends are counted over
    windows: int  # past label windows the line was fitted on
    sends_min: float  # their range of sends per contact (outside it the line extrapolates)
    sends_max: float

    @classmethod
    def fit(cls, rates, sends, source_rate: float, horizon_days: int) -> "SendVolumePrior":
        rates, sends = np.asarray(rates, dtype=float), np.asarray(sends, dtype=float)
        if rates.shape != sends.shape or len(rates) < 2 or np.ptp(sends) == 0:
            raise ValueError("sends: expected >= 2 past label windows with different send volumes")
        slope, intercept = np.polyfit(sends, rates, 1)
        prior = cls(float(source_rate), float(intercept), float(slope), int(horizon_days), len(rates),
                    float(sends.min()), float(sends.max()))
        prior_shift(np.array([0.5]), prior.source_rate, 0.5)  # validates source_rate in (0, 1)
        return prior

    def rate(self, planned_sends: float) -> float:
        """Base rate the line predicts for `planned_sends` per contact (clipped into (0, 1))."""
        sends = check_planned_sends(planned_sends)
        return float(np.clip(self.intercept + self.slope * sends, 1e-6, 1 - 1e-6))

    def shift(self, p, planned_sends: float) -> np.ndarray:
        """Calibrated probabilities `p` moved from the calibrator period's rate to the plan's."""
        return prior_shift(p, self.source_rate, self.rate(planned_sends))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "SendVolumePrior":
        return cls(float(d["source_rate"]), float(d["intercept"]), float(d["slope"]), int(d["horizon_days"]),
                   int(d["windows"]), float(d["sends_min"]), float(d["sends_max"]))
