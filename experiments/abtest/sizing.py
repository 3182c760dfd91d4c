"""Sample size and minimum detectable effect of a test with k treatments vs one control.

Normal approximation with unpooled variances (e.g. Chow, Shao and Wang 2008,
"Sample Size Calculations in Clinical Research", ch. 4): the standardized effect
is delta / sqrt((sigma_c^2 + sigma_t^2) / 2), sigma^2 = p(1 - p) for a binary
metric at rate p, and the power arithmetic is statsmodels' `NormalIndPower`.
With several treatments the per-comparison alpha guards the family of k
comparisons against the control, either by Bonferroni (alpha / k) or by
Dunnett's (1955) many-to-one critical value, the equicorrelated (rho = 1/2 for
equal allocation) multivariate-normal quantile, which is less conservative than
Bonferroni. Dunnett's critical value is computed here: statsmodels and scipy
offer Dunnett's test, not its quantile for planning.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from scipy import integrate, optimize, stats

CORRECTIONS = ("bonferroni", "dunnett", "none")


@dataclass(frozen=True)
class SampleSizePlan:
    kind: str
    baseline: float
    sd: float
    mde_abs: float
    mde_rel: float | None
    alpha: float
    power: float
    alternative: str
    variants: int
    correction: str
    alpha_per_comparison: float
    critical_value: float
    n_per_variant: int
    total: int
    note: str

    def to_dict(self) -> dict:
        return asdict(self)


def dunnett_critical_value(comparisons: int, alpha: float, alternative: str = "two-sided", rho: float = 0.5) -> float:
    """c with P(all k statistics within c) = 1 - alpha for equicorrelated standard normals.

    Z_i = sqrt(rho) W + sqrt(1 - rho) E_i reduces the k-dimensional probability to
    one integral over W.
    """
    a, b = math.sqrt(rho), math.sqrt(1.0 - rho)

    def coverage(c: float) -> float:
        if alternative == "two-sided":
            inner = lambda w: stats.norm.cdf((c - a * w) / b) - stats.norm.cdf((-c - a * w) / b)
        else:
            inner = lambda w: stats.norm.cdf((c - a * w) / b)
        value, _ = integrate.quad(lambda w: stats.norm.pdf(w) * inner(w) ** comparisons, -9, 9, limit=200)
        return value

    return float(optimize.brentq(lambda c: coverage(c) - (1.0 - alpha), 0.01, 10.0, xtol=1e-10))


def _critical(alpha, alternative, comparisons, correction) -> tuple[float, float]:
    if correction not in CORRECTIONS:
        raise ValueError(f"correction must be one of {CORRECTIONS}, got {correction!r}")
    if correction == "dunnett" and comparisons > 1:
        c = dunnett_critical_value(comparisons, alpha, alternative)
        per = 2 * stats.norm.sf(c) if alternative == "two-sided" else stats.norm.sf(c)
        return c, float(per)
    per = alpha / comparisons if correction == "bonferroni" else alpha
    tail = per / 2.0 if alternative == "two-sided" else per
    return float(stats.norm.isf(tail)), per


def _validate(alpha, power, alternative, variants):
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if not 0 < power < 1:
        raise ValueError(f"power must be in (0, 1), got {power}")
    if alternative not in ("two-sided", "one-sided"):
        raise ValueError(f"alternative must be two-sided or one-sided, got {alternative!r}")
    if int(variants) != variants or variants < 2:
        raise ValueError(f"variants (control included) must be an integer >= 2, got {variants}")


def _sds(kind: str, baseline: float, sd: float | None, delta: float) -> tuple[float, float]:
    if kind == "binary":
        if not 0 < baseline < 1:
            raise ValueError(f"baseline rate must be in (0, 1), got {baseline}")
        treated = baseline + delta
        if not 0 < treated < 1:
            raise ValueError(f"baseline + mde = {treated:g} is not a rate in (0, 1)")
        return math.sqrt(baseline * (1 - baseline)), math.sqrt(treated * (1 - treated))
    if kind == "continuous":
        if sd is None or sd <= 0:
            raise ValueError("a continuous metric needs a positive --sd (per-recipient standard deviation)")
        return sd, sd
    raise ValueError(f"kind must be binary or continuous, got {kind!r}")


def _note(variants: int, correction: str) -> str:
    k = variants - 1
    if k == 1:
        return "one treatment vs control"
    if correction == "bonferroni":
        return f"{k} comparisons vs control at alpha/{k} each (Bonferroni; Dunnett is slightly less conservative)"
    if correction == "dunnett":
        return f"{k} comparisons vs control with Dunnett's many-to-one critical value (equal allocation)"
    return f"{k} comparisons vs control without correction: the family-wise error exceeds alpha"


def _alternative(alternative: str) -> str:
    return "two-sided" if alternative == "two-sided" else "larger"


def _effect_size(delta: float, sd_c: float, sd_t: float) -> float:
    return abs(delta) / math.sqrt((sd_c**2 + sd_t**2) / 2.0)


def _power(es: float, n: float, per: float, alternative: str) -> float:
    from statsmodels.stats.power import NormalIndPower

    return float(NormalIndPower().power(es, n, per, ratio=1.0, alternative=_alternative(alternative)))


def sample_size(
    kind: str, mde: float, *, baseline: float, sd: float | None = None, relative: bool = False,
    alpha: float = 0.05, power: float = 0.8, alternative: str = "two-sided", variants: int = 2,
    correction: str = "bonferroni",
) -> SampleSizePlan:
    """Recipients per variant to detect ``mde`` (absolute, or relative to ``baseline``)."""
    _validate(alpha, power, alternative, variants)
    delta = mde * baseline if relative else mde
    if delta == 0 or not math.isfinite(delta):
        raise ValueError(f"mde must be a non-zero number, got {mde}")
    sd_c, sd_t = _sds(kind, baseline, sd, delta)
    from statsmodels.stats.power import NormalIndPower

    crit, per = _critical(alpha, alternative, variants - 1, correction)
    n = NormalIndPower().solve_power(_effect_size(delta, sd_c, sd_t), alpha=per, power=power, ratio=1.0,
                                     alternative=_alternative(alternative))
    n = int(math.ceil(float(n) - 1e-6))
    return SampleSizePlan(
        kind, baseline, sd_c, delta,
        delta / baseline if baseline else None, alpha, power, alternative, variants, correction,
        per, crit, n, n * variants, _note(variants, correction),
    )


def minimum_detectable_effect(
    kind: str, n_per_variant: int, *, baseline: float, sd: float | None = None, alpha: float = 0.05,
    power: float = 0.8, alternative: str = "two-sided", variants: int = 2, correction: str = "bonferroni",
) -> SampleSizePlan:
    """The smallest (positive) absolute lift detectable with ``n_per_variant`` recipients per variant."""
    _validate(alpha, power, alternative, variants)
    if n_per_variant < 2:
        raise ValueError(f"n_per_variant must be >= 2, got {n_per_variant}")
    crit, per = _critical(alpha, alternative, variants - 1, correction)
    sd_c, _ = _sds(kind, baseline, sd, 1.0 if kind == "continuous" else 0.0)

    def gap(d):  # power at lift d minus the target: increasing in d
        _, sd_t = _sds(kind, baseline, sd, d)
        return _power(_effect_size(d, sd_c, sd_t), n_per_variant, per, alternative) - power

    upper = 1.0 - baseline - 1e-12 if kind == "binary" else 40.0 * sd_c
    if gap(upper) < 0:
        raise ValueError(f"n_per_variant = {n_per_variant} is too small to detect any lift from {baseline}")
    delta = float(optimize.brentq(gap, 1e-15, upper, xtol=1e-14))
    return SampleSizePlan(
        kind, baseline, sd_c, delta, delta / baseline if baseline else None, alpha, power, alternative,
        variants, correction, per, crit, int(n_per_variant), int(n_per_variant) * variants,
        _note(variants, correction),
    )


def power_at(kind, n_per_variant, mde, *, baseline, sd=None, alpha=0.05, alternative="two-sided",
             variants=2, correction="bonferroni") -> float:
    """Power of one treatment-vs-control comparison (normal approximation, statsmodels' NormalIndPower)."""
    sd_c, sd_t = _sds(kind, baseline, sd, mde)
    _, per = _critical(alpha, alternative, variants - 1, correction)
    return _power(_effect_size(mde, sd_c, sd_t), n_per_variant, per, alternative)
