"""The send pipeline: audience -> `decide` over HTTP -> render -> SMTP -> sends in the event log.

`run_campaign(config, base_url, settings, demo=False)`:

1. folds pending webhook events into the event log, then takes the audience:
   contacts with consent, minus every contact that ever unsubscribed, bounced
   or complained (and `audience.limit` of them, seeded);
2. registers the campaign with the allocator if it is new (variants = content
   rows, their topic/format/subject traits as variant features);
3. calls `POST /decide` once per batch (<= 1,000 recipients);
4. renders each email (Jinja2, HTML + text) and delivers it over SMTP with the
   decision id in `X-Inbox-Decision-Id` and in the providers' custom-args
   headers (`X-SMTPAPI` unique_args for SendGrid, `X-Mailgun-Variables`);
   by default to a local SMTP sink started for the run;
5. appends the sends (decision id, propensity) to `sends.parquet`.

In demo mode the simulated recipients (the world's `ResponseModel`) answer on
their true probabilities and delays, sent at the recommended send time, and
their events are posted to the service's webhooks in each provider's format
(rotating SendGrid, Mailgun, SES), so the allocator learns from HTTP traffic.
"""
from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from sending.campaign import VARIANT_FEATURES, CampaignConfig
from serving.webhooks import header_name

SUPPRESSING_EVENTS = ("unsubscribe", "bounce", "complaint")


@dataclass
class RoundResult:
    campaign_id: str
    audience: int
    suppressed: int
    no_consent: int
    sent: int
    fallback: int
    live: int = 0                 # recipients whose predictions were computed live (no current published row)
    variants: dict = field(default_factory=dict)
    events_posted: int = 0
    webhook_calls: int = 0
    rewards: dict = field(default_factory=dict)
    oracle_reward: float | None = None
    oracle_uniform: float | None = None
    decided_at: datetime | None = None

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items()}


# --- audience -----------------------------------------------------------------
def audience(events_dir: Path, spec) -> tuple[pd.DataFrame, int, int]:
    """(contacts to mail [contact_id, email], suppressed count, no-consent count)."""
    import pyarrow.parquet as pq

    from simulation.eventlog import read_table, table_path

    contacts = read_table("contacts", table_path(events_dir, "contacts"))
    events_path = table_path(events_dir, "events")
    suppressed_ids = np.array([], dtype=np.int64)
    if events_path.exists():
        ev = pq.read_table(events_path, columns=["contact_id", "type"],
                           filters=[("type", "in", list(SUPPRESSING_EVENTS))])
        suppressed_ids = np.unique(ev.column("contact_id").to_numpy())
    if spec.contact_ids is not None:
        contacts = contacts[contacts["contact_id"].isin(spec.contact_ids)]
    consent = contacts["consent"].to_numpy(bool)
    suppressed = contacts["contact_id"].isin(suppressed_ids).to_numpy()
    eligible = contacts[consent & ~suppressed]
    if spec.limit is not None and len(eligible) > spec.limit:
        eligible = eligible.sample(n=spec.limit, random_state=spec.seed)
    eligible = eligible.sort_values("contact_id")
    return (eligible[["contact_id", "email"]].reset_index(drop=True),
            int((consent & suppressed).sum()), int((~consent).sum()))


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
                                policy=config.policy, floor=config.floor)
        return True
    finally:
        alloc.close()


# --- delivery -------------------------------------------------------------------
def delivery_headers(config: CampaignConfig, send_id: int, contact_id: int, decision_id: str) -> dict[str, str]:
    ids = {"send_id": str(send_id), "contact_id": str(contact_id), "decision_id": decision_id,
           "campaign_id": config.campaign_id}
    headers = {header_name(k): v for k, v in ids.items()}
    headers["X-SMTPAPI"] = json.dumps({"unique_args": ids})      # SendGrid custom args
    headers["X-Mailgun-Variables"] = json.dumps(ids)              # Mailgun user-variables
    headers["X-SES-MESSAGE-TAGS"] = ", ".join(f"{k}={v}" for k, v in ids.items())  # SES message tags
    return headers


def next_send_id(events_dir: Path) -> int:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from simulation.eventlog import table_path

    path = table_path(events_dir, "sends")
    if not path.exists():
        return 1
    hi = pc.max(pq.read_table(path, columns=["send_id"]).column("send_id")).as_py()
    return int(hi or 0) + 1


