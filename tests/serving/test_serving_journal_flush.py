"""The webhook journal's two-phase flush: no lookup in the table, every event exactly once across crashes."""
from __future__ import annotations

import sqlite3
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from serving import eventsink
from serving.eventsink import JOURNAL, EventJournal, append_events, flush
from simulation import segments
from simulation.eventlog import append_new_rows, compact_table, read_table, table_files, table_path, write_table


def rows(ids, contacts=None) -> pd.DataFrame:
    ids = np.asarray(ids, dtype=np.int64)
    return pd.DataFrame({
        "event_id": ids, "send_id": ids % 1000, "contact_id": contacts if contacts is not None else ids % 7,
        "type": "open", "occurred_at": pd.Timestamp("2026-05-01", tz="UTC") + pd.to_timedelta(ids % 86_400, unit="s"),
        "value": np.nan})


def hashed(n: int, seed: int) -> np.ndarray:
    """Ids like the webhook's: 63-bit hashes spread over the whole key range."""
    return np.random.default_rng(seed).integers(0, 2**63 - 1, n, dtype=np.int64)


def journal(events_dir, ids, **kw) -> tuple[int, int]:
    j = EventJournal(events_dir)
    try:
        return j.append(rows(ids, **kw))
    finally:
        j.close()


def table_ids(events_dir) -> np.ndarray:
    return read_table("events", table_path(events_dir, "events"))["event_id"].to_numpy()


def unflushed(events_dir) -> int:
    with sqlite3.connect(events_dir / JOURNAL) as db:
        return db.execute("SELECT count(*) FROM events WHERE flushed = 0").fetchone()[0]


def assert_once(events_dir, expected) -> None:
    got = table_ids(events_dir)
    assert len(got) == len(np.unique(got)), "an event id is in the table twice"
    assert set(got.tolist()) == set(np.asarray(expected).tolist())
    assert unflushed(events_dir) == 0


class Crash(RuntimeError):
    pass


@pytest.fixture()
def reads(monkeypatch):
    """Row groups read from Parquet files (what a key lookup costs)."""
    count = {"n": 0}
    original = pq.ParquetFile.read_row_group

    def counted(self, *args, **kwargs):
        count["n"] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", counted)
    return count


def test_flush_does_not_read_the_tables_keys(tmp_path, reads):
    write_table("events", rows(np.arange(50_000)), table_path(tmp_path, "events"))  # base file, its own tier
    for seed in (1, 2):  # two webhook segments whose keys span the whole range
        journal(tmp_path, hashed(300, seed))
        assert flush(tmp_path) == 300
    journal(tmp_path, hashed(300, 3))
    reads["n"] = 0
    assert flush(tmp_path) == 300
    assert reads["n"] == 0
    assert len(table_files(tmp_path, "events")) == 4  # no merge in the measured flush: nothing else was read
    # the same batch through the exact-lookup path reads the webhook segments' keys
    append_events(tmp_path, rows(hashed(300, 4)))
    assert reads["n"] > 0
    assert_once(tmp_path, np.concatenate([np.arange(50_000)] + [hashed(300, s) for s in (1, 2, 3, 4)]))


def test_crash_after_the_segment_is_written_gives_every_event_once(tmp_path, monkeypatch):
    first, second = hashed(500, 1), hashed(200, 2)
    journal(tmp_path, first)
    real_finish = EventJournal.finish

    def finish(self, seq, written=None):
        if written is None:
            raise Crash("after the segment, before the journal is marked")
        return real_finish(self, seq, written)

    monkeypatch.setattr(EventJournal, "finish", finish)
    with pytest.raises(Crash):
        flush(tmp_path)
    monkeypatch.setattr(EventJournal, "finish", real_finish)
    assert len(table_ids(tmp_path)) == 500 and unflushed(tmp_path) == 500  # written, not marked
    journal(tmp_path, second)
    assert flush(tmp_path) == 200  # the crashed attempt's rows are found in its segment, not written again
    assert_once(tmp_path, np.concatenate([first, second]))


def test_crash_before_the_segment_is_written_flushes_the_rows_again(tmp_path, monkeypatch):
    pending = hashed(400, 1)
    journal(tmp_path, pending)
    seq = segments.next_seq(tmp_path, "events")

    def fail(*args, **kwargs):
        raise Crash("before the segment")

    with monkeypatch.context() as mp:
        mp.setattr(segments, "write_segment", fail)
        with pytest.raises(Crash):
            flush(tmp_path)
    assert table_files(tmp_path, "events") == []
    other = np.arange(100)  # a writer outside the journal takes the sequence number the crashed flush recorded
    with segments.eventlog_lock(tmp_path):
        assert append_new_rows("events", rows(other), tmp_path, "event_id") == 100
    assert segments.file_holding(tmp_path, "events", seq) is not None
    assert flush(tmp_path) == 400
    assert_once(tmp_path, np.concatenate([pending, other]))


