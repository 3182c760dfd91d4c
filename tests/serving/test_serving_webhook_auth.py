"""Webhooks fail closed: the attacks of issue 13, each against the real webhook app (in process, real
journal, replay cache, send records, allocator and signature schemes; keys made by the test)."""
from __future__ import annotations

import base64
import json
import sqlite3
import time
import warnings
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

with warnings.catch_warnings():  # starlette 1.x prefers httpx2 for its test client; httpx works the same here
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from serving.demo_webhook_keys import mailgun_signature, sendgrid_public_key, sign_sns, sns_certificate
from serving.webhook_settings import ENV, WebhookLimits, keys_file, write_keys_file
from serving.webhook_signatures import sign_sendgrid
from serving_provider_samples import mailgun_event, sendgrid_events, ses_notification

TOPIC = "arn:aws:sns:us-east-1:123456789012:ses-events"  # the samples' topic
CERT_URL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-test.pem"
SUBSCRIBE_URL = "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=x&Token=t"


@dataclass
class Hub:
    settings: object
    client: TestClient
    receiver: object
    allocator: object
    sendgrid_key: ec.EllipticCurvePrivateKey
    mailgun_key: str
    sns_key: rsa.RSAPrivateKey
    fetched: list
    sends: pd.DataFrame

    def send(self, i: int) -> dict:
        row = self.sends.iloc[i]
        return {"send_id": int(row.send_id), "contact_id": int(row.contact_id), "decision_id": row.decision_id,
                "campaign_id": "spring"}

    def journal_rows(self) -> int:
        with sqlite3.connect(self.settings.events_dir / "webhook_journal.db") as conn:
            return conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]

    def post_sendgrid(self, events, timestamp=None, key=None):
        body = json.dumps(events).encode()
        headers = sign_sendgrid(key or self.sendgrid_key, int(timestamp or time.time()), body)
        return self.client.post("/sendgrid", content=body, headers=headers)

    def post_sns(self, message, version="2", cert_url=CERT_URL):
        unsigned = {k: v for k, v in message.items() if k not in ("Signature", "SignatureVersion", "SigningCertURL")}
        return self.client.post("/ses", json=sign_sns(unsigned, self.sns_key, cert_url, version))


@pytest.fixture
def hub(tmp_path, monkeypatch):
    from experiments.bandit import Allocator
    from inbox.settings import Settings
    from privacy.consent import ConsentLedger
    from serving.eventsink import EventJournal, append_sends
    from serving.webhook_app import create_webhook_app
    from serving.webhook_receiver import WebhookReceiver

    for name in ENV.values():
        monkeypatch.delenv(name, raising=False)
    settings = Settings(tmp_path / "data", f"sqlite:///{tmp_path}/mlflow.db", tmp_path / "mlruns")
    allocator = Allocator.open(settings.bandit_dir)
    allocator.register_campaign("spring", pd.DataFrame({"content_id": [10, 11], "subject_length": [30, 42]}),
                                ["x1"], wait_window="48h")
    contacts = np.array([7, 8, 9, 10])
    chosen = allocator.choose("spring", contacts, pd.DataFrame({"x1": [0.0, 1.0, 0.0, 1.0]}))
    sends = pd.DataFrame({"send_id": [11, 12, 13, 14], "contact_id": contacts, "campaign_id": "spring",
                          "content_id": chosen["variant"].to_numpy(), "sent_at": pd.Timestamp.now(tz="UTC"),
                          "decision_id": chosen["decision_id"], "propensity": chosen["propensity"]})
    append_sends(settings.events_dir, sends)

    sendgrid_key = ec.generate_private_key(ec.SECP256R1())
    sns_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = sns_certificate(sns_key)
    write_keys_file(keys_file(settings), {"sendgrid_public_key": sendgrid_public_key(sendgrid_key),
                                          "mailgun_signing_key": "mg-test-key", "sns_topic_arns": [TOPIC]})
    fetched: list[str] = []

    def fetch(url: str) -> bytes:
        fetched.append(url)
        return cert if url == CERT_URL else b"<ConfirmSubscriptionResponse/>"

    journal = EventJournal(settings.events_dir)
    receiver = WebhookReceiver(settings, journal, fetch=fetch, consent=ConsentLedger.open(settings))
    client = TestClient(create_webhook_app(lambda: (receiver, allocator)))
    yield Hub(settings, client, receiver, allocator, sendgrid_key, "mg-test-key", sns_key, fetched, sends)
    receiver.close()
    journal.close()
    allocator.close()


