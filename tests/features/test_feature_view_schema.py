"""Feast views carry a declared, described schema that matches what the pipeline writes."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from feast.types import Bool, Float32, Float64, Int64, String

from features.definitions import VIEW_ENTITY, checked_schema, feature_views
from features.pipeline import TABLE_FILES, build_features
from features.table_schemas import contact_table_schemas
from tests.features.eventlog_fixtures import tiny_event_log

ARROW = {Int64: (pa.int64(), pa.int32()), Float64: (pa.float64(),), Float32: (pa.float32(),), Bool: (pa.bool_(),),
         String: (pa.string(), pa.large_string())}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("schema")
    tiny_event_log(root / "events")
    summary = build_features(root / "events", root / "features")
    return root / "features", summary


def test_every_view_field_is_described_and_matches_the_parquet_table(built):
    out, _ = built
    views = feature_views(out)
    assert set(views) == set(VIEW_ENTITY)
    for name, view in views.items():
        assert view.description, name
        stored = pq.read_schema(out / TABLE_FILES[name])
        keys = {VIEW_ENTITY[name].join_key, "event_timestamp"}
        # (Feast keeps the fields, not their order)
        assert sorted(f.name for f in view.schema if f.name not in keys) == sorted(set(stored.names) - keys), name
        for field in view.schema:
            if field.name in keys:
                continue
            assert len(field.description) > 10, f"{name}.{field.name}: no description"
            assert stored.field(field.name).type in ARROW[field.dtype], f"{name}.{field.name}"


def test_declared_contact_views_agree_with_the_arrow_schemas(built):
    out, summary = built
    views = feature_views(out)
    for name, schema in contact_table_schemas(summary["topics"]).items():
        declared = {f.name: f.dtype for f in views[name].schema if f.name != "contact_id"}
        arrow = {f.name: f.type for f in schema if f.name not in ("contact_id", "event_timestamp")}
        assert sorted(declared) == sorted(arrow), name
        assert all(arrow[c] in ARROW[t] for c, t in declared.items()), name


@pytest.mark.parametrize("change", ["extra", "missing", "type"])
def test_a_table_that_differs_from_the_declaration_is_refused_naming_the_column(built, tmp_path, change):
    out, _ = built
    table = pq.read_table(out / TABLE_FILES["content_features"])
    if change == "extra":
        table = table.append_column("surprise", pa.array([1] * table.num_rows))
    elif change == "missing":
        table = table.drop(["has_emoji"])
    else:
        table = table.set_column(table.schema.get_field_index("subject_length"), "subject_length",
                                 table["subject_length"].cast(pa.float64()))
    pq.write_table(table, tmp_path / "content_features.parquet")
    column = {"extra": "surprise", "missing": "has_emoji", "type": "subject_length"}[change]
    with pytest.raises(ValueError, match=column):
        checked_schema("content_features", tmp_path / "content_features.parquet", "content_id")


def test_inbox_features_schema_prints_the_data_dictionary(built, monkeypatch, capsys):
    from inbox.cli import main

    out, summary = built
    monkeypatch.setenv("INBOX_DATA_DIR", str(out.parent))
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["features", "schema", "--view", "contact_topics"]) == 0
    printed = capsys.readouterr().out
    assert all(f"click_affinity_{t}" in printed for t in summary["topics"])
    assert main(["features", "schema", "--view", "contact_topic"]) == 2
