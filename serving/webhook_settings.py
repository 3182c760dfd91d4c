"""Webhook configuration: each provider's key, the limits, and where webhook state lives.

| setting | env var | file key (`<data_dir>/secrets/webhook_keys.json`) | default |
|---|---|---|---|
| SendGrid verification key (base64 DER or PEM, ECDSA P-256) | INBOX_SENDGRID_PUBLIC_KEY | sendgrid_public_key | none: 401 |
| Mailgun webhook signing key | INBOX_MAILGUN_SIGNING_KEY | mailgun_signing_key | none: 401 |
| SNS topics whose messages are accepted (comma-separated ARNs) | INBOX_SNS_TOPIC_ARNS | sns_topic_arns (list) | none: 401 |
| freshness window of signed timestamps, seconds | INBOX_WEBHOOK_MAX_AGE_S | | 300 |
| events per call (more: 413) | INBOX_WEBHOOK_MAX_EVENTS | | 5000 |
| body bytes per call (more: 413) | INBOX_WEBHOOK_MAX_BYTES | | 5 MiB |

An env var overrides the file for its provider. The file (0600, written
atomically) is re-read when it changes, so keys configured while the service
runs (`inbox demo` configures its own) apply to the next call. A provider
without a key accepts nothing (fail closed).
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger("inbox.webhooks")

ENV = {"sendgrid_public_key": "INBOX_SENDGRID_PUBLIC_KEY", "mailgun_signing_key": "INBOX_MAILGUN_SIGNING_KEY",
       "sns_topic_arns": "INBOX_SNS_TOPIC_ARNS"}


@dataclass(frozen=True)
class WebhookLimits:
    max_age_s: float = 300.0
    sns_max_age_s: float = 3600.0  # SNS retries keep the message's Timestamp (`serving.sns_signatures`)
    max_events: int = 5000
    max_bytes: int = 5 * 1024 * 1024

    @classmethod
    def from_env(cls) -> "WebhookLimits":
        def positive(name: str, default, kind):
            raw = os.environ.get(name)
            if raw is None:
                return default
            try:
                value = kind(raw)
            except ValueError:
                raise ValueError(f"{name}: expected a positive {kind.__name__}, got {raw!r}") from None
            if not value > 0:
                raise ValueError(f"{name}: expected a positive {kind.__name__}, got {raw!r}")
            return value

        return cls(positive("INBOX_WEBHOOK_MAX_AGE_S", cls.max_age_s, float),
                   positive("INBOX_SNS_MAX_AGE_S", cls.sns_max_age_s, float),
                   positive("INBOX_WEBHOOK_MAX_EVENTS", cls.max_events, int),
                   positive("INBOX_WEBHOOK_MAX_BYTES", cls.max_bytes, int))


@dataclass(frozen=True)
class WebhookKeys:
    """What each provider is verified with; None / empty = that provider accepts nothing."""

    sendgrid_public_key: str | None = None
    mailgun_signing_key: str | None = None
    sns_topic_arns: frozenset[str] = field(default_factory=frozenset)


def webhook_dir(settings) -> Path:
    """Webhook state: the replay cache (`replay.db`) and cached SNS certificates (`sns_certs/`)."""
    return settings.data_dir / "webhooks"


def keys_file(settings) -> Path:
    return settings.data_dir / "secrets" / "webhook_keys.json"


def _arns(value) -> frozenset[str]:
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("sns_topic_arns: expected a list of topic ARNs")
    return frozenset(v.strip() for v in value if v.strip())


def read_keys_file(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path.name}: expected a JSON object")
    return data


def write_keys_file(path: Path, data: dict) -> None:
    """Replace the key file atomically, readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mkstemp makes it 0600
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class KeySource:
    """The current `WebhookKeys`: env vars over the key file, re-read when the file changes."""

    def __init__(self, settings):
        self.path = keys_file(settings)
        self._stamp: tuple | None = None
        self._keys = WebhookKeys()

    def current(self) -> WebhookKeys:
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            stamp = None
        if stamp != self._stamp or self._stamp is None:
            self._keys = self._read()
            self._stamp = stamp
        return self._keys

    def _read(self) -> WebhookKeys:
        try:
            data = read_keys_file(self.path)
        except (ValueError, OSError) as exc:  # a broken file configures nothing (fail closed), loudly
            logger.error("webhook key file ignored: %s", exc)
            data = {}
        values = {name: os.environ.get(env) or data.get(name) for name, env in ENV.items()}
        try:
            arns = _arns(values["sns_topic_arns"] or [])
        except ValueError as exc:
            logger.error("SNS topics ignored: %s", exc)
            arns = frozenset()
        text = {k: v if isinstance(v, str) and v.strip() else None
                for k, v in values.items() if k != "sns_topic_arns"}
        return WebhookKeys(text["sendgrid_public_key"], text["mailgun_signing_key"], arns)
