"""The background Parquet sink: all chunks in order, atomic files, nothing left on failure."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features.parquet_sink import ParquetSink


SCHEMAS = {"a": pa.schema([("contact_id", pa.int64()), ("x", pa.float64())]),
           "b": pa.schema([("contact_id", pa.int64()), ("y", pa.int64())])}


def test_chunks_arrive_in_order_and_files_appear_only_on_close(tmp_path):
    paths = {"a": tmp_path / "a.parquet", "b": tmp_path / "b.parquet"}
    with ParquetSink(paths, SCHEMAS) as sink:
        for k in range(5):
            sink.put_all({"a": pa.table({"contact_id": [k, k], "x": [0.5 * k, 1.0]}),
                          "b": pa.table({"contact_id": [k], "y": [k]})})
        assert not paths["a"].exists()  # still a hidden temp file
        rows = sink.close()
    assert rows == {"a": 10, "b": 5}
    assert pq.read_table(paths["a"]).column("contact_id").to_pylist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert pq.read_table(paths["b"]).column("y").to_pylist() == [0, 1, 2, 3, 4]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.parquet", "b.parquet"]


def test_failure_leaves_nothing(tmp_path):
    paths = {"a": tmp_path / "a.parquet"}
    schemas = {"a": SCHEMAS["a"]}
    ok = pa.table({"contact_id": [1], "x": [0.5]})
    with pytest.raises(ValueError, match=r"a: chunk schema differs .*x: int64 \(declared double\)"):
        with ParquetSink(paths, schemas) as sink:
            sink.put("a", ok)
            sink.put("a", pa.table({"contact_id": [2], "x": [1]}))  # an all-integer chunk of a float column
            sink.close()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="other: undeclared"):
        with ParquetSink(paths, schemas) as sink:
            sink.put("a", pa.table({"contact_id": [1], "x": [0.5], "other": ["x"]}))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="producer"):
        with ParquetSink(paths, schemas) as sink:
            sink.put("a", ok)
            raise ValueError("producer failed")
    assert list(tmp_path.iterdir()) == []


def test_a_writer_failure_is_raised_in_the_caller_and_leaves_nothing(tmp_path):
    paths = {"a": tmp_path / "a.parquet", "b": tmp_path / "gone" / "b.parquet"}  # b's directory does not exist
    with pytest.raises(RuntimeError, match="writing feature tables failed"):
        with ParquetSink(paths, SCHEMAS) as sink:
            sink.put("a", pa.table({"contact_id": [1], "x": [0.5]}))
            sink.put("b", pa.table({"contact_id": [1], "y": [2]}))
            sink.close()
    assert list(tmp_path.iterdir()) == []


def test_schemas_must_cover_every_file(tmp_path):
    with pytest.raises(ValueError, match="schemas for"):
        ParquetSink({"a": tmp_path / "a.parquet"}, SCHEMAS)
