"""Sample-ratio mismatch: chi-square goodness of fit of the variant counts to the planned split.

Fabijan et al. (2019), "Diagnosing Sample Ratio Mismatch in Online Controlled
Experiments", KDD. Flagged at p < 0.001 by default. A planned variant with no
units is still a category of the test (its zero count is the strongest sign of a
broken assignment).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class SrmResult:
    variants: tuple[str, ...]
    observed: tuple[int, ...]
    expected: tuple[float, ...]
    chi2: float
    p_value: float
    mismatch: bool
    threshold: float


def parse_split(text: str) -> dict[str, float]:
    """Parse ``a=0.5,b=0.5`` (weights are normalised if they sum to 100, e.g. percentages)."""
    split: dict[str, float] = {}
    for part in text.split(","):
        name, sep, weight = part.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"split {text!r}: expected NAME=WEIGHT pairs like a=0.5,b=0.5")
        if name in split:
            raise ValueError(f"split {text!r}: variant {name!r} given twice")
        try:
            split[name] = float(weight)
        except ValueError:
            raise ValueError(f"split {text!r}: weight of {name!r} is not a number: {weight!r}") from None
    return validate_split(split)


def validate_split(split: dict[str, float]) -> dict[str, float]:
    if len(split) < 2:
        raise ValueError(f"split needs at least two variants, got {split}")
    weights = np.array(list(split.values()), dtype=float)
    if (weights <= 0).any() or not np.isfinite(weights).all():
        raise ValueError(f"split weights must be positive, got {split}")
    total = weights.sum()
    if not (abs(total - 1.0) < 1e-6 or abs(total - 100.0) < 1e-4):
        raise ValueError(f"split weights must sum to 1 (or 100), got {total:g}")
    return {str(k): float(v) / total for k, v in split.items()}


def srm_test(counts: dict[str, float], split: dict[str, float] | None = None, threshold: float = 0.001) -> SrmResult:
    """Chi-square test of ``counts`` against ``split`` (equal split when None)."""
    if split is None:
        split = {name: 1.0 / len(counts) for name in counts}
    split = validate_split(split)
    unplanned = sorted(set(counts) - set(split))
    if unplanned:
        raise ValueError(f"variants {unplanned} are in the data but not in the split {sorted(split)}")
    names = tuple(split)
    observed = np.array([counts.get(name, 0) for name in names], dtype=float)
    expected = observed.sum() * np.array([split[name] for name in names])
    chi2, p = stats.chisquare(observed, expected)
    return SrmResult(
        variants=names, observed=tuple(int(v) for v in observed), expected=tuple(float(v) for v in expected),
        chi2=float(chi2), p_value=float(p), mismatch=bool(p < threshold), threshold=threshold,
    )
