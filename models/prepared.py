"""The training set a model spec prepares: one frame, its time split, its provenance."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from models.split import TEST, TRAIN, VALID, TimeSplit


@dataclass
class Prepared:
    frame: pd.DataFrame  # features + label + "block" (train / valid / test)
    split: TimeSplit
    feature_source: str
    label: str
    extra: dict = field(default_factory=dict)
    sampling: dict = field(default_factory=dict)  # the contact sample's MLflow params (`ContactSample.params`)

    def part(self, block: str) -> pd.DataFrame:
        return self.frame[self.frame["block"] == block]

    @property
    def train(self) -> pd.DataFrame:
        return self.part(TRAIN)

    @property
    def valid(self) -> pd.DataFrame:
        return self.part(VALID)

    @property
    def test(self) -> pd.DataFrame:
        return self.part(TEST)

    def row_counts(self) -> dict[str, int]:
        counts = self.frame["block"].value_counts()
        return {b: int(counts.get(b, 0)) for b in (TRAIN, VALID, TEST)}

    def datasets(self) -> dict[str, tuple[pd.DataFrame, str, str]]:
        """MLflow input datasets by context (training / validation / test)."""
        name = self.extra.get("dataset_name", "training_set")
        return {
            "training": (self.train, f"{name}_train", self.label),
            "validation": (self.valid, f"{name}_valid", self.label),
            "test": (self.test, f"{name}_test", self.label),
        }


def sample_send_rows(sends: pd.DataFrame, split: TimeSplit, max_train_rows: int, seed: int,
                     max_eval_rows: int | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """Sends inside the split's blocks, training rows subsampled to `max_train_rows` (seeded).

    Returns the rows (time order kept within blocks) and their block names.
    """
    block = split.assign(sends["sent_at"])
    rng = np.random.default_rng(seed)
    keep = np.flatnonzero(block != "")
    train_idx = keep[block[keep] == TRAIN]
    if len(train_idx) > max_train_rows:
        train_idx = np.sort(rng.choice(train_idx, max_train_rows, replace=False))
    other = keep[block[keep] != TRAIN]
    if max_eval_rows is not None and len(other) > max_eval_rows:
        other = np.sort(rng.choice(other, max_eval_rows, replace=False))
    idx = np.concatenate([train_idx, other])
    return sends.iloc[idx].reset_index(drop=True), block[idx]
