"""ESP event webhooks -> `events` rows (pure functions, no I/O).

Each provider posts its own documented format; all are normalized into one
`ProviderEvent` record and then into rows of the `events` table
(`simulation.schema.EVENTS`):

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

`event_id` is a stable 63-bit hash of the provider's own event id, so a
provider retrying a delivery is recognized as a duplicate.
"""
from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

ID_FIELDS = ("send_id", "contact_id", "decision_id", "campaign_id")
HEADER_PREFIX = "X-Inbox-"  # X-Inbox-Send-Id, X-Inbox-Contact-Id, X-Inbox-Decision-Id, X-Inbox-Campaign-Id

SENDGRID_TYPES = {
    "delivered": "delivered", "open": "open", "click": "click", "bounce": "bounce",
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
def _require(obj: Any, key: str, where: str, kind: type | tuple = object) -> Any:
    if not isinstance(obj, dict):
        raise WebhookPayloadError(where or "body", "expected a JSON object")
    if key not in obj or obj[key] is None:
        raise WebhookPayloadError(f"{where}.{key}" if where else key, "missing")
    value = obj[key]
    if not isinstance(value, kind):
        name = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise WebhookPayloadError(f"{where}.{key}" if where else key, f"expected {name}")
    return value


def _epoch(value: Any, field: str) -> datetime:
    try:
        return datetime.fromtimestamp(float(value), tz=timezone.utc)
    except (TypeError, ValueError, OverflowError):
        raise WebhookPayloadError(field, f"expected a Unix timestamp, got {value!r}") from None


def _iso(value: Any, field: str) -> datetime:
    if not isinstance(value, str):
        raise WebhookPayloadError(field, "expected an ISO 8601 timestamp")
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise WebhookPayloadError(field, f"not an ISO 8601 timestamp: {value!r}") from None
    if ts.tzinfo is None:
        raise WebhookPayloadError(field, "timestamp without a time zone")
    return ts.astimezone(timezone.utc)


def _ids(values: dict, field: str) -> dict:
    """Our identifiers from a provider's custom-args mapping (missing ones -> None)."""
    out: dict[str, Any] = {}
    for key in ID_FIELDS:
        raw = values.get(key)
        if isinstance(raw, list):  # SES tags are lists of strings
            raw = raw[0] if raw else None
        if raw in (None, ""):
            out[key] = None
        elif key in ("send_id", "contact_id"):
            try:
                out[key] = int(raw)
            except (TypeError, ValueError):
                raise WebhookPayloadError(f"{field}.{key}", f"expected an integer, got {raw!r}") from None
            if out[key] < 0:
                raise WebhookPayloadError(f"{field}.{key}", "must be >= 0")
        else:
            out[key] = str(raw)
    return out


def header_name(field: str) -> str:
    """`send_id` -> `X-Inbox-Send-Id` (the SMTP header carrying our id)."""
    return HEADER_PREFIX + "-".join(p.capitalize() for p in field.split("_"))


# --- SendGrid ---------------------------------------------------------------
def parse_sendgrid(payload: Any) -> list[ProviderEvent]:
    if not isinstance(payload, list):
        raise WebhookPayloadError("body", "SendGrid posts a JSON array of events")
    events = []
    for i, ev in enumerate(payload):
        where = f"[{i}]"
        kind = _require(ev, "event", where, str)
        event_id = _require(ev, "sg_event_id", where, str)
        occurred = _epoch(_require(ev, "timestamp", where, (int, float)), f"{where}.timestamp")
        ids = _ids(ev, where)
        events.append(ProviderEvent("sendgrid", event_id, SENDGRID_TYPES.get(kind), occurred, **ids))
    return events


# --- Mailgun ----------------------------------------------------------------
def verify_mailgun_signature(signature: dict, signing_key: str) -> bool:
    """HMAC-SHA256(signing key, timestamp + token) == signature (Mailgun's scheme)."""
    expected = hmac.new(signing_key.encode(), f"{signature['timestamp']}{signature['token']}".encode(),
                        hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, str(signature["signature"]))


def parse_mailgun(payload: Any, signing_key: str | None = None) -> list[ProviderEvent]:
    if not isinstance(payload, dict):
        raise WebhookPayloadError("body", "Mailgun posts a JSON object with 'signature' and 'event-data'")
    signature = _require(payload, "signature", "", dict)
    for key in ("timestamp", "token", "signature"):
        _require(signature, key, "signature")
    if signing_key and not verify_mailgun_signature(signature, signing_key):
        raise WebhookPayloadError("signature.signature", "does not match the signing key")
    data = _require(payload, "event-data", "", dict)
    kind = _require(data, "event", "event-data", str)
    event_id = _require(data, "id", "event-data", str)
    occurred = _epoch(_require(data, "timestamp", "event-data", (int, float)), "event-data.timestamp")
    variables = data.get("user-variables") or {}
    if not isinstance(variables, dict):
        raise WebhookPayloadError("event-data.user-variables", "expected a JSON object")
    our_type = MAILGUN_TYPES.get(kind)
    if kind == "failed" and data.get("severity") == "permanent":
        our_type = "bounce"
    return [ProviderEvent("mailgun", event_id, our_type, occurred, **_ids(variables, "event-data.user-variables"))]


# --- Amazon SES via SNS -----------------------------------------------------
def parse_ses(payload: Any) -> list[ProviderEvent]:
    if not isinstance(payload, dict):
        raise WebhookPayloadError("body", "SNS posts a JSON object")
    sns_type = _require(payload, "Type", "", str)
    if sns_type != "Notification":  # SubscriptionConfirmation / UnsubscribeConfirmation: nothing to record
        return []
    message_id = _require(payload, "MessageId", "", str)
    raw = _require(payload, "Message", "", str)
    try:
        message = json.loads(raw)
    except json.JSONDecodeError:
        raise WebhookPayloadError("Message", "not a JSON string") from None
    if not isinstance(message, dict):
        raise WebhookPayloadError("Message", "expected a JSON object")
    kind = message.get("eventType") or message.get("notificationType")
    if not isinstance(kind, str):
        raise WebhookPayloadError("Message.eventType", "missing (nor notificationType)")
    mail = _require(message, "mail", "Message", dict)
    tags = mail.get("tags") or {}
    headers = {h.get("name", "").lower(): h.get("value") for h in mail.get("headers") or [] if isinstance(h, dict)}
    values = {k: tags.get(k) or headers.get(header_name(k).lower()) for k in ID_FIELDS}
    detail = message.get(kind[0].lower() + kind[1:]) or {}
    stamp = detail.get("timestamp") if isinstance(detail, dict) else None
    occurred = _iso(stamp or _require(mail, "timestamp", "Message.mail"), "Message.timestamp")
    our_type = SES_TYPES.get(kind.lower())
    if our_type == "bounce" and detail.get("bounceType") != "Permanent":
        our_type = None  # transient bounces are retried by SES
    return [ProviderEvent("ses", message_id, our_type, occurred, **_ids(values, "Message.mail.tags"))]


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
