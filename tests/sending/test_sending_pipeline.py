"""`inbox send`'s pipeline against the real service: consent and bounce classes in the audience,
hygiene counts, RFC 8058 one-click and the preference centre, sends in the event log, demo responses
via webhooks, failures that leave a resumable run, and a kill -9 of the sender mid-campaign."""
from __future__ import annotations

import email
import mailbox
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from email.policy import default

import numpy as np
import pandas as pd
import pytest

from sending.campaign import parse_campaign
from sending.clock import VirtualClock

pytestmark = [pytest.mark.server, pytest.mark.slow]


@pytest.fixture(autouse=True)
def _key(api_key, monkeypatch):
    monkeypatch.setenv("INBOX_API_KEY", api_key)


def _mailable(settings, n: int | None, skip: set = frozenset(), clean: bool = True):
    """n contacts the ledger lets us mail, with no bounces (and, `clean`, plain addresses)."""
    from features.email_quality import email_quality
    from sending.audience import bounce_reasons, consent_reasons
    from simulation.eventlog import read_table, table_path

    contacts = read_table("contacts", table_path(settings.events_dir, "contacts"))
    ids = contacts["contact_id"].to_numpy(np.int64)
    ok = pd.isna(consent_reasons(settings, ids, None))
    ok &= pd.isna(bounce_reasons(table_path(settings.events_dir, "events"), ids, 3))
    if clean:
        q = email_quality(contacts["email"])
        ok &= (q["email_valid"] & ~q["email_disposable"] & ~q["email_role_account"]
               & ~q["email_typo_suspected"]).to_numpy()
    ok &= ~np.isin(ids, list(skip))
    return contacts[ok] if n is None else contacts[ok].head(n)


def _marked_sent(settings) -> set[str]:
    from experiments.bandit import Allocator

    alloc = Allocator.open(settings.bandit_dir)
    try:
        return set(alloc.log.sent()["decision_id"])
    finally:
        alloc.close()


def _sink_messages(mbox):
    return [email.message_from_bytes(m.as_bytes(), policy=default) for m in mailbox.mbox(mbox)]


def test_send_honors_consent_records_sends_and_the_one_click_post_unsubscribes(service, serving_world, tmp_path):
    import httpx

    from privacy.consent import ConsentLedger
    from sending.pipeline import run_campaign
    from simulation.eventlog import read_table, table_path

    people = _mailable(serving_world, 4)
    ids = people["contact_id"].tolist()
    config = parse_campaign({"campaign_id": "send-test", "variants": [0, 1], "audience": {"contact_ids": ids}})
    mbox = tmp_path / "sink.mbox"
    result = run_campaign(config, service.url, serving_world, clock=VirtualClock(), mbox_path=mbox)
    assert result.sent == 4 and result.enqueued == 4 and result.live == 0
    messages = _sink_messages(mbox)
    assert sorted(m["To"] for m in messages) == sorted(people["email"])
    sends = read_table("sends", table_path(serving_world.events_dir, "sends"))
    mine = sends[sends["campaign_id"] == "send-test"].set_index("send_id")
    assert sorted(mine["contact_id"]) == sorted(ids)
    for m in messages:
        send = mine.loc[int(m["X-Inbox-Send-Id"])]
        assert m["X-Inbox-Decision-Id"] == send["decision_id"] and 0 < send["propensity"] <= 1
        assert send["decision_id"] in m["X-SMTPAPI"] and send["decision_id"] in m["X-Mailgun-Variables"]
    assert result.sent_marks == {"marked": 4, "already": 0, "unknown": 0}
    assert set(mine["decision_id"]) <= _marked_sent(serving_world)  # what was delivered is marked sent
    # RFC 8058: a mail client POSTs List-Unsubscribe=One-Click to the https URL of List-Unsubscribe
    victim = messages[0]
    url = re.search(r"<(https://[^>]+)>", str(victim["List-Unsubscribe"])).group(1)
    local = service.url + "/u/" + url.rsplit("/u/", 1)[1]
    r = httpx.post(local, content=b"List-Unsubscribe=One-Click",
                   headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=30)  # no API key
    assert r.status_code == 200, r.text
    contact = int(victim["X-Inbox-Contact-Id"])
    with ConsentLedger.open(serving_world, read_only=True) as ledger:
        assert ledger.reasons([contact])[0] == "opted_out"
    forged = local[:-4] + ("0000" if not local.endswith("0000") else "1111")
    assert httpx.post(forged, content=b"List-Unsubscribe=One-Click", timeout=30).status_code == 404
    again = parse_campaign({"campaign_id": "send-test-2", "variants": [0, 1], "audience": {"contact_ids": ids}})
    second = run_campaign(again, service.url, serving_world, clock=VirtualClock())
    assert second.sent == 3 and second.skipped == {"opted_out": 1}


