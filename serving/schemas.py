"""Request and response bodies of the scoring API (pydantic, validated at the boundary).

A bad field gets HTTP 400 from BentoML with pydantic's error list, whose `loc`
names the field (e.g. `["contact_ids"]`, "List should have at most 1000 items").
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from typing_extensions import Annotated

MAX_BATCH = 1000
MAX_CANDIDATES = 200
MAX_WINDOW_HOURS = 24 * 14

INT64_MAX = 2**63 - 1
ContactId = Annotated[int, Field(ge=0, le=INT64_MAX, description="contact_id (int64, >= 0)")]
ContactIds = Annotated[
    list[ContactId],
    Field(min_length=1, max_length=MAX_BATCH, description=f"1 to {MAX_BATCH} contact ids"),
]
CampaignId = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:\-]+$")]
PlannedSends = Annotated[float, Field(
    ge=0, allow_inf_nan=False,
    description="the sender's expected sends per contact over the lead model's horizon (its campaign calendar): "
                "probabilities are prior-shifted to that send volume's conversion rate; omitted = no shift")]


EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(2200, 1, 1, tzinfo=timezone.utc)  # within numpy/pandas' nanosecond range (until 2262)


def _aware_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamp must be timezone-aware (e.g. 2026-05-01T09:00:00Z)")
    if not EARLIEST <= value < LATEST:  # year 1 or 9999 would overflow the nanosecond arithmetic downstream
        raise ValueError(f"timestamp must be in [{EARLIEST.date()}, {LATEST.date()})")
    return value.astimezone(timezone.utc)


UtcDatetime = Annotated[datetime, AfterValidator(_aware_utc)]


class Strict(BaseModel):
    """Unknown fields are an error: a typo in a field name should not pass silently."""

    model_config = ConfigDict(extra="forbid")


class SendWindow(Strict):
    start: UtcDatetime
    end: UtcDatetime
    quiet_hours: tuple[int, int] = Field(default=(21, 7), description="local [start, end) hours never used")

    @model_validator(mode="after")
    def _ordered(self):
        if self.end <= self.start:
            raise ValueError("window.end must be after window.start")
        if self.end - self.start > timedelta(hours=MAX_WINDOW_HOURS):  # the hours scored grow with the window
            raise ValueError(f"window: at most {MAX_WINDOW_HOURS} hours (a campaign's longest send window)")
        return self


# --- responses --------------------------------------------------------------
Source = Annotated[Literal["published", "live"], Field(
    description="published: the contact's row of `inbox publish` for the loaded champions; live: computed "
                "now (no row, or a row from other model versions)")]


class LeadScore(BaseModel):
    contact_id: int
    probability: float
    score: float
    tier: str
    reasons_positive: list[str]
    reasons_negative: list[str]
    fallback: bool
    source: Source


class ScoreResponse(BaseModel):
    model_version: str
    scores: list[LeadScore]


class SendSlot(BaseModel):
    contact_id: int
    send_at: datetime | None
    local_time: str | None
    probability: float | None
    level: str
    fallback: bool
    source: Source


class SendTimeResponse(BaseModel):
    model_version: str
    slots: list[SendSlot]


class RankedContent(BaseModel):
    content_id: int
    score: float
    rank: int


class RankResponse(BaseModel):
    model_version: str
    contact_id: int
    ranking: list[RankedContent]
    fallback: bool
    source: Source


class Choice(BaseModel):
    decision_id: str
    contact_id: int
    variant: int
    propensity: float
    policy_version: int
    mode: str


class Refusal(BaseModel):
    """A contact the server plans no mail for (no decision made or logged): `privacy.consent` reasons."""

    contact_id: int
    reason: Literal["no_consent", "opted_out", "topic_opt_out", "suppressed"]


class ChooseResponse(BaseModel):
    campaign_id: str
    choices: list[Choice]
    refused: list[Refusal] = Field(default_factory=list, description="contacts without the right to be mailed")


class RewardResponse(BaseModel):
    decision_id: str
    status: Literal["accepted", "duplicate", "late"]


class Decision(BaseModel):
    contact_id: int
    decision_id: str
    variant: int
    propensity: float
    send_at: datetime | None
    send_level: str
    lead_score: float
    lead_tier: str
    content_order: list[int]
    fallback: bool
    source: Source


class DecideResponse(BaseModel):
    campaign_id: str
    policy_version: int
    model_versions: dict[str, str]
    decisions: list[Decision]
    refused: list[Refusal] = Field(default_factory=list, description="contacts without the right to be mailed")


class WebhookResponse(BaseModel):
    """What one signed webhook call did with its events."""

    provider: str
    received: int = Field(description="events in the call")
    recorded: int = Field(description="new events journaled (they matched a known send of their contact)")
    duplicates: int = Field(description="events already journaled (a provider retry)")
    ignored: int = Field(description="provider events we do not record (e.g. SendGrid processed)")
    rejected: int = Field(default=0, description="events matching no known send of their contact: not recorded")
    rewards: dict[str, int] = Field(description="reward statuses of the events that rewarded a decision")


class ReloadResponse(BaseModel):
    model_versions: dict[str, str]
    policy_version: int
    features_loaded: bool
