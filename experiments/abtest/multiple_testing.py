"""Adjusted p-values across a family of comparisons (variants x metrics), by statsmodels.

Holm (1979), "A Simple Sequentially Rejective Multiple Test Procedure",
Scandinavian Journal of Statistics (family-wise error); Benjamini and Hochberg
(1995), "Controlling the False Discovery Rate", JRSS B (false discovery rate).
The arithmetic is `statsmodels.stats.multitest.multipletests`; this module only
maps the project's correction names onto it.
"""
from __future__ import annotations

import numpy as np

# the project's names -> statsmodels' `method`
METHODS = {"holm": "holm", "bh": "fdr_bh"}


def adjust(p_values, method: str) -> np.ndarray:
    """Adjusted p-values of one family; `method` is holm, bh or none."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p_values, dtype=float)
    if method == "none":
        return p.copy()
    if method not in METHODS:
        raise ValueError(f"correction must be holm, bh or none, got {method!r}")
    if p.size == 0:
        return p.copy()
    return multipletests(p, method=METHODS[method])[1]


def holm(p_values) -> np.ndarray:
    return adjust(p_values, "holm")


def benjamini_hochberg(p_values) -> np.ndarray:
    return adjust(p_values, "bh")