def now_events(hub, i=0, **kw):
    return sendgrid_events(**hub.send(i), when=int(time.time()), **kw)


# --- valid calls are accepted -------------------------------------------------------
def test_signed_calls_of_each_provider_are_recorded_and_reward_their_decision(hub):
    r = hub.post_sendgrid(now_events(hub, 0))
    assert r.status_code == 200, r.text
    assert (r.json()["recorded"], r.json()["ignored"], r.json()["rejected"]) == (3, 1, 0)  # "processed" ignored
    assert r.json()["rewards"] == {"accepted": 1}

    mg = mailgun_event(**hub.send(1), signature=mailgun_signature(hub.mailgun_key), timestamp=time.time())
    r = hub.client.post("/mailgun", json=mg)
    assert r.status_code == 200, r.text
    assert r.json()["recorded"] == 1 and r.json()["rewards"] == {"accepted": 1}

    for version, i, msg_id in (("1", 2, "ses-v1"), ("2", 3, "ses-v2")):
        note = ses_notification(message_id=msg_id, **hub.send(i), when=datetime.now(timezone.utc))
        r = hub.post_sns(note, version=version)
        assert r.status_code == 200, r.text
        assert r.json()["recorded"] == 1 and r.json()["rewards"] == {"accepted": 1}
    assert hub.journal_rows() == 6
    assert hub.fetched == [CERT_URL]  # the certificate is fetched once, then cached


def test_a_retried_signed_batch_is_a_duplicate(hub):
    events = now_events(hub, 0)
    assert hub.post_sendgrid(events).json()["recorded"] == 3
    again = hub.post_sendgrid(events).json()
    assert (again["recorded"], again["duplicates"], again["rewards"]) == (0, 3, {"duplicate": 1})


def test_a_signed_unsubscribe_is_an_opt_out_in_the_consent_ledger_and_a_forged_one_is_not(hub):
    ledger = hub.receiver.consent
    forged = [{**now_events(hub, 1)[1], "event": "unsubscribe", "sg_event_id": "forged-unsub"}]
    assert hub.client.post("/sendgrid", json=forged).status_code == 401
    assert ledger.history([hub.send(1)["contact_id"]]).empty
    unsub = [{**now_events(hub, 0)[1], "event": "unsubscribe", "sg_event_id": "real-unsub"}]
    r = hub.post_sendgrid(unsub)
    assert r.status_code == 200 and r.json()["recorded"] == 1
    history = ledger.history([hub.send(0)["contact_id"]])
    assert list(history[["kind", "source", "ref"]].itertuples(index=False, name=None)) == [
        ("opt_out", "webhook:sendgrid", "sendgrid:real-unsub")]
    assert not ledger.can_mail([hub.send(0)["contact_id"]])[0]
    hub.post_sendgrid(unsub)  # the provider's retry adds nothing
    assert len(ledger.history([hub.send(0)["contact_id"]])) == 1


def test_a_mailgun_token_is_released_when_recording_fails_on_our_side(hub):
    """The provider retries a call we failed with the same token: the retry must pass."""
    from serving.webhook_app import create_webhook_app

    payload = mailgun_event(**hub.send(1), signature=mailgun_signature(hub.mailgun_key), timestamp=time.time())
    failing = TestClient(create_webhook_app(lambda: (hub.receiver, None)), raise_server_exceptions=False)
    assert failing.post("/mailgun", json=payload).status_code == 500  # the reward step has no allocator
    r = hub.client.post("/mailgun", json=payload)
    assert r.status_code == 200 and r.json()["duplicates"] == 1  # journaled before the failure: now a duplicate


