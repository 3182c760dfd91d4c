"""Amazon SNS message signatures (SES notifications arrive through SNS).

SNS signs each message with RSA (PKCS #1 v1.5, RFC 8017): SignatureVersion 1
with SHA-1, version 2 with SHA-256, over a canonical string of the message's
fields, each written as `name\\nvalue\\n` in the documented order:

- Notification: Message, MessageId, Subject (only when present), Timestamp, TopicArn, Type
- SubscriptionConfirmation / UnsubscribeConfirmation: Message, MessageId,
  SubscribeURL, Timestamp, Token, TopicArn, Type

https://docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html

The X.509 certificate comes from `SigningCertURL`, which must be https on a
host `sns.<region>.amazonaws.com` (`.com.cn` in China) of the topic's own
region; any other URL is refused before anything is fetched. A certificate is
fetched once and cached, in memory and in `cache_dir` (shared by workers;
`inbox demo` seeds it with the certificate its simulated SNS signs with).
`fetch(url) -> bytes` is injectable so tests make their own certificate and
key. Topics are allow-listed (INBOX_SNS_TOPIC_ARNS): an empty list accepts
nothing. `SubscriptionConfirmation` is confirmed (GET `SubscribeURL`, same
host rule, same fetcher) only after its signature verifies.

The signed `Timestamp` (when SNS published the message; retries keep it) must
lie within `max_age_s` of the server's clock, so a captured message cannot be
replayed later; within the window the journal deduplicates by MessageId. SNS's
default HTTP delivery policy retries for about a minute; a custom policy that
retries longer needs a larger window (INBOX_SNS_MAX_AGE_S).
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import tempfile
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from serving.webhook_signatures import SignatureError
from serving.webhooks import WebhookPayloadError, iso_time

SNS_HOST = re.compile(r"sns\.([a-z]{2}(?:-[a-z]+)+-\d)\.amazonaws\.com(?:\.cn)?")
TOPIC_ARN = re.compile(r"arn:aws(?:-[a-z]+)*:sns:([a-z]{2}(?:-[a-z]+)+-\d):\d{12}:[A-Za-z0-9_.-]{1,256}")
SIGNED_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
    "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
}
OPTIONAL_FIELDS = {"Subject"}
HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}
MAX_CERT_BYTES = 64 * 1024

Fetch = Callable[[str], bytes]


def http_fetch(url: str) -> bytes:
    """GET `url` (no redirects, 10 s timeout, at most 64 KiB); the production fetcher."""
    import httpx

    with httpx.stream("GET", url, timeout=10, follow_redirects=False) as r:
        if r.status_code != 200:
            raise OSError(f"HTTP {r.status_code}")
        body = b""
        for chunk in r.iter_bytes():
            body += chunk
            if len(body) > MAX_CERT_BYTES:
                raise OSError("response too large")
    return body


def sns_region(url: str, field: str) -> str:
    """The region of an https URL on an SNS host; SignatureError for any other URL."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port  # .port raises on a non-numeric port
    except ValueError:
        raise SignatureError(field, "not a URL") from None
    if parts.scheme != "https" or parts.username or parts.password or port not in (None, 443):
        raise SignatureError(field, "must be an https URL on sns.<region>.amazonaws.com")
    match = SNS_HOST.fullmatch(host)
    if match is None:
        raise SignatureError(field, "host is not sns.<region>.amazonaws.com")
    return match.group(1)


def message_fields(msg: Any) -> dict[str, str]:
    """The signed fields and signature fields of an SNS message, type-checked (400 on a wrong type)."""
    if not isinstance(msg, dict):
        raise WebhookPayloadError("body", "SNS posts a JSON object")
    kind = msg.get("Type")
    if not isinstance(kind, str) or kind not in SIGNED_FIELDS:
        raise WebhookPayloadError("Type", f"expected one of {', '.join(SIGNED_FIELDS)}")
    out = {}
    for name in (*SIGNED_FIELDS[kind], "SignatureVersion", "Signature", "SigningCertURL"):
        value = msg.get(name)
        if value is None:
            if name in OPTIONAL_FIELDS:
                continue
            if name in ("SignatureVersion", "Signature", "SigningCertURL"):
                raise SignatureError(name, "missing (unsigned message)")
            raise WebhookPayloadError(name, "missing")
        if not isinstance(value, str):
            raise WebhookPayloadError(name, "expected a string")
        out[name] = value
    return out


def check_published(timestamp: str, now: datetime, max_age_s: float) -> datetime:
    """The message's ISO 8601 UTC `Timestamp`, if within `max_age_s` of `now`; else SignatureError."""
    published = iso_time(timestamp, "Timestamp")  # the webhook parsers' ISO 8601 rules (400 when not one)
    if abs((now - published).total_seconds()) > max_age_s:
        raise SignatureError("Timestamp", f"more than {max_age_s:.0f} s away from the server's clock")
    return published


