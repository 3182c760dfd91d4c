"""A request's predictions: published rows where they are current, the same models' code live otherwise.

`ContactBatch.read` reads, in ONE online-store statement, the batch's rows of the
`contact_predictions` view (`inbox publish`) and the few features the request itself needs (the
time zone, the campaign's context features). A row is used when it names the registry versions of
the champions this state loaded; a contact without a row, or with a row from other versions, is
computed live from all its features (a second read, of those contacts only) by
`serving.publish.contact_predictions`, the code publish runs, and its answer says `source: "live"`.
The steps that depend on the request (the send window and quiet hours, the candidate content, the
campaign's context) run on the batch's arrays through the models' own methods:
`SendTimePlanner.choose`, `ContentRanker.order`.

A contact absent from the online store ("no features") still gets an answer: the models score it
on missing values (LightGBM's learned default branches), the send-time planner falls back to the
segment/population level, and the row says `fallback: true`.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from features.definitions import is_prediction_column
from serving.publish import Predictions, contact_predictions, no_feature_columns

if TYPE_CHECKING:  # annotations only: serving.state imports nothing from here
    from serving.state import ServingState

PUBLISHED, LIVE = "published", "live"


def _floats(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)  # None (a null in an all-null object column) -> NaN


def _matrix(columns: Mapping[str, np.ndarray], names: list[str], dtype) -> np.ndarray:
    """(n, len(names)) from same-length columns in one conversion (nulls -> NaN)."""
    return np.array([columns[name] for name in names], dtype=dtype).T.copy()


def _ints(values: np.ndarray, fresh: np.ndarray) -> np.ndarray:
    return np.where(fresh, values, 0).astype(np.int64)  # rows without a current row: placeholders


def published_rows(state: ServingState, columns: Mapping[str, np.ndarray], n: int) -> np.ndarray:
    """True where the batch's published row exists and names the loaded champions' versions."""
    from features.definitions import MODEL_VERSION_COLUMNS

    fresh = np.full(n, state.published)
    for name, version in state.model_versions.items():
        if not fresh.any():
            break
        fresh &= np.asarray(columns[MODEL_VERSION_COLUMNS[name]] == version, dtype=bool)
    return fresh


def read_published(state: ServingState, columns: Mapping[str, np.ndarray], fresh: np.ndarray) -> Predictions:
    """The published columns as `Predictions` (rows where `fresh` is False hold placeholders; grid hours
    not read are NaN)."""
    from features.definitions import SEND_GRID_COLUMNS, tower_columns

    n = len(fresh)
    width = state.models["content_preference"].tower_width
    if not fresh.any():
        return Predictions(np.asarray(columns["contact_id"], dtype=np.int64), np.full(n, np.nan),
                           np.zeros(n, np.int64), np.full(n, None, dtype=object), np.full(n, 2, np.int64),
                           np.full(n, -1, np.int64), np.full((n, len(SEND_GRID_COLUMNS)), np.nan), np.zeros((n, width), np.float32))
    grid = np.full((n, len(SEND_GRID_COLUMNS)), np.nan)
    hows = [h for h, name in enumerate(SEND_GRID_COLUMNS) if name in columns]
    if hows:
        grid[:, hows] = _matrix(columns, [SEND_GRID_COLUMNS[h] for h in hows], np.float64)
    tower = _matrix(columns, tower_columns(width), np.float32)
    tower[~fresh] = 0.0
    return Predictions(np.asarray(columns["contact_id"], dtype=np.int64), _floats(columns["lead_probability"]),
                       _ints(columns["lead_score"], fresh), np.asarray(columns["lead_tier"], dtype=object),
                       _ints(columns["send_level"], fresh), _ints(columns["send_segment"], fresh), grid, tower)


@dataclass
class ContactBatch:
    """One request's contacts: the columns read (published rows and the features the request asked
    for), whether each contact has features, the predictions (published or live) and where each
    row's predictions came from. `features` (every feature the models read) is read on first use."""

    state: ServingState
    contact_ids: np.ndarray
    columns: dict                 # column -> numpy array, as read
    fallback: np.ndarray          # True: no stored features
    source: np.ndarray            # "published" | "live" per contact
    predictions: Predictions
    request_time: datetime | None = None
    hours: frozenset = frozenset(range(168))  # hours-of-week of the send-time grid read for published rows

    @classmethod
    def read(cls, state: ServingState, contact_ids, request_time: datetime | None = None,
             features: Sequence[str] = (), hours=None) -> "ContactBatch":
        """One online read: the published rows plus `features` (and the time zone) where published
        predictions exist; every contact-side feature otherwise. Rows without current published
        predictions are computed live from their features (a second read, of those rows only).
        `hours`: the send-time grid's hours-of-week to read (`models.slots.window_hours` of the request's
        window; default all, () none)."""
        from features.definitions import SEND_GRID_COLUMNS

        ids = np.asarray(contact_ids, dtype=np.int64)
        n = len(ids)
        hours = frozenset(range(len(SEND_GRID_COLUMNS)) if hours is None else np.asarray(hours, dtype=int).tolist())
        if state.published:
            grid = [SEND_GRID_COLUMNS[h] for h in sorted(hours)]
            only = (*state.published_columns, *grid, "timezone", *features)
            columns = state.reader.read_columns(state.request_services, ids, request_time=request_time, only=only)
        else:
            columns = state.reader.read_columns(state.contact_services, ids, request_time=request_time)
        fresh = published_rows(state, columns, n)
        pred = read_published(state, columns, fresh)
        fallback = np.zeros(n, dtype=bool)
        if fresh.any():
            fallback[fresh] = np.asarray(columns["no_features"], dtype=bool)[fresh]
        batch = cls(state, ids, columns, fallback, np.where(fresh, PUBLISHED, LIVE).astype(object), pred,
                    request_time, hours)
        if not fresh.all():
            rows = np.flatnonzero(~fresh)
            if not state.published:
                live = columns  # every contact-side feature of every row was read
            else:
                live = state.reader.read_columns(state.contact_services, ids[rows], request_time=request_time)
                if len(rows) == n:
                    batch.__dict__["features"] = live
            pred.put(rows, contact_predictions(state.models, pd.DataFrame(live)))
            fallback[rows] = no_feature_columns(live, state.fallback_columns, len(rows))
        return batch

    def read_hours(self, hours) -> None:
        """Add the published grid's `hours` (hours-of-week) to the batch's published rows."""
        from features.definitions import SEND_GRID_COLUMNS

        hours = sorted(set(hours) - self.hours)
        fresh = self.source == PUBLISHED
        if hours and fresh.any():
            names = [SEND_GRID_COLUMNS[h] for h in hours]
            extra = self.state.reader.read_columns(self.state.request_services, self.contact_ids[fresh], only=names)
            self.predictions.send_grid[np.ix_(np.flatnonzero(fresh), hours)] = _matrix(extra, names, np.float64)
        self.hours = self.hours | frozenset(hours)

    @cached_property
    def features(self) -> dict:
        """Every contact-side feature the models read, for the whole batch (the columns, if they are)."""
        if not self.state.published:
            return self.columns
        return self.state.reader.read_columns(self.state.contact_services, self.contact_ids,
                                              request_time=self.request_time)

    @cached_property
    def merged(self) -> pd.DataFrame:
        """The batch's features as a DataFrame (what the models' own batch methods and reasons take)."""
        return pd.DataFrame(self.features)

    @property
    def timezones(self) -> np.ndarray:
        """IANA zone per contact from its profile features; UTC when unknown."""
        zones = self.columns.get("timezone")
        if zones is None:
            return np.full(len(self.contact_ids), "UTC", dtype=object)
        return np.where(pd.isna(zones), "UTC", zones).astype(object)