# --- forged, replayed, stale ----------------------------------------------------------
def test_5000_forged_unsigned_unsubscribes_get_401_and_record_nothing(hub):
    forged = [{**now_events(hub, i % 4)[1], "event": "unsubscribe", "sg_event_id": f"forged-{i}"}
              for i in range(5000)]
    assert hub.client.post("/sendgrid", json=forged).status_code == 401
    r = hub.post_sendgrid(forged, key=ec.generate_private_key(ec.SECP256R1()))  # signed with someone else's key
    assert r.status_code == 401 and r.json()["field"] == "X-Twilio-Email-Event-Webhook-Signature"
    body = json.dumps(forged).encode()
    headers = sign_sendgrid(hub.sendgrid_key, int(time.time()), body)
    tampered = body.replace(b"forged-0", b"forged-X")  # signature of another body
    assert hub.client.post("/sendgrid", content=tampered, headers=headers).status_code == 401
    assert hub.journal_rows() == 0


def test_a_provider_without_a_key_accepts_nothing(hub):
    write_keys_file(keys_file(hub.settings), {})
    assert hub.post_sendgrid(now_events(hub, 0)).status_code == 401
    mg = mailgun_event(**hub.send(1), signature=mailgun_signature(hub.mailgun_key), timestamp=time.time())
    assert hub.client.post("/mailgun", json=mg).status_code == 401
    note = ses_notification(**hub.send(2), when=datetime.now(timezone.utc))
    r = hub.post_sns(note)
    assert r.status_code == 401 and r.json()["field"] == "provider"
    assert hub.journal_rows() == 0


def test_a_replayed_mailgun_token_is_refused_even_with_other_event_data(hub):
    signature = mailgun_signature(hub.mailgun_key)
    first = mailgun_event(**hub.send(1), signature=signature, timestamp=time.time())
    assert hub.client.post("/mailgun", json=first).status_code == 200
    forged = mailgun_event(event="unsubscribed", event_id="forged", **hub.send(2), signature=signature,
                           timestamp=time.time())
    r = hub.client.post("/mailgun", json=forged)
    assert r.status_code == 401 and r.json()["field"] == "signature.token"
    assert hub.journal_rows() == 1


def test_the_replay_cache_is_shared_by_workers(hub):
    """A second receiver (another worker) over the same data dir refuses a token the first accepted."""
    from serving.eventsink import EventJournal
    from serving.webhook_app import create_webhook_app
    from serving.webhook_receiver import WebhookReceiver

    signature = mailgun_signature(hub.mailgun_key)
    assert hub.client.post("/mailgun", json=mailgun_event(**hub.send(1), signature=signature,
                                                          timestamp=time.time())).status_code == 200
    journal = EventJournal(hub.settings.events_dir)
    other = WebhookReceiver(hub.settings, journal)
    try:
        client = TestClient(create_webhook_app(lambda: (other, hub.allocator)))
        payload = mailgun_event(event_id="again", **hub.send(1), signature=signature, timestamp=time.time())
        assert client.post("/mailgun", json=payload).status_code == 401
    finally:
        other.close()
        journal.close()


def test_stale_2015_timestamps_are_refused(hub):
    t2015 = int(datetime(2015, 6, 1, tzinfo=timezone.utc).timestamp())
    mg = mailgun_event(**hub.send(1), signature=mailgun_signature(hub.mailgun_key, timestamp=t2015))
    r = hub.client.post("/mailgun", json=mg)
    assert r.status_code == 401 and r.json()["field"] == "signature.timestamp"
    r = hub.post_sendgrid(now_events(hub, 0), timestamp=t2015)
    assert r.status_code == 401 and r.json()["field"] == "X-Twilio-Email-Event-Webhook-Timestamp"
    future = int(time.time()) + 3600
    assert hub.post_sendgrid(now_events(hub, 0), timestamp=future).status_code == 401
    assert hub.journal_rows() == 0


