"""Adjusted p-values across a family of comparisons (variants x metrics).

Holm (1979), "A Simple Sequentially Rejective Multiple Test Procedure",
Scandinavian Journal of Statistics (family-wise error); Benjamini and Hochberg
(1995), "Controlling the False Discovery Rate", JRSS B (false discovery rate).
"""
from __future__ import annotations

import numpy as np


def holm(p_values) -> np.ndarray:
    p = np.asarray(p_values, dtype=float)
    m = p.size
    if m == 0:
        return p.copy()
    order = np.argsort(p, kind="mergesort")
    scaled = (m - np.arange(m)) * p[order]
    adjusted = np.minimum(1.0, np.maximum.accumulate(scaled))
    out = np.empty(m)
    out[order] = adjusted
    return out


def benjamini_hochberg(p_values) -> np.ndarray:
    p = np.asarray(p_values, dtype=float)
    m = p.size
    if m == 0:
        return p.copy()
    order = np.argsort(p, kind="mergesort")
    scaled = p[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    out = np.empty(m)
    out[order] = adjusted
    return out


def adjust(p_values, method: str) -> np.ndarray:
    if method == "holm":
        return holm(p_values)
    if method == "bh":
        return benjamini_hochberg(p_values)
    if method == "none":
        return np.asarray(p_values, dtype=float).copy()
    raise ValueError(f"correction must be holm, bh or none, got {method!r}")
