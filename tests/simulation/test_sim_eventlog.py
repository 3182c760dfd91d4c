"""Every SchemaError path of the event-log contract, and atomic writes."""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from simulation import schema
from simulation.segments import LOCK
from simulation.eventlog import (
    SchemaError,
    read_event_log,
    read_table,
    table_path,
    validate,
    write_event_log,
    write_table,
)


def _ts(*values):
    return pd.to_datetime(list(values), utc=True, format="ISO8601").as_unit("us")


def good_tables() -> dict[str, pd.DataFrame]:
    contacts = pd.DataFrame({
        "contact_id": [1, 2],
        "email": ["a@example.com", "b@gmial.com"],
        "created_at": _ts("2026-01-01", "2026-01-02"),
        "industry": ["software", "retail"],
        "company_size": ["1-10", "1000+"],
        "seniority": ["ic", "executive"],
        "country": ["DE", "IN"],
        "timezone": ["Europe/Berlin", "Asia/Kolkata"],
        "signup_source": ["form", "import"],
        "consent": [True, False],
    })
    content = pd.DataFrame({
        "content_id": [10],
        "name": ["promo-1"],
        "topic": ["promotion"],
        "format": ["promo"],
        "subject": ["20% off"],
        "subject_length": np.array([7], dtype=np.int32),
        "has_personalization": [False],
        "has_urgency": [True],
        "has_emoji": [False],
        "created_at": _ts("2026-01-01"),
    })
    sends = pd.DataFrame({
        "send_id": [100, 101],
        "contact_id": [1, 2],
        "campaign_id": ["c1", "c1"],
        "content_id": [10, 10],
        "sent_at": _ts("2026-02-01 09:00", "2026-02-01 09:00"),
        "decision_id": ["d1", None],
        "propensity": [0.5, np.nan],
    })
    events = pd.DataFrame({
        "event_id": [1000, 1001, 1002],
        "send_id": [100, 100, 100],
        "contact_id": [1, 1, 1],
        "type": ["delivered", "open", "conversion"],
        "occurred_at": _ts("2026-02-01 09:00:05", "2026-02-01 10:00", "2026-02-03 10:00"),
        "value": [np.nan, np.nan, 99.5],
    })
    return {"contacts": contacts, "content": content, "sends": sends, "events": events}


def test_good_tables_validate_to_the_contract_schema():
    for name, df in good_tables().items():
        at = validate(name, df)
        assert at.schema == schema.TABLES[name].arrow
        assert at.num_rows == len(df)


def test_timestamps_in_other_zones_are_converted_to_utc():
    sends = good_tables()["sends"]
    sends["sent_at"] = sends["sent_at"].dt.tz_convert("America/New_York")
    at = validate("sends", sends)
    assert at.schema.field("sent_at").type == pa.timestamp("us", tz="UTC")
    assert at.column("sent_at")[0].as_py() == pd.Timestamp("2026-02-01 09:00", tz="UTC")


@pytest.mark.parametrize("table,column", [("contacts", "timezone"), ("sends", "sent_at"), ("events", "type")])
def test_missing_column_is_named(table, column):
    df = good_tables()[table].drop(columns=[column])
    with pytest.raises(SchemaError, match="missing column") as err:
        validate(table, df)
    assert (err.value.table, err.value.column) == (table, column)


@pytest.mark.parametrize("table,column,bad", [
    ("sends", "contact_id", ["x", "y"]),
    ("contacts", "consent", ["yes", "no"]),
    ("sends", "sent_at", ["2026-02-01", "2026-02-02"]),
    ("events", "value", ["a", "b", "c"]),
])
def test_wrong_type_is_named(table, column, bad):
    df = good_tables()[table]
    df[column] = bad[: len(df)]
    with pytest.raises(SchemaError) as err:
        validate(table, df)
    assert err.value.column == column
    assert "expected" in err.value.problem


def test_naive_timestamp_is_rejected():
    events = good_tables()["events"]
    events["occurred_at"] = events["occurred_at"].dt.tz_localize(None)
    with pytest.raises(SchemaError, match="naive timestamp") as err:
        validate("events", events)
    assert err.value.column == "occurred_at"


@pytest.mark.parametrize("table,column", [
    ("contacts", "contact_id"), ("sends", "send_id"), ("events", "value"), ("content", "subject_length"),
])
def test_negative_values_are_rejected(table, column):
    df = good_tables()[table]
    df.loc[0, column] = -1
    with pytest.raises(SchemaError, match="negative value") as err:
        validate(table, df)
    assert err.value.column == column


def test_unknown_event_type_is_named():
    events = good_tables()["events"]
    events.loc[1, "type"] = "opened"
    with pytest.raises(SchemaError, match="unknown value 'opened'") as err:
        validate("events", events)
    assert err.value.column == "type"


@pytest.mark.parametrize("table,column", [("contacts", "contact_id"), ("sends", "send_id"), ("events", "event_id")])
def test_duplicate_id_is_named(table, column):
    df = good_tables()[table]
    df.loc[1, column] = df.loc[0, column]
    with pytest.raises(SchemaError, match="duplicate id") as err:
        validate(table, df)
    assert err.value.column == column
    assert str(df.loc[0, column]) in err.value.problem


@pytest.mark.parametrize("value,ok", [(0.0, False), (-0.2, False), (1.5, False), (1.0, True), (1e-6, True)])
def test_propensity_must_be_in_zero_one(value, ok):
    sends = good_tables()["sends"]
    sends.loc[0, "propensity"] = value
    if ok:
        validate("sends", sends)
    else:
        with pytest.raises(SchemaError) as err:
            validate("sends", sends)
        assert err.value.column == "propensity"