def test_a_merge_between_the_crash_and_the_recovery(tmp_path, monkeypatch):
    """The crashed flush's segment is merged away (segments written and a full merge, by a writer that
    does not go through the journal) before the next flush resolves the attempt."""
    crashed = hashed(300, 1)
    journal(tmp_path, crashed)
    seq = segments.next_seq(tmp_path, "events")
    real_finish = EventJournal.finish
    monkeypatch.setattr(EventJournal, "finish", lambda self, s, written=None: (_ for _ in ()).throw(Crash()))
    with pytest.raises(Crash):
        flush(tmp_path)
    monkeypatch.setattr(EventJournal, "finish", real_finish)
    with segments.eventlog_lock(tmp_path):
        for k in range(3):
            segments.write_segment(tmp_path, "events",
                                   eventsink.validate("events", rows(np.arange(k * 10, k * 10 + 10))))
        compact_table(tmp_path, "events", full=True)
    assert len(table_files(tmp_path, "events")) == 1
    holder = segments.file_holding(tmp_path, "events", seq)
    assert holder is not None and holder.name == f"part-{seq:012d}-{seq + 3:012d}.parquet"
    extra = hashed(50, 9)
    journal(tmp_path, extra)
    assert flush(tmp_path) == 50
    assert_once(tmp_path, np.concatenate([crashed, np.arange(30), extra]))


def test_provider_duplicates_are_dropped_before_and_after_a_flush(tmp_path):
    ids = hashed(100, 1)
    assert journal(tmp_path, ids) == (100, 0)
    assert journal(tmp_path, ids[:40]) == (0, 40)
    assert flush(tmp_path) == 100
    assert journal(tmp_path, np.concatenate([ids[50:], hashed(10, 2)])) == (10, 50)
    assert flush(tmp_path) == 10
    assert flush(tmp_path) == 0
    assert_once(tmp_path, np.concatenate([ids, hashed(10, 2)]))


def test_ids_of_the_other_writers_and_of_webhooks_never_land_twice(tmp_path):
    """A webhook id equal to one the send pipeline appended (a hash collision across providers) is a
    duplicate for the journal; one the send pipeline appends while the webhook's is pending is dropped."""
    piped, hooked = hashed(20, 1), hashed(20, 2)
    assert append_events(tmp_path, rows(piped)) == 20
    assert journal(tmp_path, np.concatenate([piped[:5], hooked])) == (20, 5)
    assert append_events(tmp_path, rows(np.concatenate([hooked[:3], piped[5:], hashed(4, 3)]))) == 4
    assert flush(tmp_path) == 20
    assert_once(tmp_path, np.concatenate([piped, hooked, hashed(4, 3)]))


def test_a_journal_from_before_the_two_phase_flush(tmp_path):
    """The old schema (no flush_seq) with rows left pending by a crash after their append: they are checked
    against the whole table once, then the journal works as a new one."""
    old = hashed(30, 1)
    in_table, flushed_before, pending = old[:10], old[10:20], old[20:]
    write_table("events", rows(np.concatenate([in_table, flushed_before])), table_path(tmp_path, "events"))
    db = sqlite3.connect(tmp_path / JOURNAL)
    db.execute("CREATE TABLE events (event_id INTEGER PRIMARY KEY, send_id INTEGER NOT NULL, "
               "contact_id INTEGER NOT NULL, type TEXT NOT NULL, occurred_us INTEGER NOT NULL, value REAL, "
               "flushed INTEGER NOT NULL DEFAULT 0)")
    db.executemany("INSERT INTO events VALUES (?, 1, 2, 'open', 1777593600000000, NULL, ?)",
                   [(int(e), 0) for e in np.concatenate([in_table, pending])] + [(int(e), 1) for e in flushed_before])
    db.commit()
    db.close()
    assert journal(tmp_path, old[:3]) == (0, 3)  # the old rows still deduplicate
    assert flush(tmp_path) == 10
    assert journal(tmp_path, hashed(5, 2)) == (5, 0)
    assert flush(tmp_path) == 5
    assert_once(tmp_path, np.concatenate([old, hashed(5, 2)]))


@pytest.mark.parametrize("crash_at", ["before", "after"])
def test_erasure_between_a_crash_and_the_recovery(tmp_path, monkeypatch, crash_at):
    from privacy.erase import Subject
    from privacy.stores import STORES

    ids = hashed(60, 1)
    contacts = np.arange(60) % 3  # contact 1 is erased
    journal(tmp_path, ids, contacts=contacts)
    if crash_at == "before":
        target, name = segments, "write_segment"
    else:
        target, name = EventJournal, "finish"
    real = getattr(target, name)

    def crash(*args, **kwargs):
        if name == "finish" and kwargs.get("written", args[2] if len(args) > 2 else None) is not None:
            return real(*args, **kwargs)
        raise Crash(crash_at)

    with monkeypatch.context() as mp:
        mp.setattr(target, name, crash)
        with pytest.raises(Crash):
            flush(tmp_path)
    settings = SimpleNamespace(events_dir=tmp_path)
    stores = {s.name: s for s in STORES}
    subject = Subject((1,))
    for store in ("event log events", "webhook journal"):
        stores[store].erase(settings, subject)
    assert flush(tmp_path) == (40 if crash_at == "before" else 0)
    assert_once(tmp_path, ids[contacts != 1])
    with sqlite3.connect(tmp_path / JOURNAL) as db:
        assert db.execute("SELECT count(*) FROM events WHERE contact_id = 1").fetchone()[0] == 0


def test_append_events_that_crashed_before_its_segment_is_flushed_later(tmp_path, monkeypatch):
    ids = hashed(50, 1)

    def fail(*args, **kwargs):
        raise Crash("before the segment")

    with monkeypatch.context() as mp:
        mp.setattr(segments, "write_segment", fail)
        with pytest.raises(Crash):
            append_events(tmp_path, rows(ids))
    assert table_files(tmp_path, "events") == []
    assert journal(tmp_path, ids[:5]) == (0, 5)  # the journal knows them: a webhook with one of these ids is a duplicate
    assert flush(tmp_path) == 50
    assert append_events(tmp_path, rows(ids)) == 0
    assert_once(tmp_path, ids)
