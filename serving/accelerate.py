"""Request-path speed-ups for the models' pure helpers, installed at start-up, verified or pure.

1. A block-wise `FeatureEncoder.transform`, verified equal before use.

`models.encoding.FeatureEncoder.transform` converts one column at a time with
pandas (`pd.to_numeric`, `pd.Categorical`): ~40-50 columns cost 10-20 ms per
call whatever the batch size, and a decide calls it four times. Here the
numeric columns are converted in one `DataFrame.to_numpy` call and the
categorical ones through a dict of the training vocabulary. `accelerate`
installs it on an encoder instance only if it gives exactly the same matrix
(NaNs included) as the model's own transform on a real feature frame;
otherwise the original stays.

2. `models.slots.candidate_slots(window_start, window_end, timezone)` (the
local-hour grid of a window in one zone) is a pure function that the send-time
planner recomputes twice per zone per request (date_range, tz_convert,
strftime: ~1 ms each); `memoize_slot_grid` caches it per (window, zone), so a
campaign's batches, which share one window, compute each zone once. Callers
only read the returned frame (they filter into new frames).

The model package's files are not changed; both belong there eventually.
"""
from __future__ import annotations

import functools
import logging

import numpy as np
import pandas as pd

logger = logging.getLogger("inbox.serving")


class BlockTransform:
    """`FeatureEncoder.transform` on a DataFrame OR a column mapping {name: numpy array} (the
    online reader's `read_columns`), so the request path builds no DataFrame."""

    accepts_mapping = True

    def __init__(self, encoder):
        self.encoder = encoder
        self.original = encoder.transform
        cols = encoder.columns
        self.num_idx = np.array([j for j, c in enumerate(cols) if c not in encoder.categorical], dtype=np.intp)
        self.num_cols = [cols[j] for j in self.num_idx]
        self.cats = [(j, c, {v: i for i, v in enumerate(encoder.categorical[c])})
                     for j, c in enumerate(cols) if c in encoder.categorical]

    def __call__(self, frame) -> np.ndarray:
        if isinstance(frame, pd.DataFrame):
            return self._frame(frame)
        return self._mapping(frame)

    def _frame(self, frame: pd.DataFrame) -> np.ndarray:
        if any(c not in frame.columns for c in self.encoder.columns):
            return self.original(frame)  # the model's own error message
        out = np.empty((len(frame), len(self.encoder.columns)), dtype=np.float32)
        if len(self.num_idx):
            try:
                out[:, self.num_idx] = frame[self.num_cols].to_numpy(dtype=np.float32, na_value=np.nan)
            except (TypeError, ValueError):  # a non-numeric value: the original coerces it to NaN
                return self.original(frame)
        self._categorical(out, frame)
        return out

    def _mapping(self, columns) -> np.ndarray:
        if any(c not in columns for c in self.encoder.columns):
            return self.original(pd.DataFrame(dict(columns)))  # the model's own error message
        n = len(next(iter(columns.values()))) if columns else 0
        out = np.empty((len(self.encoder.columns), n), dtype=np.float32)  # one contiguous row per column
        try:
            for j, name in zip(self.num_idx.tolist(), self.num_cols):
                out[j] = columns[name]  # float64 -> float32 as astype; bool -> 0/1; None -> NaN
        except (TypeError, ValueError):  # a non-numeric value: the original coerces it to NaN
            return self.original(pd.DataFrame(dict(columns)))
        out = np.ascontiguousarray(out.T)
        self._categorical(out, columns)
        return out

    def _categorical(self, out: np.ndarray, columns) -> None:
        for j, name, codes in self.cats:
            values = np.asarray(columns[name], dtype=object)
            out[:, j] = np.fromiter((codes.get(v, np.nan) if v is not None else np.nan for v in values),
                                    dtype=np.float32, count=len(values))


def accelerate(encoder, sample: pd.DataFrame) -> bool:
    """Install the block transform on `encoder` if it matches the original on `sample`, given as the
    DataFrame and as the column mapping."""
    fast = BlockTransform(encoder)
    try:
        want = fast.original(sample)
        columns = {c: sample[c].to_numpy() for c in sample.columns}
        same = (np.array_equal(fast(sample), want, equal_nan=True)
                and np.array_equal(fast(columns), want, equal_nan=True))
    except Exception:  # noqa: BLE001 - any failure means: keep the original
        same = False
    if same:
        encoder.transform = fast
    else:
        logger.warning("block transform differs from the model's for columns %s...; keeping the original",
                       encoder.columns[:3])
    return same


def accelerate_models(models: dict, contact_sample: pd.DataFrame, content_sample: pd.DataFrame) -> dict:
    """Accelerate every FeatureEncoder of the loaded models; returns {encoder name: installed}."""
    result = {}
    for name, model in models.items():
        for attr, sample in (("encoder", contact_sample), ("contact_encoder", contact_sample),
                             ("content_encoder", content_sample)):
            enc = getattr(model, attr, None)
            enc = getattr(enc, "encoder", enc)  # TowerEncoder wraps a FeatureEncoder
            if enc is not None and hasattr(enc, "categorical"):
                result[f"{name}.{attr}"] = accelerate(enc, sample)
    return result


def memoize_slot_grid(maxsize: int = 4096) -> None:
    """Cache `models.slots.candidate_slots` (idempotent)."""
    import models.slots as slots

    if not hasattr(slots.candidate_slots, "cache_info"):
        slots.candidate_slots = functools.lru_cache(maxsize=maxsize)(slots.candidate_slots)
