"""Always-valid inference by the mixture sequential probability ratio test (mSPRT).

Johari, Koomen, Pekelis and Walsh (2017), "Peeking at A/B Tests: Why it matters,
and what to do about it", KDD; Johari, Koomen, Pekelis and Walsh (2022),
"Always Valid Inference: Continuous Monitoring of A/B Tests", Operations
Research 70(3). The estimate theta_hat (difference of means) is asymptotically
N(theta, V); with a normal mixing distribution N(0, tau^2) over the effect, the
mixture likelihood ratio against theta = 0 is

    Lambda = sqrt(V / (V + tau^2)) * exp(tau^2 theta_hat^2 / (2 V (V + tau^2))),

the always-valid p-value is the running minimum of min(1, 1/Lambda), and the
matching (1 - alpha) confidence sequence is theta_hat +- half_width with

    half_width^2 = V (V + tau^2) / tau^2 * (log((V + tau^2) / V) - 2 log alpha).

Both stay valid however often the results are looked at (Optimizely's Stats
Engine is built on the same test). All functions are elementwise over arrays.
"""
from __future__ import annotations

import numpy as np


def msprt_p_value(estimate, variance, tau):
    """min(1, 1/Lambda) at one look; take ``running_p_values`` across looks."""
    v = np.asarray(variance, dtype=float)
    t2 = np.asarray(tau, dtype=float) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        log_lambda = 0.5 * np.log(v / (v + t2)) + t2 * np.asarray(estimate) ** 2 / (2.0 * v * (v + t2))
        return np.minimum(1.0, np.exp(-log_lambda))


def confidence_sequence(estimate, variance, tau, alpha: float):
    """(low, high) of the (1 - alpha) mSPRT confidence sequence at one look."""
    v = np.asarray(variance, dtype=float)
    t2 = np.asarray(tau, dtype=float) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        half = np.sqrt(v * (v + t2) / t2 * (np.log((v + t2) / v) - 2.0 * np.log(alpha)))
    return estimate - half, estimate + half


def running_p_values(p_values, axis: int = -1):
    """Always-valid p-values over successive looks: the running minimum."""
    return np.minimum.accumulate(np.asarray(p_values, dtype=float), axis=axis)


def running_intervals(lows, highs, axis: int = -1):
    """Intersect confidence sequences over successive looks (still valid, narrower)."""
    return np.maximum.accumulate(np.asarray(lows), axis=axis), np.minimum.accumulate(np.asarray(highs), axis=axis)
