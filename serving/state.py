"""Everything a request needs, loaded once and swapped whole on reload.

`ServingState.load(settings)` loads the three champions (`models:/<name>@champion`),
opens the Feast store with the fast `OnlineReader`, caches the content catalog's
features, and opens the bandit `Allocator` (decision log + newest live snapshot).
Nothing per contact is held: each request reads its contacts' published predictions
(`serving.publish`) and features from the online store. A request takes one reference
to the current state and uses only it, so a reload (building a new state in a thread,
then one reference assignment) never mixes versions within a request and never drops one.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

MODEL_NAMES = ("lead_scoring", "send_time", "content_preference")
CATALOG_SERVICE = "content_catalog"
# A worker's memory must not grow with the list: random reads over a large online store would fill a
# file mapping page by page (each counted in the worker's RSS), so reads go through SQLite's own
# bounded page cache instead; the OS page cache still holds the file, shared by the workers.
READER_MEMORY = {"mmap_bytes": 0, "cache_bytes": 64 << 20}


@dataclass
class ServingState:
    models: dict                 # name -> native predictor (.version, .feature_service)
    reader: object               # features.online.OnlineReader
    catalog: pd.DataFrame        # content features (content_catalog service), one row per content id
    allocator: object            # experiments.bandit.Allocator
    settings: object = None
    campaign_cache: dict = field(default_factory=dict)
    candidate_cache: dict = field(default_factory=dict)  # candidate-set key -> (content ids, content-tower rows)

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
        reader = OnlineReader(store, **READER_MEMORY)
        catalog = load_catalog(reader, settings)
        if allocator is None:
            allocator = Allocator.open(settings.bandit_dir)
        else:
            allocator.reload()
        return cls(models, reader, catalog, allocator, settings)

    def close(self, keep_allocator: bool = False) -> None:
        self.reader.close()
        if not keep_allocator:
            self.allocator.close()

    @cached_property
    def contact_services(self) -> tuple[str, ...]:
        """The feature services whose contact side the models read (`serving.publish.contact_services`)."""
        from serving.publish import contact_services

        return contact_services(self.models)

    @cached_property
    def published(self) -> bool:
        """Whether the online store has the `contact_predictions` view (`inbox publish` ran)."""
        from features.definitions import PREDICTIONS_VIEW

        try:
            self.reader.contact_plan(PREDICTIONS_VIEW)
        except Exception:  # noqa: BLE001 - not registered: every request is served live (and flagged)
            return False
        return True

    @cached_property
    def published_columns(self) -> tuple[str, ...]:
        """The `contact_predictions` columns a request reads for these champions, but the send-time grid
        (a request reads the grid columns of its window's hours only: `serving.predict.ContactBatch`)."""
        from features.definitions import PREDICTION_COLUMNS, SEND_GRID_COLUMNS, tower_columns

        return (*sorted(PREDICTION_COLUMNS - set(SEND_GRID_COLUMNS)),
                *tower_columns(self.models["content_preference"].tower_width))

    @cached_property
    def request_services(self) -> tuple[str, ...]:
        """What a request reads in one statement: the models' contact services and the published view."""
        from features.definitions import PREDICTIONS_VIEW

        return self.contact_services + ((PREDICTIONS_VIEW,) if self.published else ())

    @cached_property
    def fallback_columns(self) -> list[str]:
        """A contact with every one of these null has no features (`serving.publish.fallback_columns`)."""
        from serving.publish import fallback_columns

        return fallback_columns(self.reader, self.models)

    def candidates(self, content_ids) -> tuple[tuple | None, np.ndarray, np.ndarray]:
        """(candidate-set key, content ids in catalog order, their content-tower rows), cached per set;
        ValueError naming content_ids for an unknown id."""
        key = None if content_ids is None else tuple(sorted(set(np.asarray(content_ids, dtype=np.int64).tolist())))
        hit = self.candidate_cache.get(key)
        if hit is None:
            catalog = self.catalog
            if key is not None:
                wanted = np.asarray(key, dtype=np.int64)
                unknown = np.setdiff1d(wanted, catalog["content_id"].to_numpy())
                if len(unknown):
                    raise ValueError(f"content_ids: unknown content id(s) {unknown[:5].tolist()}")
                catalog = catalog[catalog["content_id"].isin(wanted)]
            hit = (catalog["content_id"].to_numpy(np.int64), self.models["content_preference"].content_vectors(catalog))
            if len(self.candidate_cache) < 256:
                self.candidate_cache[key] = hit
        return (key, *hit)

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
    work, and under CPU contention multiply a prediction's latency. Scale with workers.
    The same holds for numpy's OpenBLAS (the bandit's small (n, d) x (d, K*M) product is faster on
    one thread than handed to two under load), limited through threadpoolctl."""
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
