"""One webhook call from raw bytes to recorded events, per provider, failing closed.

Order of checks (each failure records nothing):

1. the provider has a key configured, else 401;
2. the signature verifies (SendGrid headers over the raw body; Mailgun HMAC,
   fresh timestamp and unused token; SNS certificate signature of an
   allow-listed topic), else 401;
3. the body is the provider's JSON format with fields of the right types,
   else 400 naming the field; more than `max_events` events: 413;
4. events are recorded only if they match a known send (`serving.ingest`).

An SNS `SubscriptionConfirmation` is confirmed only after step 2; an
`UnsubscribeConfirmation` is verified and acknowledged. A Mailgun token is
released again when recording fails on our side, so the provider's retry passes.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from serving.ingest import ingest
from serving.replay_cache import ReplayCache
from serving.schemas import WebhookResponse
from serving.send_lookup import SendLookup
from serving.sns_signatures import Fetch, SnsVerifier, http_fetch
from serving.webhook_settings import KeySource, WebhookLimits, webhook_dir
from serving.webhook_signatures import SignatureError, load_sendgrid_key, verify_mailgun, verify_sendgrid
from serving.webhooks import WebhookPayloadError, parse_mailgun, parse_sendgrid, parse_ses_message

logger = logging.getLogger("inbox.webhooks")
PROVIDERS = ("sendgrid", "mailgun", "ses")


@dataclass
class WebhookError(Exception):
    """An answer other than 200: status, the field at fault, why."""

    status: int
    field: str
    problem: str

    def body(self) -> dict:
        return {"error": f"{self.field}: {self.problem}", "field": self.field}


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # JSONDecodeError, bad UTF-8, nesting deeper than the parser allows
        raise WebhookError(400, "body", "not valid JSON") from None


class WebhookReceiver:
    """Verifies, parses and records webhook calls; one per worker."""

    def __init__(self, settings, journal, *, fetch: Fetch = http_fetch, lookup: SendLookup | None = None,
                 limits: WebhookLimits | None = None, consent=None, clock: Callable[[], float] = time.time):
        self.settings = settings
        self.journal = journal
        self.keys = KeySource(settings)
        self.limits = limits or WebhookLimits.from_env()
        self.replay = ReplayCache(webhook_dir(settings) / "replay.db")
        self.sns = SnsVerifier(fetch, webhook_dir(settings) / "sns_certs")
        self.lookup = lookup or SendLookup.for_settings(settings)
        self.consent = consent
        self.clock = clock
        self._sendgrid_key: tuple[str, Any] | None = None

    @classmethod
    def for_service(cls, settings, journal) -> "WebhookReceiver":
        """The service's receiver: the production fetcher and the installation's consent ledger."""
        from privacy.consent import ConsentLedger

        return cls(settings, journal, consent=ConsentLedger.open(settings))

    def close(self) -> None:
        self.replay.close()
        if self.consent is not None:
            self.consent.close()

    def handle(self, provider: str, headers, body: bytes, allocator) -> WebhookResponse:
        """The response for one call, or WebhookError (4xx, nothing recorded)."""
        try:
            if provider == "sendgrid":
                return self._sendgrid(headers, body, allocator)
            if provider == "mailgun":
                return self._mailgun(body, allocator)
            return self._ses(body, allocator)
        except SignatureError as exc:
            logger.info("webhook %s refused: %s", provider, exc)  # the field and why; no secret, no body
            raise WebhookError(401, exc.field, str(exc).split(": ", 1)[-1]) from None
        except WebhookPayloadError as exc:
            raise WebhookError(400, exc.field, str(exc).split(": ", 1)[-1]) from None

    def _limit(self, n: int) -> None:
        if n > self.limits.max_events:
            raise WebhookError(413, "body", f"{n} events in one call; at most {self.limits.max_events}")

    def _record(self, provider: str, events, allocator) -> WebhookResponse:
        self._limit(len(events))
        return ingest(provider, events, self.journal, allocator, self.lookup, self.consent)

    # --- providers ----------------------------------------------------------------
    def _sendgrid(self, headers, body: bytes, allocator) -> WebhookResponse:
        text = self.keys.current().sendgrid_public_key
        if text is None:
            raise SignatureError("provider", "no SendGrid verification key configured")
        if self._sendgrid_key is None or self._sendgrid_key[0] != text:
            try:
                self._sendgrid_key = (text, load_sendgrid_key(text))
            except ValueError as exc:
                logger.error("SendGrid key unusable: %s", exc)
                raise SignatureError("provider", "the configured SendGrid key is unusable") from None
        verify_sendgrid(self._sendgrid_key[1], headers, body, self.clock(), self.limits.max_age_s)
        payload = _json(body)
        if isinstance(payload, list):
            self._limit(len(payload))
        return self._record("sendgrid", parse_sendgrid(payload), allocator)

    def _mailgun(self, body: bytes, allocator) -> WebhookResponse:
        key = self.keys.current().mailgun_signing_key
        if key is None:
            raise SignatureError("provider", "no Mailgun signing key configured")
        payload = _json(body)
        if not isinstance(payload, dict):
            raise WebhookPayloadError("body", "Mailgun posts a JSON object with 'signature' and 'event-data'")
        token = verify_mailgun(key, payload.get("signature"), self.clock(), self.limits.max_age_s,
                               self.replay.claim)
        try:
            return self._record("mailgun", parse_mailgun(payload), allocator)
        except (WebhookError, WebhookPayloadError):
            raise  # the request itself is bad: its token stays spent
        except BaseException:
            self.replay.release(token)
            raise

    def _ses(self, body: bytes, allocator) -> WebhookResponse:
        topics = self.keys.current().sns_topic_arns
        if not topics:
            raise SignatureError("provider", "no SNS topic allow-listed (INBOX_SNS_TOPIC_ARNS)")
        fields = self.sns.verify(_json(body), topics, datetime.fromtimestamp(self.clock(), timezone.utc),
                                 self.limits.sns_max_age_s)
        kind = fields["Type"]
        if kind == "Notification":
            return self._record("ses", parse_ses_message(fields["MessageId"], fields["Message"]), allocator)
        if kind == "SubscriptionConfirmation":
            try:
                self.sns.confirm_subscription(fields)
            except SignatureError:
                raise
            except Exception as exc:
                raise WebhookError(502, "SubscribeURL", f"confirmation failed ({type(exc).__name__})") from None
            logger.info("SNS subscription confirmed for topic %s", fields["TopicArn"])
        else:
            logger.info("SNS unsubscribe confirmation for topic %s (not re-subscribed)", fields["TopicArn"])
        return WebhookResponse(provider="ses", received=0, recorded=0, duplicates=0, ignored=0, rewards={})
