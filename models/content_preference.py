"""Content-preference predictor: rank candidate content for each contact by P(click).

Wraps the exported two-tower torch module (`models.two_tower`) with its
input encoders (category vocabularies, numeric standardization; plain JSON).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from models.encoding import FeatureEncoder



@dataclass
class TowerEncoder:
    """Categorical codes (+1, 0 = unknown) first, then standardized numbers (missing -> 0)."""

    encoder: FeatureEncoder
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)

    @classmethod
    def fit(cls, frame: pd.DataFrame, exclude=()) -> "TowerEncoder":
        enc = FeatureEncoder.fit(frame, exclude=exclude)
        cats = [c for c in enc.columns if c in enc.categorical]
        nums = [c for c in enc.columns if c not in enc.categorical]
        enc = FeatureEncoder(cats + nums, enc.categorical)
        X = enc.transform(frame)[:, len(cats):].astype(np.float64)
        mean = np.nanmean(X, axis=0) if X.size else np.zeros(0)
        std = np.nanstd(X, axis=0) if X.size else np.zeros(0)
        mean = np.where(np.isfinite(mean), mean, 0.0)
        std = np.where(np.isfinite(std) & (std > 1e-9), std, 1.0)
        return cls(enc, mean.tolist(), std.tolist())

    @property
    def n_cat(self) -> int:
        return len(self.encoder.categorical)

    @property
    def n_num(self) -> int:
        return len(self.encoder.columns) - self.n_cat

    @property
    def cardinalities(self) -> tuple[int, ...]:
        return tuple(len(self.encoder.categorical[c]) + 1 for c in self.encoder.columns[: self.n_cat])

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        X = self.encoder.transform(frame)
        k = self.n_cat
        X[:, :k] = np.where(np.isfinite(X[:, :k]), X[:, :k] + 1, 0)
        num = (X[:, k:] - np.asarray(self.mean, dtype=np.float32)) / np.asarray(self.std, dtype=np.float32)
        X[:, k:] = np.where(np.isfinite(num), num, 0.0)
        return X

    def to_dict(self) -> dict:
        return {"encoder": self.encoder.to_dict(), "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, d: dict) -> "TowerEncoder":
        return cls(FeatureEncoder.from_dict(d["encoder"]), list(d["mean"]), list(d["std"]))


class ContentRanker:
    """Native content-preference model (torch module on float32 pair matrices)."""

    name = "content_preference"
    feature_service = "content_preference"
    services = ("content_preference", "lead_scoring")  # topics + content, engagement + profile

    def __init__(self, module, contact_encoder: TowerEncoder, content_encoder: TowerEncoder, version=None,
                 batch_rows: int = 65_536):
        self.module = module
        self.contact_encoder = contact_encoder
        self.content_encoder = content_encoder
        self.version = version
        self.batch_rows = batch_rows

    def predict_matrix(self, X: np.ndarray) -> np.ndarray:
        import torch

        out = np.empty(len(X), dtype=np.float64)
        with torch.no_grad():
            for lo in range(0, len(X), self.batch_rows):
                out[lo : lo + self.batch_rows] = self.module(torch.from_numpy(X[lo : lo + self.batch_rows])).numpy()
        return out

    def pair_matrix(self, contact_df: pd.DataFrame, content_df: pd.DataFrame) -> np.ndarray:
        """Row-aligned pairs: row i of `contact_df` with row i of `content_df`."""
        return np.ascontiguousarray(
            np.hstack([self.contact_encoder.transform(contact_df), self.content_encoder.transform(content_df)]),
            dtype=np.float32)

    def predict_pairs(self, contact_df: pd.DataFrame, content_df: pd.DataFrame) -> np.ndarray:
        if len(contact_df) != len(content_df):
            raise ValueError(f"contact_df and content_df must be row-aligned ({len(contact_df)} vs {len(content_df)})")
        return self.predict_matrix(self.pair_matrix(contact_df, content_df))

    def rank(self, contact_features_df: pd.DataFrame, content_features_df: pd.DataFrame, k: int | None = None
             ) -> pd.DataFrame:
        """Every candidate for every contact: DataFrame[contact_id, content_id, score, rank] (rank 1 = best)."""
        for name, df, key in (("contact_features_df", contact_features_df, "contact_id"),
                              ("content_features_df", content_features_df, "content_id")):
            if key not in df.columns:
                raise ValueError(f"{name}: missing column {key!r}")
        if k is not None and (not isinstance(k, (int, np.integer)) or k < 1):
            raise ValueError(f"k: expected a positive integer or None, got {k!r}")
        A = self.contact_encoder.transform(contact_features_df)
        B = self.content_encoder.transform(content_features_df)
        n, m = len(A), len(B)
        X = np.ascontiguousarray(np.hstack([np.repeat(A, m, axis=0), np.tile(B, (n, 1))]), dtype=np.float32)
        score = self.predict_matrix(X).reshape(n, m)
        order = np.argsort(-score, axis=1, kind="stable")
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.arange(1, m + 1)[None, :].repeat(n, axis=0), axis=1)
        out = pd.DataFrame({
            "contact_id": np.repeat(contact_features_df["contact_id"].to_numpy(np.int64), m),
            "content_id": np.tile(content_features_df["content_id"].to_numpy(np.int64), n),
            "score": score.ravel(),
            "rank": rank.ravel(),
        })
        if k is not None:
            out = out[out["rank"] <= k]
        return out.sort_values(["contact_id", "rank"], kind="stable").reset_index(drop=True)

    # --- persistence ----------------------------------------------------------
    def metadata(self, config: dict | None = None) -> dict:
        return {"kind": "content_preference", "feature_service": self.feature_service,
                "contact_encoder": self.contact_encoder.to_dict(), "content_encoder": self.content_encoder.to_dict(),
                "two_tower": config or {}}

    def write_metadata(self, directory: Path, config: dict | None = None) -> Path:
        from models.tracking import write_predictor_metadata

        return write_predictor_metadata(directory, self.metadata(config))

    @classmethod
    def load(cls, model_dir: Path, version=None) -> "ContentRanker":
        from models.tracking import read_predictor_metadata

        import mlflow.pytorch

        model_dir = Path(model_dir)
        meta = read_predictor_metadata(model_dir)
        module = mlflow.pytorch.load_model(str(model_dir))
        return cls(module, TowerEncoder.from_dict(meta["contact_encoder"]),
                   TowerEncoder.from_dict(meta["content_encoder"]), version=version)
