"""Send-slot selection in each contact's local time: windows, quiet hours, DST.

A candidate slot is the top of a *local* hour inside the requested UTC window
`[start, end)`. Candidates are generated on a 15-minute UTC grid and kept where
the local minute is 0, so zones with :30 / :45 offsets (Asia/Kolkata,
Asia/Kathmandu) and DST transitions come out right with no special cases: a
local hour skipped by spring-forward never appears, and the repeated hour of
fall-back appears twice (same local hour, the earlier instant wins on ties).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

HOURS_PER_WEEK = 168
GRID = pd.Timedelta(minutes=15)


def utc_timestamp(value, field: str) -> pd.Timestamp:
    """Parse a timezone-aware timestamp into UTC; naive input is rejected (field named)."""
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{field}: not a timestamp: {value!r}") from exc
    if ts.tzinfo is None:
        raise ValueError(f"{field}: naive timestamp {value!r}; give a timezone (e.g. '...Z' for UTC)")
    return ts.tz_convert("UTC")


def validate_quiet_hours(quiet_hours) -> tuple[int, int] | None:
    """`(start_hour, end_hour)` local, wrapping midnight if start > end; None or equal hours = no quiet hours."""
    if quiet_hours is None:
        return None
    try:
        start, end = (int(h) for h in quiet_hours)
    except (TypeError, ValueError):
        raise ValueError(f"quiet_hours: expected (start_hour, end_hour), got {quiet_hours!r}") from None
    for h in (start, end):
        if not 0 <= h <= 23:
            raise ValueError(f"quiet_hours: hours must be in 0..23, got {quiet_hours!r}")
    return None if start == end else (start, end)


def is_quiet(local_hour: np.ndarray, quiet_hours: tuple[int, int] | None) -> np.ndarray:
    local_hour = np.asarray(local_hour)
    if quiet_hours is None:
        return np.zeros(local_hour.shape, dtype=bool)
    start, end = quiet_hours
    if start < end:
        return (local_hour >= start) & (local_hour < end)
    return (local_hour >= start) | (local_hour < end)


def validate_timezones(timezones) -> np.ndarray:
    tz = np.asarray(timezones, dtype=object)
    for name in pd.unique(tz):
        try:
            ZoneInfo(str(name))
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone: unknown IANA time zone {name!r}") from None
    return tz


def hour_of_week(local: pd.DatetimeIndex | pd.Series) -> np.ndarray:
    """Monday 00:00 local = 0 ... Sunday 23:00 = 167."""
    local = pd.DatetimeIndex(local)
    return (local.dayofweek * 24 + local.hour).to_numpy().astype(np.int64)


def local_hour_of_week(utc_times, timezones) -> np.ndarray:
    """Local hour-of-week of each UTC instant in the matching IANA zone (vectorized per zone)."""
    times = pd.DatetimeIndex(pd.to_datetime(pd.Series(utc_times), utc=True))
    tz = np.asarray(timezones, dtype=object)
    out = np.empty(len(times), dtype=np.int64)
    for name in pd.unique(tz):
        mask = tz == name
        out[mask] = hour_of_week(times[mask].tz_convert(str(name)))
    return out


def candidate_slots(window_start, window_end, timezone: str) -> pd.DataFrame:
    """Tops of local hours in `[window_start, window_end)`: columns send_at (UTC), local_time, how, local_hour."""
    start = utc_timestamp(window_start, "window_start")
    end = utc_timestamp(window_end, "window_end")
    first = start.ceil(GRID)
    grid = pd.date_range(first, end, freq=GRID, inclusive="left", tz="UTC") if first < end else pd.DatetimeIndex([], tz="UTC")
    local = grid.tz_convert(timezone)
    keep = np.asarray(local.minute == 0)
    local = local[keep]
    return pd.DataFrame(
        {
            "send_at": grid[keep],
            "local_time": local.strftime("%Y-%m-%d %H:%M %Z"),
            "how": hour_of_week(local),
            "local_hour": np.asarray(local.hour),
        }
    )


def _allowed_by_zone(tz: np.ndarray, start, end, quiet):
    """(rows of that zone, its allowed slots: `ZoneSlots`) per distinct zone with at least one slot."""
    start_ns, end_ns, quiet = window_bounds(start, end, quiet)
    for name in pd.unique(tz):
        slots = zone_slots(start_ns, end_ns, quiet, str(name))
        if len(slots.how):
            yield np.flatnonzero(tz == name), slots


@dataclass(frozen=True)
class ZoneSlots:
    """Allowed slots of one zone in one window, in send order."""

    send_at: np.ndarray      # int64 ns since the epoch, UTC
    local_time: np.ndarray   # object: "YYYY-mm-dd HH:MM TZ"
    how: np.ndarray          # int64 local hour-of-week


@functools.lru_cache(maxsize=4096)
def zone_slots(start_ns: int, end_ns: int, quiet: tuple[int, int] | None, zone: str) -> ZoneSlots:
    """The allowed slots of `zone` in [start, end) outside `quiet` (validated), cached: a campaign's
    batches share one window, so each zone's slots are computed once (the arrays are read-only)."""
    slots = candidate_slots(pd.Timestamp(start_ns, tz="UTC"), pd.Timestamp(end_ns, tz="UTC"), zone)
    slots = slots[~is_quiet(slots["local_hour"].to_numpy(), quiet)]
    out = ZoneSlots(slots["send_at"].dt.tz_convert(None).to_numpy().astype("datetime64[ns]").astype(np.int64),
                    slots["local_time"].to_numpy(dtype=object), slots["how"].to_numpy(np.int64))
    for a in (out.send_at, out.local_time, out.how):
        a.flags.writeable = False
    return out


