"""ESP event webhooks -> `events` rows (pure functions, no I/O).

Each provider posts its own documented format; all are normalized into one
`ProviderEvent` record and then into rows of the `events` table
(`simulation.schema.EVENTS`). Signatures are checked before any of this runs
(`serving.webhook_signatures`, `serving.sns_signatures`); these parsers only
read bodies that a provider signed.

- SendGrid Event Webhook: a JSON array of events; our custom args
  (`send_id`, `contact_id`, `decision_id`, `campaign_id`) arrive as top-level
  keys of each event. https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/event
- Mailgun webhooks: `{"signature": {timestamp, token, signature}, "event-data": {...}}`,
  our variables in `event-data.user-variables` (from the `X-Mailgun-Variables`
  header). https://documentation.mailgun.com/docs/mailgun/user-manual/events/webhooks
- Amazon SES through SNS: `{"Type": "Notification", "MessageId", "Message": "<json>"}`
  where the message has `eventType` (event publishing) or `notificationType`
  (feedback notifications); our ids in `mail.tags` or `mail.headers`.
  https://docs.aws.amazon.com/ses/latest/dg/event-publishing-retrieving-sns-contents.html

Bounce classes (issue 15): a hard bounce is recorded as type `bounce` (it
suppresses the contact), a soft one as `soft_bounce` (it does not; the
audience may suppress after N consecutive ones):

| provider | hard (`bounce`) | soft (`soft_bounce`) |
|---|---|---|
| SendGrid | `bounce` (bounce type `bounce`) | `bounce` with type `blocked`, `deferred` |
| Mailgun | `failed`, severity `permanent` | `failed`, any other severity |
| SES | `Bounce`, bounceType `Permanent` | `Bounce`, `Transient` or `Undetermined` |

`event_id` is a stable 63-bit hash of the provider's own event id, so a
provider retrying a delivery is recognized as a duplicate.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

ID_FIELDS = ("send_id", "contact_id", "decision_id", "campaign_id")
HEADER_PREFIX = "X-Inbox-"  # X-Inbox-Send-Id, X-Inbox-Contact-Id, X-Inbox-Decision-Id, X-Inbox-Campaign-Id
MAX_ID = 2**63 - 1          # send and contact ids are int64
MAX_TEXT_ID = 200           # decision / campaign / provider event ids
EARLIEST = datetime(2000, 1, 1, tzinfo=timezone.utc)  # event times outside [EARLIEST, LATEST) are not plausible
LATEST = datetime(2100, 1, 1, tzinfo=timezone.utc)

SENDGRID_TYPES = {
    "delivered": "delivered", "open": "open", "click": "click", "bounce": "bounce", "deferred": "soft_bounce",
    "spamreport": "complaint", "unsubscribe": "unsubscribe", "group_unsubscribe": "unsubscribe",
}
MAILGUN_TYPES = {
    "delivered": "delivered", "opened": "open", "clicked": "click",
    "complained": "complaint", "unsubscribed": "unsubscribe",
}
SES_TYPES = {
    "delivery": "delivered", "open": "open", "click": "click", "bounce": "bounce",
    "complaint": "complaint", "subscription": "unsubscribe",
}


class WebhookPayloadError(ValueError):
    """The body is not the provider's format; the message names the field."""

    def __init__(self, field: str, problem: str):
        self.field = field
        super().__init__(f"{field}: {problem}")


@dataclass(frozen=True)
class ProviderEvent:
    provider: str
    provider_event_id: str
    type: str | None            # our event type, None = a provider event we do not record
    occurred_at: datetime
    send_id: int | None
    contact_id: int | None
    decision_id: str | None
    campaign_id: str | None
    value: float | None = None

    @property
    def event_id(self) -> int:
        return stable_event_id(self.provider, self.provider_event_id)

    @property
    def recordable(self) -> bool:
        return self.type is not None and self.send_id is not None and self.contact_id is not None


def stable_event_id(provider: str, provider_event_id: str) -> int:
    """63-bit non-negative hash of `provider:event id` (int64-safe, stable across processes)."""
    digest = hashlib.blake2b(f"{provider}:{provider_event_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


# --- helpers ----------------------------------------------------------------
def _kind_name(kind: type | tuple) -> str:
    return kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)


def _require(obj: Any, key: str, where: str, kind: type | tuple = object) -> Any:
    if not isinstance(obj, dict):
        raise WebhookPayloadError(where or "body", "expected a JSON object")
    if key not in obj or obj[key] is None:
        raise WebhookPayloadError(f"{where}.{key}" if where else key, "missing")
    value = obj[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):  # JSON true is no number
        raise WebhookPayloadError(f"{where}.{key}" if where else key, f"expected {_kind_name(kind)}")
    return value


def _optional(obj: dict, key: str, where: str, kind: type | tuple, default: Any) -> Any:
    """obj[key] when present and not null, else `default`; a value of another type is an error."""
    if obj.get(key) is None:
        return default
    return _require(obj, key, where, kind)