def test_preference_centre_topic_choice_is_honoured(service, serving_world):
    import httpx

    from sending.audience import select_audience
    from sending.tokens import make_token

    contact = int(_mailable(serving_world, 1, skip=set())["contact_id"].iloc[0])
    token = make_token(serving_world, contact, 999_999)
    page = httpx.get(f"{service.url}/u/{token}", timeout=30)
    assert page.status_code == 200 and 'name="topic" value="promotion" checked' in page.text
    assert f'action="{token}/preferences"' in page.text
    keep = [t for t in ("product", "education", "case_study", "event", "news")]
    r = httpx.post(f"{service.url}/u/{token}/preferences", data={"topic": keep, "all": "subscribe"}, timeout=30)
    assert r.status_code == 200
    assert 'value="promotion">' in httpx.get(f"{service.url}/u/{token}", timeout=30).text  # now unchecked
    promo = parse_campaign({"campaign_id": "promo", "variants": [0], "topic": "promotion",
                            "audience": {"contact_ids": [contact]}})
    news = parse_campaign({"campaign_id": "news", "variants": [0], "topic": "news",
                           "audience": {"contact_ids": [contact]}})
    assert select_audience(serving_world, promo, np.array([], np.int64)).skipped == {"topic_opt_out": 1}
    assert select_audience(serving_world, news, np.array([], np.int64)).people["contact_id"].tolist() == [contact]


def test_soft_bounces_suppress_only_when_consecutive_and_hard_bounces_at_once(serving_world):
    from sending.audience import select_audience
    from serving.eventsink import append_events
    from simulation.eventlog import read_table, table_path

    people = _mailable(serving_world, 4)
    a, b, c, d = people["contact_id"].tolist()
    sends = read_table("sends", table_path(serving_world.events_dir, "sends"))
    t0 = pd.Timestamp("2030-01-01", tz="UTC")
    rows = [(a, "soft_bounce", 0), (a, "soft_bounce", 1),                          # 2 soft: still mailed
            (b, "soft_bounce", 0), (b, "soft_bounce", 1), (b, "soft_bounce", 2),   # 3 in a row: suppressed
            (c, "soft_bounce", 0), (c, "soft_bounce", 1), (c, "delivered", 2), (c, "soft_bounce", 3),
            (d, "bounce", 0)]                                                       # hard: suppressed
    send_of = sends.groupby("contact_id")["send_id"].first()
    append_events(serving_world.events_dir, pd.DataFrame({
        "event_id": np.arange(len(rows)) + 9_000_000_000, "send_id": [int(send_of.get(x, 1)) for x, _, _ in rows],
        "contact_id": [x for x, _, _ in rows], "type": [t for _, t, _ in rows],
        "occurred_at": [t0 + pd.Timedelta(days=k) for _, _, k in rows], "value": np.nan}))
    config = parse_campaign({"campaign_id": "bounces", "variants": [0], "audience": {"contact_ids": [a, b, c, d]}})
    aud = select_audience(serving_world, config, np.array([], np.int64))
    assert sorted(aud.people["contact_id"]) == sorted([a, c])
    assert aud.skipped == {"soft_bounces": 1, "hard_bounce": 1}
    strict = parse_campaign({"campaign_id": "bounces", "variants": [0],
                             "audience": {"contact_ids": [a, b, c, d], "soft_bounce_limit": 2}})
    assert select_audience(serving_world, strict, np.array([], np.int64)).skipped == {"soft_bounces": 2,
                                                                                       "hard_bounce": 1}


