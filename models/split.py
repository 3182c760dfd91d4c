"""Time-based train / validation / test split with purged label windows.

Rows are (entity, timestamp) snapshots whose label is observed over
`[timestamp, timestamp + horizon)`. A row belongs to a block only if its whole
label window ends before the next block starts, so no label in training looks
into the validation or test period ("purging", López de Prado, *Advances in
Financial Machine Learning*, 2018, ch. 7). Never a random split across time.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

TRAIN, VALID, TEST = "train", "valid", "test"


def _utc(ts) -> pd.Timestamp:
    t = pd.Timestamp(ts)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


@dataclass(frozen=True)
class TimeSplit:
    """Blocks `[start, valid_start)`, `[valid_start, test_start)`, `[test_start, end)`."""

    start: pd.Timestamp
    valid_start: pd.Timestamp
    test_start: pd.Timestamp
    end: pd.Timestamp
    horizon: pd.Timedelta

    def __post_init__(self):
        for name in ("start", "valid_start", "test_start", "end"):
            object.__setattr__(self, name, _utc(getattr(self, name)))
        object.__setattr__(self, "horizon", pd.Timedelta(self.horizon))
        if not self.start < self.valid_start < self.test_start < self.end:
            raise ValueError(
                f"split boundaries must increase: start={self.start} valid_start={self.valid_start} "
                f"test_start={self.test_start} end={self.end}"
            )
        if self.horizon < pd.Timedelta(0):
            raise ValueError(f"horizon must be >= 0, got {self.horizon}")

    @classmethod
    def from_fractions(
        cls, start, end, horizon, valid: float = 0.2, test: float = 0.2
    ) -> "TimeSplit":
        """Blocks sized as fractions of the usable span `[start, end)`."""
        if not (0 < valid < 1 and 0 < test < 1 and valid + test < 1):
            raise ValueError(f"valid and test fractions must be in (0, 1) and sum < 1, got {valid}, {test}")
        start, end = _utc(start), _utc(end)
        span = end - start
        test_start = end - span * test
        valid_start = test_start - span * valid
        return cls(start, valid_start, test_start, end, pd.Timedelta(horizon))

    def assign(self, timestamps) -> np.ndarray:
        """Block name per row ('' for rows purged because their label window crosses a boundary)."""
        ts = pd.to_datetime(pd.Series(timestamps), utc=True)
        label_end = ts + self.horizon
        out = np.full(len(ts), "", dtype=object)
        blocks = ((TRAIN, self.start, self.valid_start), (VALID, self.valid_start, self.test_start),
                  (TEST, self.test_start, self.end))
        for name, lo, hi in blocks:
            mask = ((ts >= lo) & (ts < hi) & (label_end <= hi)).to_numpy()
            out[mask] = name
        return out

    def describe(self) -> dict[str, str]:
        """Boundaries as strings (MLflow params / tags)."""
        return {
            "split.start": self.start.isoformat(),
            "split.valid_start": self.valid_start.isoformat(),
            "split.test_start": self.test_start.isoformat(),
            "split.end": self.end.isoformat(),
            "split.horizon": str(self.horizon),
        }


def check_no_future_rows(train_ts, valid_ts, test_ts, horizon) -> None:
    """Raise if a training label window reaches the validation/test period (used by tests and the harness)."""
    horizon = pd.Timedelta(horizon)
    tr = pd.to_datetime(pd.Series(train_ts), utc=True)
    later = pd.concat([pd.to_datetime(pd.Series(valid_ts), utc=True), pd.to_datetime(pd.Series(test_ts), utc=True)])
    if len(tr) and len(later) and (tr + horizon).max() > later.min():
        raise AssertionError(
            f"training label window ends {(tr + horizon).max()} after the first evaluation row {later.min()}"
        )
