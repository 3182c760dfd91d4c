"""A/B and multivariate test analysis and design for email campaigns.

Public API (imported lazily so that ``inbox --help`` stays fast):

- analysis: ``analyze``, ``analyze_statistics``, ``AnalysisSettings``, ``MetricSpec``,
  ``MetricStats``, ``AnalysisResult``; plots: ``plot_lifts``, ``plot_posteriors``;
- monitoring: ``sequential_history``, ``plot_sequential``; data: ``campaign_outcomes`` (event log);
- design: ``sample_size``, ``minimum_detectable_effect``, ``test_and_roll``,
  ``factorial_design``; ``estimate_effects`` (main effects and interactions).
"""
from __future__ import annotations

from experiments import lazy_exports

_EXPORTS = {
    "analyze": "experiments.abtest.analysis",
    "analyze_statistics": "experiments.abtest.analysis",
    "AnalysisSettings": "experiments.abtest.settings",
    "MetricSpec": "experiments.abtest.metrics",
    "parse_metric": "experiments.abtest.metrics",
    "MetricStats": "experiments.abtest.sufficient",
    "AnalysisResult": "experiments.abtest.results",
    "LiftRecord": "experiments.abtest.results",
    "srm_test": "experiments.abtest.srm",
    "plot_lifts": "experiments.abtest.plots",
    "plot_posteriors": "experiments.abtest.plots",
    "log_analysis": "experiments.abtest.tracking",
    "sequential_history": "experiments.abtest.monitoring",
    "plot_sequential": "experiments.abtest.monitoring",
    "campaign_outcomes": "experiments.abtest.outcomes",
    "sample_size": "experiments.abtest.sizing",
    "minimum_detectable_effect": "experiments.abtest.sizing",
    "test_and_roll": "experiments.abtest.test_roll",
    "factorial_design": "experiments.abtest.factorial",
    "estimate_effects": "experiments.abtest.factorial_effects",
    "estimate_effects_from_counts": "experiments.abtest.factorial_effects",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