def test_hygiene_policy_skips_and_counts_per_reason(serving_world):
    from features.email_quality import email_quality
    from sending.audience import select_audience

    people = _mailable(serving_world, None, clean=False)
    q = email_quality(people["email"])
    flags = {"disposable": q["email_disposable"].to_numpy(), "role": q["email_role_account"].to_numpy(),
             "typo": q["email_typo_suspected"].to_numpy()}
    only = {k: v & ~np.logical_or.reduce([w for n, w in flags.items() if n != k]) & q["email_valid"].to_numpy()
            for k, v in flags.items()}
    pick = {k: people.loc[v, "contact_id"].head(2).tolist() for k, v in only.items()}
    assert all(len(v) == 2 for v in pick.values()), pick  # the world has each kind
    ids = [i for v in pick.values() for i in v]
    base = {"campaign_id": "hygiene", "variants": [0], "audience": {"contact_ids": ids}}
    none = np.array([], np.int64)
    default_policy = select_audience(serving_world, parse_campaign(base), none)
    assert default_policy.skipped == {"disposable": 2}
    assert sorted(default_policy.people["contact_id"]) == sorted(pick["role"] + pick["typo"])
    strict = select_audience(serving_world, parse_campaign(
        {**base, "hygiene": {"skip": ["invalid", "disposable", "role", "typo"]}}), none)
    assert strict.skipped == {"disposable": 2, "role": 2, "typo": 2} and strict.people.empty


def test_demo_round_posts_provider_events_and_suppresses_next_time(service, serving_world):
    from sending.pipeline import run_campaign
    from serving.eventsink import flush
    from simulation.eventlog import read_table, table_path

    config = parse_campaign({"campaign_id": "demo-test", "variants": [0, 1, 2], "audience": {"limit": 150,
                                                                                           "seed": 3}})
    result = run_campaign(config, service.url, serving_world, demo=True, seed=4)
    assert result.sent == 150 and result.events_posted > 150  # at least a delivery or bounce per send
    assert result.webhook_calls > 1
    assert 0 < result.oracle_reward < 1 and 0 < result.oracle_uniform < 1
    flush(serving_world.events_dir)
    events = read_table("events", table_path(serving_world.events_dir, "events"))
    sends = read_table("sends", table_path(serving_world.events_dir, "sends"))
    mine = sends.loc[sends["campaign_id"] == "demo-test", "send_id"]
    logged = events[events["send_id"].isin(mine)]
    assert set(logged["type"]) >= {"delivered"}
    # whoever bounced hard or complained in this round is never mailed again
    gone = set(logged.loc[logged["type"].isin(["bounce", "complaint"]), "contact_id"])
    if gone:
        again = parse_campaign({"campaign_id": "demo-test-again", "variants": [0, 1, 2],
                                "audience": {"contact_ids": sorted(gone)}})
        assert run_campaign(again, service.url, serving_world, demo=False, clock=VirtualClock()).sent == 0
    assert pd.Series(result.variants).sum() == 150


def _cli_env(settings, api_key):
    from serving.runner import PROJECT_ROOT, settings_env

    env = {**os.environ, **settings_env(settings), "INBOX_API_KEY": api_key}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    return env


def _inbox_send(args, env, **kw):
    return subprocess.run([sys.executable, "-m", "inbox.cli", "send", *args], env=env, capture_output=True,
                          text=True, timeout=kw.pop("timeout", 300), **kw)


