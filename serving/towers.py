"""The content ranker's two towers evaluated separately, verified equal to the whole module.

`models.two_tower.TwoTower` scores a (contact, content) pair as
sigmoid(u . v + u_bias + v_bias + bias), u from the contact tower and v from
the content tower, but it is exported (MLflow `pt2`) as one graph over the
concatenated pair row, so ranking a catalog of m items for n contacts runs
both towers on n*m rows and pays ~60 graph ops of interpreter overhead
(~1 ms) even for one contact. `ContentTowers` rebuilds the eager `TwoTower`
from the exported module's weights (its layout is read from their shapes),
computes each candidate set's content-tower output once (cached per
candidate set), and per request runs only the contact tower on n rows.

Each candidate set is used only after its first batch gave exactly the
module's scores (bitwise, float32; the warm-up checks the catalog on a sample
of real contacts); otherwise, and for batches of fewer than `MIN_ROWS` pairs,
the module scores the pair matrix as before.
"""
from __future__ import annotations

import logging

import numpy as np

logger = logging.getLogger("inbox.serving")


def _tower_layout(weights: dict, prefix: str):
    from models.two_tower import TowerLayout

    embeddings = sorted((k for k in weights if k.startswith(f"{prefix}.embeddings.") and k.endswith(".weight")),
                        key=lambda k: int(k.split(".")[2]))
    dim = int(weights[embeddings[0]].shape[1]) if embeddings else 1
    hidden, width = weights[f"{prefix}.mlp.0.weight"].shape
    out_dim = int(weights[f"{prefix}.mlp.2.weight"].shape[0]) - 1
    cards = tuple(int(weights[k].shape[0]) for k in embeddings)
    return TowerLayout(len(embeddings), int(width) - len(embeddings) * dim, cards), dim, int(hidden), out_dim


MIN_ROWS = 16  # float32 GEMMs on fewer rows may take another kernel (last-bit differences): pad up to this


def _padded(X: np.ndarray) -> np.ndarray:
    rows = max(len(X), MIN_ROWS)
    return np.ascontiguousarray(np.resize(X, (rows, X.shape[1])) if rows > len(X) else X, dtype=np.float32)


class ContentTowers:
    def __init__(self, model, towers):
        self.model = model
        self.towers = towers            # eager models.two_tower.TwoTower with the module's weights
        self._content: dict = {}        # candidate-set key -> content-tower output (m, out_dim + 1)
        self._equal: dict = {}          # candidate-set key -> verified equal to the module (bool)

    @classmethod
    def of(cls, model) -> "ContentTowers | None":
        """The towers of `model.module`, or None if it is not a two-tower module this can rebuild."""
        try:
            from models.two_tower import TwoTower, TwoTowerConfig

            weights = dict(model.module.state_dict())
            contact, dim, hidden, out_dim = _tower_layout(weights, "contact_tower")
            content, _, _, _ = _tower_layout(weights, "content_tower")
            towers = TwoTower(TwoTowerConfig(contact, content, dim, hidden, out_dim))
            towers.load_state_dict(weights, strict=True)
            towers.eval()
            return cls(model, towers)
        except Exception as exc:  # noqa: BLE001 - not rebuildable: the module scores pairs
            logger.info("content towers not rebuilt (%s); the module scores pair rows", exc)
            return None

    def verified(self, key) -> bool:
        return bool(self._equal.get(key))

    def scores(self, A: np.ndarray, key, B: np.ndarray) -> np.ndarray | None:
        """(n, m) P(click) of every contact row of A against every candidate row of B, exactly as the
        module; None when the module must score (a batch of fewer than MIN_ROWS pairs, or a candidate
        set whose first batch did not verify). A new candidate set is checked on its first batch."""
        if len(A) * len(B) < MIN_ROWS or len(self._equal) >= 256 and key not in self._equal:
            return None
        equal = self._equal.get(key)
        if equal is False:
            return None
        got = self._scores(A, key, B)
        if equal is None:
            want = self.model.predict_matrix(_pairs(A, B)).reshape(len(A), len(B))
            self._equal[key] = equal = bool(np.array_equal(got, want))
            if not equal:
                logger.warning("content towers differ from the module on candidate set %s; the module scores it",
                               "catalog" if key is None else f"of {len(B)}")
            return want
        return got

    def check(self, A: np.ndarray, key, B: np.ndarray) -> bool:
        """Compare with the module on one more batch (e.g. a single contact); a difference turns the set off."""
        if len(A) * len(B) < MIN_ROWS or self._equal.get(key) is not True:
            return bool(self._equal.get(key))
        want = self.model.predict_matrix(_pairs(A, B)).reshape(len(A), len(B))
        if not np.array_equal(self._scores(A, key, B), want):
            self._equal[key] = False
        return bool(self._equal[key])

    def contact_side(self, A: np.ndarray, chunk: int = 4096):
        """The contact tower's output (len(A), out_dim + 1) for encoded contact rows, computed in
        chunks (a `serving.contact_table` precomputes it for every stored contact)."""
        import torch

        with torch.inference_mode():
            parts = [self.towers.contact_tower(torch.from_numpy(_padded(A[i:i + chunk])))[: len(A[i:i + chunk])]
                     for i in range(0, len(A), chunk)]
            return torch.cat(parts) if parts else torch.empty((0, 1))

    def scores_from_contact_side(self, u, key, B: np.ndarray) -> np.ndarray | None:
        """`scores` from precomputed contact-tower rows `u`: None unless the candidate set is verified."""
        if self._equal.get(key) is not True:
            return None
        return self._combine(u, key, B)

    def _scores(self, A: np.ndarray, key, B: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            u = self.towers.contact_tower(torch.from_numpy(_padded(A)))[: len(A)]
        return self._combine(u, key, B)

    def _combine(self, u, key, B: np.ndarray) -> np.ndarray:
        import torch

        v = self._content.get(key)
        with torch.inference_mode():
            if v is None:
                v = self._content[key] = self.towers.content_tower(torch.from_numpy(_padded(B)))[: len(B)]
            logits = (u[:, None, :-1] * v[None, :, :-1]).sum(dim=2) + u[:, -1:] + v[None, :, -1] + self.towers.bias
            return torch.sigmoid(logits).numpy().astype(np.float64)


def _pairs(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    n, m = len(A), len(B)
    return np.ascontiguousarray(np.hstack([np.repeat(A, m, axis=0), np.tile(B, (n, 1))]), dtype=np.float32)
