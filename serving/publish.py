"""`inbox publish`: the champions' per-contact outputs, computed once and written to the online store.

What a request needs that depends only on the contact's features and the models (lead probability,
score and tier; the send-time fallback level, segment and 168-hour contact grid; the content model's
contact-tower output) is computed here in chunks of contacts over the online store's latest features
and written as the Feast view `contact_predictions` (`features.definitions`) with the champions'
registry versions. Serving reads these rows; a row whose versions differ from the champions it loaded,
or a contact without a row, is computed live by `contact_predictions` below, the same code.

A running service reads rows written later on its next request; the view itself (the first
publish of a store) is seen after `/reload`. Run it again after `inbox features materialize`: the
version check cannot tell that a row was computed from older features.

Memory is bounded by the chunk: no step holds every contact's features. Each chunk is written in one
transaction of the batch online store; a failure leaves earlier chunks published (each row names the
versions it came from, so a partly published store is never served wrong, only partly live).
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import pandas as pd

MODEL_NAMES = ("lead_scoring", "send_time", "content_preference")
CHUNK = 4000  # contacts per read / model call / write (the SQL read binds ids x views parameters)
MAX_CHUNK = 20_000


@dataclass
class Predictions:
    """Per-contact model outputs of one batch, aligned with `contact_id`."""

    contact_id: np.ndarray
    lead_probability: np.ndarray   # float64
    lead_score: np.ndarray         # int64
    lead_tier: np.ndarray          # object
    send_level: np.ndarray         # int64: 0 contact, 1 segment, 2 population
    send_segment: np.ndarray       # int64 segment row or -1
    send_grid: np.ndarray          # (n, 168) float64, NaN outside contact-level rows
    tower: np.ndarray              # (n, width) float32 contact-tower output

    def take(self, rows: np.ndarray) -> "Predictions":
        return Predictions(*(getattr(self, f)[rows] for f in self.__dataclass_fields__))

    def put(self, rows: np.ndarray, other: "Predictions") -> None:
        """Overwrite `rows` with `other`'s values (same order)."""
        for f in self.__dataclass_fields__:
            getattr(self, f)[rows] = getattr(other, f)


def contact_services(models: Mapping) -> tuple[str, ...]:
    """Every feature service a loaded model reads (`feature_service` + `services`), first use first.
    Their contact sides are read together and merged by column name (feature names are unique
    across views), so each model finds its columns whichever service its training set came from."""
    out: list[str] = []
    for model in models.values():
        for service in (model.feature_service, *getattr(model, "services", ())):
            if service not in out:
                out.append(service)
    return tuple(out)


def no_feature_columns(columns: Mapping[str, np.ndarray], names: list[str], n: int) -> np.ndarray:
    """True where every column of `names` is null (the contact is not in the online store)."""
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


def fallback_columns(reader, models: Mapping) -> list[str]:
    """A contact with every one of these null has no features (`fallback: true`): the contact-side
    columns of the lead-scoring model's service."""
    plan = reader.contact_plan(models["lead_scoring"].feature_service)
    return [c for c in plan.columns if c != "contact_id"]


def contact_predictions(models: Mapping, features: pd.DataFrame) -> Predictions:
    """The three champions' request-independent outputs for the contacts of `features` (one row per
    contact, every column the models read): the one code path of publish and of serving's live rows."""
    lead, send, content = (models[name] for name in MODEL_NAMES)
    probability, score, tier = lead.predict_arrays(features)
    level, segment, grid = send.slot_inputs(features)
    tower = content.contact_vectors(features)
    return Predictions(np.asarray(features["contact_id"], dtype=np.int64), probability, score, tier, level,
                       segment, grid, tower)


