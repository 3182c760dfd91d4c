"""Send-time predictor: P(open within 24 h | contact, local hour-of-week) and the best slot.

The model is a LightGBM classifier over *slot features*: the contact's
features from the `send_time` service (attributes, engagement) plus, for a
candidate local hour h on a weekday or weekend day, the contact's smoothed
share of past opens at h and at the hours just after it (opens arrive after
the send), the signed distance from h to the contact's most frequent open
hour, how many opens that profile rests on, and the contact's smoothed open
rate of past sends that went out at local hour h (`send_rate_{wd,we}_hHH`,
see `features.snapshots`), also relative to its best and mean hour, and the
posterior-expected log-odds lift of sending at h (`send_lift_{wd,we}_hHH`).

Hierarchical fallback (the level that decided is returned with each slot):

* `contact`: the contact has at least `min_contact_opens` opens in its
  profile; its own predicted grid decides;
* `segment`: otherwise the mean predicted grid of the contact's segment
  (seniority x industry), computed at training time over the segment's
  contacts, if the segment had at least `min_segment_contacts` of them;
* `population`: otherwise the mean grid of all contacts.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from models.encoding import FeatureEncoder
from models.slots import HOURS_PER_WEEK, choose_slots

SEGMENT_COLUMNS = ("seniority", "industry")
SLOT_COLUMNS = ["slot_local_hour", "slot_weekend", "slot_weekday", "slot_share", "slot_share_next1",
                "slot_share_next2", "slot_share_next3", "slot_share_prev1", "slot_dist_best", "slot_profile_opens",
                "slot_send_rate", "slot_send_rate_vs_best", "slot_send_rate_vs_mean", "slot_profile_sends",
                "slot_send_lift", "slot_send_lift_vs_best"]
LEVELS = np.array(["contact", "segment", "population"], dtype=object)


def share_columns(kind: str) -> list[str]:
    return [f"open_share_{kind}_h{h:02d}" for h in range(24)]


def send_rate_columns(kind: str, measure: str = "rate") -> list[str]:
    return [f"send_{measure}_{kind}_h{h:02d}" for h in range(24)]


PROFILE_COLUMNS = [c for m in ("rate", "lift") for k in ("wd", "we") for c in send_rate_columns(k, m)] + [
    *share_columns("wd"), *share_columns("we"),
    "best_hour_weekday", "best_hour_weekend", "opens_weekday", "opens_weekend", "sends_weekday", "sends_weekend"]
CONTACT_EXCLUDE = tuple(PROFILE_COLUMNS) + ("timezone", "country", "local_hour", "local_weekday", "local_is_weekend")


def profile_arrays(features_df: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per-contact profile arrays from the feature frame (missing columns -> uniform / zero)."""
    n = len(features_df)

    def block(kind):
        cols = share_columns(kind)
        if all(c in features_df.columns for c in cols):
            a = features_df[cols].to_numpy(dtype=float, na_value=np.nan)
            return np.where(np.isfinite(a), a, 1.0 / 24)
        return np.full((n, 24), 1.0 / 24)

    def rates(kind, measure="rate"):  # missing -> NaN (LightGBM's missing branch)
        cols = send_rate_columns(kind, measure)
        if all(c in features_df.columns for c in cols):
            return features_df[cols].to_numpy(dtype=float, na_value=np.nan)
        return np.full((n, 24), np.nan)

    def col(name, default):
        if name in features_df.columns:
            return pd.to_numeric(features_df[name], errors="coerce").fillna(default).to_numpy(float)
        return np.full(n, float(default))

    return {
        "wd": block("wd"), "we": block("we"),
        "best_wd": col("best_hour_weekday", 9), "best_we": col("best_hour_weekend", 10),
        "opens_wd": col("opens_weekday", 0), "opens_we": col("opens_weekend", 0),
        "rate_wd": rates("wd"), "rate_we": rates("we"),
        "lift_wd": rates("wd", "lift"), "lift_we": rates("we", "lift"),
        "sends_wd": col("sends_weekday", 0), "sends_we": col("sends_weekend", 0),
    }


