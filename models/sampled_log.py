"""Bounded reads of the event log for training: only some columns, only sampled contacts.

The whole log of a large list does not fit in memory as pandas frames (1M
contacts: ~23M sends, ~30M events), and no model needs all of it. These
readers scan the Parquet files with Arrow (column projection, row filters
applied batch by batch), so memory follows what is kept, not the file:

* `data_range`: first send day and end of the last day with events, from the
  files' row-group statistics (a streamed min/max when statistics are absent);
  a short stretch of sends after a long gap (live sends months after a
  simulated history) is left out of it and reported (`data_range_report`);
* `contact_list`: every contact's id, creation time and consent (the sampling
  universe; three narrow columns);
* `sends_per_contact`: rows a send-based training set would take from each
  contact (sends inside the split's blocks), streamed in batches;
* `read_sampled_log`: the sampled contacts' contacts / sends / events rows.

Columns are checked against the event-log contract (`simulation.schema`) at
read time: a missing column or a naive timestamp is an error naming the field.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from models.sample import ContactSample

# Arrow scanner options for every bounded read in `models`: one batch in flight and no pre-buffering (the
# defaults read ahead many row groups of a file, and pre-buffering a multi-GB file holds GBs at once)
SCAN = {"batch_size": 1 << 16, "batch_readahead": 1, "fragment_readahead": 1,
        "fragment_scan_options": pads.ParquetFragmentScanOptions(pre_buffer=False)}


def _files(events_dir, table: str) -> list[Path]:
    """The table's files (`simulation.eventlog.table_files`: base file and appended segments)."""
    from simulation.eventlog import table_files, table_path

    files = table_files(events_dir, table)
    if not files:
        raise FileNotFoundError(f"{table}: no such file {table_path(events_dir, table)} "
                                "(run `inbox simulate` or bring an event log)")
    return files


def _path(events_dir, table: str) -> Path:
    """The table's base path, to name it in messages."""
    from simulation.eventlog import table_path

    return table_path(events_dir, table)


def _dataset(events_dir, table: str, columns: list[str]) -> pads.Dataset:
    from simulation.schema import TABLES

    path = _path(events_dir, table)
    data = pads.dataset([str(f) for f in _files(events_dir, table)], format="parquet")
    contract = TABLES[table]
    for name in columns:
        if name not in data.schema.names:
            raise ValueError(f"{table}.{name}: missing column in {path}")
        want, got = contract.column(name).type, data.schema.field(name).type
        if pa.types.is_timestamp(want) and (not pa.types.is_timestamp(got) or got.tz is None):
            raise ValueError(f"{table}.{name}: expected a timezone-aware UTC timestamp, got {got}")
    return data


def _conform(table: str, at: pa.Table) -> pa.Table:
    """Cast the read columns to the contract's types (timestamps to UTC); nulls only where allowed."""
    from simulation.schema import TABLES

    contract = TABLES[table]
    arrays = []
    for name in at.column_names:
        col = contract.column(name)
        arr = at.column(name)
        if arr.null_count and not col.nullable:
            raise ValueError(f"{table}.{name}: {arr.null_count} null value(s) in a required column")
        arrays.append(arr.cast(col.type) if arr.type != col.type else arr)
    return pa.table(arrays, names=at.column_names)


def read_columns(events_dir, table: str, columns: list[str], filter=None) -> pd.DataFrame:
    """`columns` of one event-log table, rows matching the Arrow `filter` (None = all)."""
    data = _dataset(events_dir, table, columns)
    at = _conform(table, data.scanner(columns=columns, filter=filter, **SCAN).to_table())
    return at.to_pandas()


