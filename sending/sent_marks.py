"""The send pipeline tells the service which decisions were mailed (`POST /sent`).

A decision is mailed once its message was handed to SMTP: outbox status `sent`
or `unknown` (the sender died after the dot: delivered as far as anyone can
know). A hard bounce (5xx) was not mailed to anyone. `record_sends` calls a
`SentMarker` after the sends rows are appended and before the outbox marks the
rows recorded, so a crash in between marks them again on the next run (marking
is idempotent). A campaign registered by the pipeline learns only from these
(`learn_from: sent`): decisions it took for recipients it never mailed (a run
that died between `/decide` and its outbox write, then decided again) are not
learned as "sent and ignored".
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sending.pipeline import SendError, post_service

logger = logging.getLogger("inbox.sending")
CHUNK = 5000  # the route's limit per call (serving.sent_marks.MAX_SENT_IDS)


@dataclass
class SentTally:
    """What the marker's calls added up to (`RoundResult.sent_marks`)."""

    marked: int = 0
    already: int = 0
    unknown: int = 0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class SentMarker:
    """Callable: POSTs decision ids to `{base_url}/sent` in chunks; a failure is a `SendError` (the run stops,
    resumable: the rows stay unrecorded and are marked on the next run)."""

    base_url: str
    tally: SentTally = field(default_factory=SentTally)

    def __call__(self, decision_ids: list[str]) -> None:
        import httpx

        from serving.api_keys import client_headers

        if not decision_ids:
            return
        with httpx.Client(timeout=120, headers=client_headers()) as client:
            for lo in range(0, len(decision_ids), CHUNK):
                chunk = decision_ids[lo: lo + CHUNK]
                try:
                    answer = post_service(client, self.base_url, "sent", {"decision_ids": chunk},
                                          " while marking sent decisions")
                except SendError as exc:
                    raise SendError(f"{exc}; re-run the same campaign to resume") from None
                self.tally.marked += answer["marked"]
                self.tally.already += answer["already"]
                self.tally.unknown += len(answer["unknown"])
                if answer["unknown"]:
                    logger.warning("%d mailed decision ids are not in the service's decision log (not marked sent)",
                                   len(answer["unknown"]))
