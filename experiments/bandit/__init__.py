"""Contextual-bandit allocator: policies, decision log, delayed rewards,
learner with versioned snapshots, off-policy evaluation.

Core modules import numpy/pandas/scipy only (no Feast, MLflow, BentoML);
`tracking` imports mlflow lazily.
"""
from .allocator import Allocator, PolicyStateError
from .decision_log import DecisionBatch, DecisionLog, SQLiteDecisionLog, UnknownDecisionError
from .learner import RefusedUpdate

__all__ = ["Allocator", "DecisionBatch", "DecisionLog", "PolicyStateError", "RefusedUpdate", "SQLiteDecisionLog",
           "UnknownDecisionError"]