@pytest.mark.parametrize("signature", ["é" * 64, "\u0000", "", 12345, None, ["x"]])
def test_malformed_mailgun_signatures_get_401_not_500(hub, signature):
    good = mailgun_signature(hub.mailgun_key)
    mg = mailgun_event(**hub.send(1), signature={**good, "signature": signature}, timestamp=time.time())
    r = hub.client.post("/mailgun", json=mg)
    assert r.status_code == 401, r.text


def test_non_ascii_sendgrid_signature_header_gets_401(hub):
    body = json.dumps(now_events(hub, 0)).encode()
    headers = {"X-Twilio-Email-Event-Webhook-Signature": "é".encode("latin-1"),
               "X-Twilio-Email-Event-Webhook-Timestamp": str(int(time.time()))}
    assert hub.client.post("/sendgrid", content=body, headers=headers).status_code == 401


# --- SNS ---------------------------------------------------------------------------------
@pytest.mark.parametrize("cert_url", [
    "https://evil.example.com/SimpleNotificationService.pem",
    "http://sns.us-east-1.amazonaws.com/SimpleNotificationService.pem",
    "https://sns.us-east-1.amazonaws.com.evil.example/cert.pem",
    "https://sns.us-east-1.amazonaws.com:8443/cert.pem",
    "https://user@sns.us-east-1.amazonaws.com/cert.pem",
    "https://sns.eu-west-1.amazonaws.com/cert.pem",  # an SNS host, but not the topic's region
])
def test_a_certificate_url_off_the_topics_sns_host_is_refused_before_fetching(hub, cert_url):
    note = ses_notification(**hub.send(2), when=datetime.now(timezone.utc))
    r = hub.post_sns(note, cert_url=cert_url)
    assert r.status_code == 401 and r.json()["field"] == "SigningCertURL"
    assert hub.fetched == []


def test_an_unsigned_or_foreign_topic_sns_message_is_refused(hub):
    note = ses_notification(**hub.send(2), when=datetime.now(timezone.utc))
    unsigned = {k: v for k, v in note.items() if k != "Signature"}
    assert hub.client.post("/ses", json=unsigned).status_code == 401
    assert hub.client.post("/ses", json=note).status_code == 401  # the docs' placeholder signature
    other_topic = {**note, "TopicArn": "arn:aws:sns:us-east-1:999999999999:not-ours"}
    assert hub.post_sns(other_topic).status_code == 401
    tampered = sign_sns({k: v for k, v in note.items() if k not in ("Signature", "SigningCertURL")},
                        hub.sns_key, CERT_URL)
    tampered["Message"] = tampered["Message"].replace("Click", "Complaint")
    assert hub.client.post("/ses", json=tampered).status_code == 401
    assert hub.journal_rows() == 0


