"""Every stored contact's model inputs, computed once per state and served by row lookup.

A `decide` for one recipient cost ~3.6 ms of CPU in ~15 library calls (five
feature-view decodes, two LightGBM predicts, the send-hour posterior, the
contact tower), each 0.1-0.4 ms of fixed overhead for one row. None of that
work depends on the request: the lead score, the send-time planner's fallback
level and its score at each of the 168 local hours of the week, and the
content ranker's contact-tower output are functions of the contact's stored
features and the loaded model only, and stored features change only when a
materialize commits to the online store. So `ContactTable.build` reads every
stored contact once (batched), runs each model's contact-level step on all of
them in one batch, and a request becomes row lookups plus what really depends
on it: the window's allowed slots, the candidate set, the allocator.

Precomputed online predictions are the usual serving pattern for per-entity
scores; what keeps them honest here:

* **Freshness.** The table remembers the online store's `PRAGMA
  data_version` at its read (asked at most every `CHECK_EVERY_S`, 50 ms); a
  request that sees another version is served by the live path (read + models,
  as before) and starts a rebuild in a thread (`TableSlot`). Contacts without stored features share one all-null row,
  which is exactly what the live read gives them.
* **Same answers.** Each component is checked at build against the live path
  on single-contact requests of a sample (`verify`) and switched off if it
  differs (the live path then serves that model). Every component agrees
  bitwise: each model scores a contact's row on its own, whatever the batch
  (`models.peak_posterior` computes in float64 and snaps its outputs for
  this; in float32 a contact's send time changed with its batch).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

logger = logging.getLogger("inbox.serving")

# How often a request asks SQLite whether the online store changed (`PRAGMA data_version`: 10-30 us,
# a tenth of a one-recipient decide): a materialize is noticed within this many seconds.
CHECK_EVERY_S = 0.05


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    """Chunks of one decoded column as one array; an all-null (object) chunk next to float chunks
    becomes NaN, as a read of the whole batch would have decoded it."""
    kinds = {p.dtype for p in parts}
    if len(kinds) > 1:
        floats = [p.dtype for p in parts if p.dtype.kind == "f"]
        if floats and all(p.dtype.kind == "f" or (p.dtype == object and all(v is None for v in p)) for p in parts):
            dtype = np.result_type(*floats)
            parts = [p if p.dtype.kind == "f" else np.full(len(p), np.nan, dtype=dtype) for p in parts]
        else:
            parts = [p.astype(object) for p in parts]
    return np.concatenate(parts)


@dataclass
class ContactTable:
    ids: np.ndarray                 # sorted ids of the stored contacts; row len(ids) is the no-features row
    stored: dict                    # stored contact-side columns (no on-demand outputs), len(ids) + 1 rows
    fallback: np.ndarray            # True where the contact has no features
    version: int                    # the online store's data_version the table was read at
    lead: object = None             # serving.predict.LeadScores over the rows, or None (live path)
    slot_level: np.ndarray | None = None   # send-time fallback level per row (0 contact, 1 segment, 2 population)
    slot_segment: np.ndarray | None = None
    slot_grid_row: np.ndarray | None = None  # row of slot_grid for contact-level rows, -1 otherwise
    slot_grid: np.ndarray | None = None      # (contact-level rows, 168) scores by local hour of week
    tower: object = None            # torch (rows, out_dim + 1) contact-tower output, or None
    catalog_order: np.ndarray | None = None  # (rows, catalog size) positions in the catalog, best first
    seconds: float = 0.0
    checks: dict = field(default_factory=dict)
    contexts: dict = field(default_factory=dict)  # allocator context matrices by feature list (filled on use)

    @property
    def null_row(self) -> int:
        return len(self.ids)

    def rows(self, contact_ids: np.ndarray) -> np.ndarray:
        """Row per contact id; ids without stored features get the all-null row."""
        ids = np.asarray(contact_ids, dtype=np.int64)
        if not len(self.ids):
            return np.full(len(ids), self.null_row, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self.ids, ids), len(self.ids) - 1)
        return np.where(self.ids[pos] == ids, pos, self.null_row)

    @classmethod
    def build(cls, state, reader, version: int, chunk: int = 2000) -> "ContactTable":
        """Read every stored contact of the state's services with `reader` and run the models'
        contact-level steps on all of them. `version`: the store's data_version, read before."""
        from serving.predict import ContactFeatures, lead_score_arrays, no_feature_columns

        t0 = time.perf_counter()
        services = state.contact_services
        ids = reader.contact_ids(services)
        absent = int(ids.max()) + 1 if len(ids) else 1  # an id with no stored row: the all-null row
        all_ids = np.append(ids, absent)
        parts = [reader.read_stored(services, all_ids[i:i + chunk]) for i in range(0, len(all_ids), chunk)]
        stored = {name: _concat([p[name] for p in parts]) for name in parts[0]}
        stored["contact_id"] = all_ids
        feats = ContactFeatures(all_ids, no_feature_columns(stored, state.fallback_columns, len(all_ids)), stored)
        table = cls(ids, stored, feats.fallback, version)

        model = state.models["lead_scoring"]
        if all(hasattr(model, a) for a in ("encoder", "probability_from_matrix", "score_from_probability")):
            table.lead = lead_score_arrays(state, feats)
        if state.fast_slots.verified:
            level, seg, rows, grid = state.fast_slots.hour_scores(feats.columns if state.fast_slots.accepts_mapping
                                                                  else feats.merged)
            grid_row = np.full(len(all_ids), -1, dtype=np.int64)
            grid_row[rows] = np.arange(len(rows))
            table.slot_level, table.slot_segment, table.slot_grid_row, table.slot_grid = level, seg, grid_row, grid
        towers = state.content_towers
        if towers is not None:
            ranker = state.models["content_preference"]
            table.tower = towers.contact_side(ranker.contact_encoder.transform(feats.input_for(ranker.contact_encoder)))
            table.catalog_order = _catalog_order(state, towers, table.tower)
        table.seconds = time.perf_counter() - t0
        return table

    def apply(self, checks: dict) -> None:
        """Switch off the components a verification rejected."""
        if not checks.get("lead", True):
            self.lead = None
        if not checks.get("slots", True):
            self.slot_grid = None
        if not checks.get("tower", True):
            self.tower = self.catalog_order = None

    def verify(self, state, sample: int = 48, seed: int = 0, reader=None) -> dict[str, bool]:
        """Compare each component with the live path on single-contact requests of a sample (plus the
        no-features row); a component that differs is switched off. Returns {component: kept}."""
        from serving.predict import ContactFeatures, content_order, lead_score_arrays, slot_choice

        rng = np.random.default_rng(seed)
        pick = rng.choice(len(self.ids), size=min(sample, len(self.ids)), replace=False) if len(self.ids) else []
        ids = np.append(self.ids[np.sort(pick)], int(self.stored["contact_id"][self.null_row]))
        windows = _check_windows()
        ok = {"lead": self.lead is not None, "slots": self.slot_grid is not None, "tower": self.tower is not None}
        for cid in ids.tolist():
            one = np.array([cid], dtype=np.int64)
            live = ContactFeatures.read_live(state, one, request_time=windows[0][0], reader=reader)
            fast = ContactFeatures.from_table(state, self, one, request_time=windows[0][0])
            if live.fallback[0] != fast.fallback[0]:
                return self._off(ok, "fallback", cid)
            if ok["lead"]:
                a, b = lead_score_arrays(state, live), lead_score_arrays(state, fast)
                if not (np.array_equal(a.probability, b.probability) and np.array_equal(a.score, b.score)):
                    ok["lead"] = self._disable("lead", cid)
            if ok["slots"]:
                for start, end, quiet in windows:
                    a, b = slot_choice(state, live, start, end, quiet), slot_choice(state, fast, start, end, quiet)
                    if not (np.array_equal(a.level, b.level) and np.array_equal(a.send_at, b.send_at, equal_nan=True)
                            and np.array_equal(a.probability, b.probability, equal_nan=True)):
                        ok["slots"] = self._disable("slots", cid, f"live {a.level} {a.send_at} {a.probability!r}, "
                                                                  f"table {b.level} {b.send_at} {b.probability!r}")
                        break
            if ok["tower"]:
                a, b = content_order(state, live, None, None), content_order(state, fast, None, None)
                if a != b:
                    ok["tower"] = self._disable("tower", cid)
        self.checks = ok
        return ok

    def _disable(self, component: str, contact_id: int, detail: str = "") -> bool:
        logger.warning("contact table: %s differs from the live path for contact %s (%s); the live path serves it",
                       component, contact_id, detail)
        self.apply({component: False})
        return False

    def _off(self, ok: dict, what: str, contact_id: int) -> dict:
        logger.warning("contact table: %s differs from the live path for contact %s; table not used", what, contact_id)
        self.checks = {k: False for k in ok}
        self.apply(self.checks)
        return self.checks


