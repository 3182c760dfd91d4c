"""Every contact's features at one snapshot, a batch of contacts at a time (batch scoring's input).

`models.datasets.latest_contact_features` joins every contact in one frame; `ContactBatches` gives
the same rows in contact-id order as frames of at most `batch` contacts. Each batch is the as-of join
of `models.datasets.feature_frame` (the one implementation of the join) on a block of consecutive
contact ids: the pipeline writes its tables contact-major and the join states the block's key range,
so a batch reads only the row groups of its own contacts. Memory follows the batch, not the list;
what is held for the whole list is the sorted contact ids (8 bytes a contact).
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from models.sampled_log import SCAN

DEFAULT_BATCH = 20_000


def _engagement(settings) -> Path:
    from features.pipeline import TABLE_FILES

    path = Path(settings.features_dir) / TABLE_FILES["contact_engagement"]
    if not path.exists():
        raise FileNotFoundError(f"contact_engagement: no feature table {path} (run `inbox features build`)")
    return path


def newest_snapshot(path: Path) -> pd.Timestamp:
    """The largest `event_timestamp` of a feature table (NaT if it has no rows): from the row groups'
    statistics, streamed batch by batch when a row group has none."""
    meta = pq.ParquetFile(path).metadata
    idx = meta.schema.to_arrow_schema().get_field_index("event_timestamp")
    if idx < 0:
        raise ValueError(f"event_timestamp: missing column in {path}")
    highs = []
    for g in range(meta.num_row_groups):
        rg = meta.row_group(g)
        stats = rg.column(idx).statistics
        if rg.num_rows and (stats is None or not stats.has_min_max):
            break
        if rg.num_rows:
            highs.append(pd.Timestamp(stats.max))
    else:
        return max(highs) if highs else pd.NaT
    high = None
    for batch in pads.dataset(str(path), format="parquet").scanner(columns=["event_timestamp"], **SCAN).to_batches():
        top = pc.max(batch.column(0))
        if top.is_valid:
            high = top.as_py() if high is None else max(high, top.as_py())
    return pd.NaT if high is None else pd.Timestamp(high)


def snapshot_contacts(path: Path, ts: pd.Timestamp) -> np.ndarray:
    """Sorted ids of the contacts with a row at or before `ts`, streamed a row group at a time over the key
    and time columns (a filtered dataset scan of the same columns holds far more in Arrow's pool)."""
    if pd.isna(ts):
        return np.empty(0, dtype=np.int64)
    limit = pd.Timestamp(ts).value // 1000  # ns -> us, rounded down
    parts = []
    for batch in pq.ParquetFile(path).iter_batches(batch_size=SCAN["batch_size"],
                                                   columns=["contact_id", "event_timestamp"]):
        ids = batch.column(0).to_numpy(zero_copy_only=False).astype(np.int64)
        us = pc.cast(batch.column(1), pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_numpy(zero_copy_only=False)
        parts.append(np.unique(ids[us <= limit]))
    return np.unique(np.concatenate(parts)) if parts else np.empty(0, dtype=np.int64)


class ContactBatches:
    """The contacts of the snapshot `as_of` (default: the newest) and their features in batches.

    `snapshot` (UTC) and `ids` are known on construction; iterating yields, per block of at most
    `batch` consecutive ids, what `latest_contact_features` holds for those contacts (same columns,
    values and order).
    """

    def __init__(self, services, settings, batch: int = DEFAULT_BATCH, as_of=None):
        from models.datasets import plan_reads

        if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
            raise ValueError(f"batch: expected a positive integer, got {batch!r}")
        self.services = (services,) if isinstance(services, str) else tuple(services)
        self.settings, self.batch = settings, int(batch)
        path = _engagement(settings)
        self.snapshot = newest_snapshot(path) if as_of is None else pd.Timestamp(as_of)
        if pd.notna(self.snapshot) and self.snapshot.tzinfo is None:
            raise ValueError(f"as_of: expected a timezone-aware time, got {as_of!r}")
        self.ids = snapshot_contacts(path, self.snapshot)
        self.plan = plan_reads(self.services, settings)  # views and features every batch's join reads

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self) -> Iterator[pd.DataFrame]:
        from models.datasets import feature_frame

        for lo in range(0, len(self.ids), self.batch):
            entity = pd.DataFrame({"contact_id": self.ids[lo : lo + self.batch], "event_timestamp": self.snapshot})
            yield feature_frame(entity, self.services, self.settings, plan=self.plan)
