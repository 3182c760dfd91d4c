"""The Feast repo's objects: entities, sources, feature views, on-demand view, services.

The feature views declare their schema here, `schema=[Field(name, dtype,
description)]`, as Feast's template repo does: the schema is the contract
between the feature pipeline and every reader, and these descriptions are the
project's data dictionary (`inbox features schema` prints it). Building the
views checks each Parquet table the pipeline wrote against the declaration and
fails naming the column that differs. The one data-dependent part is the topic
view: one `click_affinity_<topic>` feature per topic in the content table.

Feature names are unique across views, so services can be read without view
prefixes. `contact_predictions` (registered and written by `inbox publish`, not
materialized) holds the champions' per-contact outputs with their versions.
"""
from __future__ import annotations

import os
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
VIEW_DESCRIPTIONS = {
    "contact_engagement": "Daily snapshot (00:00 UTC) of a contact's engagement, from events strictly before it.",
    "contact_send_time": "Daily snapshot of when a contact opens, by LOCAL hour, shrunk to the population profile "
                         "with 5 pseudo-opens (each 24-hour vector sums to 1).",
    "contact_send_hours": "Cumulative sends and opened sends by LOCAL send hour; SPARSE: a row only on snapshots "
                          "where a count changes, so it never expires. Sufficient statistics: the send-time model "
                          "does the smoothing (features.send_hours).",
    "contact_topics": "Daily snapshot of a contact's 90-day clicks per send of each content topic, shrunk to the "
                      "population's topic click rate.",
    "contact_profile": "Contact attributes and email-address quality, valid from the contact's creation (no expiry).",
    "content_features": "Daily snapshot of a content item's traits and smoothed historical rates.",
}
# daily snapshots are refreshed every day; a snapshot older than this is not served
SNAPSHOT_TTL = timedelta(days=3)
# 0 = never expires: attributes valid from created_at; cumulative counts written only when they change
TTL = {"contact_profile": timedelta(0), "contact_send_hours": timedelta(0)}

SEND_TIME_ENGAGEMENT = ["open_rate_30d", "open_rate_90d", "sends_7d", "sends_since_last_open",
                        "days_since_last_open", "engagement_score"]

_WINDOW_COUNT = {"sends": "emails sent to the contact", "opens": "distinct sends first opened",
                 "clicks": "distinct sends first clicked", "conversions": "conversions attributed to a send"}
_SHRUNK = "per send, shrunk to the population rate of the same window: (k + 10 p) / (n + 10)"
_DAY = {"wd": "weekday", "we": "weekend day"}


def _engagement_fields() -> list[Field]:
    f = [Field(name=f"{m}_{w}d", dtype=Int64, description=f"{what} in the {w} days before the snapshot")
         for w in (7, 30, 90) for m, what in _WINDOW_COUNT.items()]
    f += [Field(name="revenue_90d", dtype=Float64, description="conversion revenue in the 90 days before the snapshot")]
    f += [Field(name=f"{m}_rate_{w}d", dtype=Float64, description=f"{m} rate over {w} days, {_SHRUNK}")
          for m, w in (("open", 30), ("click", 30), ("open", 90), ("click", 90), ("conversion", 90))]
    f += [Field(name=f"days_since_last_{e}", dtype=Float64, description=f"days since the contact's last {e} (NaN if never)")
          for e in ("open", "click", "send")]
    f += [Field(name="engagement_score", dtype=Float64,
                description="sum of w * 2^(-age / 14 days) over events; open w = 1, click 3, conversion 10"),
          Field(name="sends_since_last_open", dtype=Int64, description="sends since the last open (fatigue streak)")]
    f += [Field(name=f"{m}_total", dtype=Int64, description=f"{what}, all history before the snapshot")
          for m, what in _WINDOW_COUNT.items()]
    f += [Field(name=flag, dtype=Bool, description=f"the contact {flag} (ever, before the snapshot)")
          for flag in ("unsubscribed", "bounced", "complained")]
    f += [Field(name="tenure_days", dtype=Float64, description="days from the contact's creation to the snapshot")]
    return f


def _send_time_fields() -> list[Field]:
    f = []
    for kind, day in (("wd", "weekday"), ("we", "weekend")):
        f.append(Field(name=f"opens_{day}", dtype=Int64, description=f"first opens on a {_DAY[kind]}, all history"))
        f += [Field(name=f"open_share_{kind}_h{h:02d}", dtype=Float32,
                    description=f"share of the contact's {_DAY[kind]} first opens at local hour {h:02d} (smoothed)")
              for h in range(24)]
    f += [Field(name=f"best_hour_{day}", dtype=Int64, description=f"local hour with the largest {day} open share")
          for day in ("weekday", "weekend")]
    return f


def _send_hours_fields() -> list[Field]:
    what = {"sent": "sends whose local send hour was", "sent_opened": "opened sends whose local send hour was"}
    f = [Field(name=f"{m}_{kind}_h{h:02d}", dtype=Int64,
               description=f"{what[m]} {h:02d} on a {_DAY[kind]}, all history (an open counts from its day)")
         for m in ("sent", "sent_opened") for kind in ("wd", "we") for h in range(24)]
    f += [Field(name=f"sends_{day}", dtype=Int64, description=f"sends on a {day} (row sum of the sent_ counts)")
          for day in ("weekday", "weekend")]
    return f


def _topic_fields(topics: list[str]) -> list[Field]:
    return [Field(name=f"click_affinity_{t}", dtype=Float64,
                  description=f"90-day clicks per send of topic '{t}', shrunk to the population's topic click rate")
            for t in topics]


