"""A campaign file (`inbox send CAMPAIGN.yaml`), validated field by field.

    campaign_id: spring-launch
    variants: [3, 7, 12]            # content ids competing for the subject/body
    reward_event: click             # what counts as success for the allocator
    policy: lin_ts
    context_features: [engagement_score, open_rate_30d]
    audience: {limit: 2000, seed: 1}
    window: {start: "2026-09-01T00:00:00Z", hours: 24}   # default: the next 24 h
    content_blocks: 3               # ranked content blocks per email
    from: news@example.com
    smtp: {host: 127.0.0.1, port: 2525}   # omit: a local SMTP sink is started
    batch_size: 500
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

# content traits the allocator sees as variant features
VARIANT_FEATURES = ["topic", "format", "subject_length", "has_personalization", "has_urgency", "has_emoji"]


class Audience(BaseModel):
    model_config = ConfigDict(extra="forbid")
    limit: int | None = Field(default=None, ge=1)
    seed: int = 0
    contact_ids: list[int] | None = None


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
    model_config = ConfigDict(extra="forbid")
    host: str
    port: int = Field(default=25, ge=1, le=65535)
    username: str | None = None
    password: str | None = None
    starttls: bool = False


class CampaignConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    campaign_id: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:\-]+$")
    variants: list[int] = Field(min_length=1)
    reward_event: Literal["open", "click", "conversion"] = "click"
    policy: str = "lin_ts"
    floor: float = Field(default=0.02, ge=0, lt=1)
    wait_window: str = "48h"
    context_features: list[str] = Field(default_factory=lambda: ["engagement_score", "open_rate_30d"])
    audience: Audience = Field(default_factory=Audience)
    window: Window = Field(default_factory=Window)
    content_blocks: int = Field(default=3, ge=0, le=20)
    sender: str = Field(default="news@inbox.example", alias="from")
    smtp: Smtp | None = None
    batch_size: int = Field(default=500, ge=1, le=1000)

    @field_validator("variants")
    @classmethod
    def _unique(cls, v):
        if len(set(v)) != len(v):
            raise ValueError("variant content ids must be unique")
        return v


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
        raise ValueError(f"{where}: {field}: {first['msg']}") from None