def test_nullable_columns_accept_all_nulls_but_required_ones_do_not():
    sends = good_tables()["sends"]
    sends["decision_id"] = None
    sends["propensity"] = None
    at = validate("sends", sends)
    assert at.column("propensity").null_count == len(sends)
    contacts = good_tables()["contacts"]
    contacts.loc[0, "email"] = None
    with pytest.raises(SchemaError, match="null value") as err:
        validate("contacts", contacts)
    assert err.value.column == "email"


def test_unknown_table_and_wrong_container():
    with pytest.raises(SchemaError, match="unknown table"):
        validate("clicks", good_tables()["events"])
    with pytest.raises(TypeError):
        validate("events", [1, 2, 3])


def test_round_trip_and_readers_validate(tmp_path):
    tables = good_tables()
    write_event_log(tmp_path, tables)
    back = read_event_log(tmp_path)
    assert set(back) == set(schema.TABLES)
    pd.testing.assert_frame_equal(back["sends"], validate("sends", tables["sends"]).to_pandas())
    # a file someone else wrote without validation is checked on read
    bad = tables["events"].copy()
    bad.loc[0, "type"] = "bogus"
    pq.write_table(pa.Table.from_pandas(bad, preserve_index=False), tmp_path / "events.parquet")
    with pytest.raises(SchemaError, match="bogus"):
        read_table("events", tmp_path / "events.parquet")


def test_reader_errors_for_missing_and_corrupt_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_table("events", tmp_path / "events.parquet")
    (tmp_path / "events.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(SchemaError, match="not a readable Parquet file"):
        read_table("events", tmp_path / "events.parquet")


def test_failed_write_leaves_neither_file_nor_temp(tmp_path):
    bad = good_tables()["events"]
    bad.loc[0, "event_id"] = -5
    target = tmp_path / "events.parquet"
    with pytest.raises(SchemaError):
        write_table("events", bad, target)
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_the_previous_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "events.parquet"
    write_table("events", good_tables()["events"], target)
    before = target.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", boom)
    with pytest.raises(OSError, match="disk full"):
        write_table("events", good_tables()["events"], target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.parquet"]


def test_event_log_is_all_or_nothing(tmp_path):
    tables = good_tables()
    tables["events"].loc[0, "type"] = "nope"
    with pytest.raises(SchemaError):
        write_event_log(tmp_path, tables)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_keeps_the_whole_previous_event_log(tmp_path, monkeypatch):
    write_event_log(tmp_path, good_tables())
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    real = pq.write_table

    def full_on_events(table, where, **kwargs):  # the disk fills up at the last table
        if ".events.parquet." in str(where):
            raise OSError("disk full")
        return real(table, where, **kwargs)

    monkeypatch.setattr(pq, "write_table", full_on_events)
    newer = good_tables()
    newer["sends"].loc[0, "propensity"] = 0.5
    with pytest.raises(OSError, match="disk full"):
        write_event_log(tmp_path, newer)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no table replaced, no temp left


def test_written_files_are_readable_by_others(tmp_path):
    path = write_table("content", good_tables()["content"], tmp_path / "content.parquet")
    assert os.stat(path).st_mode & 0o044  # not left at mkstemp's 0600


def test_markdown_lists_every_column():
    md = schema.markdown()
    for t in schema.TABLES.values():
        assert f"`{t.name}.parquet`" in md
        for c in t.columns:
            assert f"`{c.name}`" in md
    assert table_path("/x", "sends").name == "sends.parquet"


def test_unique_check_on_large_shuffled_ids():
    rng = np.random.default_rng(0)
    ids = rng.permutation(200_000).astype(np.int64)
    events = pd.DataFrame({
        "event_id": ids, "send_id": ids, "contact_id": ids, "type": "open",
        "occurred_at": pd.Series(pd.Timestamp("2026-02-01", tz="UTC"), index=range(len(ids))),
        "value": np.nan,
    })
    assert validate("events", events).num_rows == len(ids)
    events.loc[123_456, "event_id"] = ids[7]
    events.loc[99, "event_id"] = ids[7]
    with pytest.raises(SchemaError, match=rf"duplicate id {ids[7]} \(2 duplicate\(s\)\)"):
        validate("events", events)


def test_append_new_rows_adds_only_new_keys(tmp_path):
    from simulation.eventlog import append_new_rows

    events = good_tables()["events"]
    path = table_path(tmp_path, "events")
    assert append_new_rows("events", events.iloc[:2], tmp_path, "event_id") == 2  # no table yet
    assert append_new_rows("events", events, tmp_path, "event_id") == len(events) - 2
    assert append_new_rows("events", events, tmp_path, "event_id") == 0  # every key known: nothing written
    got = read_table("events", path)
    assert got["event_id"].tolist() == events["event_id"].tolist()
    assert got["type"].tolist() == events["type"].tolist()


def test_append_new_rows_failure_keeps_the_file_whole(tmp_path):
    from simulation.eventlog import append_new_rows

    events = good_tables()["events"]
    path = table_path(tmp_path, "events")
    write_table("events", events.iloc[:1], path)
    before = path.read_bytes()
    bad = events.iloc[1:].assign(type="not-a-type")
    with pytest.raises(SchemaError):
        append_new_rows("events", bad, tmp_path, "event_id")
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name != LOCK] == [path.name]