def slot_features(profile: dict[str, np.ndarray], rows: np.ndarray, how: np.ndarray) -> np.ndarray:
    """(len(rows), len(SLOT_COLUMNS)) slot features for contact `rows` at hours-of-week `how`."""
    how = np.asarray(how, dtype=np.int64)
    hour, day = how % 24, how // 24
    weekend = day >= 5
    share = np.where(weekend[:, None], profile["we"][rows], profile["wd"][rows])  # (r, 24)
    r = np.arange(len(rows))

    def at(offset):
        return share[r, (hour + offset) % 24]

    best = np.where(weekend, profile["best_we"][rows], profile["best_wd"][rows])
    dist = (hour - best + 12) % 24 - 12  # signed circular distance in hours
    opens = np.where(weekend, profile["opens_we"][rows], profile["opens_wd"][rows])
    rate_row = np.where(weekend[:, None], profile["rate_we"][rows], profile["rate_wd"][rows])  # (r, 24)
    rate = rate_row[r, hour]
    with np.errstate(invalid="ignore", divide="ignore"):
        vs_best = rate / rate_row.max(axis=1)
        vs_mean = rate / rate_row.mean(axis=1)
    sends = np.where(weekend, profile["sends_we"][rows], profile["sends_wd"][rows])
    lift_row = np.where(weekend[:, None], profile["lift_we"][rows], profile["lift_wd"][rows])
    lift = lift_row[r, hour]
    return np.column_stack([hour, weekend, day, at(0), at(1), at(2), at(3), at(-1), dist, opens,
                            rate, vs_best, vs_mean, sends, lift, lift - lift_row.max(axis=1)]).astype(np.float32)


