"""Batch predictions over one `ServingState`: one feature read per service, one
model call per model, whole numpy/pandas batches (no per-contact Python work
beyond building the JSON response).

A contact absent from the online store ("no features") still gets an answer:
the models score it on missing values (LightGBM's learned default branches),
the send-time planner falls back to the segment/population level, and the row
says `fallback: true`.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cached_property

import numpy as np
import pandas as pd

from serving.state import ServingState


def no_features(frame: pd.DataFrame, keys=("contact_id", "content_id")) -> np.ndarray:
    """True where every feature of the row is missing (the entity is not in the online store)."""
    cols = [c for c in frame.columns if c not in keys]
    if not cols:
        return np.zeros(len(frame), dtype=bool)
    return frame[cols].isna().all(axis=1).to_numpy()


def no_feature_columns(columns: Mapping[str, np.ndarray], names: list[str], n: int) -> np.ndarray:
    """`no_features` on a column mapping: True where every column of `names` is null."""
    missing = np.ones(n, dtype=bool) if names else np.zeros(n, dtype=bool)
    for name in names:
        a = columns[name]
        if a.dtype == object:
            missing &= pd.isna(a)
        elif a.dtype.kind == "f":
            missing &= np.isnan(a)
        else:  # ints and bools have no nulls
            missing[:] = False
        if not missing.any():
            break
    return missing


# The content-preference service has two entities (contact, content); the
# ranker scores contact features against the cached catalog, so only its
# contact side is read (the content side comes from the catalog).
PAIR_SERVICE = "content_preference"


def contact_services(models: dict) -> tuple[str, ...]:
    """Every feature service a loaded model reads (`feature_service` + `services`), first use first.
    Their contact sides are read together and merged by column name (feature names are unique
    across views), so each model finds its columns whichever service its training set came from."""
    out: list[str] = []
    for model in models.values():
        for service in (model.feature_service, *getattr(model, "services", ())):
            if service not in out:
                out.append(service)
    return tuple(out)


def read_separately(state: ServingState, ids: np.ndarray, request_time: datetime | None = None) -> pd.DataFrame:
    """The merged contact-side frame from one `OnlineReader.read` per service (the reference for tests)."""
    frames = []
    for service in state.contact_services:
        content = None
        if service == PAIR_SERVICE:  # contact x content service: read the contact side with a probe item
            content = np.full(len(ids), state.catalog["content_id"].iloc[0], dtype=np.int64)
        frames.append(state.reader.read(service, ids, content_ids=content, request_time=request_time))
    merged = pd.concat([f.reset_index(drop=True) for f in frames], axis=1)
    return merged.loc[:, ~merged.columns.duplicated() & ~merged.columns.isin(catalog_columns(state))]


def catalog_columns(state: ServingState) -> list[str]:
    return [c for c in state.catalog.columns if c != "contact_id"]


@dataclass
class ContactFeatures:
    """Contact-side features of one batch (every contact-side service, merged by column name),
    read once (`OnlineReader.read_columns`: one SQL statement, numpy columns) and shared by every
    model. `merged` is the same data as a DataFrame, built only if a reference path asks."""

    contact_ids: np.ndarray
    fallback: np.ndarray
    columns: Mapping[str, np.ndarray]
    table: object = None         # serving.contact_table.ContactTable the batch was read from, if any
    rows: np.ndarray | None = None  # the batch's rows in `table`

    @classmethod
    def read(cls, state: ServingState, contact_ids, request_time: datetime | None = None):
        """From the state's contact table while it is current (`ServingState.contact_table`), else live."""
        table = state.contact_table()
        if table is not None:
            return cls.from_table(state, table, contact_ids, request_time)
        return cls.read_live(state, contact_ids, request_time)

    @classmethod
    def read_live(cls, state: ServingState, contact_ids, request_time: datetime | None = None, reader=None):
        ids = np.asarray(contact_ids, dtype=np.int64)
        columns = (reader or state.reader).read_columns(state.contact_services, ids, request_time=request_time)
        return cls(ids, no_feature_columns(columns, state.fallback_columns, len(ids)), columns)

    @classmethod
    def from_table(cls, state: ServingState, table, contact_ids, request_time: datetime | None = None):
        from serving.contact_table import TableColumns

        ids = np.asarray(contact_ids, dtype=np.int64)
        rows = table.rows(ids)
        return cls(ids, table.fallback[rows], TableColumns(state, table, ids, rows, request_time), table, rows)

    @cached_property
    def merged(self) -> pd.DataFrame:
        return pd.DataFrame(dict(self.columns))

    def input_for(self, encoder):
        """What `encoder.transform` takes: the column mapping once a mapping-aware transform is installed
        (`serving.accelerate`), else the DataFrame."""
        inner = getattr(encoder, "encoder", encoder)  # TowerEncoder wraps a FeatureEncoder
        return self.columns if getattr(inner.transform, "accepts_mapping", False) else self.merged


@dataclass
class LeadScores:
    """Lead scores of a batch as arrays (what `decide` needs; `score` uses the model's DataFrame)."""

    probability: np.ndarray
    score: np.ndarray
    tier: np.ndarray