def subscription(kind="SubscriptionConfirmation", subscribe_url=SUBSCRIBE_URL) -> dict:
    return {"Type": kind, "MessageId": "sub-1", "Token": "t" * 40, "TopicArn": TOPIC,
            "Message": "You have chosen to subscribe to the topic.", "SubscribeURL": subscribe_url,
            "Timestamp": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")}


def test_subscription_confirmation_is_confirmed_only_when_signed(hub):
    unsigned = {**subscription(), "SignatureVersion": "2", "SigningCertURL": CERT_URL,
                "Signature": base64.b64encode(b"x" * 256).decode()}
    assert hub.client.post("/ses", json=unsigned).status_code == 401
    assert SUBSCRIBE_URL not in hub.fetched
    r = hub.post_sns(subscription())
    assert r.status_code == 200, r.text
    assert hub.fetched == [CERT_URL, SUBSCRIBE_URL]
    foreign = hub.post_sns(subscription(subscribe_url="https://evil.example.com/confirm"))
    assert foreign.status_code == 401 and foreign.json()["field"] == "SubscribeURL"
    assert hub.fetched == [CERT_URL, SUBSCRIBE_URL]
    r = hub.post_sns(subscription("UnsubscribeConfirmation"))
    assert r.status_code == 200 and r.json()["received"] == 0
    assert hub.fetched == [CERT_URL, SUBSCRIBE_URL]  # not re-subscribed


def test_an_unreachable_subscribe_url_is_a_502_not_a_500(hub):
    from serving.eventsink import EventJournal
    from serving.webhook_app import create_webhook_app
    from serving.webhook_receiver import WebhookReceiver

    assert hub.post_sns(ses_notification(**hub.send(2), when=datetime.now(timezone.utc))).status_code == 200

    def unreachable(url):
        raise OSError("connection refused")

    journal = EventJournal(hub.settings.events_dir)
    other = WebhookReceiver(hub.settings, journal, fetch=unreachable)  # the certificate comes from the cache
    try:
        r = TestClient(create_webhook_app(lambda: (other, hub.allocator))).post(
            "/ses", json=sign_sns(subscription(), hub.sns_key, CERT_URL))
        assert r.status_code == 502 and r.json()["field"] == "SubscribeURL"
    finally:
        other.close()
        journal.close()


def test_the_certificate_cache_is_shared_on_disk(hub):
    from serving.eventsink import EventJournal
    from serving.webhook_app import create_webhook_app
    from serving.webhook_receiver import WebhookReceiver

    assert hub.post_sns(ses_notification(**hub.send(2), when=datetime.now(timezone.utc))).status_code == 200
    journal = EventJournal(hub.settings.events_dir)
    refused: list[str] = []
    other = WebhookReceiver(hub.settings, journal, fetch=lambda url: refused.append(url) or b"")
    try:
        client = TestClient(create_webhook_app(lambda: (other, hub.allocator)))
        note = ses_notification(message_id="second", **hub.send(3), when=datetime.now(timezone.utc))
        unsigned = {k: v for k, v in note.items() if k not in ("Signature", "SignatureVersion", "SigningCertURL")}
        assert client.post("/ses", json=sign_sns(unsigned, hub.sns_key, CERT_URL)).status_code == 200
        assert refused == []  # the other worker read the certificate from the cache
    finally:
        other.close()
        journal.close()


def test_a_signed_sns_message_outside_the_freshness_window_is_refused(hub):
    """A captured SNS message replayed later (or dated ahead) gets 401 and records nothing; inside the
    window it is recorded; a Timestamp that is no time is a 400."""
    window = hub.receiver.limits.sns_max_age_s
    now = datetime.now(timezone.utc)

    def published(i, skew, message_id):  # the event now, its SNS publication `skew` seconds away
        stamp = (now + timedelta(seconds=skew)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        return {**ses_notification(message_id=message_id, **hub.send(i), when=now), "Timestamp": stamp}

    for i, skew in ((0, -window - 60), (1, window + 60)):
        r = hub.post_sns(published(i, skew, f"stale-{i}"))
        assert r.status_code == 401 and r.json()["field"] == "Timestamp", r.text
    assert hub.journal_rows() == 0
    assert hub.post_sns(published(2, -window + 60, "recent")).status_code == 200 and hub.journal_rows() == 1
    for bad in ("yesterday", "2026-12-06T10:00:00"):  # no time; no zone
        r = hub.post_sns({**published(3, 0, "bad"), "Timestamp": bad})
        assert r.status_code == 400 and r.json()["field"] == "Timestamp", r.text
    assert hub.journal_rows() == 1


# --- events must match a known send ------------------------------------------------------
@pytest.mark.parametrize("change", [
    {"send_id": 999},                          # no such send
    {"contact_id": 10_000},                    # another contact's send
    {"decision_id": "0" * 32},                 # another decision than the send's
])
def test_signed_events_not_matching_a_known_send_are_rejected(hub, change):
    ids = {**hub.send(0), **change}
    click = [e for e in sendgrid_events(**ids, when=int(time.time())) if e["event"] == "click"]
    r = hub.post_sendgrid(click)
    assert r.status_code == 200, r.text
    assert (r.json()["recorded"], r.json()["rejected"], r.json()["rewards"]) == (0, 1, {})
    assert hub.journal_rows() == 0


def test_an_event_for_a_send_still_in_the_outbox_matches(hub):
    """The outbox row exists before the mail leaves; the sends table gets it later."""
    from sending.outbox import Outbox

    d = hub.allocator.choose("spring", [20], pd.DataFrame({"x1": [1.0]}))
    with Outbox.open(hub.settings) as outbox:
        outbox.enqueue([(500, "spring", "r1", 20, int(d["variant"][0]), d["decision_id"][0],
                         float(d["propensity"][0]), 0, 0, "example.com", "news@example.com", "c20@example.com",
                         b"message", 0, 0, 0)])
    ids = {"send_id": 500, "contact_id": 20, "decision_id": d["decision_id"][0], "campaign_id": "spring"}
    r = hub.post_sendgrid(sendgrid_events(**ids, when=int(time.time())))
    assert r.status_code == 200 and (r.json()["recorded"], r.json()["rejected"]) == (3, 0), r.text
    other = hub.post_sendgrid(sendgrid_events(**{**ids, "contact_id": 21}, when=int(time.time())))
    assert (other.json()["recorded"], other.json()["rejected"]) == (0, 3)


# --- every input error is a 4xx ------------------------------------------------------------
def test_signed_invalid_json_and_wrong_types_get_400(hub):
    for body in (b"{not json", b"\xff\xfe", b"[" * 100_000 + b"]" * 100_000):
        headers = sign_sendgrid(hub.sendgrid_key, int(time.time()), body)
        r = hub.client.post("/sendgrid", content=body, headers=headers)
        assert r.status_code == 400 and r.json()["field"] == "body", r.text
    assert hub.client.post("/mailgun", content=b"{oops", headers={"Content-Type": "application/json"}
                           ).status_code == 400
    note = ses_notification(**hub.send(2), when=datetime.now(timezone.utc))
    for field, value in (("Message", 5), ("MessageId", ["x"]), ("Timestamp", {"t": 1})):
        r = hub.client.post("/ses", json={**note, field: value})
        assert r.status_code == 400 and r.json()["field"] == field, r.text
    for bad in ({"Type": []}, {"Type": {"a": 1}}, {**note, "Type": ["Notification"]}, [note], "x", None):
        r = hub.client.post("/ses", json=bad)
        assert r.status_code == 400, (bad, r.text)
    for url in ("https://sns.us-east-1.amazonaws.com:x/c.pem", "https://[::1/c.pem", "", "sns"):
        r = hub.client.post("/ses", json={**note, "SigningCertURL": url})
        assert r.status_code == 401 and r.json()["field"] == "SigningCertURL", (url, r.text)
    message = json.loads(note["Message"])
    message["mail"]["tags"] = "send_id=1"
    r = hub.post_sns({**note, "Message": json.dumps(message)})  # signed, but the tags are no mapping
    assert r.status_code == 400 and r.json()["field"] == "Message.mail.tags"


def test_too_many_events_or_bytes_get_413(hub):
    from serving.webhook_app import create_webhook_app
    from serving.webhook_receiver import WebhookReceiver

    small = WebhookReceiver(hub.settings, hub.receiver.journal, fetch=hub.receiver.sns.fetch,
                            limits=WebhookLimits(max_events=3, max_bytes=20_000))
    try:
        client = TestClient(create_webhook_app(lambda: (small, hub.allocator)))
        body = json.dumps(now_events(hub, 0)).encode()  # 4 events
        r = client.post("/sendgrid", content=body, headers=sign_sendgrid(hub.sendgrid_key, int(time.time()), body))
        assert r.status_code == 413
        assert client.post("/sendgrid", content=b"[" + b" " * 30_000 + b"]").status_code == 413
    finally:
        small.close()
    assert hub.journal_rows() == 0


def test_not_ready_is_503(hub):
    from serving.webhook_app import create_webhook_app

    r = TestClient(create_webhook_app(lambda: None)).post("/sendgrid", json=[])
    assert r.status_code == 503 and r.headers["Retry-After"]
