"""Appends as Parquet segments: every reader sees each row once, merges keep rows and bound the files."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from simulation import segments
from simulation.eventlog import (
    SchemaError,
    append_new_rows,
    compact_table,
    read_table,
    table_files,
    table_path,
    write_event_log,
)
from simulation.segments import eventlog_lock, merge_plan


def _events(ids, send_ids=None, contact_ids=None, kind="open") -> pd.DataFrame:
    ids = np.asarray(ids, dtype=np.int64)
    return pd.DataFrame({
        "event_id": ids,
        "send_id": ids if send_ids is None else np.asarray(send_ids, dtype=np.int64),
        "contact_id": ids % 7 if contact_ids is None else np.asarray(contact_ids, dtype=np.int64),
        "type": kind,
        "occurred_at": (pd.Timestamp("2026-02-01", tz="UTC") + pd.to_timedelta(ids % 1000, unit="min")).as_unit("us"),
        "value": np.nan,
    })


def _append(events_dir, rows) -> int:
    with eventlog_lock(events_dir):
        return append_new_rows("events", rows, events_dir, "event_id")


def _snapshot(events_dir) -> dict[str, bytes]:
    return {str(p.relative_to(events_dir)): p.read_bytes() for p in sorted(events_dir.rglob("*")) if p.is_file()}


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values("event_id").reset_index(drop=True)


def test_appends_are_segments_read_once_and_duplicates_dropped(tmp_path):
    rng = np.random.default_rng(1)
    ids = rng.choice(2**62, size=3000, replace=False)  # hashed webhook ids: statistics exclude nothing
    for batch in np.array_split(ids, 6):
        assert _append(tmp_path, _events(batch)) == len(batch)
    assert len(table_files(tmp_path, "events")) > 1
    assert not table_path(tmp_path, "events").exists()  # appends never write the base file
    # a batch of known keys from several segments plus new ones: only the new rows are added
    again = np.concatenate([ids[::97], [2**62 + 1, 2**62 + 2]])
    assert _append(tmp_path, _events(again)) == 2
    got = read_table("events", table_path(tmp_path, "events"))
    assert got["event_id"].is_unique and len(got) == len(ids) + 2
    assert set(got["event_id"]) == set(ids) | {2**62 + 1, 2**62 + 2}


def test_an_old_single_file_log_reads_unchanged_and_stays_untouched_by_appends(tmp_path):
    base = _events(np.arange(1000))
    write_event_log(tmp_path, {"events": base})
    before = table_path(tmp_path, "events").read_bytes()
    assert table_files(tmp_path, "events") == [table_path(tmp_path, "events")]
    pd.testing.assert_frame_equal(read_table("events", table_path(tmp_path, "events")), base)
    assert _append(tmp_path, _events(np.arange(990, 1100))) == 100  # 10 keys already in the base file
    assert table_path(tmp_path, "events").read_bytes() == before
    got = read_table("events", table_path(tmp_path, "events"))
    assert got["event_id"].tolist() == list(range(1100))  # base rows first, then the segment's


def test_a_failing_append_leaves_the_log_as_it_was(tmp_path, monkeypatch):
    _append(tmp_path, _events(np.arange(100)))
    _append(tmp_path, _events(np.arange(100, 200)))
    before = _snapshot(tmp_path)
    with pytest.raises(SchemaError, match=r"events\.type"):
        _append(tmp_path, _events(np.arange(200, 300), kind="bogus"))
    assert _snapshot(tmp_path) == before
    real = pq.write_table

    def disk_full(table, where, **kwargs):  # half a file is on disk when the write fails
        real(table.slice(0, 1), where, **kwargs)
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", disk_full)
    with pytest.raises(OSError, match="disk full"):
        _append(tmp_path, _events(np.arange(200, 300)))
    assert _snapshot(tmp_path) == before  # no segment, no temp file
    monkeypatch.undo()
    assert read_table("events", table_path(tmp_path, "events"))["event_id"].tolist() == list(range(200))


def test_a_failing_merge_keeps_every_row_once_and_leaves_no_temp(tmp_path, monkeypatch):
    for start in range(0, 300, 100):
        _append(tmp_path, _events(np.arange(start, start + 100)))
    files = table_files(tmp_path, "events")

    class Broken(pq.ParquetWriter):
        def write_table(self, *args, **kwargs):
            raise OSError("disk full")

    monkeypatch.setattr(pq, "ParquetWriter", Broken)
    with pytest.raises(OSError, match="disk full"):  # the fourth segment triggers the first merge
        _append(tmp_path, _events(np.arange(300, 400)))
    monkeypatch.undo()
    assert len(table_files(tmp_path, "events")) == len(files) + 1  # the append itself is in
    assert not [p for p in tmp_path.rglob(".*.tmp")]
    assert read_table("events", table_path(tmp_path, "events"))["event_id"].tolist() == list(range(400))
    assert _append(tmp_path, _events(np.arange(300, 400))) == 0  # a retry adds nothing


def test_merges_keep_the_rows_and_bound_the_files(tmp_path):
    rng = np.random.default_rng(7)
    ids = rng.choice(2**62, size=60_000, replace=False)
    sizes = rng.choice([50, 200, 2000, 9000], size=60)  # webhook flushes and send rounds, mixed
    chunks = np.split(ids, np.cumsum(sizes)[np.cumsum(sizes) < len(ids)])
    counts = []
    for chunk in chunks:
        _append(tmp_path, _events(chunk))
        counts.append(len(table_files(tmp_path, "events")))
    assert max(counts) <= segments.MAX_FILES
    assert counts[-1] < len(chunks) / 2  # merged, not one file per append
    want = _sorted(pd.concat([_events(c) for c in chunks], ignore_index=True))
    pd.testing.assert_frame_equal(_sorted(read_table("events", table_path(tmp_path, "events"))), want)
    with eventlog_lock(tmp_path):
        assert compact_table(tmp_path, "events", full=True) == 1
    assert len(table_files(tmp_path, "events")) == 1
    pd.testing.assert_frame_equal(_sorted(read_table("events", table_path(tmp_path, "events"))), want)


def test_merge_plan_is_tiered_and_amortized():
    """Equal appends: each row is rewritten about log_FANIN(n / MIN_ROWS) times and the file count stays
    at most FANIN - 1 per tier; appends of mixed sizes never exceed MAX_FILES."""
    for batch, n_appends in ((2000, 3000), (100_000, 200)):
        files, rewritten = [], 0
        for _ in range(n_appends):
            files.append(batch)
            while (plan := merge_plan(files)) is not None:
                merged = sum(files[plan[0]:plan[1]])
                rewritten += merged
                files[plan[0]:plan[1]] = [merged]
            tiers = [segments.tier(r) for r in files]
            assert all(tiers.count(t) < segments.FANIN for t in set(tiers))
        total = batch * n_appends
        levels = np.log(total / segments.MIN_ROWS) / np.log(segments.FANIN)
        assert rewritten / total <= levels + 1
    rng = np.random.default_rng(3)
    files = []
    for rows in rng.choice([10, 3000, 80_000, 2_000_000], size=2000, p=[0.5, 0.3, 0.15, 0.05]):
        files.append(int(rows))
        while (plan := merge_plan(files)) is not None:
            files[plan[0]:plan[1]] = [sum(files[plan[0]:plan[1]])]
        assert len(files) <= segments.MAX_FILES


def test_a_merge_interrupted_before_cleanup_reads_each_row_once(tmp_path):
    for start in range(0, 300, 100):
        _append(tmp_path, _events(np.arange(start, start + 100)))
    with eventlog_lock(tmp_path):  # a crash right after the merge's rename: the merged files are still there
        pieces = segments._split(segments._pieces(tmp_path, "events"))[0]
        segments._merge(tmp_path, "events", pieces, _schema_of("events"))
    assert len(list(segments.segment_dir(tmp_path, "events").glob("part-*.parquet"))) == 4
    assert table_files(tmp_path, "events") == [segments.segment_dir(tmp_path, "events") / segments._part_name(1, 3)]
    assert read_table("events", table_path(tmp_path, "events"))["event_id"].tolist() == list(range(300))
    with eventlog_lock(tmp_path):
        segments.cleanup(tmp_path, "events", grace=0)
    assert len(list(segments.segment_dir(tmp_path, "events").glob("part-*.parquet"))) == 1


def _schema_of(table):
    from simulation.schema import TABLES

    return TABLES[table].arrow


def test_a_whole_log_write_replaces_the_segments(tmp_path):
    write_event_log(tmp_path, {"events": _events(np.arange(10))})
    _append(tmp_path, _events(np.arange(10, 20)))
    write_event_log(tmp_path, {"events": _events(np.arange(500, 505))})
    assert read_table("events", table_path(tmp_path, "events"))["event_id"].tolist() == list(range(500, 505))
    assert len(table_files(tmp_path, "events")) == 1 and not table_path(tmp_path, "events").exists()
    write_event_log(tmp_path, {"events": _events(np.arange(7))})  # and again: one file, the newest rows
    assert read_table("events", table_path(tmp_path, "events"))["event_id"].tolist() == list(range(7))
    assert len(list(tmp_path.rglob("*.parquet"))) == 1


def test_erasure_removes_a_contact_from_every_segment_and_rewrites_only_those(tmp_path):
    from privacy.erase import Subject
    from privacy.stores import STORES

    n = 20_000  # the base file: above the first tiers, so three small appends are not merged into it
    write_event_log(tmp_path, {"events": _events(np.arange(n), contact_ids=np.arange(n) % 50)})
    for start, cids in ((n, np.arange(100) % 50), (n + 100, np.arange(100) % 50), (n + 200, np.full(100, 99))):
        _append(tmp_path, _events(np.arange(start, start + 100), contact_ids=cids))
    assert len(table_files(tmp_path, "events")) == 4
    untouched = {f: f.read_bytes() for f in table_files(tmp_path, "events")[-1:]}  # no row of contact 3
    store = next(s for s in STORES if s.name == "event log events")
    settings = SimpleNamespace(events_dir=tmp_path)
    held = len(store.export(settings, Subject((3,))))
    assert held == n // 50 + 2 + 2
    assert store.erase(settings, Subject((3,))) == held
    assert store.export(settings, Subject((3,))) == []
    got = read_table("events", table_path(tmp_path, "events"))
    assert len(got) == n + 300 - held and 3 not in set(got["contact_id"])
    assert all(f.read_bytes() == b for f, b in untouched.items())
    for f in tmp_path.rglob("*.parquet"):  # superseded files are gone too
        assert 3 not in set(pq.read_table(f, columns=["contact_id"]).column(0).to_pylist())


def test_write_table_at_the_base_path_replaces_the_appended_segments(tmp_path):
    from simulation.eventlog import write_table

    _append(tmp_path, _events(np.arange(10)))
    write_table("events", _events(np.arange(3)), table_path(tmp_path, "events"))
    assert read_table("events", table_path(tmp_path, "events"))["event_id"].tolist() == [0, 1, 2]
