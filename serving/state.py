"""Everything a request needs, loaded once and swapped whole on reload.

`ServingState.load(settings)` loads the three champions (`models:/<name>@champion`),
opens the Feast store with the fast `OnlineReader`, caches the content
catalog's features and the contacts' time zones, and opens the bandit
`Allocator` (decision log + newest live snapshot). A request takes one
reference to the current state and uses only it, so a reload (building a new
state in a thread, then one reference assignment) never mixes versions within
a request and never drops one.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from serving.contact_table import TableSlot

MODEL_NAMES = ("lead_scoring", "send_time", "content_preference")
CATALOG_SERVICE = "content_catalog"


@dataclass
class ServingState:
    models: dict                 # name -> native predictor (.version, .feature_service)
    reader: object               # features.online.OnlineReader
    catalog: pd.DataFrame        # content features (content_catalog service), one row per content id
    timezones: pd.Series         # contact_id -> IANA time zone (contacts table)
    allocator: object            # experiments.bandit.Allocator
    settings: object = None
    campaign_cache: dict = field(default_factory=dict)
    tables: TableSlot = field(default_factory=TableSlot)  # the precomputed contact table (see contact_table)

    @property
    def model_versions(self) -> dict[str, str]:
        return {name: str(m.version) for name, m in self.models.items()}

    @classmethod
    def load(cls, settings, allocator=None) -> "ServingState":
        from experiments.bandit import Allocator
        from features.online import OnlineReader
        from features.store import get_store
        from models.loading import load_champion

        models = {name: load_champion(name, tracking_uri=settings.tracking_uri) for name in MODEL_NAMES}
        single_threaded(models)
        store = get_store(settings)
        reader = OnlineReader(store)
        catalog = load_catalog(reader, settings)
        timezones = load_timezones(settings.events_dir)
        if allocator is None:
            allocator = Allocator.open(settings.bandit_dir)
        else:
            allocator.reload()
        return cls(models, reader, catalog, timezones, allocator, settings)

    def close(self, keep_allocator: bool = False) -> None:
        self.tables.close()
        self.reader.close()
        if not keep_allocator:
            self.allocator.close()

    def contact_table(self):
        """The precomputed `serving.contact_table.ContactTable` while the online store is at its version,
        else None (the request reads live; a rebuild starts). None until `build_contact_table`."""
        return self.tables.current(self)

    def build_contact_table(self, background: bool = True) -> None:
        """Build the contact table (the warm-up starts it once the fast paths are verified)."""
        self.tables.start(self, background=background)

    @cached_property
    def _zone_lookup(self) -> tuple[np.ndarray, np.ndarray]:
        """(sorted contact ids, their zones with missing -> UTC), for a searchsorted lookup."""
        ids = self.timezones.index.to_numpy(np.int64)
        order = np.argsort(ids, kind="stable")
        zones = self.timezones.fillna("UTC").to_numpy(dtype=object)
        return ids[order], zones[order]

    def timezones_of(self, contact_ids: np.ndarray) -> np.ndarray:
        """IANA zone per contact; unknown contacts get UTC (the fallback)."""
        ids = np.asarray(contact_ids, dtype=np.int64)
        known, zones = self._zone_lookup
        if not len(known):
            return np.full(len(ids), "UTC", dtype=object)
        pos = np.minimum(np.searchsorted(known, ids), len(known) - 1)
        return np.where(known[pos] == ids, zones[pos], "UTC").astype(object)

    @cached_property
    def fast_slots(self):
        """The vectorized send-slot planner over this state's send-time champion (caches per state)."""
        from serving.fast_slots import FastSlots

        return FastSlots(self.models["send_time"])

    @cached_property
    def contact_services(self) -> tuple[str, ...]:
        """The feature services whose contact side a request reads (`serving.predict.contact_services`)."""
        from serving.predict import contact_services

        return contact_services(self.models)

    @cached_property
    def fallback_columns(self) -> list[str]:
        """A contact with every one of these null has no features (`fallback: true`): the contact-side
        columns of the lead-scoring model's service."""
        plan = self.reader.contact_plan(self.models["lead_scoring"].feature_service)
        return [c for c in plan.columns if c != "contact_id"]

    @cached_property
    def content_towers(self):
        """The content ranker as separate towers (`serving.towers`); used once the warm-up verified it."""
        from serving.towers import ContentTowers

        return ContentTowers.of(self.models["content_preference"])

    @cached_property
    def catalog_matrices(self) -> dict:
        """Encoded content-tower matrices of candidate sets, keyed by their content ids (filled on use)."""
        return {}

    def campaign_config(self, campaign_id: str) -> dict:
        """The campaign's configuration from the decision log (ValueError naming campaign_id if unknown),
        trusted for the allocator's `config_ttl` (as the allocator itself does) instead of a query and a
        JSON decode per request."""
        now = time.monotonic()
        hit = self.campaign_cache.get(campaign_id)
        if hit is not None and now - hit[0] < getattr(self.allocator, "config_ttl", 0.0):
            return hit[1]
        _, config = self.allocator.log.campaign(campaign_id)
        if len(self.campaign_cache) >= 1024:
            self.campaign_cache.clear()
        self.campaign_cache[campaign_id] = (now, config)
        return config


def single_threaded(models: dict) -> None:
    """One thread per predict: requests are small batches served one at a time per worker, where
    OpenMP's team start-up and spin-waiting (LightGBM's default: every core) cost more than the
    work, and under CPU contention turn 1 ms predictions into 10+ ms ones. Scale with workers.
    The same holds for numpy's OpenBLAS (the bandit's (n, d) x (d, K*M) product: 0.1 ms on one
    thread, 1-3 ms handed to two under load), limited through threadpoolctl."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(limits=1)
    for model in models.values():
        if hasattr(model, "num_threads"):
            model.num_threads = 1


def load_catalog(reader, settings) -> pd.DataFrame:
    from simulation.eventlog import read_table, table_path

    content = read_table("content", table_path(settings.events_dir, "content"))
    ids = content["content_id"].to_numpy(np.int64)
    return reader.read(CATALOG_SERVICE, content_ids=ids)


def load_timezones(events_dir: Path) -> pd.Series:
    import pyarrow.parquet as pq

    from simulation.eventlog import table_path

    t = pq.read_table(table_path(events_dir, "contacts"), columns=["contact_id", "timezone"]).to_pandas()
    return pd.Series(t["timezone"].to_numpy(dtype=object), index=t["contact_id"].to_numpy(np.int64))
