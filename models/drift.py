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
* `trend_prior(rates, drivers, target_driver)`: the new prior from a known
  driver of the rate (for lead scoring: the sends planned in the label window,
  known to the sender), by least squares of past periods' rates on it.
"""
from __future__ import annotations

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


def trend_prior(rates, drivers, target_driver: float) -> float:
    """Base rate predicted for `target_driver` by the least-squares line of past `rates` on `drivers`."""
    rates, drivers = np.asarray(rates, dtype=float), np.asarray(drivers, dtype=float)
    if rates.shape != drivers.shape or len(rates) < 2 or np.ptp(drivers) == 0:
        raise ValueError("rates, drivers: expected >= 2 aligned periods with different drivers")
    slope, intercept = np.polyfit(drivers, rates, 1)
    return float(np.clip(intercept + slope * target_driver, 1e-6, 1 - 1e-6))