@dataclass
class LeadScores:
    """Lead scores of a batch as arrays."""

    probability: np.ndarray
    score: np.ndarray
    tier: np.ndarray


def lead_score_arrays(batch: ContactBatch) -> LeadScores:
    p = batch.predictions
    return LeadScores(p.lead_probability, p.lead_score, p.lead_tier)


def lead_scores(state: ServingState, batch: ContactBatch, reasons: bool = True) -> pd.DataFrame:
    """DataFrame[contact_id, probability, score, tier(, reasons_positive, reasons_negative)] as
    `LeadScorer.score`; the reasons (TreeSHAP on the batch's features) are computed now."""
    p = batch.predictions
    out = pd.DataFrame({"contact_id": batch.contact_ids, "probability": p.lead_probability,
                        "score": p.lead_score, "tier": p.lead_tier})
    if reasons:
        explained = state.models["lead_scoring"].score(batch.merged, reasons=True)
        out["reasons_positive"] = explained["reasons_positive"].to_numpy()
        out["reasons_negative"] = explained["reasons_negative"].to_numpy()
    return out


def default_window(now: datetime | None = None) -> tuple[datetime, datetime]:
    """The next 24 hours from the next full hour."""
    now = now or datetime.now(timezone.utc)
    start = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    return start, start + timedelta(hours=24)


