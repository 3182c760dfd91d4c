"""Demo mode: simulated recipients answer a sent campaign through the ESP webhooks.

The world's `ResponseModel` draws each recipient's events on their true
probabilities and delays (sent at the recommended time); each event is posted
to the service as one ESP would post it, signed as that ESP signs it with the
keys the demo configures (`serving.demo_webhook_keys`): SendGrid in batched
JSON arrays (ECDSA headers), Mailgun (HMAC, one fresh token per call) and
SES-through-SNS (a signed SNS message) one event per call. A bounce is a hard
one (the simulated bounces are invalid addresses). Conversions are not ESP
events (they come from the web site), so they are appended to the event log
directly. The oracle's expected reward of the chosen variants and of a uniform
choice is recorded for the summary (ground truth, not an estimate).
"""
from __future__ import annotations

import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from sending.headers import ses_tag_value

PROVIDERS = ("sendgrid", "mailgun", "ses")
SENDGRID = {"delivered": "delivered", "open": "open", "click": "click", "bounce": "bounce",
            "unsubscribe": "unsubscribe", "complaint": "spamreport"}
MAILGUN = {"delivered": "delivered", "open": "opened", "click": "clicked", "bounce": "failed",
           "unsubscribe": "unsubscribed", "complaint": "complained"}
SES = {"delivered": "Delivery", "open": "Open", "click": "Click", "bounce": "Bounce",
       "unsubscribe": "Subscription", "complaint": "Complaint"}
SENDGRID_BATCH = 1000


def _ids(send) -> dict:
    return {"send_id": str(send.send_id), "contact_id": str(send.contact_id), "decision_id": send.decision_id,
            "campaign_id": send.campaign_id}


def sendgrid_event(send, kind: str, when: pd.Timestamp, event_id: str) -> dict:
    return {"email": f"contact{send.contact_id}@example.com", "timestamp": int(when.timestamp()),
            "event": SENDGRID[kind], "sg_event_id": event_id, "sg_message_id": f"msg.{send.send_id}",
            **_ids(send)}


def mailgun_payload(send, kind: str, when: pd.Timestamp, event_id: str) -> dict:
    """The event data; its `signature` is added when posted (a fresh token per call)."""
    data = {"event": MAILGUN[kind], "timestamp": when.timestamp(), "id": event_id,
            "recipient": f"contact{send.contact_id}@example.com", "user-variables": _ids(send),
            "message": {"headers": {"message-id": f"{send.send_id}@inbox.example"}}}
    if kind == "bounce":
        data["severity"] = "permanent"
    return {"event-data": data}


def ses_payload(send, kind: str, when: pd.Timestamp, event_id: str) -> dict:
    iso = when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    event_type = SES[kind]
    message = {"eventType": event_type,
               "mail": {"timestamp": iso, "messageId": f"{send.send_id}@inbox.example",
                        "tags": {k: [ses_tag_value(v)] for k, v in _ids(send).items()}, "headers": []},
               event_type[0].lower() + event_type[1:]: {"timestamp": iso}}
    if kind == "bounce":
        message["bounce"]["bounceType"] = "Permanent"
    return {"Type": "Notification", "MessageId": event_id, "Message": json.dumps(message), "Timestamp": iso}


def respond(result, sends: pd.DataFrame, config, base_url: str, settings, seed: int = 0,
            progress: bool = False) -> None:
    import httpx

    from serving.demo_webhook_keys import demo_signers
    from serving.eventsink import append_events
    from serving.webhooks import stable_event_id
    from simulation.world import World

    world = World.load(settings.world_dir)
    ids = sends["contact_id"].to_numpy(np.int64)
    chosen = sends["content_id"].to_numpy(np.int64)
    sent_at = sends["sent_at"]
    truth = world.response.probabilities(ids, chosen, sent_at)[config.reward_event]
    uniform = np.mean([world.response.probabilities(ids, np.full(len(ids), v), sent_at)[config.reward_event]
                       for v in config.variants], axis=0)
    result.oracle_reward, result.oracle_uniform = float(truth.mean()), float(uniform.mean())

    rng = np.random.default_rng(seed)
    drawn = world.response.sample(ids, chosen, sent_at, rng)
    signers = demo_signers(settings)
    batches: dict[str, list] = {p: [] for p in PROVIDERS}
    conversions = []
    for j, (row, kind, when, value) in enumerate(drawn[["row", "type", "occurred_at", "value"]].itertuples(
            index=False)):
        send = sends.iloc[int(row)]
        event_id = f"demo-{send.send_id}-{kind}-{j}"
        if kind == "conversion":
            conversions.append((stable_event_id("site", event_id), send.send_id, send.contact_id, when, value))
            continue
        provider = PROVIDERS[int(send.send_id) % 3]
        if provider == "sendgrid":
            batches[provider].append(sendgrid_event(send, kind, when, event_id))
        elif provider == "mailgun":
            batches[provider].append(mailgun_payload(send, kind, when, event_id))
        else:
            batches[provider].append(ses_payload(send, kind, when, event_id))
    calls = [("sendgrid", batches["sendgrid"][i: i + SENDGRID_BATCH])
             for i in range(0, len(batches["sendgrid"]), SENDGRID_BATCH)]
    calls += [("mailgun", p) for p in batches["mailgun"]] + [("ses", p) for p in batches["ses"]]
    statuses: Counter = Counter()
    with httpx.Client(timeout=60) as client:
        def post(call):
            provider, payload = call
            headers = {"Content-Type": "application/json"}
            if provider == "mailgun":  # signed when posted: the timestamp must be fresh
                payload = {**payload, "signature": signers.mailgun_signature()}
            elif provider == "ses":
                payload = signers.sns(payload)
            body = json.dumps(payload).encode()
            if provider == "sendgrid":
                headers.update(signers.sendgrid_headers(body))
            r = client.post(f"{base_url}/webhooks/{provider}", content=body, headers=headers)
            if r.status_code != 200:
                raise RuntimeError(f"webhook {provider} answered HTTP {r.status_code}: {r.text[:300]}")
            return r.json()["rewards"]

        with ThreadPoolExecutor(max_workers=4) as pool:
            for rewards in pool.map(post, calls):
                statuses.update(rewards)
    if conversions:
        conv = pd.DataFrame(conversions, columns=["event_id", "send_id", "contact_id", "occurred_at", "value"])
        conv["type"] = "conversion"
        append_events(settings.events_dir, conv[["event_id", "send_id", "contact_id", "type", "occurred_at",
                                                 "value"]])
    result.events_posted = int(len(drawn) - len(conversions))
    result.webhook_calls = len(calls)
    result.rewards = dict(statuses)
