"""`POST /sent`: the send pipeline tells the allocator which decisions were mailed.

A decision is logged before `/decide` answers, but not every logged decision
becomes a message (a worker killed before replying, a sender that died before
its outbox write, a caller that dropped a recipient). A campaign registered
with `learn_from: sent` learns only from decisions marked here (or rewarded),
so those are not learned as "sent and ignored" (`experiments.bandit.learner`).

Validated at the boundary: decision ids are the allocator's 32 lowercase hex
digits, 1 to `MAX_SENT_IDS` per call (pydantic: a 400 whose `loc` names the
field). Marking is idempotent; ids the decision log never held are not marked
and are listed under `unknown`.
"""
from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field
from typing_extensions import Annotated

MAX_SENT_IDS = 5000
DecisionId = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$", description="a decision id (32 lowercase hex digits)")]
SentDecisionIds = Annotated[list[DecisionId], Field(
    min_length=1, max_length=MAX_SENT_IDS, description=f"1 to {MAX_SENT_IDS} decision ids whose messages were mailed")]


class SentResponse(BaseModel):
    marked: int = Field(description="decisions marked sent by this call")
    already: int = Field(description="decisions that were marked before (their first time is kept)")
    unknown: list[str] = Field(description="ids the decision log does not hold: not marked")


def mark_sent(allocator, decision_ids: list[str], sent_at: datetime | None) -> SentResponse:
    """Mark the decisions sent at `sent_at` (default: now) through the allocator's decision log."""
    marks = allocator.mark_sent(decision_ids, sent_at)
    return SentResponse(marked=marks.marked, already=marks.already, unknown=marks.unknown)
