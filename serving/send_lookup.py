"""Which provider events belong to a send we made: an event names its send, and the send must be ours.

An event is recorded only when its `send_id` is a known send of the same
contact; when both the event and the send carry a decision id they must be
equal, and an event naming a decision id for a send that has none is refused
(a reward must come from the send the allocator chose). Everything else is
counted as rejected and never recorded, so a made-up click or unsubscribe
cannot reach the event log, the features or the consent ledger.

Send records are read, for the ids in one call only, from every source that
holds them: `sends.parquet` (Parquet row-group statistics skip most of the
file: send ids are appended in increasing order) and the send pipeline's
outbox (`sending.outbox.lookup`: its rows exist before the mail leaves, so an
event arriving before the send is in the event log still matches).
A source is `f(send_ids: np.ndarray) -> DataFrame[send_id, contact_id, decision_id]`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from serving.webhooks import ProviderEvent

SendSource = Callable[[np.ndarray], pd.DataFrame]
COLUMNS = ["send_id", "contact_id", "decision_id"]


def sends_table_source(events_dir: str | Path) -> SendSource:
    """Send records from `sends.parquet` (none while the file does not exist)."""
    from simulation.eventlog import table_path

    path = table_path(events_dir, "sends")

    def read(send_ids: np.ndarray) -> pd.DataFrame:
        if not path.exists() or len(send_ids) == 0:
            return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(COLUMNS, ("int64", "int64", object))})
        table = pq.read_table(path, columns=COLUMNS,
                              filters=[("send_id", "in", pa.array(np.unique(send_ids), type=pa.int64()))])
        return table.to_pandas()

    return read


class SendLookup:
    """`known(events)` -> bool per event: it matches a send record of its contact."""

    def __init__(self, sources: Sequence[SendSource]):
        self.sources = list(sources)

    @classmethod
    def for_settings(cls, settings) -> "SendLookup":
        """The installation's send records: `sends.parquet` and the send pipeline's outbox."""
        from sending.outbox import lookup as outbox_lookup

        return cls([sends_table_source(settings.events_dir), lambda ids: outbox_lookup(settings, ids)])

    def records(self, send_ids: np.ndarray) -> pd.DataFrame:
        """Send records of these ids from every source (first source wins for an id in several)."""
        frames = [f(send_ids)[COLUMNS] for f in self.sources]
        frames = [f for f in frames if len(f)]
        if not frames:
            return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(COLUMNS, ("int64", "int64", object))})
        return pd.concat(frames, ignore_index=True).drop_duplicates("send_id", keep="first")

    def known(self, events: list[ProviderEvent]) -> np.ndarray:
        """Row-aligned: the event's send exists, belongs to its contact, and the decision ids agree."""
        if not events:
            return np.zeros(0, dtype=bool)
        claimed = pd.DataFrame({
            "send_id": pd.array([e.send_id for e in events], dtype="Int64"),
            "contact_id": pd.array([e.contact_id for e in events], dtype="Int64"),
            "decision_id": pd.Series([e.decision_id for e in events], dtype=object)})
        ids = claimed["send_id"].dropna().to_numpy(np.int64)
        sends = self.records(ids).astype({"send_id": "Int64", "contact_id": "Int64"})
        m = claimed.merge(sends, on="send_id", how="left", suffixes=("", "_send"))  # keeps the events' order
        same_contact = (m["contact_id"] == m["contact_id_send"]).fillna(False).to_numpy(bool)
        same_decision = (m["decision_id"].isna() | (m["decision_id"] == m["decision_id_send"])).to_numpy(bool)
        return same_contact & same_decision