@functools.lru_cache(maxsize=8192)
def _known_zone(zone: str) -> bool:
    validate_timezones([zone])  # ValueError naming the zone
    return True


@functools.lru_cache(maxsize=1024)
def _zone_matrix(start_ns: int, end_ns: int, quiet, zones: tuple[str, ...]):
    """Every zone's allowed slots padded to one (zones x slots) matrix: how -1 / send_at 0 / label None
    where a zone has fewer slots."""
    per_zone = [zone_slots(start_ns, end_ns, quiet, z) for z in zones]
    width = max((len(s.how) for s in per_zone), default=0)
    z_how = np.full((len(zones), width), -1, dtype=np.int64)
    z_send = np.zeros((len(zones), width), dtype=np.int64)
    z_label = np.full((len(zones), width), None, dtype=object)
    for i, s in enumerate(per_zone):
        z_how[i, : len(s.how)], z_send[i, : len(s.how)], z_label[i, : len(s.how)] = s.how, s.send_at, s.local_time
    return width, z_how, z_send, z_label


@functools.lru_cache(maxsize=1024)
def _window(window_start, window_end, quiet_hours) -> tuple[int, int, tuple[int, int] | None]:
    start = utc_timestamp(window_start, "window_start")
    end = utc_timestamp(window_end, "window_end")
    if not start < end:
        raise ValueError(f"window_end ({end}) must be after window_start ({start})")
    return start.value, end.value, validate_quiet_hours(quiet_hours)


def window_bounds(window_start, window_end, quiet_hours) -> tuple[int, int, tuple[int, int] | None]:
    """(start ns, end ns, quiet hours) validated (ValueError naming the field); cached per request values."""
    try:
        quiet = None if quiet_hours is None else tuple(quiet_hours)
        return _window(window_start, window_end, quiet)
    except TypeError:  # unhashable or not a sequence: validated (and refused) uncached
        return _window.__wrapped__(window_start, window_end, quiet_hours)


# every IANA zone's UTC offset lies in [-12 h, +14 h]
MIN_OFFSET, MAX_OFFSET = pd.Timedelta(hours=-12), pd.Timedelta(hours=14)


@functools.lru_cache(maxsize=1024)
def _window_hours(start_ns: int, end_ns: int, quiet: tuple[int, int] | None) -> np.ndarray:
    first = (pd.Timestamp(start_ns) + MIN_OFFSET).floor("h")
    last = pd.Timestamp(end_ns) + MAX_OFFSET
    if last - first >= pd.Timedelta(days=7):
        how = np.arange(HOURS_PER_WEEK)
    else:
        how = np.unique(hour_of_week(pd.date_range(first, last, freq="h")))
    how = how[~is_quiet(how % 24, quiet)]
    how.flags.writeable = False
    return how


def window_hours(window_start, window_end, quiet_hours=(21, 7)) -> np.ndarray:
    """Every local hour-of-week at which a slot of the window can be allowed in ANY time zone (sorted):
    the window widened by the extreme UTC offsets, quiet hours removed. A grid needs only these
    columns for a choice in this window, whatever the contacts' zones."""
    return _window_hours(*window_bounds(window_start, window_end, quiet_hours))


