"""Turn a feature frame into a float32 matrix with a fixed column order (stored with the model).

Numbers pass through, booleans become 0/1, strings become integer codes of a
vocabulary learned at training time (unknown or missing -> NaN, which LightGBM
routes like a missing value). No pickle: the encoder is a small JSON dict.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

NOT_FEATURES = frozenset({"contact_id", "content_id", "event_timestamp", "email_suggested_domain", "created"})


@dataclass
class FeatureEncoder:
    columns: list[str] = field(default_factory=list)
    categorical: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def fit(cls, frame: pd.DataFrame, exclude=(), max_categories: int = 200) -> "FeatureEncoder":
        columns, categorical = [], {}
        for name in frame.columns:
            if name in NOT_FEATURES or name in exclude:
                continue
            s = frame[name]
            if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
                columns.append(name)
            elif pd.api.types.is_object_dtype(s) or isinstance(s.dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(s):
                vocab = sorted(str(v) for v in s.dropna().unique())
                if len(vocab) > max_categories:
                    continue  # identifiers / free text are not features
                columns.append(name)
                categorical[name] = vocab
        return cls(columns, categorical)

    @property
    def categorical_indices(self) -> list[int]:
        return [i for i, c in enumerate(self.columns) if c in self.categorical]

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise ValueError(f"features: missing column(s) {missing[:5]}{'...' if len(missing) > 5 else ''}")
        out = np.empty((len(frame), len(self.columns)), dtype=np.float32)
        for j, name in enumerate(self.columns):
            s = frame[name]
            if name in self.categorical:
                codes = pd.Categorical(s.astype(object).where(s.notna(), None), categories=self.categorical[name]).codes
                out[:, j] = np.where(codes < 0, np.nan, codes)
            else:
                out[:, j] = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float32, na_value=np.nan)
        return out

    def to_dict(self) -> dict:
        return {"columns": list(self.columns), "categorical": {k: list(v) for k, v in self.categorical.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureEncoder":
        return cls(list(d["columns"]), {k: list(v) for k, v in d["categorical"].items()})