def slot_choice(state: ServingState, batch: ContactBatch, start: datetime, end: datetime, quiet_hours=(21, 7)):
    """Best send slot per contact (`models.send_time.SlotChoice`) from the batch's slot inputs."""
    from models.slots import window_hours

    missing = set(window_hours(start, end, quiet_hours).tolist()) - batch.hours
    if missing:  # the batch was read for another window: read the grid hours this one needs
        batch.read_hours(missing)
    p = batch.predictions
    return state.models["send_time"].choose(batch.contact_ids, p.send_level, p.send_segment, p.send_grid,
                                            batch.timezones, start, end, quiet_hours)


def send_slots(state: ServingState, batch: ContactBatch, start: datetime, end: datetime,
               quiet_hours=(21, 7)) -> pd.DataFrame:
    """DataFrame[contact_id, send_at, local_time, probability, level], as `SendTimePlanner.best_slots`."""
    return slot_choice(state, batch, start, end, quiet_hours).frame()


def content_scores(state: ServingState, batch: ContactBatch, content_ids=None):
    """(candidate content ids, scores (n, m), positions best first (n, m)) through `ContentRanker.order`."""
    _, ids, v = state.candidates(content_ids)
    if not len(batch.contact_ids) or not len(ids):
        return ids, np.zeros((len(batch.contact_ids), len(ids))), np.zeros((len(batch.contact_ids), len(ids)), int)
    score, order = state.models["content_preference"].order(batch.predictions.tower, v)
    return ids, score, order


def content_order(state: ServingState, batch: ContactBatch, content_ids=None, k: int | None = None
                  ) -> list[list[int]]:
    """Content ids per contact in rank order (top k), aligned with the batch."""
    if k is not None and (not isinstance(k, (int, np.integer)) or k < 1):
        raise ValueError(f"k: expected a positive integer or None, got {k!r}")
    ids, _, order = content_scores(state, batch, content_ids)
    if not len(ids):
        return [[] for _ in batch.contact_ids]
    return ids[order[:, :k]].tolist()


def content_rankings(state: ServingState, batch: ContactBatch, content_ids=None, k: int | None = None
                     ) -> pd.DataFrame:
    """DataFrame[contact_id, content_id, score, rank] for the candidates (default: the whole catalog),
    as `ContentRanker.rank`."""
    if k is not None and (not isinstance(k, (int, np.integer)) or k < 1):
        raise ValueError(f"k: expected a positive integer or None, got {k!r}")
    _, ids, v = state.candidates(content_ids)
    return state.models["content_preference"].ranking(batch.contact_ids, batch.predictions.tower, ids, v, k)


def bandit_context(config: dict, batch: ContactBatch, scores: LeadScores | None) -> np.ndarray:
    """The campaign's context features (its declared order) from the batch's features; missing -> 0."""
    wanted = config["context_features"]
    n = len(batch.contact_ids)
    out = np.zeros((n, len(wanted)))
    for j, name in enumerate(wanted):
        if name in batch.columns and not is_prediction_column(name):
            values = batch.columns[name]
            out[:, j] = values if values.dtype.kind in "fiub" else pd.to_numeric(
                pd.Series(values), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        elif name == "lead_probability" and scores is not None:
            out[:, j] = scores.probability
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)