@dataclass
class ChosenSlots:
    """Best allowed slot per row; send_at NaT / how -1 / probability NaN where the window has none."""

    send_at: np.ndarray      # datetime64[ns] (UTC, naive)
    local_time: np.ndarray   # object
    how: np.ndarray          # int64
    probability: np.ndarray  # float64


def choose_slot_arrays(grid: np.ndarray, timezones, window_start, window_end, quiet_hours=(21, 7)) -> ChosenSlots:
    """`choose_slots` as arrays: each row's allowed slots (its zone's, cached per window) gathered into one
    padded (rows x slots) matrix of scores, padding -inf, then one argmax (the first maximum: the earliest
    slot on ties). Non-finite scores never win over a finite one."""
    grid = np.asarray(grid, dtype=float)
    if grid.ndim != 2 or grid.shape[1] != HOURS_PER_WEEK:
        raise ValueError(f"grid: expected shape (n, {HOURS_PER_WEEK}), got {grid.shape}")
    tz = np.asarray(timezones, dtype=object)
    if len(tz) != len(grid):
        raise ValueError(f"timezones: {len(tz)} values for {len(grid)} rows")
    start, end, quiet = window_bounds(window_start, window_end, quiet_hours)
    n = len(grid)
    if n == 1:
        zones, zone_of = (str(tz[0]),), np.zeros(1, dtype=np.intp)
    else:
        names, zone_of = np.unique(tz.astype(str), return_inverse=True)
        zones = tuple(names.tolist())
    for z in zones:
        _known_zone(z)
    width, z_how, z_send, z_label = _zone_matrix(start, end, quiet, zones)
    if not width:
        return ChosenSlots(np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]"), np.full(n, None, dtype=object),
                           np.full(n, -1, dtype=np.int64), np.full(n, np.nan))
    how = z_how[zone_of]                                   # rows x slots
    real = how >= 0
    score = np.take_along_axis(grid, np.where(real, how, 0), axis=1)
    score = np.where(real & np.isfinite(score), score, -np.inf)
    best = np.argmax(score, axis=1)
    has_slot = real.any(axis=1)
    rows = np.arange(n)
    send_at = z_send[zone_of, best].astype("datetime64[ns]")
    send_at[~has_slot] = np.datetime64("NaT")
    local_time = np.where(has_slot, z_label[zone_of, best], None).astype(object)
    chosen_how = np.where(has_slot, how[rows, best], -1)
    prob = np.where(has_slot, score[rows, best], np.nan)
    return ChosenSlots(send_at, local_time, chosen_how, prob)


def choose_slots(
    grid: np.ndarray,
    timezones,
    window_start,
    window_end,
    quiet_hours=(21, 7),
) -> pd.DataFrame:
    """Best allowed slot per row of `grid` (n x 168 scores by local hour-of-week).

    Returns one row per input row: send_at (UTC, NaT if the window has no slot
    outside quiet hours), local_time, how, probability (NaN when no slot).
    """
    chosen = choose_slot_arrays(grid, timezones, window_start, window_end, quiet_hours)
    return pd.DataFrame(
        {
            "send_at": pd.to_datetime(chosen.send_at).tz_localize("UTC"),
            "local_time": chosen.local_time,
            "how": chosen.how,
            "probability": chosen.probability,
        }
    )


def allowed_slot_table(timezones, window_start, window_end, quiet_hours=(21, 7)) -> pd.DataFrame:
    """All allowed (row, slot) pairs: row, send_at, how. For evaluation against random/oracle slots."""
    tz = validate_timezones(timezones)
    quiet = validate_quiet_hours(quiet_hours)
    parts = []
    for rows, slots in _allowed_by_zone(tz, window_start, window_end, quiet):
        parts.append(
            pd.DataFrame(
                {
                    "row": np.repeat(rows, len(slots.how)),
                    "send_at": np.tile(slots.send_at, len(rows)),
                    "how": np.tile(slots.how, len(rows)),
                }
            )
        )
    if not parts:
        return pd.DataFrame({"row": pd.Series(dtype=np.int64), "send_at": pd.Series(dtype="datetime64[ns, UTC]"),
                             "how": pd.Series(dtype=np.int64)})
    out = pd.concat(parts, ignore_index=True)
    out["send_at"] = pd.to_datetime(out["send_at"], utc=True)
    return out.sort_values(["row", "send_at"], kind="stable").reset_index(drop=True)