def _catalog_order(state, towers, tower, chunk: int = 4096) -> np.ndarray | None:
    """Every row's ranking of the whole catalog (the default candidate set), if the towers were verified
    on it: the same scores and the same stable argsort as `serving.predict.content_order`."""
    from serving.predict import candidate_matrix

    key, ids, B = candidate_matrix(state, None)
    if not towers.verified(key) or not len(B):
        return None
    dtype = np.int16 if len(B) < 2**15 else np.int32
    parts = [np.argsort(-towers.scores_from_contact_side(tower[i:i + chunk], key, B), axis=1, kind="stable"
                        ).astype(dtype) for i in range(0, len(tower), chunk)]
    return np.concatenate(parts)


def _check_windows():
    """A plain next-24-h window and a DST-change window (the warm-up's)."""
    import pandas as pd

    from serving.predict import default_window

    start, end = default_window()
    return [(start, end, (21, 7)), (pd.Timestamp("2026-03-07T00:00Z"), pd.Timestamp("2026-03-10T00:00Z"), None)]


class TableColumns(Mapping):
    """A batch's contact-side columns read from a `ContactTable`: stored columns gathered on first
    access, on-demand outputs (request-time context) computed from them on first access. Same names,
    order and values as `OnlineReader.read_columns` for the batch."""

    def __init__(self, state, table: ContactTable, contact_ids: np.ndarray, rows: np.ndarray, request_time):
        self._state, self._table, self._rows, self._request_time = state, table, rows, request_time
        self._plan = state.reader.contact_plan(state.contact_services)
        self._cache = {"contact_id": contact_ids}

    def __getitem__(self, name: str) -> np.ndarray:
        hit = self._cache.get(name)
        if hit is not None:
            return hit
        stored = self._table.stored
        if name in stored:
            value = self._cache[name] = stored[name][self._rows]
            return value
        if name not in self._plan.columns:
            raise KeyError(name)
        inputs = {c: self[c] for c in stored}
        self._cache.update(self._state.reader.on_demand(self._state.contact_services, inputs, self._request_time))
        return self._cache[name]

    def __contains__(self, name) -> bool:
        return name in self._plan.columns

    def __iter__(self):
        return iter(self._plan.columns)

    def __len__(self) -> int:
        return len(self._plan.columns)


