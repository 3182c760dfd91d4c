"""Request-path `best_slots`: the send-time planner's answer for a whole batch in numpy.

`models.send_time.SendTimePlanner.best_slots` (the reference) rebuilds every
zone's candidate slots, a per-zone pandas frame, a (contacts x all hours)
score grid and a second per-zone pass on every call: ~20 ms for one contact,
~100 ms for 100. `FastSlots` gives the same answer (same slots, same scores,
same levels: `tests/serving/test_serving_decide_equivalence.py`) with:

* each zone's allowed slots per (window, quiet hours) computed once and cached
  as numpy arrays (UTC ns, local-time label, local hour-of-week);
* the batch's slots as one padded (contacts x slots) matrix, gathered by zone code;
* the LightGBM model called ONCE on a float32 matrix of only the (contact,
  allowed slot) pairs of contact-level rows; segment / population rows read
  their stored grids at the same slots;
* the argmax over the padded matrix (padding is -inf, so the first maximum is
  the earliest real slot, as in the reference's per-zone argmax).

It uses the planner's fallback rule (`level_codes`) and feature helpers, so
`verify` compares it with the planner's own `best_slots` on a sample (the
warm-up does, for a plain and a DST-change window) and the request path uses
it only once verified; otherwise the reference answers.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.send_time import LEVELS, slot_features
from models.slots import candidate_slots, is_quiet, utc_timestamp, validate_quiet_hours, validate_timezones

logger = logging.getLogger("inbox.serving")


@dataclass
class ZoneSlots:
    """Allowed slots of one zone in one window, in send order."""

    send_at: np.ndarray      # int64 ns since the epoch, UTC
    local_time: np.ndarray   # object: "YYYY-mm-dd HH:MM TZ"
    how: np.ndarray          # int64 local hour-of-week


@dataclass
class SlotChoice:
    """Best slot per contact (aligned with the batch); send_at is NaT where the window has no allowed slot."""

    contact_id: np.ndarray
    send_at: np.ndarray      # datetime64[ns] (UTC, naive)
    local_time: np.ndarray
    probability: np.ndarray
    level: np.ndarray

    @classmethod
    def from_frame(cls, df: pd.DataFrame) -> "SlotChoice":
        return cls(df["contact_id"].to_numpy(np.int64), df["send_at"].dt.tz_convert(None).to_numpy(),
                   df["local_time"].to_numpy(dtype=object), df["probability"].to_numpy(dtype=float),
                   df["level"].to_numpy(dtype=object))

    def frame(self) -> pd.DataFrame:
        """The reference's DataFrame shape (for callers that want one)."""
        return pd.DataFrame({"contact_id": self.contact_id,
                             "send_at": pd.to_datetime(self.send_at).tz_localize("UTC"),
                             "local_time": self.local_time, "probability": self.probability, "level": self.level})


def _length(frame) -> int:
    return len(frame) if isinstance(frame, pd.DataFrame) else len(frame["contact_id"])


