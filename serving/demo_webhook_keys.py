"""The demo's simulated providers sign what they post, with keys the demo configures.

`demo_signers(settings)` loads (or makes once, 0600, under
`<data_dir>/secrets/webhook_demo.json`) a SendGrid ECDSA P-256 key, a Mailgun
signing key and an SNS RSA key with a self-signed certificate, and configures
their public halves in the service's key file for every provider that has no
key yet (`serving.webhook_settings`); the certificate is seeded into the SNS
certificate cache under an `sns.us-east-1.amazonaws.com` URL, so the service
verifies the demo's SES notifications exactly as real ones, without fetching.
A provider already configured otherwise is left alone (a Mailgun key from the
environment is a shared secret, so the demo signs with it).

The signing functions are the providers' schemes from the signer's side; the
tests use them with keys they make.
"""
from __future__ import annotations

import base64
import json
import os
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from serving.sns_signatures import HASHES, canonical_string, cache_path, seed_certificate
from serving.webhook_settings import KeySource, keys_file, read_keys_file, webhook_dir, write_keys_file
from serving.webhook_signatures import mailgun_digest, sign_sendgrid

DEMO_TOPIC = "arn:aws:sns:us-east-1:000000000000:inbox-demo-ses-events"
DEMO_CERT_URL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-inbox-demo.pem"


# --- the providers' schemes, signer's side ---------------------------------------
def sendgrid_public_key(private_key: ec.EllipticCurvePrivateKey) -> str:
    """The verification key as SendGrid shows it: base64 DER SubjectPublicKeyInfo."""
    der = private_key.public_key().public_bytes(serialization.Encoding.DER,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def mailgun_signature(signing_key: str, timestamp: int | None = None, token: str | None = None) -> dict:
    """A Mailgun `signature` object for a fresh token."""
    ts = str(int(time.time() if timestamp is None else timestamp))
    token = token or secrets.token_hex(25)
    return {"timestamp": ts, "token": token, "signature": mailgun_digest(signing_key, ts, token)}


def sns_certificate(key: rsa.RSAPrivateKey, days: int = 3650) -> bytes:
    """A self-signed PEM certificate for `key` (what the demo's simulated SNS signs with)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=days)).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


def sign_sns(message: dict, key: rsa.RSAPrivateKey, cert_url: str, version: str = "2") -> dict:
    """`message` with SignatureVersion, SigningCertURL and the Signature SNS would add."""
    signed = {**message, "SignatureVersion": version, "SigningCertURL": cert_url}
    fields = {k: v for k, v in signed.items() if isinstance(v, str)}
    sig = key.sign(canonical_string(fields), padding.PKCS1v15(), HASHES[version]())
    return {**signed, "Signature": base64.b64encode(sig).decode()}


# --- the demo's keys ----------------------------------------------------------------
@dataclass
class DemoSigners:
    sendgrid_key: ec.EllipticCurvePrivateKey
    mailgun_key: str
    sns_key: rsa.RSAPrivateKey

    def sendgrid_headers(self, body: bytes) -> dict[str, str]:
        return sign_sendgrid(self.sendgrid_key, int(time.time()), body)

    def mailgun_signature(self) -> dict:
        return mailgun_signature(self.mailgun_key)

    def sns(self, message: dict) -> dict:
        """Signed as SNS publishes: `Timestamp` is the publication time (now), the event's own time is in Message."""
        published = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        return sign_sns({**message, "TopicArn": DEMO_TOPIC, "Timestamp": published}, self.sns_key, DEMO_CERT_URL)


def _pem(key) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _load_or_make(path: Path) -> dict:
    if path.exists():
        return json.loads(path.read_text())
    made = {"sendgrid_private_key": _pem(ec.generate_private_key(ec.SECP256R1())),
            "mailgun_signing_key": secrets.token_hex(32),
            "sns_private_key": _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))}
    made["sns_certificate"] = sns_certificate(serialization.load_pem_private_key(
        made["sns_private_key"].encode(), None)).decode()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(made, fh)
    try:
        os.link(tmp, path)  # another process made them first: theirs win
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return json.loads(path.read_text())


def demo_signers(settings) -> DemoSigners:
    """The demo's signers; configures their public halves for providers that have no key yet."""
    stored = _load_or_make(settings.data_dir / "secrets" / "webhook_demo.json")
    sendgrid = serialization.load_pem_private_key(stored["sendgrid_private_key"].encode(), None)
    sns = serialization.load_pem_private_key(stored["sns_private_key"].encode(), None)
    current = KeySource(settings).current()
    configured = read_keys_file(keys_file(settings))
    wanted = dict(configured)
    if current.sendgrid_public_key is None:
        wanted["sendgrid_public_key"] = sendgrid_public_key(sendgrid)
    if current.mailgun_signing_key is None:
        wanted["mailgun_signing_key"] = stored["mailgun_signing_key"]
    if not current.sns_topic_arns:
        wanted["sns_topic_arns"] = [DEMO_TOPIC]
    cache = webhook_dir(settings) / "sns_certs"
    if not cache_path(cache, DEMO_CERT_URL).exists():
        seed_certificate(cache, DEMO_CERT_URL, stored["sns_certificate"].encode())
    if wanted != configured:
        write_keys_file(keys_file(settings), wanted)
    mailgun = current.mailgun_signing_key or stored["mailgun_signing_key"]
    return DemoSigners(sendgrid, mailgun, sns)
