"""All analysis options in one frozen dataclass (as gbstats' AnalysisSettings)."""
from __future__ import annotations

from dataclasses import asdict, dataclass

ALTERNATIVES = ("two-sided", "greater", "less")
CORRECTIONS = ("holm", "bh", "none")


@dataclass(frozen=True)
class AnalysisSettings:
    """Options of one analysis.

    alpha: significance level (1 - alpha intervals).
    alternative: for decision metrics, 'two-sided', or one-sided 'greater'/'less'
        meaning the treatment mean is larger/smaller than the control's. Guardrails
        are always one-sided for harm.
    correction: multiple-comparison adjustment across variants x decision metrics
        ('holm' controls the family-wise error, 'bh' the false discovery rate);
        guardrails are left unadjusted so harm is never harder to detect.
    beta_prior: Beta(a, b) prior of a binary metric's rate per variant.
    effect_prior_sd: optional normal prior N(0, sd^2) on the relative lift of
        continuous and ratio metrics (None = flat), as gbstats' proper prior.
    sequential: also compute always-valid p-values and confidence sequences (mSPRT).
    sequential_tau: mixing-distribution sd of the mSPRT, in units of the per-recipient
        standard deviation (pooled over treatment and control): a standardized effect size.
    srm_threshold: p-value below which a sample-ratio mismatch is flagged.
    """

    alpha: float = 0.05
    alternative: str = "two-sided"
    correction: str = "holm"
    beta_prior: tuple[float, float] = (1.0, 1.0)
    effect_prior_sd: float | None = None
    sequential: bool = False
    sequential_tau: float = 0.05
    srm_threshold: float = 0.001

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.alternative not in ALTERNATIVES:
            raise ValueError(f"alternative must be one of {ALTERNATIVES}, got {self.alternative!r}")
        if self.correction not in CORRECTIONS:
            raise ValueError(f"correction must be one of {CORRECTIONS}, got {self.correction!r}")
        a, b = self.beta_prior
        if a <= 0 or b <= 0:
            raise ValueError(f"beta_prior parameters must be positive, got {self.beta_prior}")
        if self.effect_prior_sd is not None and self.effect_prior_sd <= 0:
            raise ValueError(f"effect_prior_sd must be positive, got {self.effect_prior_sd}")
        if self.sequential_tau <= 0:
            raise ValueError(f"sequential_tau must be positive, got {self.sequential_tau}")
        if not 0.0 < self.srm_threshold < 1.0:
            raise ValueError(f"srm_threshold must be in (0, 1), got {self.srm_threshold}")

    def to_dict(self) -> dict:
        return asdict(self)
