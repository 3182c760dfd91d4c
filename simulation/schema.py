"""The event-log contract: four Parquet tables, their columns and their rules.

These are the only files that cross from "what happened" (an ESP export, the
simulator, the send pipeline, webhooks) into features and models. A user
bringing their own data writes these four tables; `simulation.eventlog`
validates them on read and on write.

All timestamps are timezone-aware UTC (`timestamp[us, tz=UTC]`); contacts
carry an IANA time zone name for local-time features.
"""
from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

UTC_TS = pa.timestamp("us", tz="UTC")

# `bounce` is a hard (permanent) bounce and suppresses the contact; `soft_bounce` (blocked, deferred,
# transient) does not (serving.webhooks maps each provider). Appended last: existing type codes are unchanged.
EVENT_TYPES = ("delivered", "open", "click", "conversion", "unsubscribe", "bounce", "complaint", "soft_bounce")


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    nullable: bool = False
    doc: str = ""
    unique: bool = False
    non_negative: bool = False
    allowed: tuple[str, ...] | None = None
    # closed interval check for floats, e.g. propensity in (0, 1]
    min_exclusive: float | None = None
    max_inclusive: float | None = None


@dataclass(frozen=True)
class TableSchema:
    name: str
    columns: tuple[Column, ...]
    doc: str = ""

    @property
    def arrow(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.type, nullable=c.nullable) for c in self.columns])

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


CONTACTS = TableSchema(
    "contacts",
    (
        Column("contact_id", pa.int64(), unique=True, non_negative=True, doc="stable contact key"),
        Column("email", pa.string(), doc="address as given; quality is checked by features"),
        Column("created_at", UTC_TS, doc="when the contact entered the list"),
        Column("industry", pa.string()),
        Column("company_size", pa.string(), doc="1-10, 11-50, 51-200, 201-1000, 1000+"),
        Column("seniority", pa.string(), doc="ic, manager, director, executive"),
        Column("country", pa.string(), doc="ISO 3166-1 alpha-2"),
        Column("timezone", pa.string(), doc="IANA time zone, e.g. Europe/Berlin"),
        Column("signup_source", pa.string(), doc="form, webinar, import, referral, purchase"),
        Column("consent", pa.bool_(), doc="marketing consent; no consent, no mail"),
    ),
    "one row per contact",
)

CONTENT = TableSchema(
    "content",
    (
        Column("content_id", pa.int64(), unique=True, non_negative=True, doc="content item / campaign variant key"),
        Column("name", pa.string()),
        Column("topic", pa.string(), doc="product, education, case_study, event, promotion, news"),
        Column("format", pa.string(), doc="newsletter, plain, promo, digest"),
        Column("subject", pa.string(), doc="subject line"),
        Column("subject_length", pa.int32(), non_negative=True),
        Column("has_personalization", pa.bool_(), doc="subject has a {first_name}-style token"),
        Column("has_urgency", pa.bool_(), doc="subject has urgency words"),
        Column("has_emoji", pa.bool_()),
        Column("created_at", UTC_TS),
    ),
    "one row per content item (a subject + body variant a campaign can send)",
)

SENDS = TableSchema(
    "sends",
    (
        Column("send_id", pa.int64(), unique=True, non_negative=True),
        Column("contact_id", pa.int64(), non_negative=True),
        Column("campaign_id", pa.string()),
        Column("content_id", pa.int64(), non_negative=True),
        Column("sent_at", UTC_TS),
        Column("decision_id", pa.string(), nullable=True, doc="set when an allocator chose the variant"),
        Column(
            "propensity",
            pa.float64(),
            nullable=True,
            min_exclusive=0.0,
            max_inclusive=1.0,
            doc="probability the allocator gave the sent variant, in (0, 1]",
        ),
    ),
    "one row per email sent",
)

EVENTS = TableSchema(
    "events",
    (
        Column("event_id", pa.int64(), unique=True, non_negative=True),
        Column("send_id", pa.int64(), non_negative=True),
        Column("contact_id", pa.int64(), non_negative=True),
        Column("type", pa.string(), allowed=EVENT_TYPES),
        Column("occurred_at", UTC_TS),
        Column("value", pa.float64(), nullable=True, non_negative=True, doc="revenue for conversions"),
    ),
    "engagement events, each tied to the send that caused it",
)

TABLES: dict[str, TableSchema] = {t.name: t for t in (CONTACTS, CONTENT, SENDS, EVENTS)}


def markdown() -> str:
    """The schemas as Markdown tables (the README's 'bring your own data' section)."""
    out = []
    for t in TABLES.values():
        out.append(f"### `{t.name}.parquet` ({t.doc})\n")
        out.append("| column | type | nullable | notes |\n|---|---|---|---|")
        for c in t.columns:
            notes = [c.doc] if c.doc else []
            if c.unique:
                notes.append("unique")
            if c.non_negative:
                notes.append(">= 0")
            if c.allowed:
                notes.append("one of " + ", ".join(c.allowed))
            out.append(f"| `{c.name}` | {c.type} | {'yes' if c.nullable else 'no'} | {'; '.join(notes)} |")
        out.append("")
    return "\n".join(out)
