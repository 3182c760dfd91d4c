"""Vectorized UTC <-> local wall-clock conversion for IANA zones.

Times are int64 microseconds since the epoch. UTC offsets change only on
quarter-hour boundaries (DST and zone-rule transitions), so `ZoneClock`
tabulates each zone's offset per 15-minute bucket (one pandas call per zone
over the buckets, not over the rows) and gathers it with one fancy index.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

US_PER_HOUR = 3_600_000_000
US_PER_DAY = 24 * US_PER_HOUR
BUCKET_US = 15 * 60 * 1_000_000
MAX_TABLE_CELLS = 4_000_000


class ZoneClock:
    """UTC offsets of a fixed list of zones, tabulated per 15-minute bucket and cached.

    The table grows to cover each query's span (plus a month of margin) while it
    stays under `MAX_TABLE_CELLS`; beyond that a query falls back to one pandas
    conversion per zone.
    """

    def __init__(self, zones):
        self.zones = np.asarray(zones, dtype=object)
        self._first = 0
        self._table = np.zeros((len(self.zones), 0), dtype=np.int64)

    def _tabulate(self, first: int, n: int) -> None:
        grid = ((first + np.arange(n, dtype=np.int64)) * BUCKET_US).astype("datetime64[us]")
        utc = pd.DatetimeIndex(grid).tz_localize("UTC")
        table = np.empty((len(self.zones), n), dtype=np.int64)
        for code, zone in enumerate(self.zones):
            table[code] = utc.tz_convert(zone).tz_localize(None).as_unit("us").asi8 - grid.astype(np.int64)
        self._first, self._table = first, table

    def offsets(self, tz_codes: np.ndarray, utc_us: np.ndarray) -> np.ndarray:
        """UTC offset (µs) of each instant in zone `zones[tz_codes[i]]`."""
        tz_codes = np.asarray(tz_codes)
        utc_us = np.asarray(utc_us, dtype=np.int64)
        if len(utc_us) == 0:
            return np.zeros(0, dtype=np.int64)
        bucket = np.floor_divide(utc_us, BUCKET_US)
        lo, hi = int(bucket.min()), int(bucket.max())
        have_lo, have_hi = self._first, self._first + self._table.shape[1] - 1
        if lo < have_lo or hi > have_hi:
            margin = 30 * 96  # a month of buckets, so growing queries rarely re-tabulate
            new_lo = min(lo, have_lo) - margin if self._table.shape[1] else lo - margin
            new_hi = max(hi, have_hi) + margin if self._table.shape[1] else hi + margin
            if (new_hi - new_lo + 1) * len(self.zones) > MAX_TABLE_CELLS:
                return self._offsets_direct(tz_codes, utc_us)
            self._tabulate(new_lo, new_hi - new_lo + 1)
        return self._table[tz_codes, bucket - self._first]

    def _offsets_direct(self, tz_codes: np.ndarray, utc_us: np.ndarray) -> np.ndarray:
        out = np.empty(len(utc_us), dtype=np.int64)
        for code in np.flatnonzero(np.bincount(tz_codes, minlength=len(self.zones))):
            m = tz_codes == code
            idx = pd.DatetimeIndex(utc_us[m].astype("datetime64[us]")).tz_localize("UTC").tz_convert(self.zones[code])
            out[m] = idx.tz_localize(None).as_unit("us").asi8 - utc_us[m]
        return out

    def to_local(self, tz_codes: np.ndarray, utc_us: np.ndarray) -> np.ndarray:
        """Local wall-clock time (as naive µs) of UTC instants."""
        utc_us = np.asarray(utc_us, dtype=np.int64)
        return utc_us + self.offsets(tz_codes, utc_us)

    def to_utc(self, tz_codes: np.ndarray, local_us: np.ndarray) -> np.ndarray:
        """UTC instants of local wall-clock times.

        Two fixed-point steps: exact outside DST changes; an ambiguous time
        (clocks back) takes one of its two instants, a nonexistent one (clocks
        forward) moves by the size of the gap.
        """
        local_us = np.asarray(local_us, dtype=np.int64)
        guess = local_us - self.offsets(tz_codes, local_us)
        return local_us - self.offsets(tz_codes, guess)


def utc_to_local(tz_codes: np.ndarray, zones, utc_us: np.ndarray) -> np.ndarray:
    """One-off conversion (no cache kept between calls); see `ZoneClock.to_local`."""
    return ZoneClock(zones).to_local(tz_codes, utc_us)


def local_to_utc(tz_codes: np.ndarray, zones, local_us: np.ndarray) -> np.ndarray:
    """One-off conversion; see `ZoneClock.to_utc`."""
    return ZoneClock(zones).to_utc(tz_codes, local_us)


def hour_and_weekday(local_us: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fractional local hour in [0, 24) and weekday (Monday = 0) of naive local µs."""
    days = np.floor_divide(local_us, US_PER_DAY)
    hour = (local_us - days * US_PER_DAY) / US_PER_HOUR
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday
    return hour, weekday
