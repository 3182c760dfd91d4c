"""Analysis results as plain records (one per metric x treatment variant)."""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

from experiments.abtest.bayesian import Posterior
from experiments.abtest.settings import AnalysisSettings
from experiments.abtest.srm import SrmResult


@dataclass(frozen=True)
class VariantSummary:
    """One variant's value of one metric (with its 1 - alpha interval and posterior)."""

    metric: str
    variant: str
    n: int
    mean: float
    ci_low: float
    ci_high: float
    posterior: Posterior
    chance_to_be_best: float | None = None  # among all variants (Bayesian, Monte Carlo)


@dataclass(frozen=True)
class LiftRecord:
    """Treatment vs control on one metric: frequentist, Bayesian and (optionally) sequential."""

    metric: str
    kind: str
    guardrail: bool
    higher_is_better: bool
    variant: str
    control: str
    n: int
    control_n: int
    mean: float
    control_mean: float
    abs_lift: float
    abs_ci_low: float
    abs_ci_high: float
    rel_lift: float
    rel_ci_low: float
    rel_ci_high: float
    alternative: str
    p_value: float
    p_holm: float | None
    p_bh: float | None
    p_adjusted: float | None
    significant: bool
    harm: bool | None
    chance_to_beat: float
    expected_loss: float
    post_rel_mean: float
    post_rel_low: float
    post_rel_high: float
    cuped: bool = False
    variance_reduction: float | None = None
    winsor_cap: float | None = None
    seq_p_value: float | None = None
    seq_p_adjusted: float | None = None  # the same correction applied to always-valid p-values
    seq_abs_low: float | None = None
    seq_abs_high: float | None = None
    seq_rel_low: float | None = None
    seq_rel_high: float | None = None


@dataclass(frozen=True)
class AnalysisResult:
    records: list[LiftRecord]
    summaries: list[VariantSummary]
    srm: SrmResult
    settings: AnalysisSettings
    control: str
    variants: tuple[str, ...]
    covariate: str | None = None
    warnings: list[str] = field(default_factory=list)

    def to_frame(self):
        """One row per metric x treatment variant."""
        import pandas as pd

        return pd.DataFrame([asdict(r) for r in self.records])

    def summary_frame(self):
        import pandas as pd

        rows = [{k: v for k, v in asdict(s).items() if k != "posterior"} for s in self.summaries]
        return pd.DataFrame(rows)

    def record(self, metric: str, variant: str) -> LiftRecord:
        for r in self.records:
            if r.metric == metric and r.variant == variant:
                return r
        raise KeyError(f"no result for metric {metric!r}, variant {variant!r}")

    def to_dict(self) -> dict:
        return json_safe(
            {
                "control": self.control,
                "variants": list(self.variants),
                "covariate": self.covariate,
                "settings": self.settings.to_dict(),
                "srm": asdict(self.srm),
                "variant_summaries": [
                    {**{k: v for k, v in asdict(s).items() if k != "posterior"},
                     "posterior": asdict(s.posterior)}
                    for s in self.summaries
                ],
                "results": [asdict(r) for r in self.records],
                "warnings": list(self.warnings),
            }
        )

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)


def json_safe(obj):
    """JSON has no inf/nan: map them to None (open interval bounds become null)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj
