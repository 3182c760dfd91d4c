"""Contextual-bandit allocator: policies, decision log, delayed rewards,
learner with versioned snapshots, off-policy evaluation.

Core modules import numpy/pandas/scipy only (no Feast, MLflow, BentoML);
`tracking` imports mlflow lazily. The names below are imported on first use, so
that importing the package (as `inbox`'s command registry does for `bandit`'s
sub-commands, on every `inbox` call) does not load pandas and scipy.
"""
from __future__ import annotations

from experiments import lazy_exports

_EXPORTS = {
    "Allocator": "experiments.bandit.allocator",
    "PolicyStateError": "experiments.bandit.allocator",
    "DecisionBatch": "experiments.bandit.decision_log",
    "DecisionLog": "experiments.bandit.decision_log",
    "SQLiteDecisionLog": "experiments.bandit.decision_log",
    "UnknownDecisionError": "experiments.bandit.decision_log",
    "RefusedUpdate": "experiments.bandit.learner",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
