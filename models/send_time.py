"""Send-time predictor: P(open within 24 h | contact, local hour-of-week) and the best slot.

The send-hour evidence is a posterior: from the contact's raw counts
`sent_{wd,we}_hHH` / `sent_opened_{wd,we}_hHH` (sends that went out at local
hour HH on weekdays / weekend days and how many were opened), a
bump-around-the-preferred-hour model with an empirical-Bayes prior learned
per segment at training time (`models.peak_posterior.PeakPrior`, stored in
the logged model so serving computes the same) gives, for each top of the
hour, the posterior predictive open probability and mean log-odds lift.

A LightGBM classifier starts from the posterior's log-odds (`init_score`)
and corrects it with the contact's features from the `send_time` service
(attributes, engagement) and a few slot features (weekend, profile counts,
the posterior's rate and lift, monotone increasing). Slots of one contact
and one day kind are therefore ranked as the posterior ranks them; the
booster calibrates the level. (Open-hour shares are not slot features: open
delays carry no information on the preferred send hour, and as features
they cost uplift.)

Hierarchical fallback (the level that decided is returned with each slot):

* `contact`: the contact has at least `min_contact_opens` opens in its
  profile; its own predicted grid decides;
* `segment`: otherwise the mean predicted grid of the contact's segment
  (seniority x industry), computed at training time over the segment's
  contacts, if the segment had at least `min_segment_contacts` of them;
* `population`: otherwise the mean grid of all contacts.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from models.encoding import FeatureEncoder
from models.peak_posterior import PeakPrior
from models.slots import HOURS_PER_WEEK, choose_slot_arrays, validate_timezones, window_bounds, zone_slots

SEGMENT_COLUMNS = ("seniority", "industry")
SLOT_COLUMNS = ["slot_weekend", "slot_profile_opens", "slot_profile_sends", "slot_post_rate", "slot_post_rate_vs_best",
                "slot_post_lift", "slot_post_lift_vs_best"]
# the booster may only raise a slot's score with its posterior evidence: for one contact, slots of the same
# (weekday / weekend) kind are then ranked as the send-hour posterior ranks them
MONOTONE = {"slot_post_rate": 1, "slot_post_rate_vs_best": 1, "slot_post_lift": 1, "slot_post_lift_vs_best": 1}
LEVELS = np.array(["contact", "segment", "population"], dtype=object)
POST_RATE = SLOT_COLUMNS.index("slot_post_rate")


def share_columns(kind: str) -> list[str]:
    return [f"open_share_{kind}_h{h:02d}" for h in range(24)]


def count_columns(measure: str) -> list[str]:
    """`sent` or `sent_opened` by local send hour: 24 weekday then 24 weekend columns."""
    return [f"{measure}_{kind}_h{h:02d}" for kind in ("wd", "we") for h in range(24)]


SCALAR_DEFAULTS = {"best_hour_weekday": 9, "best_hour_weekend": 10, "opens_weekday": 0, "opens_weekend": 0,
                   "sends_weekday": 0, "sends_weekend": 0}
PROFILE_SCALARS = ("best_wd", "best_we", "opens_wd", "opens_we", "sends_wd", "sends_we")  # keys, same order
PROFILE_COLUMNS = [*share_columns("wd"), *share_columns("we"), *count_columns("sent"), *count_columns("sent_opened"),
                   *SCALAR_DEFAULTS]
CONTACT_EXCLUDE = tuple(PROFILE_COLUMNS) + ("timezone", "country", "local_hour", "local_weekday", "local_is_weekend")


def _block(features, names: list[str]) -> np.ndarray | None:
    """(n, len(names)) float array from a DataFrame or a column -> array mapping; None if a column is missing."""
    if isinstance(features, pd.DataFrame):
        if not set(names).issubset(features.columns):
            return None
        return features[names].to_numpy(dtype=float, na_value=np.nan)
    if not all(c in features for c in names):
        return None
    return np.column_stack([np.asarray(features[c], dtype=float) for c in names])


def _length(features) -> int:
    if isinstance(features, pd.DataFrame):
        return len(features)
    return len(next(iter(features.values()))) if len(features) else 0


def segment_key(features) -> np.ndarray:
    """'seniority|industry' per row ('' parts when unknown); DataFrame or column -> array mapping."""
    n = _length(features)
    parts = []
    for c in SEGMENT_COLUMNS:
        values = features[c] if c in features else None
        values = np.full(n, "", dtype=object) if values is None else np.asarray(values, dtype=object)
        parts.append(["" if v is None or v != v else str(v) for v in values])
    return np.array([f"{a}|{b}" for a, b in zip(*parts)], dtype=object)


def profile_arrays(features) -> dict[str, np.ndarray]:
    """Per-contact profile arrays from a DataFrame or a column-name -> numpy-array mapping (missing -> zero).

    `sent` / `opened`: (n, 48) send-hour counts, weekday hours 0-23 then weekend hours 0-23;
    `segment`: the 'seniority|industry' key per contact (the posterior's prior and the fallback).
    The slot features also need the posterior: see `with_posterior` (`SendTimePlanner.profile`).
    """
    if not isinstance(features, (pd.DataFrame, Mapping)):
        raise ValueError(f"features: expected a DataFrame or a column -> array mapping, got {type(features).__name__}")
    n = _length(features)
    counts = _block(features, count_columns("sent") + count_columns("sent_opened"))
    counts = np.zeros((n, 96)) if counts is None else np.nan_to_num(counts, nan=0.0)
    out = {"sent": counts[:, :48], "opened": np.minimum(counts[:, 48:], counts[:, :48]),
           "segment": segment_key(features)}
    for key, (name, default) in zip(PROFILE_SCALARS, SCALAR_DEFAULTS.items()):
        if name in features:
            v = pd.to_numeric(features[name], errors="coerce").to_numpy(float) if isinstance(
                features, pd.DataFrame) else np.asarray(features[name], dtype=float)
            out[key] = np.where(np.isfinite(v), v, float(default))
        else:
            out[key] = np.full(n, float(default))
    return out


def with_posterior(profile: dict[str, np.ndarray], prior: PeakPrior | None) -> dict[str, np.ndarray]:
    """`profile` plus the send-hour posterior: `rate` (predictive P(open)) and `lift` (mean log-odds lift),
    (n, 48) each; NaN without a prior (LightGBM's missing branch)."""
    if prior is None:
        rate = lift = np.full(profile["sent"].shape, np.nan)
    else:
        post = prior.posterior(profile["sent"], profile["opened"], prior.segment_rows(profile["segment"]))
        rate, lift = post["rate"], post["lift"]
    return {**profile, "rate": rate, "lift": lift}


def slot_features(profile: dict[str, np.ndarray], rows: np.ndarray, how: np.ndarray) -> np.ndarray:
    """(len(rows), len(SLOT_COLUMNS)) slot features for contact `rows` at hours-of-week `how`."""
    how = np.asarray(how, dtype=np.int64)
    hour = how % 24
    weekend = how // 24 >= 5
    r = np.arange(len(rows))
    opens = np.where(weekend, profile["opens_we"][rows], profile["opens_wd"][rows])
    sends = np.where(weekend, profile["sends_we"][rows], profile["sends_wd"][rows])
    part_cols = np.where(weekend, 24, 0)[:, None] + np.arange(24)[None, :]  # the slot's weekday or weekend half
    rate_row = profile["rate"][rows[:, None], part_cols]
    lift_row = profile["lift"][rows[:, None], part_cols]
    rate, lift = rate_row[r, hour], lift_row[r, hour]
    with np.errstate(invalid="ignore", divide="ignore"):
        vs_best = rate / rate_row.max(axis=1)
    return np.column_stack([weekend, opens, sends, rate, vs_best, lift, lift - lift_row.max(axis=1)]).astype(np.float32)


def hour_features(profile: dict[str, np.ndarray], rows: np.ndarray) -> np.ndarray:
    """`slot_features` of contact `rows` at every hour of the week: (len(rows) * 168, 7), each contact's
    168 rows in hour-of-week order; equal to `slot_features(profile, np.repeat(rows, 168),
    np.tile(np.arange(168), len(rows)))`, built per contact and weekday/weekend half instead of per row."""
    rows = np.asarray(rows, dtype=np.int64)
    how = np.arange(HOURS_PER_WEEK)
    weekend = how // 24 >= 5
    col = np.where(weekend, 24, 0) + how % 24                          # the slot's column in the (n, 48) arrays
    rate, lift = profile["rate"][rows], profile["lift"][rows]
    with np.errstate(invalid="ignore"):
        best_rate = np.where(weekend[None, :], rate[:, 24:].max(axis=1)[:, None], rate[:, :24].max(axis=1)[:, None])
        best_lift = np.where(weekend[None, :], lift[:, 24:].max(axis=1)[:, None], lift[:, :24].max(axis=1)[:, None])
    slot_rate, slot_lift = rate[:, col], lift[:, col]
    with np.errstate(invalid="ignore", divide="ignore"):
        vs_best = slot_rate / best_rate
    out = np.empty((len(rows), HOURS_PER_WEEK, len(SLOT_COLUMNS)), dtype=np.float32)
    out[:, :, 0] = weekend[None, :]
    out[:, :, 1] = np.where(weekend[None, :], profile["opens_we"][rows, None], profile["opens_wd"][rows, None])
    out[:, :, 2] = np.where(weekend[None, :], profile["sends_we"][rows, None], profile["sends_wd"][rows, None])
    out[:, :, 3], out[:, :, 4], out[:, :, 5], out[:, :, 6] = slot_rate, vs_best, slot_lift, slot_lift - best_lift
    return out.reshape(-1, len(SLOT_COLUMNS))


@dataclass
class SlotChoice:
    """Best slot per contact (aligned with the batch); send_at is NaT where the window has no allowed slot."""

    contact_id: np.ndarray
    send_at: np.ndarray      # datetime64[ns] (UTC, naive)
    local_time: np.ndarray
    probability: np.ndarray
    level: np.ndarray

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame({"contact_id": self.contact_id,
                             "send_at": pd.to_datetime(self.send_at).tz_localize("UTC"),
                             "local_time": self.local_time, "probability": self.probability, "level": self.level})


class SendTimePlanner:
    """Native send-time model: LightGBM on numpy + segment / population fallback grids."""

    name = "send_time"
    feature_service = "send_time"
    services = ("send_time", "lead_scoring")  # + profile attributes for the segment fallback

    def __init__(self, booster, encoder: FeatureEncoder, segment_keys: list[str], segment_grids: np.ndarray,
                 population_grid: np.ndarray, min_contact_opens: int = 3, version=None, num_threads: int = 0,
                 peak_prior: PeakPrior | None = None):
        self.booster = booster
        self.peak_prior = peak_prior
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
    def profile(self, features) -> dict[str, np.ndarray]:
        """`profile_arrays` plus the send-hour posterior under the learned prior (what `slot_features` needs)."""
        return with_posterior(profile_arrays(features), self.peak_prior)

    def pair_matrix(self, contact_X: np.ndarray, profile: dict, rows: np.ndarray, how: np.ndarray) -> np.ndarray:
        return np.hstack([contact_X[rows], slot_features(profile, rows, how)])

    def offset(self, pairs: np.ndarray) -> np.ndarray | float:
        """Log-odds the booster starts from: the send-hour posterior's predictive open rate (0 without a prior)."""
        if self.peak_prior is None:
            return 0.0
        rate = np.clip(pairs[:, len(self.encoder.columns) + POST_RATE].astype(float), 1e-4, 1 - 1e-4)
        return np.log(rate / (1 - rate))

    def predict_matrix(self, pairs: np.ndarray) -> np.ndarray:
        """P(open within 24 h) of pair rows: the booster's correction on top of the posterior's log-odds."""
        raw = self.booster.predict(pairs, raw_score=True, num_threads=self.num_threads)
        return 1.0 / (1.0 + np.exp(-(raw + self.offset(pairs))))

    def predict_pairs(self, features_df: pd.DataFrame, rows: np.ndarray, how: np.ndarray) -> np.ndarray:
        X = self.encoder.transform(features_df)
        return self.predict_matrix(self.pair_matrix(X, self.profile(features_df), rows, how))

    def contact_grid(self, features_df, hows=None, chunk_rows: int = 400_000, rows=None,
                     profile: dict | None = None) -> np.ndarray:
        """(len(rows), 168) predicted P(open within 24 h) for `rows` of the frame (default: all);
        only `hows` are computed (others NaN). Features are computed on the whole frame, as serving does.
        `features_df`: a DataFrame or a column -> array mapping; `profile`: `self.profile(features_df)`
        if the caller has it already. Each (contact, hour) row is scored on its own, so a cell equals
        the score `best_slots` gives that slot."""
        all_hours = hows is None
        hows = np.arange(HOURS_PER_WEEK) if hows is None else np.unique(np.asarray(hows, dtype=np.int64))
        rows = np.arange(_length(features_df)) if rows is None else np.asarray(rows, dtype=np.int64)
        n = len(rows)
        X = self.encoder.transform(features_df)
        profile = self.profile(features_df) if profile is None else profile
        grid = np.full((n, HOURS_PER_WEEK), np.nan)
        step = max(1, chunk_rows // max(len(hows), 1))
        buffer = np.empty((min(step, n), HOURS_PER_WEEK, X.shape[1] + len(SLOT_COLUMNS)), dtype=np.float32) \
            if all_hours and n else None
        for lo in range(0, n, step):
            idx = np.arange(lo, min(lo + step, n))
            if buffer is not None:  # every hour: each contact's rows built at once (`hour_features`)
                pairs = buffer[: len(idx)]
                pairs[:, :, : X.shape[1]] = X[rows[idx]][:, None, :]
                pairs[:, :, X.shape[1]:] = hour_features(profile, rows[idx]).reshape(len(idx), HOURS_PER_WEEK, -1)
                grid[idx] = self.predict_matrix(pairs.reshape(-1, pairs.shape[2])).reshape(len(idx), HOURS_PER_WEEK)
                continue
            pairs_rows = np.repeat(rows[idx], len(hows))
            how = np.tile(hows, len(idx))
            p = self.predict_matrix(self.pair_matrix(X, profile, pairs_rows, how))
            grid[np.ix_(idx, hows)] = p.reshape(len(idx), len(hows))
        return grid

    def levels(self, features_df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(level name per contact, segment row per contact or -1)."""
        level, seg = self.level_codes(profile_arrays(features_df))
        return LEVELS[level], seg

    def level_codes(self, profile: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """The fallback rule on a profile: (0 contact / 1 segment / 2 population per contact, segment row or -1)."""
        opens = profile["opens_wd"] + profile["opens_we"]
        seg = np.fromiter((self.segment_index.get(k, -1) for k in profile["segment"]), dtype=np.int64,
                          count=len(opens))
        return np.where(opens >= self.min_contact_opens, 0, np.where(seg >= 0, 1, 2)), seg

    def grid(self, features_df: pd.DataFrame, hows=None) -> tuple[np.ndarray, np.ndarray]:
        """Decision grid (n, 168) with the hierarchical fallback, and the level per contact."""
        level, seg = self.level_codes(profile_arrays(features_df))
        contact = np.full((len(level), HOURS_PER_WEEK), np.nan)
        is_contact = np.flatnonzero(level == 0)
        if len(is_contact):
            contact[is_contact] = self.contact_grid(features_df, hows, rows=is_contact)
        return self.decision_grid(level, seg, contact), LEVELS[level]

    def slot_inputs(self, features, hows=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What a slot choice needs per contact and nothing request-dependent: (fallback level 0/1/2,
        segment row or -1, (n, 168) contact-level grid: `contact_grid` at every hour of the week (or at
        `hows` only) for contact-level rows, NaN elsewhere). `inbox publish` stores it; `choose` turns
        it into slots."""
        profile = self.profile(features)
        level, seg = self.level_codes(profile)
        rows = np.flatnonzero(level == 0)
        grid = np.full((len(level), HOURS_PER_WEEK), np.nan)
        if len(rows) and (hows is None or len(hows)):
            grid[rows] = self.contact_grid(features, hows, rows=rows, profile=profile)
        return level, seg, grid

    def decision_grid(self, level: np.ndarray, seg: np.ndarray, contact_grid: np.ndarray) -> np.ndarray:
        """(n, 168) scores with the hierarchical fallback: the contact's own grid (level 0), its
        segment's (level 1), the population's (level 2)."""
        level = np.asarray(level, dtype=np.int64)
        out = np.array(contact_grid, dtype=float, copy=True)
        out[level == 2] = self.population_grid
        is_seg = np.flatnonzero(level == 1)
        if len(is_seg):
            out[is_seg] = self.segment_grids[np.asarray(seg, dtype=np.int64)[is_seg]]
        return out

    def choose(self, contact_ids, level, seg, contact_grid, timezones, window_start, window_end,
               quiet_hours=(21, 7)) -> "SlotChoice":
        """Best slot per contact from `slot_inputs` (computed now, or published): the one slot choice
        every caller (`best_slots`, batch scoring, serving) goes through."""
        chosen = choose_slot_arrays(self.decision_grid(level, seg, contact_grid), timezones, window_start,
                                    window_end, quiet_hours)
        return SlotChoice(np.asarray(contact_ids, dtype=np.int64), chosen.send_at, chosen.local_time,
                          chosen.probability, LEVELS[np.asarray(level, dtype=np.int64)])

    def best_slot_choice(self, features, timezones, window_start, window_end, quiet_hours=(21, 7)) -> "SlotChoice":
        """`best_slots` as arrays; `features`: a DataFrame or a column -> array mapping with `contact_id`."""
        if "contact_id" not in features:
            raise ValueError("features_df: missing column 'contact_id'")
        tz = np.asarray(timezones, dtype=object)
        if len(tz) != _length(features):
            raise ValueError(f"timezones: {len(tz)} values for {_length(features)} contacts")
        bounds = window_bounds(window_start, window_end, quiet_hours)  # bad input refused before the model runs
        zones = validate_timezones(pd.unique(tz.astype(str)))
        hows = np.unique(np.concatenate([zone_slots(*bounds, str(z)).how for z in zones] + [np.empty(0, np.int64)]))
        level, seg, grid = self.slot_inputs(features, hows)  # only the hours the window allows
        return self.choose(np.asarray(features["contact_id"], dtype=np.int64), level, seg, grid, tz, window_start,
                           window_end, quiet_hours)

    def best_slots(self, features_df: pd.DataFrame, timezones, window_start, window_end,
                   quiet_hours=(21, 7)) -> pd.DataFrame:
        """Best slot per contact in [window_start, window_end) (UTC), local quiet hours honored.

        DataFrame[contact_id, send_at (UTC; NaT if the window has no allowed slot),
        local_time, probability, level]."""
        if "contact_id" not in features_df.columns:
            raise ValueError("features_df: missing column 'contact_id'")
        return self.best_slot_choice(features_df.reset_index(drop=True), timezones, window_start, window_end,
                                     quiet_hours).frame()

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
            "peak_prior": None if self.peak_prior is None else self.peak_prior.to_dict(),
        }

    def write_metadata(self, directory: Path) -> Path:
        from models.tracking import write_predictor_metadata

        return write_predictor_metadata(directory, self.metadata())

    @classmethod
    def load(cls, model_dir: Path, version=None) -> "SendTimePlanner":
        from models.tracking import read_lightgbm_artifacts

        booster, meta = read_lightgbm_artifacts(model_dir)
        if meta.get("slot_columns") != SLOT_COLUMNS:
            raise ValueError(f"send_time model in {model_dir}: trained on slot features {meta.get('slot_columns')}, "
                             f"this code builds {SLOT_COLUMNS}; retrain it (`inbox train send_time`)")
        return cls(booster, FeatureEncoder.from_dict(meta["encoder"]), meta["segment_keys"],
                   np.asarray(meta["segment_grids"]), np.asarray(meta["population_grid"]),
                   meta["min_contact_opens"], version=version,
                   peak_prior=PeakPrior.from_dict(meta["peak_prior"]) if meta.get("peak_prior") else None)