class TableSlot:
    """The state's current `ContactTable`, handed to a request only while the online store is at the
    table's version (asked at most every `check_every` seconds). A build runs in a thread at the lowest
    CPU priority (requests are served live meanwhile): at start-up, and whenever a request finds the
    store changed. The first build is verified against the live path; rebuilds (same models, same code)
    keep what it verified."""

    def __init__(self, check_every: float = CHECK_EVERY_S):
        self.table: ContactTable | None = None
        self.check_every = check_every
        self.checks: dict | None = None
        self.rebuilds = 0
        self.status = "off"             # off | building | ready | failed | closed
        self._checked_at = -1e9
        self._building = False
        self._lock = threading.Lock()
        self._conn = None
        self._conn_lock = threading.Lock()

    def current(self, state) -> "ContactTable | None":
        table = self.table
        if table is None:
            return None
        now = time.monotonic()
        if now - self._checked_at < self.check_every:
            return table
        if self.store_version(state) == table.version:
            self._checked_at = now
            return table
        self.start(state)
        return None

    def store_version(self, state) -> int:
        """The online store's `PRAGMA data_version` on this slot's own connection (changes with every
        commit by another connection, i.e. a materialize)."""
        import sqlite3

        from features.online_store import db_path

        with self._conn_lock:
            if self._conn is None:
                self._conn = sqlite3.connect(f"file:{db_path(state.reader.store.config)}?mode=ro", uri=True,
                                             check_same_thread=False)
            return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def start(self, state, background: bool = True) -> None:
        """Build (or rebuild) the table; in a low-priority thread unless `background` is False."""
        with self._lock:
            if self._building or self.status == "closed":
                return
            self._building = True
            self.status = "building"
        if background:
            threading.Thread(target=self._run, args=(state, True), name="contact-table", daemon=True).start()
        else:
            self._run(state, False)

    def close(self) -> None:
        self.status = "closed"
        self.table = None
        with self._conn_lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _run(self, state, background: bool) -> None:
        from features.online import OnlineReader

        if background:
            _lowest_priority()
        reader = None
        try:
            reader = OnlineReader(state.reader.store)
            table = ContactTable.build(state, reader=reader, version=self.store_version(state))
            if self.checks is None:
                self.checks = table.verify(state, reader=reader)
            else:
                table.apply(self.checks)
                table.checks = self.checks
            if self.status == "closed":
                return
            if not any(self.checks.values()):
                self.status = "failed"
                return
            self.rebuilds += self.table is not None
            self.table, self._checked_at, self.status = table, -1e9, "ready"
            logger.info("contact table: %d contacts, store version %s, %.1f s, %s", len(table.ids), table.version,
                        table.seconds, self.checks)
        except Exception:  # noqa: BLE001 - the live path keeps serving
            logger.exception("contact table build failed; the live path serves")
            self.status = "failed" if self.status != "closed" else "closed"
        finally:
            if reader is not None:
                reader.close()
            with self._lock:
                self._building = False


def _lowest_priority() -> None:
    """Nice 19 for the calling thread only (Linux: a thread is a task with its own nice value)."""
    import os

    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError):
        pass
