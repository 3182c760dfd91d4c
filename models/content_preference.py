"""Content-preference predictor: rank candidate content for each contact by P(click).

Wraps the exported two-tower torch module (`models.two_tower`) with its
input encoders (category vocabularies, numeric standardization; plain JSON).
`inputs` names what the encoders read: "features" (the feature frames as they
are: the trained two-tower) or "structural" (`models.structural_logit`'s views
of them: the structural logistic regression in linear towers, registered when
it beats the two-tower). Both score through the same towers.
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
    def fit(cls, frame: pd.DataFrame, exclude=(), max_categories: int = 200) -> "TowerEncoder":
        enc = FeatureEncoder.fit(frame, exclude=exclude, max_categories=max_categories)
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
                 batch_rows: int = 65_536, inputs: str = "features"):
        if inputs not in INPUTS:
            raise ValueError(f"inputs: expected one of {sorted(INPUTS)}, got {inputs!r}")
        self.inputs = inputs
        self.module = module
        self.contact_encoder = contact_encoder
        self.content_encoder = content_encoder
        self.version = version
        self.batch_rows = batch_rows

    # --- the two towers: THE scoring path -----------------------------------------
    @property
    def towers(self):
        """The module as an eager `models.two_tower.TwoTower` (the trained module itself, or rebuilt from
        the exported graph's weights), so the contact and content towers run separately: a contact's
        tower output is computed once (`inbox publish` stores it) and a catalog's once per candidate set."""
        cached = self.__dict__.get("_towers")
        if cached is None:
            cached = self.__dict__["_towers"] = eager_towers(self.module)
        return cached

    @property
    def tower_width(self) -> int:
        """Width of a tower's output: out_dim dot-product components + 1 bias."""
        return int(self.towers.config.out_dim) + 1

    def contact_vectors(self, contact_features_df: pd.DataFrame) -> np.ndarray:
        """Contact-tower output per contact row (what `inbox publish` stores)."""
        return self.contact_side(self.contact_encoder.transform(self._views[0](contact_features_df)))

    def content_vectors(self, content_features_df: pd.DataFrame) -> np.ndarray:
        """Content-tower output per content row."""
        return self.content_side(self.content_encoder.transform(self._views[1](content_features_df)))

    def contact_side(self, A: np.ndarray, chunk: int = 4096) -> np.ndarray:
        """Contact-tower output (len(A), out_dim + 1), float32, for encoded contact rows."""
        return self._tower(self.towers.contact_tower, A, chunk)

    def content_side(self, B: np.ndarray, chunk: int = 4096) -> np.ndarray:
        """Content-tower output (len(B), out_dim + 1), float32, for encoded content rows."""
        return self._tower(self.towers.content_tower, B, chunk)

    def scores_from_sides(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """(n, m) P(click) of every contact-tower row of `u` against every content-tower row of `v`."""
        import torch

        u = torch.from_numpy(np.ascontiguousarray(u, dtype=np.float32))
        v = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32))
        with torch.inference_mode():
            logits = (u[:, None, :-1] * v[None, :, :-1]).sum(dim=2) + u[:, -1:] + v[None, :, -1] + self.towers.bias
            return torch.sigmoid(logits).numpy().astype(np.float64)

    def order(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(scores (n, m), positions in `v` best first (n, m)): a stable sort, ties keep the candidate order."""
        score = self.scores_from_sides(u, v)
        return score, np.argsort(-score, axis=1, kind="stable")

    def _tower(self, tower, X: np.ndarray, chunk: int) -> np.ndarray:
        import torch

        out = np.empty((len(X), self.tower_width), dtype=np.float32)
        with torch.inference_mode():
            for lo in range(0, len(X), chunk):
                part = X[lo : lo + chunk]
                out[lo : lo + len(part)] = tower(torch.from_numpy(_padded(part))).numpy()[: len(part)]
        return out

    def predict_matrix(self, X: np.ndarray) -> np.ndarray:
        """P(click) of pair rows [contact part | content part] (the module's input layout), through the towers."""
        import torch

        X = np.asarray(X, dtype=np.float32)
        width = self.towers.contact_width
        out = np.empty(len(X), dtype=np.float64)
        for lo in range(0, len(X), self.batch_rows):
            u = torch.from_numpy(self.contact_side(X[lo : lo + self.batch_rows, :width]))
            v = torch.from_numpy(self.content_side(X[lo : lo + self.batch_rows, width:]))
            with torch.inference_mode():
                logits = (u[:, :-1] * v[:, :-1]).sum(dim=1) + u[:, -1] + v[:, -1] + self.towers.bias
                out[lo : lo + len(u)] = torch.sigmoid(logits).numpy()
        return out

    def pair_matrix(self, contact_df: pd.DataFrame, content_df: pd.DataFrame) -> np.ndarray:
        """Row-aligned pairs: row i of `contact_df` with row i of `content_df`."""
        return np.ascontiguousarray(
            np.hstack([self.contact_encoder.transform(self._views[0](contact_df)),
                       self.content_encoder.transform(self._views[1](content_df))]),
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
        u, v = self.contact_vectors(contact_features_df), self.content_vectors(content_features_df)
        return self.ranking(contact_features_df["contact_id"].to_numpy(np.int64), u,
                            content_features_df["content_id"].to_numpy(np.int64), v, k)

    def ranking(self, contact_ids: np.ndarray, u: np.ndarray, content_ids: np.ndarray, v: np.ndarray,
                k: int | None = None) -> pd.DataFrame:
        """`rank` from tower outputs: `u` of the contacts (published or computed), `v` of the candidates."""
        n, m = len(u), len(v)
        score, order = self.order(u, v) if n and m else (np.zeros((n, m)), np.zeros((n, m), dtype=np.int64))
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.arange(1, m + 1)[None, :].repeat(n, axis=0), axis=1)
        out = pd.DataFrame({
            "contact_id": np.repeat(np.asarray(contact_ids, dtype=np.int64), m),
            "content_id": np.tile(np.asarray(content_ids, dtype=np.int64), n),
            "score": score.ravel(),
            "rank": rank.ravel(),
        })
        if k is not None:
            out = out[out["rank"] <= k]
        return out.sort_values(["contact_id", "rank"], kind="stable").reset_index(drop=True)

    # --- persistence ----------------------------------------------------------
    @property
    def _views(self):
        """(contact view, content view): what the encoders read, derived from the feature frames."""
        if self.inputs == "structural":
            from models.structural_logit import contact_view, content_view

            return contact_view, content_view
        return _as_is, _as_is

    def metadata(self) -> dict:
        return {"kind": "content_preference", "feature_service": self.feature_service, "inputs": self.inputs,
                "contact_encoder": self.contact_encoder.to_dict(), "content_encoder": self.content_encoder.to_dict(),
                "two_tower": self.towers.config.to_dict()}

    def write_metadata(self, directory: Path) -> Path:
        from models.tracking import write_predictor_metadata

        return write_predictor_metadata(directory, self.metadata())

    @classmethod
    def load(cls, model_dir: Path, version=None) -> "ContentRanker":
        from models.tracking import read_predictor_metadata

        import mlflow.pytorch

        model_dir = Path(model_dir)
        meta = read_predictor_metadata(model_dir)
        module = mlflow.pytorch.load_model(str(model_dir))
        return cls(module, TowerEncoder.from_dict(meta["contact_encoder"]),
                   TowerEncoder.from_dict(meta["content_encoder"]), version=version,
                   inputs=meta.get("inputs", "features"))


INPUTS = frozenset({"features", "structural"})


def _as_is(frame: pd.DataFrame) -> pd.DataFrame:
    return frame


MIN_ROWS = 16  # float32 GEMMs on fewer rows may take another kernel (last-bit differences): padded up to this


def _padded(X: np.ndarray) -> np.ndarray:
    rows = max(len(X), MIN_ROWS)
    return np.ascontiguousarray(np.resize(X, (rows, X.shape[1])) if rows > len(X) else X, dtype=np.float32)


def _tower_layout(weights: dict, prefix: str):
    """(layout, embedding_dim, hidden, out_dim) of one tower from its parameter shapes (hidden 0: linear)."""
    from models.two_tower import TowerLayout

    embeddings = sorted((k for k in weights if k.startswith(f"{prefix}.embeddings.") and k.endswith(".weight")),
                        key=lambda k: int(k.split(".")[2]))
    cards = tuple(int(weights[k].shape[0]) for k in embeddings)
    if f"{prefix}.linear.weight" in weights:
        width, n_num = weights[f"{prefix}.linear.weight"].shape
        return TowerLayout(len(embeddings), int(n_num), cards), int(width), 0, int(width) - 1
    dim = int(weights[embeddings[0]].shape[1]) if embeddings else 1
    hidden, width = weights[f"{prefix}.mlp.0.weight"].shape
    out_dim = int(weights[f"{prefix}.mlp.2.weight"].shape[0]) - 1
    return TowerLayout(len(embeddings), int(width) - len(embeddings) * dim, cards), dim, int(hidden), out_dim


def eager_towers(module):
    """`module` as an eager `TwoTower` in eval mode: itself if it is one, else rebuilt from its weights
    (the exported graph keeps the parameter names; the layout is read from their shapes)."""
    from models.two_tower import TwoTower, TwoTowerConfig

    if isinstance(module, TwoTower):
        return module.eval()
    weights = dict(module.state_dict())
    contact, dim, hidden, out_dim = _tower_layout(weights, "contact_tower")
    content, _, _, _ = _tower_layout(weights, "content_tower")
    towers = TwoTower(TwoTowerConfig(contact, content, dim, hidden, out_dim))
    towers.load_state_dict(weights, strict=True)
    return towers.eval()