def canonical_string(fields: dict[str, str]) -> bytes:
    """The bytes SNS signs for this message type."""
    names = SIGNED_FIELDS[fields["Type"]]
    return "".join(f"{n}\n{fields[n]}\n" for n in names if n in fields).encode()


class SnsVerifier:
    """Verifies SNS messages of allow-listed topics; certificates fetched once through `fetch`."""

    def __init__(self, fetch: Fetch = http_fetch, cache_dir: str | Path | None = None):
        self.fetch = fetch
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._certs: dict[str, x509.Certificate] = {}
        self._lock = threading.Lock()

    def verify(self, msg: Any, topic_arns, now: datetime | None = None,
               max_age_s: float = 3600.0) -> dict[str, str]:
        """The message's fields once its signature verifies, its topic is in `topic_arns` and its
        Timestamp is within `max_age_s` of `now`; SignatureError (401) or WebhookPayloadError (400)."""
        fields = message_fields(msg)
        now = now or datetime.now(timezone.utc)
        check_published(fields["Timestamp"], now, max_age_s)
        topic = fields["TopicArn"]
        if topic not in topic_arns:
            raise SignatureError("TopicArn", "not an allow-listed topic (INBOX_SNS_TOPIC_ARNS)")
        topic_match = TOPIC_ARN.fullmatch(topic)
        if topic_match is None:
            raise SignatureError("TopicArn", "not an SNS topic ARN")
        if sns_region(fields["SigningCertURL"], "SigningCertURL") != topic_match.group(1):
            raise SignatureError("SigningCertURL", "not in the topic's region")
        algorithm = HASHES.get(fields["SignatureVersion"])
        if algorithm is None:
            raise SignatureError("SignatureVersion", "expected 1 or 2")
        try:
            signature = base64.b64decode(fields["Signature"], validate=True)
        except (binascii.Error, ValueError):
            raise SignatureError("Signature", "not base64") from None
        key = self.certificate(fields["SigningCertURL"], now).public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise SignatureError("SigningCertURL", "certificate holds no RSA key")
        try:
            key.verify(signature, canonical_string(fields), padding.PKCS1v15(), algorithm())
        except InvalidSignature:
            raise SignatureError("Signature", "does not verify with the topic's certificate") from None
        return fields

    def confirm_subscription(self, fields: dict[str, str]) -> None:
        """GET the SubscribeURL of a verified SubscriptionConfirmation (same host rule, same fetcher)."""
        region = sns_region(fields["SubscribeURL"], "SubscribeURL")
        if region != TOPIC_ARN.fullmatch(fields["TopicArn"]).group(1):
            raise SignatureError("SubscribeURL", "not in the topic's region")
        self.fetch(fields["SubscribeURL"])

    # --- certificates -----------------------------------------------------------
    def _cache_file(self, url: str) -> Path | None:
        return None if self.cache_dir is None else cache_path(self.cache_dir, url)

    def certificate(self, url: str, now: datetime | None = None) -> x509.Certificate:
        """The certificate at `url` (memory, then the cache dir, then one fetch); must be valid now."""
        with self._lock:
            cert = self._certs.get(url)
            if cert is None:
                cert = self._load(url)
                self._certs[url] = cert
        now = now or datetime.now(timezone.utc)
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise SignatureError("SigningCertURL", "certificate not valid now")
        return cert

    def _load(self, url: str) -> x509.Certificate:
        path = self._cache_file(url)
        if path is not None and path.exists():
            pem = path.read_bytes()
        else:
            try:
                pem = self.fetch(url)
            except Exception as exc:  # the provider's certificate is unavailable: not verified
                raise SignatureError("SigningCertURL", f"could not be fetched ({type(exc).__name__})") from None
        try:
            cert = x509.load_pem_x509_certificate(pem)
        except ValueError:
            raise SignatureError("SigningCertURL", "not a PEM certificate") from None
        if path is not None and not path.exists():
            store_certificate(path, pem)
        return cert


def cache_path(cache_dir: str | Path, url: str) -> Path:
    """Where the certificate fetched from `url` is cached."""
    return Path(cache_dir) / (hashlib.sha256(url.encode()).hexdigest() + ".pem")


def store_certificate(path: Path, pem: bytes) -> None:
    """Write a cached certificate atomically (temp file beside it, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def seed_certificate(cache_dir: str | Path, url: str, pem: bytes) -> None:
    """Put a certificate into the cache as if fetched from `url` (the demo's simulated SNS)."""
    sns_region(url, "SigningCertURL")
    store_certificate(cache_path(cache_dir, url), pem)