_PROFILE = [
    ("industry", String, "the contact's industry"), ("company_size", String, "employee band of the company"),
    ("seniority", String, "job seniority"), ("country", String, "ISO country code"),
    ("timezone", String, "IANA time zone of the contact"), ("signup_source", String, "where the contact signed up"),
    ("consent", Bool, "marketing consent at signup"), ("email_valid", Bool, "the address passes the syntax check"),
    ("email_disposable", Bool, "the domain is a known disposable-mail provider"),
    ("email_role_account", Bool, "role address such as info@ or sales@"),
    ("email_free_mail", Bool, "free-mail domain (gmail.com, ...)"),
    ("email_typo_suspected", Bool, "the domain looks like a typo of a common domain"),
    ("email_suggested_domain", String, "the likely intended domain when a typo is suspected"),
]
_CONTENT = [
    ("content_topic", String, "topic of the content item"), ("content_format", String, "format (newsletter, ...)"),
    ("subject_length", Int64, "characters in the subject line"),
    ("has_personalization", Bool, "the subject is personalized"), ("has_urgency", Bool, "the subject urges action"),
    ("has_emoji", Bool, "the subject carries an emoji"), ("content_age_days", Float64, "days since first sent"),
    ("content_sends_total", Int64, "sends of the item before the snapshot"),
    ("content_open_rate", Float64, "open rate of the item, smoothed toward the population rate"),
    ("content_click_rate", Float64, "click rate of the item, smoothed toward the population rate"),
]


def declared_fields(name: str, topics: list[str] | None = None) -> list[Field]:
    """The declared feature fields of view `name` (keys and timestamp excluded)."""
    if name == "contact_topics":
        if topics is None:
            raise ValueError("topics: contact_topics needs the list of content topics")
        return _topic_fields(topics)
    if name == "contact_profile":
        return [Field(name=n, dtype=t, description=d) for n, t, d in _PROFILE]
    if name == "content_features":
        return [Field(name=n, dtype=t, description=d) for n, t, d in _CONTENT]
    builders = {"contact_engagement": _engagement_fields, "contact_send_time": _send_time_fields,
                "contact_send_hours": _send_hours_fields}
    if name not in builders:
        raise ValueError(f"view: unknown feature view {name!r}")
    return builders[name]()


# the Arrow types each Feast type may be stored as in the pipeline's Parquet files
_STORED_AS = {Int64: {"int64", "int32"}, Float64: {"double"}, Float32: {"float"}, Bool: {"bool"},
              String: {"string", "large_string"}}
TOPIC_PREFIX = "click_affinity_"


def checked_schema(name: str, path: Path, join_key: str) -> list[Field]:
    """The declared fields of view `name`, after checking the pipeline's Parquet file holds exactly them."""
    if not path.exists():
        raise FileNotFoundError(f"{path.name}: feature table missing in {path.parent}; run `inbox features build` first")
    stored = {f.name: str(f.type) for f in pq.read_schema(path) if f.name not in (join_key, "event_timestamp")}
    topics = [c[len(TOPIC_PREFIX):] for c in stored if c.startswith(TOPIC_PREFIX)] if name == "contact_topics" else None
    fields = declared_fields(name, topics)
    declared = [f.name for f in fields]
    if list(stored) != declared:
        missing = [c for c in declared if c not in stored]
        extra = [c for c in stored if c not in declared]
        raise ValueError(f"{path.name}: columns differ from the declared {name} schema "
                         f"(missing {missing}, undeclared {extra}, or out of order)")
    for f in fields:
        if stored[f.name] not in _STORED_AS[f.dtype]:
            raise ValueError(f"{path.name}: column {f.name} is {stored[f.name]}, declared {f.dtype}")
    return fields


def source_path(path, repo_path=None) -> str:
    """A FileSource's `path`: relative to the Feast repo (`repo_path`, the feast dir) when given, else absolute.

    Feast resolves a relative FileSource path against the repo path of the store that reads it
    (`FileSource.get_uri_for_file_path`), so a registry of relative paths still names this data
    directory's tables after the directory is copied or moved; an absolute one names the original."""
    if repo_path is None:
        return str(Path(path).resolve())
    return os.path.relpath(os.path.abspath(path), os.path.abspath(repo_path))


def feature_views(features_dir, repo_path=None) -> dict[str, FeatureView]:
    """The Parquet-backed views; their sources relative to `repo_path` when given (`source_path`)."""
    features_dir = Path(features_dir)
    views = {}
    for name, entity in VIEW_ENTITY.items():
        path = features_dir / TABLE_FILES[name]
        join_key = entity.join_key
        source = FileSource(name=f"{name}_source", path=source_path(path, repo_path), timestamp_field="event_timestamp")
        views[name] = FeatureView(
            name=name,
            entities=[entity],
            ttl=TTL.get(name, SNAPSHOT_TTL),
            schema=checked_schema(name, path, join_key),
            source=source,
            online=True,
            description=VIEW_DESCRIPTIONS[name],
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


def build_repo(features_dir, repo_path=None) -> dict:
    """All Feast objects for `store.apply`: {'entities', 'views', 'odfv', 'services'}; source paths
    relative to `repo_path` when given."""
    views = feature_views(features_dir, repo_path)
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


def contact_predictions_view(features_dir, tower_width: int, repo_path=None) -> FeatureView:
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
        source=FileSource(name=f"{PREDICTIONS_VIEW}_source", path=source_path(path, repo_path),
                          timestamp_field="event_timestamp"),
        online=True,
        tags={PUBLISHED_TAG: "inbox publish"},
        description="per-contact model outputs published after training or materialize, with model versions",
    )


def contact_predictions_service(view: FeatureView) -> FeatureService:
    return FeatureService(name=PREDICTIONS_VIEW, features=[view],
                          description="published lead score, send-time grid and contact tower per contact")
