"""Point-in-time feature frames for training, from Feast (preferred) or the feature tables.

`feature_frame(entity_df, service, settings)` returns `entity_df` joined with
the features of a Feast feature service as of each row's `event_timestamp`.
It uses `features.training.training_frame` (Feast `get_historical_features`)
when the Feast repo is applied; otherwise it performs the same backward
as-of join on the pipeline's Parquet tables in `settings.features_dir`
(each row gets the newest snapshot at or before its timestamp). The source
used is returned in `frame.attrs["feature_source"]` and logged to MLflow.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

KEYS = ("contact_id", "content_id", "event_timestamp")

# Fallback: feature-service name -> contact tables (features.pipeline.TABLE_FILES keys)
SERVICE_TABLES = {
    "lead_scoring": ("contact_profile", "contact_engagement", "contact_topics"),
    "send_time": ("contact_profile", "contact_engagement", "contact_send_time"),
    "content_preference": ("contact_profile", "contact_engagement", "contact_topics"),
}
CONTENT_TABLE = "content_features"
SNAPSHOT_TTL = pd.Timedelta(days=7)


def _feast_available(settings) -> bool:
    try:
        import features.store  # noqa: F401
        import features.training  # noqa: F401
    except ImportError:
        return False
    registry = Path(settings.feast_dir)
    return registry.exists() and any(registry.iterdir())


def feature_frame(entity_df: pd.DataFrame, service: str, settings, prefer_feast: bool = True) -> pd.DataFrame:
    """`entity_df` (contact_id[, content_id], event_timestamp UTC) with the service's features."""
    for col in ("contact_id", "event_timestamp"):
        if col not in entity_df.columns:
            raise ValueError(f"entity_df: missing column {col!r}")
    if prefer_feast and _feast_available(settings):
        from features.store import get_store
        from features.training import training_frame

        out = training_frame(entity_df, service, store=get_store(settings))
        out.attrs["feature_source"] = f"feast:{service}"
        return out
    out = parquet_asof_frame(entity_df, service, Path(settings.features_dir))
    out.attrs["feature_source"] = f"parquet-asof:{service}"
    return out


def _asof(left: pd.DataFrame, table: pd.DataFrame, key: str, tolerance) -> pd.DataFrame:
    right = table.rename(columns={"event_timestamp": "_feature_ts"}).sort_values("_feature_ts", kind="stable")
    left = left.assign(_row=np.arange(len(left))).sort_values("event_timestamp", kind="stable")
    out = pd.merge_asof(
        left, right, left_on="event_timestamp", right_on="_feature_ts", by=key,
        direction="backward", tolerance=tolerance, allow_exact_matches=True,
    )
    return out.sort_values("_row").drop(columns=["_row", "_feature_ts"]).reset_index(drop=True)


def parquet_asof_frame(entity_df: pd.DataFrame, service: str, features_dir: Path) -> pd.DataFrame:
    """Backward as-of join of the pipeline's tables (the Feast semantics, without Feast)."""
    from features.pipeline import TABLE_FILES

    if service not in SERVICE_TABLES:
        raise ValueError(f"service: unknown feature service {service!r}; expected one of {sorted(SERVICE_TABLES)}")
    out = entity_df.copy()
    out["event_timestamp"] = pd.to_datetime(out["event_timestamp"], utc=True).astype("datetime64[us, UTC]")
    for name in SERVICE_TABLES[service]:
        path = features_dir / TABLE_FILES[name]
        if not path.exists():
            raise FileNotFoundError(f"{name}: no feature table {path} (run `inbox features build`)")
        table = pd.read_parquet(path)
        table["event_timestamp"] = table["event_timestamp"].astype("datetime64[us, UTC]")
        dup = [c for c in table.columns if c in out.columns and c not in ("contact_id", "event_timestamp")]
        table = table.drop(columns=dup)
        out = _asof(out, table, "contact_id", None if name == "contact_profile" else SNAPSHOT_TTL)
    return out


def content_frame(entity_df: pd.DataFrame, settings) -> pd.DataFrame:
    """`entity_df` (content_id, event_timestamp) with content features as of each timestamp."""
    from features.pipeline import TABLE_FILES

    path = Path(settings.features_dir) / TABLE_FILES[CONTENT_TABLE]
    if not path.exists():
        raise FileNotFoundError(f"{CONTENT_TABLE}: no feature table {path} (run `inbox features build`)")
    table = pd.read_parquet(path)
    table["event_timestamp"] = table["event_timestamp"].astype("datetime64[us, UTC]")
    left = entity_df[["content_id", "event_timestamp"]].copy()
    left["event_timestamp"] = pd.to_datetime(left["event_timestamp"], utc=True).astype("datetime64[us, UTC]")
    return _asof(left, table, "content_id", SNAPSHOT_TTL)


def latest_contact_features(service: str, settings, as_of=None) -> pd.DataFrame:
    """Every contact's features as of `as_of` (default: the newest snapshot) - batch scoring input."""
    from features.pipeline import TABLE_FILES

    eng = pd.read_parquet(Path(settings.features_dir) / TABLE_FILES["contact_engagement"],
                          columns=["contact_id", "event_timestamp"])
    ts = pd.Timestamp(as_of) if as_of is not None else eng["event_timestamp"].max()
    ids = np.sort(eng.loc[eng["event_timestamp"] <= ts, "contact_id"].unique())
    entity = pd.DataFrame({"contact_id": ids, "event_timestamp": ts})
    return feature_frame(entity, service, settings)