@contextlib.contextmanager
def smtp_target(config: CampaignConfig, mbox_path: Path | None):
    from sending.smtp import SmtpSender, smtp_sink

    if config.smtp is not None:
        s = config.smtp
        sender = SmtpSender(s.host, s.port, s.username, s.password, s.starttls)
        try:
            yield sender, None
        finally:
            sender.close()
        return
    with smtp_sink(mbox_path) as (host, port, handler):
        sender = SmtpSender(host, port)
        try:
            yield sender, handler
        finally:
            sender.close()


def call_decide(client, base_url: str, config: CampaignConfig, contact_ids: np.ndarray, start, end) -> list[dict]:
    body = {"campaign_id": config.campaign_id, "contact_ids": [int(c) for c in contact_ids],
            "window": {"start": start.isoformat(), "end": end.isoformat(),
                       "quiet_hours": list(config.window.quiet_hours)},
            "k": max(config.content_blocks, 1)}
    r = client.post(f"{base_url}/decide", json=body)
    if r.status_code != 200:
        raise RuntimeError(f"decide failed with HTTP {r.status_code}: {r.text[:500]}")
    return r.json()["decisions"]


def run_campaign(config: CampaignConfig, base_url: str, settings, demo: bool = False, *,
                 progress: bool = False, seed: int = 0, mbox_path: Path | None = None) -> RoundResult:
    import httpx

    from serving.eventsink import append_sends, flush
    from sending.render import render_email
    from simulation.eventlog import read_table, table_path

    events_dir = settings.events_dir
    flush(events_dir)
    content = read_table("content", table_path(events_dir, "content"))
    ensure_campaign(settings, config, content)
    people, suppressed, no_consent = audience(events_dir, config.audience)
    result = RoundResult(config.campaign_id, len(people), suppressed, no_consent, 0, 0)
    if people.empty:
        return result
    start, end = config.window.bounds()
    by_id = content.set_index("content_id")
    first_send = next_send_id(events_dir)
    rows = []
    result.decided_at = datetime.now(timezone.utc)
    with httpx.Client(timeout=120) as client, smtp_target(config, mbox_path) as (smtp, _sink), \
            _progress(progress, len(people), f"send {config.campaign_id}") as advance:
        for lo in range(0, len(people), config.batch_size):
            batch = people.iloc[lo: lo + config.batch_size]
            decisions = call_decide(client, base_url, config, batch["contact_id"].to_numpy(), start, end)
            for i, (email, d) in enumerate(zip(batch["email"].tolist(), decisions)):
                send_id = first_send + lo + i
                variant = by_id.loc[d["variant"]]
                blocks = [{"content_id": c, **by_id.loc[c, ["name", "topic", "format"]].to_dict()}
                          for c in d["content_order"][: config.content_blocks]]
                msg = render_email(sender=config.sender, email=email, send_id=send_id,
                                   variant={"subject": variant["subject"]}, blocks=blocks,
                                   headers=delivery_headers(config, send_id, d["contact_id"], d["decision_id"]))
                smtp.send(msg)
                sent_at = pd.Timestamp(d["send_at"]) if demo and d["send_at"] else pd.Timestamp.now(tz="UTC")
                rows.append((send_id, d["contact_id"], d["variant"], sent_at, d["decision_id"], d["propensity"],
                             d["fallback"], d["source"] == "live"))
            advance(len(batch))
    sends = pd.DataFrame(rows, columns=["send_id", "contact_id", "content_id", "sent_at", "decision_id",
                                        "propensity", "fallback", "live"])
    sends["campaign_id"] = config.campaign_id
    sends["sent_at"] = pd.to_datetime(sends["sent_at"], utc=True)
    append_sends(events_dir, sends.drop(columns=["fallback", "live"]))
    result.sent = len(sends)
    result.fallback = int(sends["fallback"].sum())
    result.live = int(sends["live"].sum())
    result.variants = {int(k): int(v) for k, v in sends["content_id"].value_counts().sort_index().items()}
    if demo:
        from serving.demo_responses import respond

        respond(result, sends, config, base_url, settings, seed=seed, progress=progress)
    flush(events_dir)
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
