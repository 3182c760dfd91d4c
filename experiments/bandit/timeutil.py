"""UTC time <-> integer microseconds since the epoch (the decision log's clock)."""
from __future__ import annotations

import re
import time
from datetime import datetime, timezone

import numpy as np
import pandas as pd

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def to_micros(when, field: str = "time") -> int:
    """A timezone-aware datetime / pandas Timestamp / ISO string -> epoch microseconds."""
    if when is None:
        return time.time_ns() // 1000
    if isinstance(when, datetime) and not isinstance(when, pd.Timestamp) and when.tzinfo is not None:
        return int(when.timestamp() * 1_000_000)
    ts = pd.Timestamp(when)
    if ts.tzinfo is None:
        raise ValueError(f"{field}: timestamps must be timezone-aware UTC, got naive {when!r}")
    return int(ts.tz_convert("UTC").value // 1000)


def micros_array(values, field: str = "time") -> np.ndarray:
    """Vectorized `to_micros` for a column of timestamps."""
    series = pd.Series(values)
    if pd.api.types.is_datetime64_any_dtype(series):
        if series.dt.tz is None:
            raise ValueError(f"{field}: timestamps must be timezone-aware UTC")
        return series.dt.tz_convert("UTC").astype("datetime64[us, UTC]").astype("int64").to_numpy()
    return np.array([to_micros(v, field) for v in values], dtype=np.int64)


def from_micros(us) -> pd.Series | pd.Timestamp:
    if np.ndim(us) == 0:
        return pd.Timestamp(int(us), unit="us", tz="UTC")
    return pd.to_datetime(np.asarray(us, dtype=np.int64), unit="us", utc=True)


def parse_duration(text: str | float | int, field: str = "wait_window") -> int:
    """'48h' / '30m' / '2d' / seconds -> microseconds."""
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        match = _DURATION.match(str(text))
        if not match:
            raise ValueError(f"{field}: expected a duration like '48h', '30m', '2d', got {text!r}")
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"{field}: must be positive")
    return int(seconds * 1_000_000)
