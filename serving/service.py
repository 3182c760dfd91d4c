"""The Algorithmic Inbox scoring service (BentoML 1.4).

    bentoml serve serving.service:InboxService      # or: inbox serve

Start-up loads the `champion` of each model, the Feast online reader, the
content catalog and the bandit allocator (see `serving.state`); `/readyz`
answers 200 only once all of them are loaded. Every endpoint is an `async def`
working on one immutable `ServingState`, so `reload` can build a new state in
a thread and swap it in without failing a request; with several workers, the
one that served `/reload` signals the others (`serving.worker_sync`), which
follow within a fraction of a second, and the answer lists what every worker
serves. Bad input gets a 4xx that names the field; `decide` asks the allocator
last, so a request that fails logs no decision. Per-contact predictions come from
the rows `inbox publish` wrote (`serving.predict`); every answer says whether a
contact's came from there or were computed live (`source`). Latency settings and
their reasons: `serving.config` (BentoML configuration only, no patching).
"""
from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone

import bentoml
import numpy as np
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse

from sending.unsubscribe import app as unsubscribe_app
from serving.auth import BearerAuthMiddleware
from serving.config import REQUEST_TIMEOUT_S, SERVICE_CONFIG, tune_process
from serving.faults import STORAGE_ERRORS, FaultGate
from serving.http_metrics import RouteMetricsMiddleware
from serving.limits import BodyLimitMiddleware
from serving.schemas import (
    MAX_CANDIDATES, CampaignId, ChooseResponse, Choice, ContactId, ContactIds, DecideResponse,
    Decision, LeadScore, PlannedSends, RankedContent, RankResponse, ReloadResponse, RewardResponse, ScoreResponse,
    SendSlot, SendTimeResponse, SendWindow, UtcDatetime,
)
from serving.sent_marks import SentDecisionIds, SentResponse
from serving.webhook_app import create_webhook_app

logger = logging.getLogger("inbox.serving")
RELOAD_WAIT_S = REQUEST_TIMEOUT_S - 2.0  # /reload's answer, own load included, within BentoML's request timeout

ContentIds = list[ContactId] | None


def error(status: int, field: str, message: str) -> JSONResponse:
    """A 4xx/5xx body in the same shape as BentoML's validation errors: names the field."""
    return JSONResponse({"error": f"{field}: {message}", "field": field}, status_code=status)


class WorkerStatus(BaseModel):
    worker: int
    pid: int
    generation: int
    loaded: bool
    model_versions: dict[str, str]
    policy_version: int | None
    error: str | None = None


class WorkersReloadResponse(ReloadResponse):
    """What the worker that served `/reload` loaded, and what every worker serves after it."""

    generation: int = Field(description="reload counter shared by the server's workers")
    all_workers_reloaded: bool = Field(description="every worker serves this generation or a newer one")
    workers: list[WorkerStatus]


def _field_of(exc: Exception) -> str:
    text = str(exc)
    return text.split(":", 1)[0] if ":" in text else "body"


def _webhook_context():
    """This worker's webhook receiver and allocator (None until the state is loaded: 503)."""
    service = bentoml.get_current_service()
    return None if service.state is None else (service.webhooks, service.state.allocator)


