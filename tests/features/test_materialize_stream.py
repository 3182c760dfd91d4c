"""Materialize streams the newest rows in batches into one transaction: same rows, nothing half-written."""
from __future__ import annotations

import sqlite3
import warnings

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.features.eventlog_fixtures import tiny_event_log, ts

warnings.filterwarnings("ignore", message="On demand feature view is an experimental feature")
END = ts("2026-06-02").to_pydatetime()


@pytest.fixture()
def store(tmp_path):
    from features.pipeline import build_features
    from features.store import apply, get_store

    tiny_event_log(tmp_path / "events")
    build_features(tmp_path / "events", tmp_path / "features")
    store = get_store(feast_dir=tmp_path / "feast")
    apply(store, features_dir=tmp_path / "features")
    return store


def _online_rows(store, view: str) -> dict:
    from features.online_store import db_path, table_name

    path = db_path(store.config)
    with sqlite3.connect(path) as conn:
        tbl = table_name(store.config, store.get_feature_view(view))
        return dict(conn.execute(f'SELECT entity_key, payload FROM "{tbl}"').fetchall())


def _plain(table: pa.Table) -> pd.DataFrame:
    """As pandas with timestamps as µs integers (DuckDB's and Arrow's time-zone names differ)."""
    i = table.schema.get_field_index("event_timestamp")
    return table.set_column(i, "event_timestamp", table.column(i).cast(pa.int64())).to_pandas()


def _newest_by_window(path: str) -> pa.Table:
    """The reference: one row per contact, its newest snapshot (a window function)."""
    return duckdb.sql(f"""SELECT * FROM read_parquet('{path}') WHERE event_timestamp <= TIMESTAMPTZ '{END.isoformat()}'
                          QUALIFY row_number() OVER (PARTITION BY contact_id ORDER BY event_timestamp DESC) = 1""").to_arrow_table()


@pytest.mark.parametrize("view", ["contact_engagement", "contact_send_hours"])  # daily, sparse
def test_batches_hold_the_newest_row_per_entity(store, view):
    from features.store import _latest_batches, source_file

    path = source_file(store, store.get_feature_view(view))
    batches = list(_latest_batches(path, "contact_id", None, END, batch_rows=1))
    assert len(batches) == 3 and all(b.num_rows == 1 for b in batches)
    key = [("contact_id", "ascending")]
    got, want = (_plain(t.sort_by(key)) for t in (pa.Table.from_batches(batches), _newest_by_window(path)))
    pd.testing.assert_frame_equal(got, want, check_exact=True)


def test_small_batches_write_the_same_online_rows(store, tmp_path):
    from features.store import materialize

    one = materialize(store, end=END)
    before = {v: _online_rows(store, v) for v in one}
    many = materialize(store, end=END, batch_rows=1)
    assert many == one and one["contact_engagement"] == 3
    assert {v: _online_rows(store, v) for v in many} == before


def test_a_failing_stream_writes_nothing(store):
    from features.store import materialize, source_file

    materialize(store, end=ts("2026-05-15").to_pydatetime())
    view = store.get_feature_view("contact_engagement")
    before = _online_rows(store, "contact_engagement")
    newest = _newest_by_window(source_file(store, view))
    online = store._get_provider().online_store

    def stream():
        yield newest.slice(0, 1)
        raise RuntimeError("reader failed mid-stream")

    with pytest.raises(RuntimeError, match="mid-stream"):
        online.write_arrow(store.config, view, stream(), "contact_id", "event_timestamp")
    assert _online_rows(store, "contact_engagement") == before
    assert online.write_arrow(store.config, view, newest.to_batches(max_chunksize=1), "contact_id", "event_timestamp") == 3
    assert _online_rows(store, "contact_engagement") != before


def test_two_rows_at_the_newest_time_are_refused_and_nothing_is_written(store, tmp_path):
    from features.store import materialize, source_file

    view = store.get_feature_view("contact_topics")
    path = source_file(store, view)
    table = pq.read_table(path)
    pq.write_table(pa.concat_tables([table, table.slice(table.num_rows - 1, 1)]), path)  # a duplicated row
    with pytest.raises(ValueError, match="more than one row for some contact_id"):
        materialize(store, end=END, views=["contact_topics"], batch_rows=1)
    assert _online_rows(store, "contact_topics") == {}


def test_batch_rows_is_validated(store):
    from features.store import materialize

    with pytest.raises(ValueError, match="batch_rows"):
        materialize(store, end=END, batch_rows=0)
