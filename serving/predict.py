"""Batch predictions over one `ServingState`: one feature read per service, one
model call per model, whole numpy/pandas batches (no per-contact Python work
beyond building the JSON response).

A contact absent from the online store ("no features") still gets an answer:
the models score it on missing values (LightGBM's learned default branches),
the send-time planner falls back to the segment/population level, and the row
says `fallback: true`.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd

from serving.state import ServingState


def no_features(frame: pd.DataFrame, keys=("contact_id", "content_id")) -> np.ndarray:
    """True where every feature of the row is missing (the entity is not in the online store)."""
    cols = [c for c in frame.columns if c not in keys]
    if not cols:
        return np.zeros(len(frame), dtype=bool)
    return frame[cols].isna().all(axis=1).to_numpy()


# The content-preference service has two entities (contact, content); the
# ranker scores contact features against the cached catalog, so the contact
# side is read with any one content id and the content columns are ignored.
PAIR_SERVICE = "content_preference"


# Every contact-side service is read for every batch and merged by column
# name (feature names are unique across views): each model then finds its
# columns whichever service its training set came from.
CONTACT_SERVICES = ("lead_scoring", "send_time", PAIR_SERVICE)


@dataclass
class ContactFeatures:
    """Feature frames of one batch, read once and shared by every model."""

    contact_ids: np.ndarray
    frames: dict[str, pd.DataFrame]
    fallback: np.ndarray
    merged: pd.DataFrame

    @classmethod
    def read(cls, state: ServingState, contact_ids, request_time: datetime | None = None):
        ids = np.asarray(contact_ids, dtype=np.int64)
        frames = {}
        for service in CONTACT_SERVICES:
            content = None
            if service == PAIR_SERVICE:  # contact x content service: read the contact side with a probe item
                content = np.full(len(ids), state.catalog["content_id"].iloc[0], dtype=np.int64)
            frames[service] = state.reader.read(service, ids, content_ids=content, request_time=request_time)
        catalog_cols = set(state.catalog.columns) - {"contact_id"}
        parts, seen = [], set()
        for frame in frames.values():
            cols = [c for c in frame.columns if c not in seen and c not in catalog_cols]
            seen.update(cols)
            parts.append(frame[cols].reset_index(drop=True))
        merged = pd.concat(parts, axis=1)
        return cls(ids, frames, no_features(frames["lead_scoring"]), merged)


def lead_scores(state: ServingState, feats: ContactFeatures, reasons: bool = True) -> pd.DataFrame:
    model = state.models["lead_scoring"]
    return model.score(feats.merged, reasons=reasons)


def default_window(now: datetime | None = None) -> tuple[datetime, datetime]:
    """The next 24 hours from the next full hour."""
    now = now or datetime.now(timezone.utc)
    start = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    return start, start + timedelta(hours=24)


def send_slots(state: ServingState, feats: ContactFeatures, start: datetime, end: datetime,
               quiet_hours=(21, 7)) -> pd.DataFrame:
    model = state.models["send_time"]
    return model.best_slots(feats.merged, state.timezones_of(feats.contact_ids), start, end, quiet_hours=quiet_hours)


def content_rankings(state: ServingState, feats: ContactFeatures, content_ids=None, k: int | None = None
                     ) -> pd.DataFrame:
    """DataFrame[contact_id, content_id, score, rank] for the candidates (default: the whole catalog)."""
    model = state.models["content_preference"]
    catalog = state.catalog
    if content_ids is not None:
        wanted = np.asarray(content_ids, dtype=np.int64)
        unknown = np.setdiff1d(wanted, catalog["content_id"].to_numpy())
        if len(unknown):
            raise ValueError(f"content_ids: unknown content id(s) {unknown[:5].tolist()}")
        catalog = catalog[catalog["content_id"].isin(wanted)]
    return model.rank(feats.merged, catalog, k=k)


def ordered_content(rankings: pd.DataFrame, contact_ids: np.ndarray) -> list[list[int]]:
    """Content ids per contact in rank order, aligned with `contact_ids` (unique ids).

    `rank()` returns the same number of rows for every contact, sorted by
    (contact_id, rank), so the order is a reshape plus a lookup of each
    requested contact's row block."""
    if rankings.empty:
        return [[] for _ in contact_ids]
    content = rankings["content_id"].to_numpy(np.int64).reshape(len(contact_ids), -1)
    block_ids = rankings["contact_id"].to_numpy(np.int64)[:: content.shape[1]]
    return content[np.searchsorted(block_ids, contact_ids)].tolist()


def bandit_context(config: dict, feats: ContactFeatures, scores: pd.DataFrame | None) -> np.ndarray:
    """The campaign's context features (its declared order) from the batch's features; missing -> 0."""
    wanted = config["context_features"]
    n = len(feats.contact_ids)
    out = np.zeros((n, len(wanted)))
    for j, name in enumerate(wanted):
        if name in feats.merged.columns:
            out[:, j] = pd.to_numeric(feats.merged[name], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        elif name == "lead_probability" and scores is not None:
            out[:, j] = scores["probability"].to_numpy(dtype=float)
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)
