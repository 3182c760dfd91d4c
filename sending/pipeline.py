"""The send pipeline: audience -> `decide` over HTTP -> render -> outbox -> SMTP at the decided time.

`run_campaign(config, base_url, settings, demo=False)`:

1. folds pending webhook events into the event log and takes the audience
   (`sending.audience`: consent ledger, bounces, hygiene, a stable draw), minus
   whoever this campaign run already queued;
2. registers the campaign with the allocator if it is new (variants = content
   rows, their traits as variant features, the declared reward range);
3. per batch (<= 1,000 recipients): `POST /decide`, reserve send ids, render
   each message (standard headers: `sending.headers`), insert the batch into the
   outbox in one transaction, with the decided `send_at`;
4. drains the outbox (`sending.delivery`): each message leaves when due, at
   most once, by default through a local SMTP sink started for the run;
5. appends the sends (decision id, propensity) to the `sends` table and marks the
   mailed decisions sent (`POST /sent`, `sending.sent_marks`): the campaign is
   registered with `learn_from: sent`, so a decision the run took but never
   mailed is not learned as "sent and ignored".

A failure (service unreachable, `/decide` answering 503, SMTP host down) stops
the run with a `SendError` (one line); what was queued stays queued and
re-running the same campaign file resumes: nobody is decided or mailed twice.

In demo mode the clock is virtual (each message "leaves" at its send time
without waiting) and the simulated recipients (the world's `ResponseModel`)
answer through the service's webhooks in each provider's format.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from sending.campaign import VARIANT_FEATURES, CampaignConfig
from sending.outbox import MAILED_STATES as DELIVERED


class SendError(RuntimeError):
    """A campaign run stopped by something outside it; the message is one line and says how to resume."""


@dataclass
class RoundResult:
    campaign_id: str
    audience: int
    suppressed: int
    no_consent: int
    sent: int
    fallback: int
    live: int = 0                 # recipients whose predictions were computed live (no current published row)
    run: str = ""
    skipped: dict = field(default_factory=dict)   # reason -> contacts
    already_queued: int = 0
    enqueued: int = 0
    refused: int = 0              # contacts /decide declined (consent checked by the server)
    outbox: dict = field(default_factory=dict)    # status -> messages of this run
    max_lateness_s: float = 0.0
    variants: dict = field(default_factory=dict)
    events_posted: int = 0
    webhook_calls: int = 0
    rewards: dict = field(default_factory=dict)
    sent_marks: dict = field(default_factory=dict)  # POST /sent totals: marked, already, unknown
    oracle_reward: float | None = None
    oracle_uniform: float | None = None
    decided_at: datetime | None = None

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items()}


# --- campaign registration ------------------------------------------------------
def ensure_campaign(settings, config: CampaignConfig, content: pd.DataFrame) -> bool:
    """Register the campaign with the allocator unless it exists; True if registered now."""
    from experiments.bandit import Allocator

    unknown = sorted(set(config.variants) - set(content["content_id"].tolist()))
    if unknown:
        raise ValueError(f"variants: unknown content id(s) {unknown}")
    alloc = Allocator.open(settings.bandit_dir)
    try:
        if config.campaign_id in alloc.log.campaign_ids():
            return False
        variants = content[content["content_id"].isin(config.variants)][["content_id", *VARIANT_FEATURES]]
        variants = variants.astype({c: float for c in VARIANT_FEATURES if c not in ("topic", "format")})
        alloc.register_campaign(config.campaign_id, variants.reset_index(drop=True), config.context_features,
                                reward_event=config.reward_event, wait_window=config.wait_window,
                                policy=config.policy, floor=config.floor,
                                reward_range=tuple(config.reward_range), topic=config.topic, learn_from="sent")
        return True
    finally:
        alloc.close()


def next_send_id(events_dir: Path) -> int:
    """One above the largest send id in the event log (the outbox's counter never goes below it)."""
    from simulation.eventlog import table_files
    from simulation.segments import column_max

    hi = column_max(table_files(events_dir, "sends"), "send_id")  # row-group statistics, no column read
    return int(hi or 0) + 1


# --- decide ---------------------------------------------------------------------
def post_service(client, base_url: str, route: str, body: dict, doing: str = "") -> dict:
    """POST `body` to `{base_url}/{route}` and return the JSON answer; a `SendError` (one line) when the
    service is unreachable (`doing` names what for) or answers other than 200."""
    import httpx

    try:
        r = client.post(f"{base_url}/{route}", json=body)
    except httpx.HTTPError as exc:
        raise SendError(f"service {base_url} unreachable{doing} ({type(exc).__name__})") from None
    if r.status_code != 200:
        try:
            detail = r.json().get("error", "")
        except ValueError:
            detail = r.text[:200]
        raise SendError(f"{base_url}/{route} answered HTTP {r.status_code}{': ' + detail if detail else ''}")
    return r.json()


def call_decide(client, base_url: str, config: CampaignConfig, contact_ids: np.ndarray, start, end) -> dict:
    body = {"campaign_id": config.campaign_id, "contact_ids": [int(c) for c in contact_ids],
            "window": {"start": start.isoformat(), "end": end.isoformat(),
                       "quiet_hours": list(config.window.quiet_hours)},
            "k": max(config.content_blocks, 1)}
    return post_service(client, base_url, "decide", body)


# --- render ---------------------------------------------------------------------
class Renderer:
    """Turns one decision into an outbox row (message bytes with every standard header)."""

    def __init__(self, config: CampaignConfig, settings, content: pd.DataFrame, run: str):
        self.config, self.settings, self.run = config, settings, run
        self.by_id = content.set_index("content_id")
        self.subjects = self.by_id["subject"].to_dict()
        self.blocks = {c: {"content_id": c, **self.by_id.loc[c, ["name", "topic", "format"]].to_dict()}
                       for c in self.by_id.index}

    def row(self, send_id: int, email: str, d: dict, now: datetime) -> tuple:
        from sending.delivery import us
        from sending.headers import HANDOFF_HORIZON, list_unsubscribe, message_headers
        from sending.render import render_email
        from sending.tokens import make_token

        config = self.config
        send_at = pd.Timestamp(d["send_at"]).to_pydatetime() if d.get("send_at") else now
        due = send_at
        if config.delivery.handoff != "none":
            due = max(now, send_at - HANDOFF_HORIZON[config.delivery.handoff])
        token = make_token(self.settings, d["contact_id"], send_id)
        url = f"{config.links.base_url.rstrip('/')}/u/{token}"
        headers = message_headers(config, send_id=send_id, contact_id=d["contact_id"], decision_id=d["decision_id"],
                                  send_at=send_at)
        blocks = [self.blocks[c] for c in d["content_order"][: config.content_blocks]]
        msg = render_email(sender=config.sender, email=email, send_id=send_id,
                           variant={"subject": self.subjects[d["variant"]]}, blocks=blocks, headers=headers,
                           unsubscribe_url=url, postal_address=config.address,
                           base_url=config.links.base_url.rstrip("/"))
        data = list_unsubscribe(url, config.unsubscribe_mailto, token) + msg
        return (send_id, config.campaign_id, self.run, int(d["contact_id"]), int(d["variant"]), d["decision_id"],
                d["propensity"], int(bool(d.get("fallback"))), int(d.get("source") == "live"), config.sender_domain,
                config.sender, email, data, us(send_at), us(due), us(now))


def enqueue_campaign(config: CampaignConfig, base_url: str, settings, outbox, clock, *, progress: bool = False,
                     result: RoundResult) -> None:
    """Decide, render and queue everyone of the run not queued yet (one outbox transaction per batch)."""
    import httpx

    from sending.audience import select_audience
    from serving.api_keys import client_headers
    from serving.eventsink import flush
    from simulation.eventlog import read_table, table_path

    flush(settings.events_dir)
    content = read_table("content", table_path(settings.events_dir, "content"))
    ensure_campaign(settings, config, content)
    run = config.run_key()
    aud = select_audience(settings, config, outbox.queued_contacts(config.campaign_id, run))
    result.skipped, result.already_queued = aud.skipped, aud.already_queued
    result.audience = len(aud.people) + aud.already_queued
    result.no_consent = aud.skipped.get("no_consent", 0)
    result.suppressed = sum(aud.skipped.get(k, 0) for k in ("suppressed", "opted_out", "topic_opt_out",
                                                            "hard_bounce", "soft_bounces"))
    if aud.people.empty:
        return
    start, end = config.window.bounds(clock.now())
    renderer = Renderer(config, settings, content, run)
    floor = next_send_id(settings.events_dir)
    emails = dict(zip(aud.people["contact_id"].tolist(), aud.people["email"].tolist()))
    result.decided_at = datetime.now(timezone.utc)
    with httpx.Client(timeout=120, headers=client_headers()) as client, \
            _progress(progress, len(aud.people), f"queue {config.campaign_id}") as advance:
        for lo in range(0, len(aud.people), config.batch_size):
            batch = aud.people["contact_id"].to_numpy()[lo: lo + config.batch_size]
            try:
                answer = call_decide(client, base_url, config, batch, start, end)
            except SendError as exc:
                raise SendError(f"{exc}; {result.enqueued + aud.already_queued} of {result.audience} recipients "
                                "queued, re-run the same campaign to resume") from None
            decisions = answer["decisions"]
            result.refused += len(answer.get("refused") or [])
            if decisions:
                first = outbox.reserve_send_ids(len(decisions), floor)
                now = clock.now()
                rows = [renderer.row(first + i, emails[int(d["contact_id"])], d, now)
                        for i, d in enumerate(decisions)]
                result.enqueued += outbox.enqueue(rows)
            advance(len(batch))


# --- delivery -------------------------------------------------------------------
@contextlib.contextmanager
def smtp_target(config: CampaignConfig, mbox_path: Path | None):
    """Yields (connect() -> SmtpSender, sink handler or None): the campaign's SMTP host, or a local sink."""
    from sending.smtp import SmtpSender, smtp_sink

    if config.smtp is not None:
        s = config.smtp
        yield (lambda: SmtpSender(s.host, s.port, s.username, s.password, s.tls, s.timeout)), None
        return
    with smtp_sink(mbox_path) as (host, port, handler):
        yield (lambda: SmtpSender(host, port)), handler


def deliver_campaign(config: CampaignConfig, settings, outbox, clock, mbox_path: Path | None = None,
                     wait_for_scheduled: bool = True, mark=None):
    """Drain the run's messages; the sends rows are recorded as they go and, with `mark`
    (`sending.sent_marks.SentMarker`), the mailed decisions are marked sent with the service."""
    from sending.delivery import drain
    from sending.records import record_sends

    d = config.delivery
    outbox.set_durable(d.durable)
    with smtp_target(config, mbox_path) as (connect, _sink):
        return drain(outbox, connect, clock, campaign=(config.campaign_id, config.run_key()),
                     rates={config.sender_domain: d.rate_per_second} if d.rate_per_second else None,
                     max_attempts=d.max_attempts, backoff_s=d.backoff_seconds, connections=d.connections,
                     record=lambda: record_sends(settings, outbox, mark), wait_for_scheduled=wait_for_scheduled)


def run_campaign(config: CampaignConfig, base_url: str, settings, demo: bool = False, *, clock=None,
                 deliver: bool = True, progress: bool = False, seed: int = 0,
                 mbox_path: Path | None = None) -> RoundResult:
    """Enqueue the campaign run (resuming it) and, with `deliver`, drain it; see the module docstring."""
    from sending.clock import SystemClock, VirtualClock
    from sending.outbox import Outbox
    from sending.sent_marks import SentMarker
    from serving.eventsink import flush

    clock = clock or (VirtualClock() if demo else SystemClock())
    result = RoundResult(config.campaign_id, 0, 0, 0, 0, 0, run=config.run_key())
    with Outbox.open(settings) as outbox:
        enqueue_campaign(config, base_url, settings, outbox, clock, progress=progress, result=result)
        if deliver:
            marker = SentMarker(base_url)
            drained = deliver_campaign(config, settings, outbox, clock, mbox_path, mark=marker)
            result.max_lateness_s = drained.max_lateness_s
            result.sent_marks = marker.tally.as_dict()
        rows = outbox.run_rows(config.campaign_id, result.run)
    result.outbox = rows["status"].value_counts().to_dict()
    out = rows[rows["status"].isin(DELIVERED)]
    result.sent, result.fallback, result.live = len(out), int(out["fallback"].sum()), int(out["live"].sum())
    result.variants = {int(k): int(v) for k, v in out["content_id"].value_counts().sort_index().items()}
    if demo and len(out):
        from serving.demo_responses import respond

        sends = out.assign(sent_at=pd.to_datetime(np.maximum(out["sent_at_us"], out["send_at_us"]), unit="us",
                                                  utc=True))
        respond(result, sends.reset_index(drop=True), config, base_url, settings, seed=seed, progress=progress)
    flush(settings.events_dir)
    return result


@contextlib.contextmanager
def _progress(show: bool, total: int, label: str):
    if not show:
        yield lambda n: None
        return
    from rich.progress import Progress

    with Progress() as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)
