"""Column types come from the declared schemas, never from what one chunk's data holds."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features.pipeline import TABLE_FILES, PipelineConfig, build_features
from features.table_schemas import contact_table_schemas, table_from_arrays
from tests.features.eventlog_fixtures import tiny_event_log

CONTACT_TABLES = ("contact_engagement", "contact_send_time", "contact_topics", "contact_send_hours")


def _drop_conversions(events_dir):
    path = events_dir / "events.parquet"
    events = pq.read_table(path)
    pq.write_table(events.filter(pa.compute.not_equal(events["type"], "conversion")), path)


@pytest.mark.parametrize("conversions", [True, False])
@pytest.mark.parametrize("chunk_contacts", [0, 1])
def test_files_have_the_declared_schema_whatever_the_chunks_hold(tmp_path, chunk_contacts, conversions):
    # one contact per chunk: contact 1 converted (float revenue), contacts 2 and 3 did not, so the
    # revenue of their chunks is all-integer data; without conversions every chunk is
    tiny_event_log(tmp_path / "events")
    if not conversions:
        _drop_conversions(tmp_path / "events")
    summary = build_features(tmp_path / "events", tmp_path / "out", config=PipelineConfig(chunk_contacts=chunk_contacts))
    declared = contact_table_schemas(summary["topics"])
    for name in CONTACT_TABLES:
        assert pq.read_schema(tmp_path / "out" / TABLE_FILES[name]).remove_metadata().equals(declared[name]), name
    assert pq.read_schema(tmp_path / "out" / TABLE_FILES["contact_engagement"]).field("revenue_90d").type == pa.float64()
    eng = pq.read_table(tmp_path / "out" / TABLE_FILES["contact_engagement"]).to_pandas()
    assert eng["revenue_90d"].max() == (120.0 if conversions else 0.0)


def test_chunked_build_equals_one_chunk(tmp_path):
    tiny_event_log(tmp_path / "events")
    build_features(tmp_path / "events", tmp_path / "one", config=PipelineConfig())
    build_features(tmp_path / "events", tmp_path / "many", config=PipelineConfig(chunk_contacts=1))
    key = [("contact_id", "ascending"), ("event_timestamp", "ascending")]
    for name in CONTACT_TABLES:  # rows come in another order (snapshot-major within a chunk)
        many, one = (pq.read_table(tmp_path / d / TABLE_FILES[name]).sort_by(key) for d in ("many", "one"))
        assert many.schema.equals(one.schema), name
        pd.testing.assert_frame_equal(many.to_pandas(), one.to_pandas(), check_exact=True)


def test_table_from_arrays_converts_and_names_what_is_wrong():
    schema = contact_table_schemas(["news"])["contact_topics"]
    ts = pa.array([0], type=pa.timestamp("us", tz="UTC"))
    t = table_from_arrays(schema, {"contact_id": np.array([1]), "event_timestamp": ts,
                                   "click_affinity_news": np.array([0])}, "contact_topics")
    assert t.schema.equals(schema) and t.column("click_affinity_news").to_pylist() == [0.0]
    with pytest.raises(ValueError, match=r"contact_topics: columns differ .*missing \['click_affinity_news'\]"):
        table_from_arrays(schema, {"contact_id": np.array([1]), "event_timestamp": ts}, "contact_topics")
    with pytest.raises(ValueError, match="undeclared"):
        table_from_arrays(schema, {"contact_id": np.array([1]), "event_timestamp": ts, "click_affinity_news": [0.5],
                                   "click_affinity_sports": [0.1]}, "contact_topics")
    with pytest.raises(ValueError, match="column contact_id does not convert to int64"):
        table_from_arrays(schema, {"contact_id": np.array([1.5]), "event_timestamp": ts,
                                   "click_affinity_news": [0.5]}, "contact_topics")
