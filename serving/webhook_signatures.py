"""Provider signatures of SendGrid and Mailgun webhooks, checked before a body is read as events.

Every check fails closed: a missing header, a malformed or non-ASCII value, a
stale timestamp, a reused Mailgun token or a wrong signature raises
`SignatureError` (the app answers 401 and records nothing).

- SendGrid Signed Event Webhook: ECDSA over P-256 with SHA-256 (FIPS 186-4,
  signature DER-encoded, base64) of `timestamp + raw body`; the public key is
  the base64 DER SubjectPublicKeyInfo shown in SendGrid's mail settings.
  https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/getting-started-event-webhook-security-features
- Mailgun: hex HMAC-SHA256 (RFC 2104) keyed by the webhook signing key over
  `timestamp + token`, compared in constant time. The signature does not cover
  the body, so a token is accepted once (`serving.replay_cache`) and only
  within the freshness window.
  https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/securing-webhooks

Both timestamps must lie within `max_age_s` of the server's clock (either
direction), which bounds how long a captured request stays usable.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Any, Callable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

SENDGRID_SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"
MAX_TOKEN = 200       # Mailgun tokens are 50 hex characters
MAX_HEADER = 1024     # a base64 DER P-256 signature is under 100 characters


class SignatureError(Exception):
    """The request is not signed by the provider; `field` names what failed (never the secret)."""

    def __init__(self, field: str, problem: str):
        self.field = field
        super().__init__(f"{field}: {problem}")


def _ascii(value: Any, field: str, limit: int = MAX_HEADER) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise SignatureError(field, "missing or not a string")
    value = str(value)
    if not value or len(value) > limit or not value.isascii():
        raise SignatureError(field, "empty, too long or not ASCII")
    return value


def check_fresh(timestamp: Any, now: float, max_age_s: float, field: str) -> int:
    """The integer Unix timestamp, if within `max_age_s` of `now`; else SignatureError."""
    text = _ascii(timestamp, field, 20)
    if not text.isdigit():
        raise SignatureError(field, "not a Unix timestamp")
    ts = int(text)
    if abs(now - ts) > max_age_s:
        raise SignatureError(field, f"more than {max_age_s:.0f} s away from the server's clock")
    return ts


# --- SendGrid -----------------------------------------------------------------
def load_sendgrid_key(text: str) -> ec.EllipticCurvePublicKey:
    """SendGrid's verification key (base64 DER, or PEM) as a P-256 public key; ValueError otherwise."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
        else:
            key = serialization.load_der_public_key(base64.b64decode(text, validate=True))
    except (ValueError, TypeError, binascii.Error) as exc:
        raise ValueError(f"INBOX_SENDGRID_PUBLIC_KEY: not a public key ({type(exc).__name__})") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("INBOX_SENDGRID_PUBLIC_KEY: expected an ECDSA P-256 public key")
    return key


def verify_sendgrid(key: ec.EllipticCurvePublicKey, headers, body: bytes, now: float, max_age_s: float) -> None:
    """Raise SignatureError unless the two SendGrid headers sign `body` and the timestamp is fresh."""
    timestamp = headers.get(SENDGRID_TIMESTAMP)
    check_fresh(timestamp, now, max_age_s, SENDGRID_TIMESTAMP)
    signature = _ascii(headers.get(SENDGRID_SIGNATURE), SENDGRID_SIGNATURE)
    try:
        der = base64.b64decode(signature, validate=True)
        key.verify(der, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (binascii.Error, ValueError, InvalidSignature):
        raise SignatureError(SENDGRID_SIGNATURE, "does not verify with the configured public key") from None


def sign_sendgrid(private_key: ec.EllipticCurvePrivateKey, timestamp: int, body: bytes) -> dict[str, str]:
    """The two headers SendGrid would send (used by the demo and the tests, which hold their own key)."""
    der = private_key.sign(str(timestamp).encode() + body, ec.ECDSA(hashes.SHA256()))
    return {SENDGRID_SIGNATURE: base64.b64encode(der).decode(), SENDGRID_TIMESTAMP: str(timestamp)}


# --- Mailgun ------------------------------------------------------------------
def mailgun_digest(signing_key: str, timestamp: str, token: str) -> str:
    return hmac.new(signing_key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()


def verify_mailgun(signing_key: str, signature: Any, now: float, max_age_s: float,
                   claim: Callable[[str, float], bool]) -> str:
    """Check a Mailgun `signature` object; `claim(token, expires_at)` is False for a token seen before.

    Returns the token (claimed once the HMAC and freshness hold). Raises SignatureError."""
    if not isinstance(signature, dict):
        raise SignatureError("signature", "missing or not an object")
    ts = check_fresh(signature.get("timestamp"), now, max_age_s, "signature.timestamp")
    token = _ascii(signature.get("token"), "signature.token", MAX_TOKEN)
    given = _ascii(signature.get("signature"), "signature.signature")
    expected = mailgun_digest(signing_key, str(signature["timestamp"]), token)
    if not hmac.compare_digest(expected.encode(), given.encode()):
        raise SignatureError("signature.signature", "does not match the signing key")
    if not claim(token, ts + max_age_s):
        raise SignatureError("signature.token", "already used (a replayed request)")
    return token