def test_kill_9_of_the_sender_mid_campaign_then_rerun_mails_everyone_exactly_once(service, serving_world,
                                                                                 api_key, tmp_path):
    import yaml

    from sending.outbox import Outbox
    from sending.smtp import SinkHandler, smtp_sink
    from simulation.eventlog import read_table, table_path

    people = _mailable(serving_world, 80)
    slow = SinkHandler(reply=lambda msg: time.sleep(0.02))  # ~50 messages/s: the kill lands mid-campaign
    env = _cli_env(serving_world, api_key)
    with smtp_sink(handler=slow) as (host, port, handler):
        path = tmp_path / "crash.yaml"
        path.write_text(yaml.safe_dump({
            "campaign_id": "crash-test", "variants": [0, 1], "postal_address": "Shop Ltd, 1 Main St, Springfield",
            "audience": {"contact_ids": people["contact_id"].tolist()},
            "window": {"start": datetime.now(timezone.utc).isoformat(), "hours": 1},
            "smtp": {"host": host, "port": port}, "batch_size": 30}))
        queued = _inbox_send([str(path), "--url", service.url], env)
        assert queued.returncode == 0, queued.stderr
        sender = subprocess.Popen([sys.executable, "-m", "inbox.cli", "send", str(path), "--url", service.url,
                                   "--run", "--clock-speed", "100000"], env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while len(handler.received) < 25 and time.monotonic() < deadline and sender.poll() is None:
            time.sleep(0.01)
        sender.send_signal(signal.SIGKILL)
        sender.wait(30)
        at_kill = len(handler.received)
        assert 0 < at_kill < len(people), "the kill must land mid-campaign"
        rerun = _inbox_send([str(path), "--url", service.url, "--run", "--clock-speed", "100000"], env)
        assert rerun.returncode == 0, rerun.stderr
        received = list(handler.received)
    contacts = pd.Series([int(h["X-Inbox-Contact-Id"]) for _, _, h in received])
    assert contacts.value_counts().max() == 1 and sorted(contacts) == sorted(people["contact_id"])
    sends = read_table("sends", table_path(serving_world.events_dir, "sends")).set_index("send_id")
    for _, rcpts, h in received:  # every delivered message has its send row, decision id and propensity
        row = sends.loc[int(h["X-Inbox-Send-Id"])]
        assert row["contact_id"] == int(h["X-Inbox-Contact-Id"]) and row["decision_id"] == h["X-Inbox-Decision-Id"]
    with Outbox.open(serving_world) as outbox:
        rows = outbox.run_rows("crash-test", parse_campaign(yaml.safe_load(path.read_text())).run_key())
    assert len(rows) == len(people) and set(rows["status"]) <= {"sent", "unknown"}
    assert (rows["status"] == "unknown").sum() <= 1  # only a kill between the dot and its reply leaves one


def _proxy(upstream: str, answer):
    """A local HTTP proxy to `upstream`, started in a thread: `answer(n, forward)` gives the n-th POST's
    (status, body); `forward()` passes the request on and returns the upstream's. Stop it with shutdown()."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import httpx

    calls = {"n": 0}

    class Proxy(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            calls["n"] += 1

            def forward():
                r = httpx.post(upstream + self.path, content=body, timeout=60,
                               headers={"Content-Type": "application/json",
                                        "Authorization": self.headers["Authorization"]})
                return r.status_code, r.content

            status, data = answer(calls["n"], forward)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    proxy = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    return proxy


def test_decide_503_mid_campaign_leaves_a_resumable_run(service, serving_world, api_key):
    """A proxy in front of the real service answers the third /decide with 503; the re-run resumes."""
    from experiments.bandit import Allocator
    from sending.outbox import Outbox
    from sending.pipeline import SendError, run_campaign

    def third_is_503(n, forward):
        return (503, b'{"error": "service: not ready", "field": "service"}') if n == 3 else forward()

    proxy = _proxy(service.url, third_is_503)
    people = _mailable(serving_world, 50)
    config = parse_campaign({"campaign_id": "flaky", "variants": [0, 1], "batch_size": 10,
                             "audience": {"contact_ids": people["contact_id"].tolist()}})
    try:
        with pytest.raises(SendError, match=r"decide answered HTTP 503.*20 of 50 recipients queued, re-run"):
            run_campaign(config, f"http://127.0.0.1:{proxy.server_port}", serving_world, clock=VirtualClock())
    finally:
        proxy.shutdown()
    with Outbox.open(serving_world) as outbox:
        assert outbox.counts(("flaky", config.run_key())) == {"queued": 20}
    result = run_campaign(config, service.url, serving_world, clock=VirtualClock())
    assert result.already_queued == 20 and result.enqueued == 30 and result.sent == 50
    alloc = Allocator.open(serving_world.bandit_dir)
    try:
        decided = alloc.log.decisions("flaky")
    finally:
        alloc.close()
    assert len(decided) == 50 and decided["contact_id"].is_unique  # nobody decided twice


def test_decisions_whose_answer_was_lost_are_not_learned(service, serving_world, tmp_path):
    """A proxy passes the third /decide to the real service (10 decisions logged) but loses its answer: the
    re-run decides those recipients again. Only the mailed decisions are marked sent (they equal the sends
    rows), and the campaign (registered by the pipeline with learn_from: sent) leaves the 10 others out."""
    from experiments.bandit import Allocator
    from experiments.bandit.learner import closed_decisions
    from sending.pipeline import SendError, run_campaign
    from simulation.eventlog import read_table, table_path

    def third_answer_lost(n, forward):
        answer = forward()  # the service logs the decisions either way
        return (502, b'{"error": "proxy: upstream answer lost"}') if n == 3 else answer

    proxy = _proxy(service.url, third_answer_lost)
    people = _mailable(serving_world, 50)
    config = parse_campaign({"campaign_id": "lost-answer", "variants": [0, 1], "batch_size": 10,
                             "audience": {"contact_ids": people["contact_id"].tolist()}})
    try:
        with pytest.raises(SendError, match="HTTP 502"):
            run_campaign(config, f"http://127.0.0.1:{proxy.server_port}", serving_world, clock=VirtualClock())
    finally:
        proxy.shutdown()
    result = run_campaign(config, service.url, serving_world, clock=VirtualClock(), mbox_path=tmp_path / "s.mbox")
    assert result.sent == 50 and result.sent_marks == {"marked": 50, "already": 0, "unknown": 0}
    sends = read_table("sends", table_path(serving_world.events_dir, "sends"))
    mailed = set(sends.loc[sends["campaign_id"] == "lost-answer", "decision_id"])
    alloc = Allocator.open(serving_world.bandit_dir)
    try:
        decided = alloc.log.decisions("lost-answer")
        marked = set(alloc.log.sent()["decision_id"]) & set(decided["decision_id"])
        _, cfg = alloc.log.campaign("lost-answer")
        now_us = int(decided["decided_at"].max().value // 1000) + cfg["wait_window_us"] + 1
        rows, _, unsent = closed_decisions(alloc.log, "lost-answer", cfg, None, now_us)
    finally:
        alloc.close()
    assert len(decided) == 60 and decided["contact_id"].nunique() == 50  # 10 recipients decided twice
    assert marked == mailed and len(mailed) == 50
    assert cfg["learn_from"] == "sent" and unsent == 10 and set(rows["decision_id"]) == mailed


def test_unreachable_service_or_smtp_is_one_line_and_exit_1_and_resumable(service, serving_world, api_key,
                                                                           tmp_path):
    import yaml

    from serving.runner import free_port

    env = _cli_env(serving_world, api_key)
    people = _mailable(serving_world, 3)
    dead = free_port()
    path = tmp_path / "c.yaml"
    spec = {"campaign_id": "unreachable", "variants": [0], "postal_address": "Shop Ltd, 1 Main St, Springfield",
            "audience": {"contact_ids": people["contact_id"].tolist()},
            "window": {"start": datetime.now(timezone.utc).isoformat(), "hours": 1},
            "smtp": {"host": "127.0.0.1", "port": dead}}
    path.write_text(yaml.safe_dump(spec))
    no_service = _inbox_send([str(path), "--url", f"http://127.0.0.1:{dead}", "--run"], env)
    assert no_service.returncode == 1
    assert no_service.stderr.strip().count("\n") == 0 and "unreachable" in no_service.stderr
    no_smtp = _inbox_send([str(path), "--url", service.url, "--run", "--clock-speed", "100000"], env)
    assert no_smtp.returncode == 1, no_smtp.stdout
    assert no_smtp.stderr.strip().count("\n") == 0 and f"smtp 127.0.0.1:{dead}" in no_smtp.stderr
    from sending.smtp import SinkHandler, smtp_sink

    with smtp_sink(handler=SinkHandler()) as (host, port, handler):
        path.write_text(yaml.safe_dump({**spec, "smtp": {"host": host, "port": port}}))
        ok = _inbox_send([str(path), "--url", service.url, "--run", "--clock-speed", "100000"], env)
        assert ok.returncode == 0, ok.stderr
        assert len(handler.received) == 3  # the queued run went out once the host was back