def _event_id(obj: dict, key: str, where: str) -> str:
    value = _require(obj, key, where, str)
    if not 0 < len(value) <= MAX_TEXT_ID:
        raise WebhookPayloadError(f"{where}.{key}" if where else key, f"expected 1-{MAX_TEXT_ID} characters")
    return value


def _plausible(ts: datetime, field: str) -> datetime:
    if not EARLIEST <= ts < LATEST:
        raise WebhookPayloadError(field, f"timestamp outside {EARLIEST.year}-{LATEST.year - 1}")
    return ts


def _epoch(value: Any, field: str) -> datetime:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise WebhookPayloadError(field, "expected a Unix timestamp (a number)")
    try:
        ts = datetime.fromtimestamp(float(value), tz=timezone.utc)
    except (ValueError, OverflowError, OSError):
        raise WebhookPayloadError(field, f"timestamp outside {EARLIEST.year}-{LATEST.year - 1}") from None
    return _plausible(ts, field)


def iso_time(value: Any, field: str) -> datetime:
    """An ISO 8601 time with a zone, as UTC; WebhookPayloadError (400) naming `field` otherwise."""
    if not isinstance(value, str):
        raise WebhookPayloadError(field, "expected an ISO 8601 timestamp")
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise WebhookPayloadError(field, "not an ISO 8601 timestamp") from None
    if ts.tzinfo is None:
        raise WebhookPayloadError(field, "timestamp without a time zone")
    return _plausible(ts.astimezone(timezone.utc), field)


def _int_id(raw: Any, field: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, (int, str)):
        raise WebhookPayloadError(field, "expected an integer")
    if isinstance(raw, str) and not (raw.isascii() and raw.isdigit() and len(raw) <= 19):
        raise WebhookPayloadError(field, "expected a non-negative integer")
    value = int(raw)
    if not 0 <= value <= MAX_ID:
        raise WebhookPayloadError(field, f"expected an integer in 0..{MAX_ID}")
    return value


def _ids(values: dict, field: str) -> dict:
    """Our identifiers from a provider's custom-args mapping (missing ones -> None)."""
    out: dict[str, Any] = {}
    for key in ID_FIELDS:
        raw = values.get(key)
        if isinstance(raw, list):  # SES tags are lists of strings
            raw = raw[0] if raw else None
        if raw is None or raw == "":
            out[key] = None
        elif key in ("send_id", "contact_id"):
            out[key] = _int_id(raw, f"{field}.{key}")
        else:
            if isinstance(raw, bool) or not isinstance(raw, (str, int)) or len(str(raw)) > MAX_TEXT_ID:
                raise WebhookPayloadError(f"{field}.{key}", f"expected a string of at most {MAX_TEXT_ID} characters")
            out[key] = str(raw)
    return out


def header_name(field: str) -> str:
    """`send_id` -> `X-Inbox-Send-Id` (the SMTP header carrying our id)."""
    return HEADER_PREFIX + "-".join(p.capitalize() for p in field.split("_"))


# --- SendGrid ---------------------------------------------------------------
def sendgrid_type(kind: str, bounce_type: Any) -> str | None:
    """Our type of a SendGrid event: a `bounce` whose `type` is `blocked` is soft (issue 15)."""
    if kind == "bounce" and bounce_type == "blocked":
        return "soft_bounce"
    return SENDGRID_TYPES.get(kind)


def parse_sendgrid(payload: Any) -> list[ProviderEvent]:
    if not isinstance(payload, list):
        raise WebhookPayloadError("body", "SendGrid posts a JSON array of events")
    events = []
    for i, ev in enumerate(payload):
        where = f"[{i}]"
        kind = _require(ev, "event", where, str)
        event_id = _event_id(ev, "sg_event_id", where)
        occurred = _epoch(_require(ev, "timestamp", where, (int, float)), f"{where}.timestamp")
        ids = _ids(ev, where)
        our_type = sendgrid_type(kind, ev.get("type"))
        events.append(ProviderEvent("sendgrid", event_id, our_type, occurred, **ids))
    return events


# --- Mailgun ----------------------------------------------------------------
def mailgun_type(kind: str, severity: Any) -> str | None:
    """Our type of a Mailgun event: `failed` is a hard bounce when permanent, soft otherwise (issue 15)."""
    if kind == "failed":
        return "bounce" if severity == "permanent" else "soft_bounce"
    return MAILGUN_TYPES.get(kind)


