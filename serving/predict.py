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


def read_separately(state: ServingState, ids: np.ndarray, request_time: datetime | None = None
                    ) -> tuple[pd.DataFrame, np.ndarray]:
    """(merged contact-side features, no-features flag) from one read per service (the reference path)."""
    frames = {}
    for service in CONTACT_SERVICES:
        content = None
        if service == PAIR_SERVICE:  # contact x content service: read the contact side with a probe item
            content = np.full(len(ids), state.catalog["content_id"].iloc[0], dtype=np.int64)
        frames[service] = state.reader.read(service, ids, content_ids=content, request_time=request_time)
    # one concat and one column selection: first occurrence of a name wins; the probe item's
    # content columns are dropped
    merged = pd.concat([f.reset_index(drop=True) for f in frames.values()], axis=1)
    merged = merged.loc[:, ~merged.columns.duplicated() & ~merged.columns.isin(catalog_columns(state))]
    return merged, no_features(frames["lead_scoring"])


def catalog_columns(state: ServingState) -> list[str]:
    return [c for c in state.catalog.columns if c != "contact_id"]


@dataclass
class ContactFeatures:
    """Contact-side features of one batch (every contact-side service, merged by column name),
    read once and shared by every model."""

    contact_ids: np.ndarray
    fallback: np.ndarray
    merged: pd.DataFrame

    @classmethod
    def read(cls, state: ServingState, contact_ids, request_time: datetime | None = None):
        from serving.contact_reader import COMBINED

        ids = np.asarray(contact_ids, dtype=np.int64)
        if state.combined_read is None:
            merged, fallback = read_separately(state, ids, request_time)
        else:  # one read for all services (installed by the warm-up after an equality check)
            merged = state.reader.read(COMBINED, ids, request_time=request_time)
            fallback = no_features(merged[state.combined_read])
        return cls(ids, fallback, merged)


def install_combined_read(state: ServingState, sample_ids, request_time: datetime) -> bool:
    """Switch `ContactFeatures.read` to one combined read if it equals the per-service reads on a sample."""
    from serving.contact_reader import install_combined_read as install

    ok = install(state.reader, CONTACT_SERVICES, catalog_columns(state),
                 lambda ids: read_separately(state, ids, request_time)[0], sample_ids, request_time)
    if ok:
        lead = state.reader._plan("lead_scoring").columns
        state.combined_read = [c for c in lead if c != "contact_id"]
    return ok


def lead_scores(state: ServingState, feats: ContactFeatures, reasons: bool = True) -> pd.DataFrame:
    model = state.models["lead_scoring"]
    return model.score(feats.merged, reasons=reasons)


def default_window(now: datetime | None = None) -> tuple[datetime, datetime]:
    """The next 24 hours from the next full hour."""
    now = now or datetime.now(timezone.utc)
    start = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    return start, start + timedelta(hours=24)


def slot_choice(state: ServingState, feats: ContactFeatures, start: datetime, end: datetime, quiet_hours=(21, 7)):
    """Best send slot per contact as arrays (`serving.fast_slots.SlotChoice`): the vectorized planner once
    verified equal to the model's `best_slots`, the model's own otherwise."""
    tz = state.timezones_of(feats.contact_ids)
    fast = state.fast_slots
    if fast.verified:  # checked against the planner by the warm-up
        return fast.best_slots(feats.merged, tz, start, end, quiet_hours=quiet_hours)
    from serving.fast_slots import SlotChoice

    return SlotChoice.from_frame(state.models["send_time"].best_slots(feats.merged, tz, start, end,
                                                                      quiet_hours=quiet_hours))


def send_slots(state: ServingState, feats: ContactFeatures, start: datetime, end: datetime,
               quiet_hours=(21, 7)) -> pd.DataFrame:
    """DataFrame[contact_id, send_at, local_time, probability, level], as `SendTimePlanner.best_slots`."""
    return slot_choice(state, feats, start, end, quiet_hours).frame()


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


def _candidates(state: ServingState, content_ids) -> tuple[np.ndarray, np.ndarray]:
    """(content ids in catalog order, their content-tower matrix), cached per candidate set."""
    key = None if content_ids is None else tuple(sorted(set(np.asarray(content_ids, dtype=np.int64).tolist())))
    hit = state.catalog_matrices.get(key)
    if hit is None:
        catalog = state.catalog
        if key is not None:
            unknown = np.setdiff1d(np.asarray(key, dtype=np.int64), catalog["content_id"].to_numpy())
            if len(unknown):
                raise ValueError(f"content_ids: unknown content id(s) {unknown[:5].tolist()}")
            catalog = catalog[catalog["content_id"].isin(np.asarray(key, dtype=np.int64))]
        hit = (catalog["content_id"].to_numpy(np.int64), state.models["content_preference"].content_encoder.transform(catalog))
        if len(state.catalog_matrices) < 256:
            state.catalog_matrices[key] = hit
    return hit


def content_order(state: ServingState, feats: ContactFeatures, content_ids=None, k: int | None = None
                  ) -> list[list[int]]:
    """Content ids per contact in rank order (top k), aligned with the batch: `ordered_content(content_rankings(...))`
    without the long pair frame: the same pair matrix, one model call, a stable argsort per row."""
    if k is not None and (not isinstance(k, (int, np.integer)) or k < 1):
        raise ValueError(f"k: expected a positive integer or None, got {k!r}")
    model = state.models["content_preference"]
    ids, B = _candidates(state, content_ids)
    A = model.contact_encoder.transform(feats.merged)
    n, m = len(A), len(B)
    if n == 0 or m == 0:
        return [[] for _ in range(n)]
    X = np.ascontiguousarray(np.hstack([np.repeat(A, m, axis=0), np.tile(B, (n, 1))]), dtype=np.float32)
    order = np.argsort(-model.predict_matrix(X).reshape(n, m), axis=1, kind="stable")
    return ids[order[:, :k]].tolist()


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
