"""Vectorized UTC <-> local wall-clock conversion for IANA zones.

One pandas call per distinct zone (tens), never one per row. Times are int64
microseconds since the epoch.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

US_PER_HOUR = 3_600_000_000
US_PER_DAY = 24 * US_PER_HOUR


def utc_to_local(tz_codes: np.ndarray, zones, utc_us: np.ndarray) -> np.ndarray:
    """Local wall-clock time (as naive µs) of UTC instants, zone `zones[tz_codes[i]]`."""
    out = np.empty(len(utc_us), dtype=np.int64)
    for code in np.unique(tz_codes):
        m = tz_codes == code
        idx = pd.DatetimeIndex(utc_us[m].astype("datetime64[us]")).tz_localize("UTC").tz_convert(zones[code])
        out[m] = idx.tz_localize(None).as_unit("us").asi8
    return out


def local_to_utc(tz_codes: np.ndarray, zones, local_us: np.ndarray) -> np.ndarray:
    """UTC instants of local wall-clock times; DST gaps shift forward, overlaps take standard time."""
    out = np.empty(len(local_us), dtype=np.int64)
    for code in np.unique(tz_codes):
        m = tz_codes == code
        idx = pd.DatetimeIndex(local_us[m].astype("datetime64[us]")).tz_localize(
            zones[code], ambiguous=np.zeros(int(m.sum()), dtype=bool), nonexistent="shift_forward"
        )
        out[m] = idx.tz_convert("UTC").as_unit("us").asi8
    return out


def hour_and_weekday(local_us: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fractional local hour in [0, 24) and weekday (Monday = 0) of naive local µs."""
    days = np.floor_divide(local_us, US_PER_DAY)
    hour = (local_us - days * US_PER_DAY) / US_PER_HOUR
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday
    return hour, weekday
