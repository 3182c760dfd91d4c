"""The Feast repo's objects: entities, sources, feature views, on-demand view, services.

Built from the feature tables in `features_dir` (so the topic-affinity view
has one feature per topic present in the content table). Feature names are
unique across views, so services can be read without view prefixes.

Feature views (source file = `<features_dir>/<view>.parquet`):
- `contact_engagement` (contact, daily): see `features.ENGAGEMENT_FEATURES`
- `contact_send_time` (contact, daily): open_share_{wd,we}_hHH, opens_weekday/weekend, best_hour_weekday/weekend
- `contact_send_hours` (contact, SPARSE, never expires): sent_{wd,we}_hHH and sent_opened_{wd,we}_hHH
  (cumulative sends by local send hour and how many of them were opened), sends_weekday/weekend;
  a row only where the counts change (`features.send_hours`), so the TTL must be 0 (no limit)
- `contact_topics` (contact, daily): click_affinity_<topic>
- `contact_profile` (contact, valid from created_at): attributes + email quality
- `content_features` (content, daily): content traits and smoothed rates
- on-demand `request_context`: local_hour, local_weekday, local_is_weekend from the
  contact's `timezone` and the request's `request_time`
- `contact_predictions` (contact, never expires; registered and written by `inbox publish`,
  not materialized): the champions' per-contact outputs with their model versions

Feature services: `lead_scoring`, `send_time` (includes `request_context`, so reads
need a `request_time`), `content_preference` (entities contact + content),
`content_catalog` (content only), `contact_predictions` (after `inbox publish`).
"""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
from feast import Entity, FeatureService, FeatureView, Field, FileSource, RequestSource, ValueType
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Bool, Float32, Float64, Int64, String, UnixTimestamp

from features.pipeline import TABLE_FILES

contact = Entity(name="contact", join_keys=["contact_id"], value_type=ValueType.INT64,
                 description="an email recipient")
content = Entity(name="content", join_keys=["content_id"], value_type=ValueType.INT64,
                 description="a content item / campaign variant")

VIEW_ENTITY = {
    "contact_engagement": contact,
    "contact_send_time": contact,
    "contact_send_hours": contact,
    "contact_topics": contact,
    "contact_profile": contact,
    "content_features": content,
}
# daily snapshots are refreshed every day; a snapshot older than this is not served
SNAPSHOT_TTL = timedelta(days=3)
# 0 = never expires: attributes valid from created_at; cumulative counts written only when they change
TTL = {"contact_profile": timedelta(0), "contact_send_hours": timedelta(0)}

_ARROW_TO_FEAST = {"int64": Int64, "int32": Int64, "double": Float64, "float": Float32, "bool": Bool,
                   "string": String, "large_string": String}

SEND_TIME_ENGAGEMENT = ["open_rate_30d", "open_rate_90d", "sends_7d", "sends_since_last_open",
                        "days_since_last_open", "engagement_score"]


def _schema(path: Path, join_key: str) -> list[Field]:
    if not path.exists():
        raise FileNotFoundError(f"{path.name}: feature table missing in {path.parent}; run `inbox features build` first")
    fields = []
    for f in pq.read_schema(path):
        if f.name in (join_key, "event_timestamp"):
            continue
        t = _ARROW_TO_FEAST.get(str(f.type))
        if t is None:
            raise ValueError(f"{path.name}: column {f.name} has unsupported type {f.type}")
        fields.append(Field(name=f.name, dtype=t))
    return fields


def feature_views(features_dir) -> dict[str, FeatureView]:
    features_dir = Path(features_dir)
    views = {}
    for name, entity in VIEW_ENTITY.items():
        path = features_dir / TABLE_FILES[name]
        join_key = entity.join_key
        source = FileSource(name=f"{name}_source", path=str(path.resolve()), timestamp_field="event_timestamp")
        views[name] = FeatureView(
            name=name,
            entities=[entity],
            ttl=TTL.get(name, SNAPSHOT_TTL),
            schema=_schema(path, join_key),
            source=source,
            online=True,
        )
    return views


request_source = RequestSource(name="request", schema=[Field(name="request_time", dtype=UnixTimestamp)])


def request_context_view(profile: FeatureView):
    @on_demand_feature_view(
        sources=[profile[["timezone"]], request_source],
        schema=[Field(name="local_hour", dtype=Int64), Field(name="local_weekday", dtype=Int64),
                Field(name="local_is_weekend", dtype=Bool)],
        mode="pandas",
        description="local hour (0-23) and weekday (0 = Monday) of the request time in the contact's time zone",
    )
    def request_context(inputs: pd.DataFrame) -> pd.DataFrame:
        from features.request_context import local_context

        out = local_context(inputs["timezone"].to_numpy(), inputs["request_time"].to_numpy())
        out.index = inputs.index
        return out

    return request_context