class SendTimePlanner:
    """Native send-time model: LightGBM on numpy + segment / population fallback grids."""

    name = "send_time"
    feature_service = "send_time"
    services = ("send_time", "lead_scoring")  # + profile attributes for the segment fallback

    def __init__(self, booster, encoder: FeatureEncoder, segment_keys: list[str], segment_grids: np.ndarray,
                 population_grid: np.ndarray, min_contact_opens: int = 3, version=None, num_threads: int = 0):
        self.booster = booster
        self.encoder = encoder
        self.segment_keys = list(segment_keys)
        self.segment_index = {k: i for i, k in enumerate(self.segment_keys)}
        self.segment_grids = np.asarray(segment_grids, dtype=float).reshape(-1, HOURS_PER_WEEK)
        self.population_grid = np.asarray(population_grid, dtype=float)
        self.min_contact_opens = int(min_contact_opens)
        self.version = version
        self.num_threads = num_threads

    @property
    def columns(self) -> list[str]:
        return self.encoder.columns + SLOT_COLUMNS

    # --- the model on (contact, hour) pairs ------------------------------------
    def pair_matrix(self, contact_X: np.ndarray, profile: dict, rows: np.ndarray, how: np.ndarray) -> np.ndarray:
        return np.hstack([contact_X[rows], slot_features(profile, rows, how)])

    def predict_pairs(self, features_df: pd.DataFrame, rows: np.ndarray, how: np.ndarray) -> np.ndarray:
        X = self.encoder.transform(features_df)
        return self.booster.predict(self.pair_matrix(X, profile_arrays(features_df), rows, how),
                                    num_threads=self.num_threads)

    def contact_grid(self, features_df: pd.DataFrame, hows=None, chunk_rows: int = 400_000) -> np.ndarray:
        """(n, 168) predicted P(open within 24 h); only `hows` are computed (others NaN)."""
        hows = np.arange(HOURS_PER_WEEK) if hows is None else np.unique(np.asarray(hows, dtype=np.int64))
        n = len(features_df)
        X = self.encoder.transform(features_df)
        profile = profile_arrays(features_df)
        grid = np.full((n, HOURS_PER_WEEK), np.nan)
        step = max(1, chunk_rows // max(len(hows), 1))
        for lo in range(0, n, step):
            idx = np.arange(lo, min(lo + step, n))
            rows = np.repeat(idx, len(hows))
            how = np.tile(hows, len(idx))
            p = self.booster.predict(self.pair_matrix(X, profile, rows, how), num_threads=self.num_threads)
            grid[np.ix_(idx, hows)] = p.reshape(len(idx), len(hows))
        return grid

    def levels(self, features_df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(level name per contact, segment row per contact or -1)."""
        profile = profile_arrays(features_df)
        opens = profile["opens_wd"] + profile["opens_we"]
        keys = segment_key(features_df)
        seg = np.array([self.segment_index.get(k, -1) for k in keys], dtype=np.int64)
        level = np.where(opens >= self.min_contact_opens, 0, np.where(seg >= 0, 1, 2))
        return LEVELS[level], seg

    def grid(self, features_df: pd.DataFrame, hows=None) -> tuple[np.ndarray, np.ndarray]:
        """Decision grid (n, 168) with the hierarchical fallback, and the level per contact."""
        level, seg = self.levels(features_df)
        grid = np.tile(self.population_grid, (len(features_df), 1))
        is_seg = level == "segment"
        grid[is_seg] = self.segment_grids[seg[is_seg]]
        is_contact = np.flatnonzero(level == "contact")
        if len(is_contact):
            grid[is_contact] = self.contact_grid(features_df.iloc[is_contact], hows)
        return grid, level

    def best_slots(self, features_df: pd.DataFrame, timezones, window_start, window_end,
                   quiet_hours=(21, 7)) -> pd.DataFrame:
        """Best slot per contact in [window_start, window_end) (UTC), local quiet hours honored.

        DataFrame[contact_id, send_at (UTC; NaT if the window has no allowed slot),
        local_time, probability, level]."""
        from models.slots import allowed_slot_table

        if "contact_id" not in features_df.columns:
            raise ValueError("features_df: missing column 'contact_id'")
        tz = np.asarray(timezones, dtype=object)
        if len(tz) != len(features_df):
            raise ValueError(f"timezones: {len(tz)} values for {len(features_df)} contacts")
        features_df = features_df.reset_index(drop=True)
        allowed = allowed_slot_table(tz, window_start, window_end, quiet_hours)
        grid, level = self.grid(features_df, hows=allowed["how"].unique())
        grid = np.where(np.isfinite(grid), grid, -np.inf)
        chosen = choose_slots(grid, tz, window_start, window_end, quiet_hours)
        return pd.DataFrame({
            "contact_id": features_df["contact_id"].to_numpy(np.int64),
            "send_at": chosen["send_at"],
            "local_time": chosen["local_time"],
            "probability": chosen["probability"],
            "level": level,
        })

    # --- persistence ----------------------------------------------------------
    def metadata(self) -> dict:
        return {
            "kind": "send_time",
            "feature_service": self.feature_service,
            "encoder": self.encoder.to_dict(),
            "slot_columns": SLOT_COLUMNS,
            "segment_columns": list(SEGMENT_COLUMNS),
            "segment_keys": self.segment_keys,
            "segment_grids": np.round(self.segment_grids, 6).tolist(),
            "population_grid": np.round(self.population_grid, 6).tolist(),
            "min_contact_opens": self.min_contact_opens,
        }

    def write_metadata(self, directory: Path) -> Path:
        from models.tracking import write_predictor_metadata

        return write_predictor_metadata(directory, self.metadata())

    @classmethod
    def load(cls, model_dir: Path, version=None) -> "SendTimePlanner":
        from models.tracking import read_lightgbm_artifacts

        booster, meta = read_lightgbm_artifacts(model_dir)
        return cls(booster, FeatureEncoder.from_dict(meta["encoder"]), meta["segment_keys"],
                   np.asarray(meta["segment_grids"]), np.asarray(meta["population_grid"]),
                   meta["min_contact_opens"], version=version)


def segment_key(features_df: pd.DataFrame) -> np.ndarray:
    """'seniority|industry' per row ('' parts when unknown)."""
    parts = [features_df[c].astype(object).where(features_df[c].notna(), "").astype(str).to_numpy()
             if c in features_df.columns else np.full(len(features_df), "", dtype=object)
             for c in SEGMENT_COLUMNS]
    return np.char.add(np.char.add(parts[0].astype(str), "|"), parts[1].astype(str)).astype(object)