@bentoml.asgi_app(unsubscribe_app, path="/u")  # one-click unsubscribe + preference centre (signed tokens)
@bentoml.asgi_app(create_webhook_app(_webhook_context), path="/webhooks")  # provider-signed raw bodies
@bentoml.service(**SERVICE_CONFIG)
class InboxService:
    def __init__(self) -> None:
        from inbox.settings import load_settings
        from serving.eventsink import EventJournal
        from serving.webhook_receiver import WebhookReceiver
        from serving.worker_sync import WorkerSync

        from serving import log_hygiene

        log_hygiene.install()
        self.settings = load_settings()
        # 503 + readiness failing on a storage fault; a remote decision log (PostgreSQL) is pinged too
        self.faults = FaultGate(self.settings.bandit_dir, check=self._ping_decision_log)
        self.state = None
        self.load_error: str | None = None
        self.journal = EventJournal(self.settings.events_dir)
        self.webhooks = WebhookReceiver.for_service(self.settings, self.journal)
        self.sync = WorkerSync(self.settings.data_dir, SERVICE_CONFIG["workers"])
        generation = self.sync.generation  # read before loading: a reload signalled meanwhile is followed
        try:
            self.state = self._load_state()
        except Exception as exc:  # not ready; /readyz says 503, /reload retries
            self.load_error = f"{type(exc).__name__}: {exc}"
            logger.error("serving state not loaded: %s", self.load_error)
        self.sync.publish(self.state, generation, self.load_error)
        self._reload_lock = asyncio.Lock()
        self._watcher: asyncio.Task | None = None
        tune_process()

    def _load_state(self, allocator=None):
        """A warmed-up state: the champions, the readers, the allocator (nothing per contact)."""
        from serving.state import ServingState
        from serving.warmup import warm_up

        state = ServingState.load(self.settings, allocator=allocator)
        warm_up(state)
        return state

    def _ping_decision_log(self) -> None:
        ping = getattr(self.state.allocator.log, "ping", None) if self.state is not None else None
        if ping is not None:
            ping()

    async def __is_ready__(self) -> bool:
        return self.state is not None and self.faults.ready()

    def _not_ready(self) -> JSONResponse:
        return error(503, "service", f"not ready ({self.load_error or 'loading'})")

    # --- models -------------------------------------------------------------
    @bentoml.api
    async def score(self, contact_ids: ContactIds, reasons: bool = True,
                    planned_sends: PlannedSends | None = None) -> ScoreResponse:
        """Lead score (0-100), probability, tier (A-D) and top reasons per contact; with `planned_sends` the
        probabilities are for that send volume (`LeadScorer.planned_probability`)."""
        from serving.predict import ContactBatch, lead_scores

        state = self.state
        if state is None:
            return self._not_ready()
        model = state.models["lead_scoring"]
        try:
            batch = ContactBatch.read(state, contact_ids, hours=())
            df = lead_scores(state, batch, reasons=reasons)
        except STORAGE_ERRORS as exc:
            return self.faults.trip("score", exc)
        try:
            df["probability"] = model.planned_probability(df["probability"].to_numpy(), planned_sends)
        except ValueError as exc:  # a version without the send-volume line
            return error(400, "planned_sends", str(exc).split(": ", 1)[-1])
        pos = df["reasons_positive"] if reasons else [[]] * len(df)
        neg = df["reasons_negative"] if reasons else [[]] * len(df)
        return ScoreResponse(model_version=str(model.version), scores=[
            LeadScore(contact_id=c, probability=p, score=s, tier=t, reasons_positive=rp, reasons_negative=rn,
                      fallback=f, source=src)
            for c, p, s, t, rp, rn, f, src in zip(df["contact_id"].tolist(), df["probability"].tolist(),
                                                  df["score"].tolist(), df["tier"].tolist(), pos, neg,
                                                  batch.fallback.tolist(), batch.source.tolist())
        ])

    @bentoml.api
    async def send_time(self, contact_ids: ContactIds, window: SendWindow | None = None) -> SendTimeResponse:
        """Best send time per contact in the window (default: the next 24 h), local quiet hours honored."""
        from models.slots import window_hours
        from serving.predict import ContactBatch, send_slots

        state = self.state
        if state is None:
            return self._not_ready()
        start, end, quiet = _window(window)
        model = state.models["send_time"]
        try:
            batch = ContactBatch.read(state, contact_ids, request_time=start, hours=window_hours(start, end, quiet))
            df = send_slots(state, batch, start, end, quiet)
        except ValueError as exc:
            return error(400, _field_of(exc), str(exc).split(": ", 1)[-1])
        except STORAGE_ERRORS as exc:
            return self.faults.trip("send_time", exc)
        return SendTimeResponse(model_version=str(model.version), slots=[
            SendSlot(contact_id=c, send_at=_ts(s), local_time=None if lt is None else str(lt),
                     probability=None if p is None or np.isnan(p) else p, level=lv, fallback=f, source=src)
            for c, s, lt, p, lv, f, src in zip(df["contact_id"].tolist(), df["send_at"].tolist(),
                                               df["local_time"].tolist(), df["probability"].tolist(),
                                               df["level"].tolist(), batch.fallback.tolist(),
                                               batch.source.tolist())
        ])

    @bentoml.api
    async def rank_content(self, contact_id: ContactId,
                           content_ids: list[ContactId] | None = Field(default=None, max_length=MAX_CANDIDATES),
                           k: int | None = Field(default=None, ge=1, le=MAX_CANDIDATES)) -> RankResponse:
        """Candidate content blocks (default: the whole catalog) ranked for one contact."""
        from serving.predict import ContactBatch, content_rankings

        state = self.state
        if state is None:
            return self._not_ready()
        model = state.models["content_preference"]
        try:
            batch = ContactBatch.read(state, [contact_id], hours=())
            df = content_rankings(state, batch, content_ids, k).sort_values("rank")
        except ValueError as exc:
            return error(400, _field_of(exc), str(exc).split(": ", 1)[-1])
        except STORAGE_ERRORS as exc:
            return self.faults.trip("rank_content", exc)
        return RankResponse(model_version=str(model.version), contact_id=contact_id,
                            fallback=bool(batch.fallback[0]), source=batch.source[0], ranking=[
                                RankedContent(content_id=c, score=s, rank=r)
                                for c, s, r in zip(df["content_id"].tolist(), df["score"].tolist(),
                                                   df["rank"].tolist())])

    # --- allocation ---------------------------------------------------------
    @bentoml.api
    async def choose_variant(self, campaign_id: CampaignId, contact_id: ContactId,
                             exclude: list[ContactId] = Field(default_factory=list, max_length=MAX_CANDIDATES)
                             ) -> ChooseResponse:
        """The allocator's choice for one contact: decision id, variant, propensity, policy version; none (and
        the contact under `refused`) without consent, after an opt-out or when suppressed (`serving.decide`)."""
        from serving.decide import choose

        state = self.state
        if state is None:
            return self._not_ready()
        try:
            df = choose(state, campaign_id, [contact_id], exclude or None)
        except ValueError as exc:
            return error(400, _field_of(exc), str(exc).split(": ", 1)[-1])
        except STORAGE_ERRORS as exc:
            return self.faults.trip("choose_variant", exc)
        return ChooseResponse(campaign_id=campaign_id, choices=[
            Choice(decision_id=d, contact_id=c, variant=v, propensity=p, policy_version=pv, mode=m)
            for d, c, v, p, pv, m in zip(df["decision_id"], df["contact_id"].tolist(), df["variant"].tolist(),
                                         df["propensity"].tolist(), df["policy_version"].tolist(),
                                         df["mode"].tolist())], refused=df.attrs.get("refused", []))

    @bentoml.api
    async def reward(self, decision_id: str = Field(min_length=1, max_length=100),
                     reward: float = Field(allow_inf_nan=False),
                     occurred_at: UtcDatetime | None = None,
                     event_id: str = Field(min_length=1, max_length=200)) -> RewardResponse:
        """A reward for a decision id: accepted, duplicate (same event_id) or late (after the wait window).

        400 naming the field for a reward outside the campaign's declared range (default [0, 1])
        or dated before its decision; 404 for an unknown decision id (both audited, never learned)."""
        from experiments.bandit import UnknownDecisionError

        state = self.state
        if state is None:
            return self._not_ready()
        when = occurred_at or datetime.now(timezone.utc)
        try:
            status = state.allocator.reward(decision_id, reward, when, event_id)
        except UnknownDecisionError as exc:
            return error(404, "decision_id", str(exc).split(": ", 1)[-1])
        except ValueError as exc:
            return error(400, _field_of(exc), str(exc).split(": ", 1)[-1])
        except STORAGE_ERRORS as exc:
            return self.faults.trip("reward", exc)
        return RewardResponse(decision_id=decision_id, status=status)

    @bentoml.api
    async def sent(self, decision_ids: SentDecisionIds, sent_at: UtcDatetime | None = None) -> SentResponse:
        """Mark decisions as mailed (what a campaign with `learn_from: sent` learns from; `serving.sent_marks`).
        Idempotent; ids the decision log does not hold are listed under `unknown`, not marked."""
        from serving.sent_marks import mark_sent

        state = self.state
        if state is None:
            return self._not_ready()
        try:
            return mark_sent(state.allocator, decision_ids, sent_at)
        except STORAGE_ERRORS as exc:
            return self.faults.trip("sent", exc)

    @bentoml.api
    async def decide(self, campaign_id: CampaignId, contact_ids: ContactIds, window: SendWindow | None = None,
                     content_ids: list[ContactId] | None = Field(default=None, max_length=MAX_CANDIDATES),
                     k: int = Field(default=3, ge=1, le=MAX_CANDIDATES)) -> DecideResponse:
        """Everything the send pipeline needs for up to 1,000 recipients of one campaign, in one call:
        variant + decision id + propensity, send time, lead score, content order. A contact without consent,
        opted out or suppressed gets no decision (nothing logged) and is listed under `refused`."""
        from serving.decide import decide

        state = self.state
        if state is None:
            return self._not_ready()
        start, end, quiet = _window(window)
        try:
            out = decide(state, campaign_id, contact_ids, start, end, quiet, content_ids, k)
        except ValueError as exc:
            return error(400, _field_of(exc), str(exc).split(": ", 1)[-1])
        except STORAGE_ERRORS as exc:
            return self.faults.trip("decide", exc)
        return out

    # --- operations ---------------------------------------------------------
    @bentoml.api
    async def reload(self) -> WorkersReloadResponse:
        """Load the newest champions, features and allocator snapshot and swap them in without a pause,
        in every worker: answers once all of them serve the new state (or after a bounded wait)."""
        started = time.monotonic()
        # shielded: a request timeout (504) must not cancel a reload between its load and its swap
        reloading = asyncio.ensure_future(self._reload_and_signal())
        try:
            new, generation = await asyncio.shield(reloading)
        except Exception as exc:
            logger.exception("reload failed; keeping the current state")
            return error(503, "reload", f"{type(exc).__name__}: {exc}")
        statuses, everyone = await self._wait_for_workers(generation, started + RELOAD_WAIT_S)
        return WorkersReloadResponse(model_versions=new.model_versions, policy_version=new.allocator.policy_version,
                                     features_loaded=True, generation=generation, all_workers_reloaded=everyone,
                                     workers=[WorkerStatus.model_validate(s) for s in statuses])

    async def _reload_and_signal(self):
        async with self._reload_lock:
            new = await self._swap_state()
            generation = self.sync.signal()
            self.sync.publish(new, generation)
        return new, generation

    async def _swap_state(self):
        """Build a new state in a thread, then swap it in on the event loop in one assignment. Every
        endpoint takes `self.state` once and finishes without awaiting, so closing the old state right
        after the swap never pulls it from under a request. Raises (keeping the current state) on failure."""
        import anyio.to_thread

        old = self.state
        new = await anyio.to_thread.run_sync(self._load_state, old.allocator if old else None)
        self.state, self.load_error = new, None
        if old is not None:
            old.close(keep_allocator=True)
        return new

    async def _wait_for_workers(self, generation: int, deadline: float) -> tuple[list[dict], bool]:
        while True:
            statuses = self.sync.others_at(generation)
            if statuses or time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.05)
        return (statuses, True) if statuses else (self.sync.statuses(), False)

    @bentoml.on_startup
    async def _follow_reloads(self) -> None:
        """Start the watcher that reloads this worker when another worker served `/reload`."""
        self._watcher = asyncio.get_running_loop().create_task(self._watch_generation())

    async def _watch_generation(self) -> None:
        from serving.worker_sync import POLL_S

        while True:
            await asyncio.sleep(POLL_S)
            try:
                if self.sync.pending() is not None:
                    await self._follow(self.sync)
            except Exception:
                logger.exception("reload signalled by another worker failed; keeping the current state")

    async def _follow(self, sync) -> None:
        async with self._reload_lock:
            generation = sync.generation_file.read()
            if generation <= sync.generation:  # this worker served that /reload itself
                return
            try:
                new = await self._swap_state()
            except Exception as exc:
                sync.publish(self.state, sync.generation, f"{type(exc).__name__}: {exc}")
                raise
            sync.publish(new, generation)
            logger.info("reloaded to generation %d: %s", generation, new.model_versions)

    @bentoml.on_shutdown
    def _flush_events(self) -> None:
        from serving.eventsink import flush

        if self._watcher is not None:
            self._watcher.cancel()
        try:
            flush(self.settings.events_dir)
        finally:
            self.journal.close()
            self.webhooks.close()
            self.sync.close()


# outermost first: metrics by route template (and /metrics), API keys, then the body size limit
InboxService.add_asgi_middleware(RouteMetricsMiddleware, routes=[api.route for api in InboxService.apis.values()])
InboxService.add_asgi_middleware(BearerAuthMiddleware)
InboxService.add_asgi_middleware(BodyLimitMiddleware)


def _window(window: SendWindow | None):
    """(start, end, quiet hours); the default window is the next 24 h."""
    from serving.predict import default_window

    if window is None:
        start, end = default_window()
        return start, end, (21, 7)
    return window.start, window.end, tuple(window.quiet_hours)


def _ts(value) -> datetime | None:
    if value is None:
        return None
    try:
        import pandas as pd

        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value.to_pydatetime() if hasattr(value, "to_pydatetime") else value
