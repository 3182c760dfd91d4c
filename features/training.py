"""Point-in-time training frames through Feast's `get_historical_features`.

For each entity row (contact_id [, content_id], event_timestamp = the label or
decision time, UTC), Feast joins the newest feature snapshot whose
`event_timestamp` is <= the row's timestamp (and within the view's TTL). Snapshots
are themselves computed only from events strictly before their own timestamp, so
nothing that happened after the row's time can reach it.
"""
from __future__ import annotations

import pandas as pd

REQUEST_TIME = "request_time"


def validate_entity_df(entity_df: pd.DataFrame, join_keys: list[str]) -> pd.DataFrame:
    if not isinstance(entity_df, pd.DataFrame):
        raise ValueError(f"entity_df must be a pandas DataFrame, got {type(entity_df).__name__}")
    missing = [c for c in [*join_keys, "event_timestamp"] if c not in entity_df.columns]
    if missing:
        raise ValueError(f"entity_df: missing column(s) {missing} (required: {join_keys + ['event_timestamp']})")
    ts = entity_df["event_timestamp"]
    if not pd.api.types.is_datetime64_any_dtype(ts) or getattr(ts.dt, "tz", None) is None:
        raise ValueError("entity_df.event_timestamp: must be timezone-aware UTC datetimes")
    for key in join_keys:
        if entity_df[key].isna().any():
            raise ValueError(f"entity_df.{key}: null ids")
    out = entity_df.copy()
    out["event_timestamp"] = ts.dt.tz_convert("UTC")
    for key in join_keys:
        out[key] = out[key].astype("int64")
    return out


def service_join_keys(store, service) -> list[str]:
    views = {v.name: v for v in store.list_feature_views()}
    keys: list[str] = []
    for proj in service.feature_view_projections:
        if proj.name in views:
            for col in views[proj.name].entity_columns:
                if col.name not in keys:
                    keys.append(col.name)
    return keys


def training_frame(entity_df: pd.DataFrame, service_name: str, store=None) -> pd.DataFrame:
    """Point-in-time correct features of `service_name` joined onto `entity_df` (rows kept in order).

    Services with the request-context on-demand view get `request_time` = `event_timestamp`
    unless entity_df provides it.
    """
    from features.store import get_store

    store = store or get_store()
    service = store.get_feature_service(service_name)
    keys = service_join_keys(store, service)
    df = validate_entity_df(entity_df, keys)
    if REQUEST_TIME not in df.columns:
        df[REQUEST_TIME] = df["event_timestamp"]
    df["_row"] = range(len(df))
    job = store.get_historical_features(entity_df=df, features=service)
    got = job.to_df()
    # Feast's file (Dask) store drops entity rows that match no feature row at all (e.g. a
    # contact created after the row's time); keep every row, with null features
    features = [c for c in got.columns if c not in df.columns]
    out = df.merge(got[["_row", *features]], on="_row", how="left").drop(columns="_row")
    if REQUEST_TIME not in entity_df.columns:
        out = out.drop(columns=REQUEST_TIME)
    return out
