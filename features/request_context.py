"""Request-time context: the local hour and weekday of a request in each contact's time zone.

One function serves both the Feast on-demand view `request_context` (training and
`get_online_features`) and `OnlineReader`'s fast path, so they cannot disagree.
Unknown or missing zone names fall back to UTC rather than failing a request.
"""
from __future__ import annotations

from datetime import datetime
from functools import lru_cache

import numpy as np
import pandas as pd


def _local(ts: pd.Timestamp, zone: str) -> pd.Timestamp:
    try:
        return ts.tz_convert(zone)
    except Exception:
        return ts


@lru_cache(maxsize=8192)
def _hour_weekday(utc_ns: int, zone: str) -> tuple[int, int]:
    """(local hour, weekday) of one UTC instant in one zone (cached: a batch's requests share a send time)."""
    t = _local(pd.Timestamp(utc_ns, tz="UTC"), zone)
    return t.hour, t.weekday()


def local_context(timezones, request_time) -> pd.DataFrame:
    """DataFrame[local_hour, local_weekday (0 = Monday), local_is_weekend] per row."""
    return pd.DataFrame(local_context_arrays(timezones, request_time))


def local_context_arrays(timezones, request_time) -> dict[str, np.ndarray]:
    """{local_hour, local_weekday (0 = Monday), local_is_weekend}: one array each, a value per row.

    `request_time`: one UTC datetime for all rows, or one per row.
    """
    zones = np.array(["UTC" if z is None or z != z else str(z) for z in timezones], dtype=object)
    n = len(zones)
    uniq, inv = np.unique(zones, return_inverse=True)
    if isinstance(request_time, (datetime, pd.Timestamp)) or np.isscalar(request_time):
        ts = pd.Timestamp(request_time)
        ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
        parts = np.array([_hour_weekday(ts.value, z) for z in uniq.tolist()], dtype=np.int64).reshape(-1, 2)
        hour, weekday = parts[inv, 0], parts[inv, 1]
    else:
        when = pd.DatetimeIndex(pd.to_datetime(pd.Series(request_time), utc=True))
        if len(when) != n:
            raise ValueError(f"request_time: {len(when)} values for {n} rows")
        hour = np.zeros(n, dtype=np.int64)
        weekday = np.zeros(n, dtype=np.int64)
        for i, z in enumerate(uniq):  # one vectorized conversion per time zone
            sel = np.flatnonzero(inv == i)
            try:
                local = when[sel].tz_convert(z)
            except Exception:
                local = when[sel]
            hour[sel] = local.hour
            weekday[sel] = local.weekday
    return {"local_hour": hour, "local_weekday": weekday, "local_is_weekend": weekday >= 5}
