"""A campaign file (`inbox send CAMPAIGN.yaml`), validated field by field.

    campaign_id: spring-launch
    variants: [3, 7, 12]            # content ids competing for the subject/body
    reward_event: click             # what counts as success for the allocator
    reward_range: [0, 1]            # declared range of one reward value (rewards outside are refused)
    policy: lin_ts
    context_features: [engagement_score, open_rate_30d]
    topic: product                  # preference-centre topic: contacts who opted out of it are skipped
    audience: {limit: 2000, seed: 1, soft_bounce_limit: 3}
    hygiene: {skip: [invalid, disposable]}      # also: role, typo
    window: {start: "2026-09-01T00:00:00Z", hours: 24}   # default: the next 24 h
    content_blocks: 3               # ranked content blocks per email
    from: news@example.com
    postal_address: "Example Ltd, 1 Main St, Springfield"   # shown in every message (required with smtp)
    links: {base_url: "https://mail.example.com", unsubscribe_mailto: "unsubscribe@example.com"}
    list_id: "Example news <news.example.com>"
    smtp: {host: smtp.example.com, port: 587, tls: starttls, username: u, password: p}  # omit: local sink
    delivery: {handoff: none, rate_per_second: 50, max_attempts: 8, backoff_seconds: 60, connections: 1, durable: true}
    run: "1"                        # run key (default: derived from audience + window)
    batch_size: 500

`run` names one sending of the campaign: each contact is enqueued at most once
per (campaign_id, run), so re-running the same file after a crash resumes it,
while a new audience draw (another seed) is a new run.
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

# content traits the allocator sees as variant features
VARIANT_FEATURES = ["topic", "format", "subject_length", "has_personalization", "has_urgency", "has_emoji"]
HYGIENE_REASONS = ("invalid", "disposable", "role", "typo")
DEFAULT_POSTAL_ADDRESS = "Algorithmic Inbox (demo sender), Example Street 1, 10115 Berlin, Germany"


class Audience(BaseModel):
    model_config = ConfigDict(extra="forbid")
    limit: int | None = Field(default=None, ge=1)
    seed: int = 0
    contact_ids: list[int] | None = None
    soft_bounce_limit: int = Field(default=3, ge=1, le=100,
                                   description="consecutive soft bounces (no delivery between) that suppress")


class Hygiene(BaseModel):
    model_config = ConfigDict(extra="forbid")
    skip: list[Literal["invalid", "disposable", "role", "typo"]] = Field(
        default_factory=lambda: ["invalid", "disposable"])


class Window(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: datetime | None = None
    hours: float = Field(default=24, gt=0, le=24 * 14)
    quiet_hours: tuple[int, int] = (21, 7)

    @field_validator("start")
    @classmethod
    def _aware(cls, v):
        if v is not None and v.tzinfo is None:
            raise ValueError("must be timezone-aware, e.g. 2026-09-01T00:00:00Z")
        return v

    def bounds(self, now: datetime | None = None) -> tuple[datetime, datetime]:
        now = now or datetime.now(timezone.utc)
        start = self.start or (now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1))
        start = start.astimezone(timezone.utc)
        return start, start + timedelta(hours=self.hours)


class Smtp(BaseModel):
    """SMTP relay. AUTH credentials go out only over TLS: `tls: starttls` (RFC 3207) or `ssl` (RFC 8314)."""

    model_config = ConfigDict(extra="forbid")
    host: str
    port: int = Field(default=25, ge=1, le=65535)
    username: str | None = None
    password: str | None = None
    tls: Literal["none", "starttls", "ssl"] = "none"
    timeout: float = Field(default=30, gt=0, le=600)

    @model_validator(mode="after")
    def _auth_needs_tls(self):
        if self.username and self.tls == "none":
            raise ValueError("username: SMTP AUTH needs tls: starttls or ssl (credentials are never sent in clear)")
        return self


class Links(BaseModel):
    model_config = ConfigDict(extra="forbid")
    base_url: str = Field(default="https://inbox.example", pattern=r"^https://[A-Za-z0-9.\-]+(:\d+)?(/[^\s]*)?$",
                          description="public https URL of the service (one-click unsubscribe: <base_url>/u/<token>)")
    unsubscribe_mailto: str | None = Field(default=None, pattern=r"^[^@\s<>]+@[A-Za-z0-9.\-]+$")


class Delivery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    handoff: Literal["none", "sendgrid", "mailgun"] = Field(
        default="none", description="none: the sender waits for send_at; sendgrid/mailgun: the provider holds it")
    rate_per_second: float | None = Field(default=None, gt=0, le=100_000, description="per sending domain")
    max_attempts: int = Field(default=8, ge=1, le=50)
    backoff_seconds: float = Field(default=60, gt=0, le=86_400)
    connections: int = Field(default=1, ge=1, le=64, description="parallel SMTP connections of the sender")
    durable: bool = Field(default=True, description="fsync each hand-off (false: as safe against a killed "
                                                     "sender, not against an OS crash; faster)")


class CampaignConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    campaign_id: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:\-]+$")
    variants: list[int] = Field(min_length=1)
    reward_event: Literal["open", "click", "conversion"] = "click"
    reward_range: tuple[float, float] = (0.0, 1.0)
    policy: str = "lin_ts"
    floor: float = Field(default=0.02, ge=0, lt=1)
    wait_window: str = "48h"
    context_features: list[str] = Field(default_factory=lambda: ["engagement_score", "open_rate_30d"])
    topic: str | None = Field(default=None, min_length=1, max_length=100, pattern=r"^[a-z0-9_]+$")
    audience: Audience = Field(default_factory=Audience)
    hygiene: Hygiene = Field(default_factory=Hygiene)
    window: Window = Field(default_factory=Window)
    content_blocks: int = Field(default=3, ge=0, le=20)
    sender: str = Field(default="news@inbox.example", alias="from", pattern=r"^[^@\s<>]+@[A-Za-z0-9.\-]+$")
    postal_address: str | None = Field(default=None, min_length=5, max_length=300)
    links: Links = Field(default_factory=Links)
    list_id: str | None = Field(default=None, max_length=255, pattern=r"^[^<>]*<[A-Za-z0-9.\-]+>$|^[A-Za-z0-9.\-]+$")
    smtp: Smtp | None = None
    delivery: Delivery = Field(default_factory=Delivery)
    run: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")
    batch_size: int = Field(default=500, ge=1, le=1000)

    @field_validator("variants")
    @classmethod
    def _unique(cls, v):
        if len(set(v)) != len(v):
            raise ValueError("variant content ids must be unique")
        return v

    @field_validator("reward_range")
    @classmethod
    def _range(cls, v):
        lo, hi = v
        if not (float("-inf") < lo < hi < float("inf")):
            raise ValueError("must be [low, high] with finite low < high")
        return v

    @model_validator(mode="after")
    def _postal_address_for_real_mail(self):
        if self.smtp is not None and self.postal_address is None:
            raise ValueError("postal_address: required when mailing through an SMTP host (CAN-SPAM, 15 U.S.C. 7704)")
        return self

    @property
    def sender_domain(self) -> str:
        return self.sender.rsplit("@", 1)[1].lower()

    @property
    def address(self) -> str:
        return self.postal_address or DEFAULT_POSTAL_ADDRESS

    @property
    def unsubscribe_mailto(self) -> str:
        return self.links.unsubscribe_mailto or f"unsubscribe@{self.sender_domain}"

    @property
    def list_header(self) -> str:
        """List-Id (RFC 2919): `phrase <list-label.namespace>`, default the sender's domain."""
        if self.list_id is None:
            return f"{self.sender_domain} <news.{self.sender_domain}>"
        return self.list_id if "<" in self.list_id else f"<{self.list_id}>"

    def run_key(self) -> str:
        """The run this file describes: `run`, else a digest of the audience and an explicit window start."""
        if self.run is not None:
            return self.run
        spec = {"audience": self.audience.model_dump(), "start": self.window.start.isoformat()
                if self.window.start else None}
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def load_campaign(path: str | Path) -> CampaignConfig:
    """Read and validate a campaign YAML; ValueError names the field."""
    import yaml

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"campaign file not found: {path}")
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a YAML mapping")
    return parse_campaign(data, str(path))


def parse_campaign(data: dict, where: str = "campaign") -> CampaignConfig:
    try:
        return CampaignConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        msg = first["msg"].removeprefix("Value error, ")
        if ": " in msg and not field:  # a model validator names its field in the message
            field, msg = msg.split(": ", 1)
        elif ": " in msg and msg.split(": ", 1)[0].isidentifier():
            field = ".".join(filter(None, [field, msg.split(": ", 1)[0]]))
            msg = msg.split(": ", 1)[1]
        raise ValueError(f"{where}: {field}: {msg}") from None
