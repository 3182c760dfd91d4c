"""Declared Arrow schemas of the contact snapshot tables (column names, order and types).

The snapshot engine builds every chunk against these schemas and the Parquet
sink opens each file with them, so a column's type never depends on what one
chunk's data happens to hold (numpy returns int64 from a weighted `bincount`
over no facts, for example). The Feast views read their schema from the
Parquet files, so this is also the schema Feast registers.
"""
from __future__ import annotations

import pyarrow as pa

from features.send_hours import send_hour_columns

KEYS = [pa.field("contact_id", pa.int64()), pa.field("event_timestamp", pa.timestamp("us", tz="UTC"))]

WINDOW_COUNTS = [f"{m}_{w}d" for w in (7, 30, 90) for m in ("sends", "opens", "clicks", "conversions")]
RATES = ["open_rate_30d", "click_rate_30d", "open_rate_90d", "click_rate_90d", "conversion_rate_90d"]
RECENCY = ["days_since_last_open", "days_since_last_click", "days_since_last_send"]
TOTALS = [f"{m}_total" for m in ("sends", "opens", "clicks", "conversions")]
FLAGS = ["unsubscribed", "bounced", "complained"]


def _schema(columns: list[tuple[str, pa.DataType]]) -> pa.Schema:
    return pa.schema(KEYS + [pa.field(name, t) for name, t in columns])


def engagement_schema() -> pa.Schema:
    i64, f64 = pa.int64(), pa.float64()
    return _schema([(c, i64) for c in WINDOW_COUNTS] + [("revenue_90d", f64)] + [(c, f64) for c in RATES]
                   + [(c, f64) for c in RECENCY] + [("engagement_score", f64), ("sends_since_last_open", i64)]
                   + [(c, i64) for c in TOTALS] + [(c, pa.bool_()) for c in FLAGS] + [("tenure_days", f64)])


def send_time_schema() -> pa.Schema:
    cols: list[tuple[str, pa.DataType]] = []
    for kind, day in (("wd", "weekday"), ("we", "weekend")):
        cols.append((f"opens_{day}", pa.int64()))
        cols += [(f"open_share_{kind}_h{h:02d}", pa.float32()) for h in range(24)]
    return _schema(cols + [("best_hour_weekday", pa.int64()), ("best_hour_weekend", pa.int64())])


def topics_schema(topic_slugs: list[str]) -> pa.Schema:
    return _schema([(f"click_affinity_{t}", pa.float64()) for t in dict.fromkeys(topic_slugs)])


def send_hours_schema() -> pa.Schema:
    return _schema([(c, pa.int32()) for c in send_hour_columns() + ["sends_weekday", "sends_weekend"]])


def contact_table_schemas(topic_slugs: list[str]) -> dict[str, pa.Schema]:
    """{table name: schema} for the four contact tables the snapshot engine writes."""
    return {"contact_engagement": engagement_schema(), "contact_send_time": send_time_schema(),
            "contact_topics": topics_schema(topic_slugs), "contact_send_hours": send_hours_schema()}


def table_from_arrays(schema: pa.Schema, arrays: dict, where: str) -> pa.Table:
    """A table with exactly `schema` from {column: numpy array or Arrow array}.

    Values are converted to the declared type (ints to a declared float column, for
    example); a missing or extra column, or a value that does not convert, raises
    ValueError naming the table and column.
    """
    missing = [f.name for f in schema if f.name not in arrays]
    extra = [name for name in arrays if schema.get_field_index(name) < 0]
    if missing or extra:
        raise ValueError(f"{where}: columns differ from the declared schema (missing {missing}, undeclared {extra})")
    cols = []
    for f in schema:
        v = arrays[f.name]
        try:
            cols.append(v.cast(f.type) if isinstance(v, (pa.Array, pa.ChunkedArray)) else pa.array(v, type=f.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as exc:
            raise ValueError(f"{where}: column {f.name} does not convert to {f.type}: {exc}") from exc
    return pa.Table.from_arrays(cols, schema=schema)