def lead_scores(state: ServingState, feats: ContactFeatures, reasons: bool = True) -> pd.DataFrame:
    model = state.models["lead_scoring"]
    return model.score(feats.merged, reasons=reasons)


def lead_score_arrays(state: ServingState, feats: ContactFeatures) -> LeadScores:
    """`lead_scores(..., reasons=False)` as arrays: the model's own matrix -> probability -> score -> tier
    steps (`LeadScorer.score` without its DataFrame); the model's `score` if it lacks them."""
    if feats.table is not None and feats.table.lead is not None:
        lead, rows = feats.table.lead, feats.rows
        return LeadScores(lead.probability[rows], lead.score[rows], lead.tier[rows])
    model = state.models["lead_scoring"]
    steps = ("encoder", "probability_from_matrix", "score_from_probability")
    if not all(hasattr(model, a) for a in steps):
        df = lead_scores(state, feats, reasons=False)
        return LeadScores(df["probability"].to_numpy(float), df["score"].to_numpy(), df["tier"].to_numpy(object))
    from models.lead_scorer import tier_of

    p = model.probability_from_matrix(model.encoder.transform(feats.input_for(model.encoder)))
    score = model.score_from_probability(p)
    return LeadScores(p, score, tier_of(score))


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
    table = feats.table
    if table is not None and table.slot_grid is not None:  # precomputed hour scores (verified at build)
        rows = feats.rows
        grid_row, grid = table.slot_grid_row[rows], table.slot_grid
        return fast.best_slots_from_hours(feats.contact_ids, tz, start, end, quiet_hours, table.slot_level[rows],
                                          table.slot_segment[rows], lambda r, how: grid[grid_row[r], how])
    if fast.verified:  # checked against the planner by the warm-up
        return fast.best_slots(feats.columns if fast.accepts_mapping else feats.merged, tz, start, end,
                               quiet_hours=quiet_hours)
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


def candidate_matrix(state: ServingState, content_ids) -> tuple[tuple | None, np.ndarray, np.ndarray]:
    """(candidate-set key, content ids in catalog order, their content-tower input matrix), cached per set."""
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
    return (key, *hit)


def content_order(state: ServingState, feats: ContactFeatures, content_ids=None, k: int | None = None
                  ) -> list[list[int]]:
    """Content ids per contact in rank order (top k), aligned with the batch: `ordered_content(content_rankings(...))`
    without the long pair frame: the same pair matrix, one model call, a stable argsort per row."""
    if k is not None and (not isinstance(k, (int, np.integer)) or k < 1):
        raise ValueError(f"k: expected a positive integer or None, got {k!r}")
    model = state.models["content_preference"]
    key, ids, B = candidate_matrix(state, content_ids)
    n, m = len(feats.contact_ids), len(B)
    if n == 0 or m == 0:
        return [[] for _ in range(n)]
    if key is None and feats.table is not None and feats.table.catalog_order is not None:
        return ids[feats.table.catalog_order[feats.rows, :k]].tolist()  # the whole catalog, ranked at build
    towers = state.content_towers
    score = None
    if feats.table is not None and feats.table.tower is not None and towers is not None:
        import torch  # precomputed contact-tower rows (verified at build), a verified candidate set

        score = towers.scores_from_contact_side(feats.table.tower[torch.from_numpy(feats.rows)], key, B)
    if score is None:
        A = model.contact_encoder.transform(feats.input_for(model.contact_encoder))
        score = None if towers is None else towers.scores(A, key, B)  # None: the module scores the pair rows
    if score is None:
        X = np.ascontiguousarray(np.hstack([np.repeat(A, m, axis=0), np.tile(B, (n, 1))]), dtype=np.float32)
        score = model.predict_matrix(X).reshape(n, m)
    order = np.argsort(-score, axis=1, kind="stable")
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


def bandit_context(config: dict, feats: ContactFeatures, scores: LeadScores | None) -> np.ndarray:
    """The campaign's context features (its declared order) from the batch's features; missing -> 0.
    From a contact table, the whole table's matrix is built once per feature list and gathered by row
    (unless a feature is computed at request time)."""
    wanted = config["context_features"]
    table = feats.table
    if table is not None and all(name in table.stored or name not in feats.columns for name in wanted) and (
            "lead_probability" not in wanted or "lead_probability" in table.stored or table.lead is not None):
        key = tuple(wanted)
        full = table.contexts.get(key)
        if full is None:
            lead = table.lead.probability if table.lead is not None else None
            full = table.contexts[key] = _context_matrix(wanted, table.stored, len(table.fallback), lead)
        return full[feats.rows]
    return _context_matrix(wanted, feats.columns, len(feats.contact_ids),
                           None if scores is None else scores.probability)


def _context_matrix(wanted: list[str], columns, n: int, lead_probability: np.ndarray | None) -> np.ndarray:
    out = np.zeros((n, len(wanted)))
    for j, name in enumerate(wanted):
        if name in columns:
            values = columns[name]
            out[:, j] = values if values.dtype.kind in "fiub" else pd.to_numeric(
                pd.Series(values), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        elif name == "lead_probability" and lead_probability is not None:
            out[:, j] = lead_probability
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)