def _column_range(events_dir, table: str, column: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    path = _path(events_dir, table)
    metas = [pq.ParquetFile(f).metadata for f in _files(events_dir, table)]
    if sum(meta.num_rows for meta in metas) == 0:
        raise ValueError(f"{table}: {path} has no rows")
    lows, highs = [], []
    for meta, g in ((meta, g) for meta in metas for g in range(meta.num_row_groups)):
        rg = meta.row_group(g)
        idx = meta.schema.to_arrow_schema().get_field_index(column)
        if rg.num_rows == 0:
            continue
        stats = rg.column(idx).statistics if idx >= 0 else None
        if stats is None or not stats.has_min_max or stats.null_count:
            break
        lows.append(pd.Timestamp(stats.min))
        highs.append(pd.Timestamp(stats.max))
    else:
        if lows and all(t.tzinfo is not None for t in lows + highs):
            return min(lows).tz_convert("UTC"), max(highs).tz_convert("UTC")
    data = _dataset(events_dir, table, [column])  # no usable statistics: min / max streamed batch by batch
    lo = hi = None
    for batch in data.scanner(columns=[column], **SCAN).to_batches():
        mm = pc.min_max(batch.column(0))
        if mm["min"].is_valid:
            lo = mm["min"].as_py() if lo is None else min(lo, mm["min"].as_py())
            hi = mm["max"].as_py() if hi is None else max(hi, mm["max"].as_py())
    if lo is None:
        raise ValueError(f"{table}.{column}: no values in {path}")
    return pd.Timestamp(lo).tz_convert("UTC"), pd.Timestamp(hi).tz_convert("UTC")


# A stretch of the log ends where no send went out for more than MAX_GAP; a later stretch shorter than
# MIN_SPAN (e.g. a live demo's few days of sends months after a simulated history) is not a history to
# train on, and stretching the range over the gap would leave a model's test window empty.
MAX_GAP = pd.Timedelta(days=14)
MIN_SPAN = pd.Timedelta(days=28)
DAY_US = 86_400_000_000


@dataclass(frozen=True)
class DataRange:
    """The history training uses: `[first, end)` and what lies after it, left out."""

    first: pd.Timestamp  # first send day (UTC midnight)
    end: pd.Timestamp  # end of the last day with sends or events of the chosen stretch
    ignored_from: pd.Timestamp | None = None  # first send day of the later stretch(es) left out
    ignored_sends: int = 0

    def describe(self) -> str:
        if self.ignored_from is None:
            return "whole log"
        return (f"{self.ignored_sends:,} send(s) from {self.ignored_from.date()} on left out: they follow a gap "
                f"of more than {MAX_GAP.days} days without sends and span less than {MIN_SPAN.days} days")


def send_days(events_dir) -> tuple[np.ndarray, np.ndarray]:
    """(UTC day numbers with at least one send, sends per day), streamed over `sends.sent_at`."""
    data = _dataset(events_dir, "sends", ["sent_at"])
    counts: dict[int, int] = {}
    for batch in data.scanner(columns=["sent_at"], **SCAN).to_batches():
        us = batch.column(0).cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_numpy(zero_copy_only=False)
        days, n = np.unique(us // DAY_US, return_counts=True)
        for d, k in zip(days.tolist(), n.tolist()):
            counts[d] = counts.get(d, 0) + k
    if not counts:
        raise ValueError(f"sends: no rows in {_path(events_dir, 'sends')}")
    days = np.array(sorted(counts), dtype=np.int64)
    return days, np.array([counts[d] for d in days.tolist()], dtype=np.int64)


def history_end(days: np.ndarray) -> int:
    """Index into sorted send `days` of the last day of the history to train on: the end of the latest
    stretch (no gap over MAX_GAP) spanning at least MIN_SPAN, else of the longest stretch."""
    cuts = np.flatnonzero(np.diff(days) > MAX_GAP.days) + 1
    starts, ends = np.r_[0, cuts], np.r_[cuts, len(days)] - 1
    spans = days[ends] - days[starts] + 1
    long_enough = np.flatnonzero(spans >= MIN_SPAN.days)
    return int(ends[long_enough[-1] if len(long_enough) else int(np.argmax(spans))])


def _day(day_number) -> pd.Timestamp:
    return pd.Timestamp(int(day_number) * DAY_US, unit="us", tz="UTC")


def data_range_report(events_dir) -> DataRange:
    """From the first send day to the end of the history (`history_end`) and its events; a short stretch of
    sends after a long gap is left out and reported."""
    days, per_day = send_days(events_dir)
    hi = history_end(days)
    first_send, last_send = _column_range(events_dir, "sends", "sent_at")
    if hi == len(days) - 1:
        _, last_event = _column_range(events_dir, "events", "occurred_at")
        return DataRange(first_send.floor("D"), max(last_send, last_event).ceil("D"))
    after = _day(days[hi + 1])
    window = pc.field("occurred_at") < pa.scalar(after, pa.timestamp("us", tz="UTC"))
    last = _day(days[hi] + 1)  # end of the history's last send day
    for batch in _dataset(events_dir, "events", ["occurred_at"]).scanner(
            columns=["occurred_at"], filter=window, **SCAN).to_batches():
        top = pc.max(batch.column(0))
        if top.is_valid:
            last = max(last, pd.Timestamp(top.as_py()).tz_convert("UTC"))
    return DataRange(first_send.floor("D"), last.ceil("D"), after, int(per_day[hi + 1:].sum()))


def data_range(events_dir) -> tuple[pd.Timestamp, pd.Timestamp]:
    """(first send day, end of the last day with sends or events), UTC, of the chosen stretch of the log
    (`data_range_report`)."""
    r = data_range_report(events_dir)
    return r.first, r.end


def contact_list(events_dir) -> pd.DataFrame:
    """Every contact: contact_id, created_at, consent (sorted by contact_id)."""
    out = read_columns(events_dir, "contacts", ["contact_id", "created_at", "consent"])
    return out.sort_values("contact_id", kind="stable").reset_index(drop=True)


def sends_per_contact(events_dir, contact_ids: np.ndarray, split) -> np.ndarray:
    """Per contact of the sorted `contact_ids`: its sends inside `split`'s blocks (purged rows excluded)."""
    data = _dataset(events_dir, "sends", ["contact_id", "sent_at"])
    counts = np.zeros(len(contact_ids), dtype=np.int64)
    lo, hi = split.start, split.end
    window = (pc.field("sent_at") >= pa.scalar(lo, pa.timestamp("us", tz="UTC"))) & (
        pc.field("sent_at") < pa.scalar(hi, pa.timestamp("us", tz="UTC")))
    for batch in data.scanner(columns=["contact_id", "sent_at"], filter=window, **SCAN).to_batches():
        if batch.num_rows == 0:
            continue
        frame = batch.to_pandas()
        kept = split.assign(frame["sent_at"]) != ""
        ids = frame["contact_id"].to_numpy(np.int64)[kept]
        pos = np.searchsorted(contact_ids, ids)
        known = (pos < len(contact_ids)) & (contact_ids[np.minimum(pos, len(contact_ids) - 1)] == ids)
        if not known.all():
            raise ValueError(f"sends.contact_id: {int((~known).sum())} send(s) of contacts not in contacts.parquet "
                             f"(first: {ids[~known][0]})")
        counts += np.bincount(pos, minlength=len(contact_ids))
    return counts


SEND_COLUMNS = ["send_id", "contact_id", "content_id", "sent_at"]


def read_sends_of(events_dir, contact_ids) -> pd.DataFrame:
    """Every send of `contact_ids` (SEND_COLUMNS), by send_id."""
    who = pc.field("contact_id").isin(pa.array(np.unique(np.asarray(contact_ids, dtype=np.int64)), pa.int64()))
    sends = read_columns(events_dir, "sends", SEND_COLUMNS, who)
    return sends.sort_values("send_id", kind="stable").reset_index(drop=True)


@dataclass
class SampledLog:
    """The event-log rows of a contact sample (only the columns training reads)."""

    sample: ContactSample
    contacts: pd.DataFrame  # contact_id, created_at, consent, timezone (by contact_id)
    sends: pd.DataFrame  # send_id, contact_id, content_id, sent_at (by send_id)
    events: pd.DataFrame  # send_id, contact_id, type, occurred_at, of `event_types` only


def read_sampled_log(events_dir, sample: ContactSample, event_types: tuple[str, ...]) -> SampledLog:
    """Contacts, sends and events (of `event_types`) of the sampled contacts."""
    from simulation.schema import EVENT_TYPES

    unknown = [t for t in event_types if t not in EVENT_TYPES]
    if unknown:
        raise ValueError(f"event_types: unknown type(s) {unknown}; expected among {list(EVENT_TYPES)}")
    who = None if sample.everyone else pc.field("contact_id").isin(pa.array(sample.ids, pa.int64()))
    kinds = pc.field("type").isin(pa.array(list(event_types), pa.string()))
    contacts = read_columns(events_dir, "contacts", ["contact_id", "created_at", "consent", "timezone"], who)
    sends = read_columns(events_dir, "sends", SEND_COLUMNS, who)
    events = read_columns(events_dir, "events", ["send_id", "contact_id", "type", "occurred_at"],
                          kinds if who is None else who & kinds)
    return SampledLog(sample,
                      contacts.sort_values("contact_id", kind="stable").reset_index(drop=True),
                      sends.sort_values("send_id", kind="stable").reset_index(drop=True),
                      events.reset_index(drop=True))