def parse_mailgun(payload: Any) -> list[ProviderEvent]:
    """The event of a Mailgun webhook body (its `signature` is checked by `webhook_signatures`)."""
    if not isinstance(payload, dict):
        raise WebhookPayloadError("body", "Mailgun posts a JSON object with 'signature' and 'event-data'")
    data = _require(payload, "event-data", "", dict)
    kind = _require(data, "event", "event-data", str)
    event_id = _event_id(data, "id", "event-data")
    occurred = _epoch(_require(data, "timestamp", "event-data", (int, float)), "event-data.timestamp")
    variables = _optional(data, "user-variables", "event-data", dict, {})
    our_type = mailgun_type(kind, data.get("severity"))
    return [ProviderEvent("mailgun", event_id, our_type, occurred, **_ids(variables, "event-data.user-variables"))]


# --- Amazon SES via SNS -----------------------------------------------------
def ses_type(kind: str, detail: dict) -> str | None:
    """Our type of an SES event: a `Bounce` is hard only when its bounceType is `Permanent` (issue 15)."""
    our_type = SES_TYPES.get(kind.lower())
    if our_type == "bounce" and detail.get("bounceType") != "Permanent":
        return "soft_bounce"  # Transient or Undetermined
    return our_type


def _ses_tag(value: Any, key: str) -> Any:
    """A tag value as the sender set it: SES tags allow only [A-Za-z0-9_-], so the send pipeline escapes
    (`sending.headers.ses_tag_value`); a malformed escape is a 400."""
    from sending.headers import ses_tag_decode  # imported here: sending.headers imports this module

    if isinstance(value, list):
        if not all(isinstance(v, str) for v in value):
            raise WebhookPayloadError(f"Message.mail.tags.{key}", "expected a list of strings")
        value = value[0] if value else None
    if not isinstance(value, str):
        return value
    try:
        return ses_tag_decode(value)
    except ValueError:
        raise WebhookPayloadError(f"Message.mail.tags.{key}", "not an escaped tag value") from None


def _ses_ids(mail: dict) -> dict:
    tags = _optional(mail, "tags", "Message.mail", dict, {})
    headers: dict[str, Any] = {}
    for i, h in enumerate(_optional(mail, "headers", "Message.mail", list, [])):
        where = f"Message.mail.headers[{i}]"
        name = _require(h, "name", where, str)
        headers[name.lower()] = _optional(h, "value", where, str, None)
    values = {k: _ses_tag(tags.get(k), k) or headers.get(header_name(k).lower()) for k in ID_FIELDS}
    return _ids(values, "Message.mail.tags")


def parse_ses_message(message_id: str, raw: Any) -> list[ProviderEvent]:
    """The event in an SES notification's `Message` (a JSON string)."""
    if not isinstance(raw, str):
        raise WebhookPayloadError("Message", "expected a JSON string")
    try:
        message = json.loads(raw)
    except (json.JSONDecodeError, RecursionError):
        raise WebhookPayloadError("Message", "not a JSON string") from None
    if not isinstance(message, dict):
        raise WebhookPayloadError("Message", "expected a JSON object")
    kind = message.get("eventType") or message.get("notificationType")
    if not isinstance(kind, str) or not kind:
        raise WebhookPayloadError("Message.eventType", "missing (nor notificationType)")
    mail = _require(message, "mail", "Message", dict)
    detail_key = kind[0].lower() + kind[1:]
    detail = _optional(message, detail_key, "Message", dict, {})
    stamp = detail.get("timestamp")
    field = f"Message.{detail_key}.timestamp" if stamp is not None else "Message.mail.timestamp"
    occurred = iso_time(stamp if stamp is not None else _require(mail, "timestamp", "Message.mail"), field)
    return [ProviderEvent("ses", message_id, ses_type(kind, detail), occurred, **_ses_ids(mail))]


def parse_ses(payload: Any) -> list[ProviderEvent]:
    """Events of an SNS message (its signature is checked by `sns_signatures`); only Notifications hold any."""
    if not isinstance(payload, dict):
        raise WebhookPayloadError("body", "SNS posts a JSON object")
    sns_type = _require(payload, "Type", "", str)
    if sns_type != "Notification":  # SubscriptionConfirmation / UnsubscribeConfirmation: no events
        return []
    return parse_ses_message(_event_id(payload, "MessageId", ""), payload.get("Message"))


PARSERS = {"sendgrid": parse_sendgrid, "mailgun": parse_mailgun, "ses": parse_ses}


def to_event_rows(events: list[ProviderEvent]) -> pd.DataFrame:
    """The recordable events as rows of the `events` table (duplicates within the batch dropped)."""
    keep = [e for e in events if e.recordable]
    df = pd.DataFrame({
        "event_id": np.array([e.event_id for e in keep], dtype=np.int64),
        "send_id": np.array([e.send_id for e in keep], dtype=np.int64),
        "contact_id": np.array([e.contact_id for e in keep], dtype=np.int64),
        "type": pd.Series([e.type for e in keep], dtype=object),
        "occurred_at": pd.to_datetime([e.occurred_at for e in keep], utc=True).astype("datetime64[us, UTC]"),
        "value": pd.Series([e.value for e in keep], dtype="float64"),
    })
    return df.drop_duplicates("event_id", ignore_index=True)
