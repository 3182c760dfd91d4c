"""Contextual-bandit allocator: policies, decision log, delayed rewards,
learner with versioned snapshots, off-policy evaluation.

Core modules import numpy/pandas/scipy only (no Feast, MLflow, BentoML);
`tracking` imports mlflow lazily.
"""
from .allocator import Allocator
from .decision_log import DecisionBatch, DecisionLog, SQLiteDecisionLog, UnknownDecisionError

__all__ = ["Allocator", "DecisionBatch", "DecisionLog", "SQLiteDecisionLog", "UnknownDecisionError"]