def build_repo(features_dir) -> dict:
    """All Feast objects for `store.apply`: {'entities', 'views', 'odfv', 'services'}."""
    views = feature_views(features_dir)
    odfv = request_context_view(views["contact_profile"])
    eng, prof = views["contact_engagement"], views["contact_profile"]
    services = {
        "lead_scoring": FeatureService(
            name="lead_scoring", features=[eng, prof],
            description="engagement history, profile and email quality per contact"),
        "send_time": FeatureService(
            name="send_time",
            features=[views["contact_send_time"], views["contact_send_hours"], eng[SEND_TIME_ENGAGEMENT],
                      prof[["timezone"]], odfv],
            description="local-time open profile, send/open counts by local send hour, recent engagement "
                        "and request-time local hour/weekday"),
        "content_preference": FeatureService(
            name="content_preference", features=[views["contact_topics"], views["content_features"]],
            description="per-topic click affinities of the contact and traits/CTR of the content item"),
        "content_catalog": FeatureService(
            name="content_catalog", features=[views["content_features"]],
            description="content traits and smoothed historical rates"),
    }
    return {"entities": [contact, content], "views": views, "odfv": odfv, "services": services}


# --- published predictions (written by `inbox publish`, never materialized from Parquet) ---------------
PREDICTIONS_VIEW = "contact_predictions"
PUBLISHED_TAG = "written_by"  # tag value: the command that writes the view's rows to the online store
MODEL_VERSION_COLUMNS = {"lead_scoring": "lead_scoring_version", "send_time": "send_time_version",
                         "content_preference": "content_preference_version"}
SEND_GRID_COLUMNS = [f"send_p_h{h:03d}" for h in range(168)]


TOWER_PREFIX = "contact_tower_"
PREDICTION_COLUMNS = frozenset([*MODEL_VERSION_COLUMNS.values(), "no_features", "lead_probability", "lead_score", "lead_tier",
                                "send_level", "send_segment", *SEND_GRID_COLUMNS])


def tower_columns(width: int) -> list[str]:
    return [f"{TOWER_PREFIX}{i:02d}" for i in range(width)]


def is_prediction_column(name: str) -> bool:
    """Whether `name` is a column of the `contact_predictions` view (not a feature)."""
    return name in PREDICTION_COLUMNS or name.startswith(TOWER_PREFIX)


def contact_predictions_view(features_dir, tower_width: int) -> FeatureView:
    """What serving needs per contact that depends only on the contact's features and the champions,
    computed by `inbox publish` and written straight to the online store (no offline history: the
    source file is never written, `features.store.materialize` skips views tagged `written_by`).
    `tower_width`: the content champion's contact-tower output width."""
    if not isinstance(tower_width, int) or tower_width < 1:
        raise ValueError(f"tower_width: expected a positive integer, got {tower_width!r}")
    versions = [Field(name=col, dtype=String, description=f"registry version of the {name} champion the row came from")
                for name, col in MODEL_VERSION_COLUMNS.items()]
    schema = [
        *versions,
        Field(name="no_features", dtype=Bool,
              description="every lead-scoring feature of the contact was null when published (fallback answers)"),
        Field(name="lead_probability", dtype=Float64, description="calibrated P(conversion), lead_scoring"),
        Field(name="lead_score", dtype=Int64, description="0-100 percentile of lead_probability"),
        Field(name="lead_tier", dtype=String, description="A-D band of lead_score"),
        Field(name="send_level", dtype=Int64,
              description="send-time fallback level: 0 contact, 1 segment, 2 population"),
        Field(name="send_segment", dtype=Int64, description="row of the send-time model's segment grids, -1 none"),
        *[Field(name=col, dtype=Float64,
                description=f"send-time P(open within 24 h) at local hour-of-week {h} (contact level only)")
          for h, col in enumerate(SEND_GRID_COLUMNS)],
        *[Field(name=col, dtype=Float32, description=f"content model's contact-tower output, component {i}")
          for i, col in enumerate(tower_columns(tower_width))],
    ]
    path = Path(features_dir) / f"{PREDICTIONS_VIEW}.parquet"
    return FeatureView(
        name=PREDICTIONS_VIEW,
        entities=[contact],
        ttl=timedelta(0),
        schema=[Field(name="contact_id", dtype=Int64), *schema],
        source=FileSource(name=f"{PREDICTIONS_VIEW}_source", path=str(path.resolve()), timestamp_field="event_timestamp"),
        online=True,
        tags={PUBLISHED_TAG: "inbox publish"},
        description="per-contact model outputs published after training or materialize, with model versions",
    )


def contact_predictions_service(view: FeatureView) -> FeatureService:
    return FeatureService(name=PREDICTIONS_VIEW, features=[view],
                          description="published lead score, send-time grid and contact tower per contact")