class FastSlots:
    """Vectorized `best_slots` over one loaded `SendTimePlanner` (caches live as long as the state)."""

    def __init__(self, planner, max_windows: int = 64):
        self.planner = planner
        self.max_windows = max_windows
        self._zone_slots: dict[tuple, ZoneSlots] = {}
        self._windows: list[tuple] = []
        self._valid_zones: set[str] = set()
        self._bounds_cache: dict = {}
        self._matrices: dict = {}   # (window, zones) -> padded (zones x slots) arrays, read-only
        self.verified = False
        self.accepts_mapping = False  # the request path passes the column mapping (verified) or the DataFrame

    def verify(self, features, timezones, windows) -> bool:
        """True (and `self.verified`) if every (start, end, quiet) window gives the planner's exact answer.

        `features`: a `serving.predict.ContactFeatures` (its column mapping is tried first, then its
        DataFrame; `accepts_mapping` says which one the request path passes) or a DataFrame."""
        inputs = [(True, features.columns), (False, features.merged)] if hasattr(features, "columns") and not \
            isinstance(features, pd.DataFrame) else [(False, features)]
        frame = inputs[-1][1]
        reason = None
        for mapping, given in inputs:
            try:
                for start, end, quiet in windows:
                    want = self.planner.best_slots(frame, timezones, start, end, quiet_hours=quiet)
                    got = self.best_slots(given, timezones, start, end, quiet).frame()
                    pd.testing.assert_frame_equal(got, want, check_exact=True)
                self.verified, self.accepts_mapping = True, mapping
                return True
            except Exception as exc:  # noqa: BLE001 - any difference or failure: try the next input / reference
                reason = exc
        logger.warning("fast send slots differ from the planner's (%s); using the planner", reason)
        self.verified = False
        return False

    # --- per-process caches ---------------------------------------------------------
    def zone_slots(self, start: pd.Timestamp, end: pd.Timestamp, quiet, zone: str) -> ZoneSlots:
        window = (start.value, end.value, quiet)
        key = (window, zone)
        hit = self._zone_slots.get(key)
        if hit is not None:
            return hit
        if window not in self._windows:
            self._windows.append(window)
            if len(self._windows) > self.max_windows:  # forget the oldest window's zones
                old = self._windows.pop(0)
                self._zone_slots = {k: v for k, v in self._zone_slots.items() if k[0] != old}
        slots = candidate_slots(start, end, zone)
        slots = slots[~is_quiet(slots["local_hour"].to_numpy(), quiet)]
        hit = ZoneSlots(slots["send_at"].dt.tz_convert(None).to_numpy().astype("datetime64[ns]").astype(np.int64),
                        slots["local_time"].to_numpy(dtype=object), slots["how"].to_numpy(np.int64))
        self._zone_slots[key] = hit
        return hit

    def _check_zones(self, zones: np.ndarray) -> None:
        new = [z for z in zones.tolist() if z not in self._valid_zones]
        if new:
            validate_timezones(np.asarray(new, dtype=object))  # ValueError naming an unknown zone
            self._valid_zones.update(new)

    # --- the batch ------------------------------------------------------------------
    def best_slots(self, frame, timezones, window_start, window_end, quiet_hours=(21, 7)) -> SlotChoice:
        """`frame`: the batch's features as a DataFrame or a column mapping {name: numpy array}."""
        if "contact_id" not in frame:
            raise ValueError("features_df: missing column 'contact_id'")
        n = _length(frame)
        window = self._window(timezones, n, window_start, window_end, quiet_hours)
        if isinstance(frame, pd.DataFrame):
            frame = frame.reset_index(drop=True)
        p = self.planner
        profile = p.profile(frame)
        level, seg = p.level_codes(profile)

        def contact_scores(rows: np.ndarray, how: np.ndarray) -> np.ndarray:
            X = p.encoder.transform(frame)
            return p.predict_matrix(np.hstack([X[rows], slot_features(profile, rows, how)]))

        return self._choose(np.asarray(frame["contact_id"], dtype=np.int64), window, level, seg, contact_scores)

    def best_slots_from_hours(self, contact_ids, timezones, window_start, window_end, quiet_hours,
                              level: np.ndarray, segment: np.ndarray, hour_scores) -> SlotChoice:
        """`best_slots` from precomputed contact-level inputs (`hour_scores`: `planner.hour_scores`):
        per contact the fallback level and segment row, and `hour_scores(rows, how)` giving the
        contact-level score of batch rows `rows` at hours-of-week `how`."""
        ids = np.asarray(contact_ids, dtype=np.int64)
        window = self._window(timezones, len(ids), window_start, window_end, quiet_hours)
        return self._choose(ids, window, level, segment, hour_scores)

    def _window(self, timezones, n: int, window_start, window_end, quiet_hours):
        """Each zone's allowed slots, padded to a (zones x slots) matrix, and each contact's zone row."""
        tz = np.asarray(timezones, dtype=object)
        if len(tz) != n:
            raise ValueError(f"timezones: {len(tz)} values for {n} contacts")
        if n == 1:
            zones, zone_of = np.array([str(tz[0])], dtype=object), np.zeros(1, dtype=np.intp)
        else:
            zones, zone_of = np.unique(tz.astype(str), return_inverse=True)
        self._check_zones(zones)
        start, end, quiet = self._bounds(window_start, window_end, quiet_hours)
        key = (start.value, end.value, quiet, tuple(zones.tolist()))
        hit = self._matrices.get(key)
        if hit is None:
            hit = self._zone_matrix(start, end, quiet, zones)
            if len(self._matrices) >= 1024:
                self._matrices.clear()
            self._matrices[key] = hit
        return (zone_of, *hit)

    def _bounds(self, window_start, window_end, quiet_hours):
        """(start, end, quiet) validated; cached per request values (a campaign's batches share them)."""
        try:
            key = (window_start, window_end, None if quiet_hours is None else tuple(quiet_hours))
            hit = self._bounds_cache.get(key)
        except TypeError:  # unhashable or not a pair: validated (and refused) below
            key, hit = None, None
        if hit is not None:
            return hit
        quiet = validate_quiet_hours(quiet_hours)
        start = utc_timestamp(window_start, "window_start")
        end = utc_timestamp(window_end, "window_end")
        if not start < end:
            raise ValueError(f"window_end ({end}) must be after window_start ({start})")
        if key is not None:
            if len(self._bounds_cache) >= 1024:
                self._bounds_cache.clear()
            self._bounds_cache[key] = (start, end, quiet)
        return start, end, quiet

    def _zone_matrix(self, start, end, quiet, zones):
        # zones x slots, padded: how -1 / send_at 0 where a zone has fewer slots
        per_zone = [self.zone_slots(start, end, quiet, str(z)) for z in zones]
        width = max((len(s.how) for s in per_zone), default=0)
        z_how = np.full((len(zones), width), -1, dtype=np.int64)
        z_send = np.zeros((len(zones), width), dtype=np.int64)
        z_label = np.full((len(zones), width), None, dtype=object)
        for i, s in enumerate(per_zone):
            z_how[i, : len(s.how)], z_send[i, : len(s.how)], z_label[i, : len(s.how)] = s.how, s.send_at, s.local_time
        return width, z_how, z_send, z_label

    def _choose(self, contact_ids: np.ndarray, window, level: np.ndarray, seg: np.ndarray,
                contact_scores) -> SlotChoice:
        """The argmax over each contact's allowed slots of its level's scores."""
        zone_of, width, z_how, z_send, z_label = window
        p = self.planner
        n = len(contact_ids)
        if n == 1 and width:
            return self._choose_one(contact_ids, z_how[0], z_send[0], z_label[0], int(level[0]), int(seg[0]),
                                    contact_scores)
        how = z_how[zone_of]                               # contacts x slots
        real = how >= 0
        safe_how = np.where(real, how, 0)
        score = p.population_grid[safe_how]
        if len(p.segment_grids) and (level == 1).any():
            seg_score = p.segment_grids[np.maximum(seg, 0)[:, None], safe_how]
            score = np.where(level[:, None] == 1, seg_score, score)
        contact_rows = np.flatnonzero(level == 0)
        if len(contact_rows) and width:
            r, s = np.nonzero(real[contact_rows])
            rows = contact_rows[r]
            score[rows, s] = contact_scores(rows, how[rows, s])
        score = np.where(real & np.isfinite(score), score, -np.inf)

        has_slot = real.any(axis=1) if width else np.zeros(n, dtype=bool)
        best = np.argmax(score, axis=1) if width else np.zeros(n, dtype=np.int64)
        take = np.arange(n)
        send_at = np.where(has_slot, z_send[zone_of, best] if width else 0, 0).astype("datetime64[ns]")
        send_at[~has_slot] = np.datetime64("NaT")
        local_time = np.where(has_slot, z_label[zone_of, best] if width else None, None)
        prob = np.where(has_slot, score[take, best] if width else np.nan, np.nan)
        return SlotChoice(contact_ids, send_at, local_time.astype(object), prob, LEVELS[level])

    def _choose_one(self, contact_ids, how, send, label, level: int, seg: int, contact_scores) -> SlotChoice:
        """`_choose` for one contact (one zone: every slot of the row is real), without the batch's padding."""
        p = self.planner
        if level == 0:
            score = contact_scores(np.zeros(len(how), dtype=np.int64), how)
        elif level == 1 and len(p.segment_grids):
            score = p.segment_grids[max(seg, 0), how]
        else:
            score = p.population_grid[how]
        score = np.where(np.isfinite(score), score, -np.inf)
        best = int(np.argmax(score))
        return SlotChoice(contact_ids, np.array([send[best]], dtype="datetime64[ns]"),
                          np.array([label[best]], dtype=object), np.array([score[best]], dtype=float),
                          LEVELS[np.array([level])])

    def hour_scores(self, frame):
        """The planner's contact-level inputs for every contact of `frame`, computed once: (fallback
        level, segment row, rows at the contact level, their (rows, 168) scores at every local hour of
        the week: `SendTimePlanner.contact_grid`). `best_slots_from_hours` then needs no model call."""
        p = self.planner
        profile = p.profile(frame)
        level, seg = p.level_codes(profile)
        rows = np.flatnonzero(level == 0)
        return level, seg, rows, p.contact_grid(frame, rows=rows, profile=profile)
