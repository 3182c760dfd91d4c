"""Adjusted p-values across a family of comparisons (variants x metrics).

Holm (1979), "A Simple Sequentially Rejective Multiple Test Procedure",
Scandinavian Journal of Statistics (family-wise error); Benjamini and Hochberg
(1995), "Controlling the False Discovery Rate", JRSS B (false discovery rate).
"""
from __future__ import annotations

import numpy as np


def _step(p_values, scale, accumulate, reverse: bool) -> np.ndarray:
    """Sort, scale the i-th smallest p by scale(i, m), make monotone, cap at 1, unsort."""
    p = np.asarray(p_values, dtype=float)
    m = p.size
    order = np.argsort(p, kind="mergesort")
    scaled = scale(np.arange(m), m) * p[order]
    monotone = accumulate(scaled[::-1])[::-1] if reverse else accumulate(scaled)
    out = np.empty(m)
    out[order] = np.minimum(1.0, monotone)
    return out


def holm(p_values) -> np.ndarray:
    return _step(p_values, lambda i, m: m - i, np.maximum.accumulate, reverse=False)


def benjamini_hochberg(p_values) -> np.ndarray:
    return _step(p_values, lambda i, m: m / (i + 1.0), np.minimum.accumulate, reverse=True)


def adjust(p_values, method: str) -> np.ndarray:
    if method == "holm":
        return holm(p_values)
    if method == "bh":
        return benjamini_hochberg(p_values)
    if method == "none":
        return np.asarray(p_values, dtype=float).copy()
    raise ValueError(f"correction must be holm, bh or none, got {method!r}")
