"""Which provider events belong to a send we made: an event names its send, and the send must be ours.

An event is recorded only when its `send_id` is a known send of the same
contact; when both the event and the send carry a decision id they must be
equal, and an event naming a decision id for a send that has none is refused
(a reward must come from the send the allocator chose). Everything else is
counted as rejected and never recorded, so a made-up click or unsubscribe
cannot reach the event log, the features or the consent ledger.

Send records are read, for the ids in one call only, from every source that
holds them: first the send pipeline's outbox (`sending.outbox.lookup`, a
primary-key lookup; its rows exist before the mail leaves, so an event that
arrives before the send is in the event log still matches), then
the `sends` table for the ids the outbox lacks (sends made before the outbox, or
imported): only row groups whose send-id statistics can hold them are read.
A source is `f(send_ids: np.ndarray) -> DataFrame[send_id, contact_id, decision_id]`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from serving.webhooks import ProviderEvent

SendSource = Callable[[np.ndarray], pd.DataFrame]
COLUMNS = ["send_id", "contact_id", "decision_id"]


def _empty() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(COLUMNS, ("int64", "int64", object))})


def sends_table_source(events_dir: str | Path) -> SendSource:
    """Send records from the `sends` table (none while it has no file).

    Reads only the row groups whose send-id statistics can hold a wanted id, and in them the
    send-id column first: the other columns only of row groups that hold one
    (`simulation.segments.rows_with_keys` over `table_files`: base file and appended segments)."""
    from simulation.eventlog import table_files
    from simulation.segments import rows_with_keys

    def read(send_ids: np.ndarray) -> pd.DataFrame:
        if len(send_ids) == 0:
            return _empty()
        found = rows_with_keys(table_files(events_dir, "sends"), "send_id", send_ids, COLUMNS)
        return _empty() if found is None else found.to_pandas()

    return read


class SendLookup:
    """`known(events)` -> bool per event: it matches a send record of its contact."""

    def __init__(self, sources: Sequence[SendSource]):
        self.sources = list(sources)

    @classmethod
    def for_settings(cls, settings) -> "SendLookup":
        """The installation's send records: the send pipeline's outbox (indexed by send id, and its rows
        exist before a message leaves), then the `sends` table for ids the outbox does not hold."""
        from sending.outbox import lookup as outbox_lookup

        return cls([lambda ids: outbox_lookup(settings, ids), sends_table_source(settings.events_dir)])

    def records(self, send_ids: np.ndarray) -> pd.DataFrame:
        """Send records of these ids; each source is asked only for the ids the sources before it lack."""
        missing = np.unique(np.asarray(send_ids, dtype=np.int64))
        frames = []
        for source in self.sources:
            if len(missing) == 0:
                break
            found = source(missing)[COLUMNS]
            if len(found):
                frames.append(found)
                missing = np.setdiff1d(missing, found["send_id"].to_numpy(np.int64))
        if not frames:
            return _empty()
        return pd.concat(frames, ignore_index=True).drop_duplicates("send_id", keep="first")

    def known(self, events: list[ProviderEvent]) -> np.ndarray:
        """Row-aligned: the event's send exists, belongs to its contact, and the decision ids agree."""
        n = len(events)
        send_ids = np.fromiter((-1 if e.send_id is None else e.send_id for e in events), np.int64, n)
        contacts = np.fromiter((-1 if e.contact_id is None else e.contact_id for e in events), np.int64, n)
        decisions = np.array([e.decision_id for e in events], dtype=object)
        sends = self.records(send_ids[send_ids >= 0])
        order = np.argsort(sends["send_id"].to_numpy(np.int64), kind="stable")
        known_ids = sends["send_id"].to_numpy(np.int64)[order]
        if len(known_ids) == 0:
            return np.zeros(n, dtype=bool)
        at = np.minimum(np.searchsorted(known_ids, send_ids), len(known_ids) - 1)
        found = (known_ids[at] == send_ids) & (send_ids >= 0)
        same_contact = sends["contact_id"].to_numpy(np.int64)[order][at] == contacts
        send_decision = sends["decision_id"].to_numpy(object)[order][at]
        same_decision = pd.isna(decisions) | (decisions == send_decision)  # elementwise on object arrays
        return found & same_contact & same_decision