def arrow_rows(pred: Predictions, no_features: np.ndarray, versions: Mapping[str, str], when: datetime):
    """The view's rows for `pred` as an Arrow table (nulls where a grid cell is not contact-level)."""
    import pyarrow as pa

    from features.definitions import MODEL_VERSION_COLUMNS, SEND_GRID_COLUMNS, tower_columns

    n = len(pred.contact_id)
    cols = {"contact_id": pa.array(pred.contact_id, pa.int64()),
            "event_timestamp": pa.array(np.full(n, np.datetime64(when.replace(tzinfo=None), "us")),
                                        pa.timestamp("us", tz="UTC"))}
    for name, col in MODEL_VERSION_COLUMNS.items():
        cols[col] = pa.array(np.full(n, str(versions[name]), dtype=object), pa.string())
    cols["no_features"] = pa.array(np.asarray(no_features, dtype=bool), pa.bool_())
    cols["lead_probability"] = pa.array(pred.lead_probability, pa.float64(), from_pandas=True)
    cols["lead_score"] = pa.array(pred.lead_score, pa.int64())
    cols["lead_tier"] = pa.array(pred.lead_tier, pa.string())
    cols["send_level"] = pa.array(pred.send_level, pa.int64())
    cols["send_segment"] = pa.array(pred.send_segment, pa.int64())
    for h, col in enumerate(SEND_GRID_COLUMNS):
        cols[col] = pa.array(pred.send_grid[:, h], pa.float64(), from_pandas=True)
    for i, col in enumerate(tower_columns(pred.tower.shape[1])):
        cols[col] = pa.array(pred.tower[:, i], pa.float32())
    return pa.table(cols)


def published_view(store, models: Mapping, features_dir):
    """Register (or update) the `contact_predictions` view and service for these champions; the view."""
    import warnings

    from features.definitions import contact_predictions_service, contact_predictions_view

    view = contact_predictions_view(features_dir, models["content_preference"].tower_width, repo_path=store.repo_path)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="On demand feature view is an experimental feature")
        store.apply([view, contact_predictions_service(view)])
    return store.get_feature_view(view.name)


def publish(settings=None, chunk: int = CHUNK, progress: bool = True, models: Mapping | None = None) -> dict:
    """Compute and write every stored contact's predictions with the champions (or `models`); a summary."""
    from features.online import OnlineReader
    from features.store import get_store, write_arrow
    from inbox.settings import load_settings
    from models.loading import load_champion

    if not isinstance(chunk, int) or not 1 <= chunk <= MAX_CHUNK:
        raise ValueError(f"chunk: expected an integer in 1..{MAX_CHUNK}, got {chunk!r}")
    settings = settings or load_settings()
    t0 = time.perf_counter()
    if models is None:
        models = {name: load_champion(name, tracking_uri=settings.tracking_uri) for name in MODEL_NAMES}
    versions = {name: str(models[name].version) for name in MODEL_NAMES}
    store = get_store(settings)
    view = published_view(store, models, settings.features_dir)
    reader = OnlineReader(store)
    levels = np.zeros(3, dtype=np.int64)
    written = 0
    try:
        services = contact_services(models)
        empty = fallback_columns(reader, models)
        ids = reader.contact_ids(services)
        when = datetime.now(timezone.utc)
        with _progress(progress, len(ids)) as advance:
            for lo in range(0, len(ids), chunk):
                part = ids[lo : lo + chunk]
                columns = reader.read_columns(services, part, request_time=when)
                pred = contact_predictions(models, pd.DataFrame(columns))
                rows = arrow_rows(pred, no_feature_columns(columns, empty, len(part)), versions, when)
                written += write_arrow(store, view, rows, "contact_id", "event_timestamp")
                levels += np.bincount(pred.send_level, minlength=3)[:3]
                advance(len(part))
    finally:
        reader.close()
    return {"contacts": written, **{f"{name} version": v for name, v in versions.items()},
            "send level contact": int(levels[0]), "send level segment": int(levels[1]),
            "send level population": int(levels[2]), "seconds": round(time.perf_counter() - t0, 2)}


class _progress:
    """A rich progress bar over `total` contacts (stderr), or nothing."""

    def __init__(self, enabled: bool, total: int):
        self.enabled, self.total, self.bar = enabled, total, None

    def __enter__(self):
        if not self.enabled:
            return lambda n: None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(TextColumn("publishing predictions"), BarColumn(), MofNCompleteColumn(),
                            TimeRemainingColumn(), console=Console(stderr=True), transient=True)
        self.bar.start()
        task = self.bar.add_task("publish", total=self.total)
        return lambda n: self.bar.advance(task, n)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()
        return False
