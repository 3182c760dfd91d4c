"""The outbox and the sender against a real local SMTP server (aiosmtpd): standard headers as the
standard library parses them, scheduled delivery on a fast clock, retries, bounces, rate limits,
provider hand-off, the crash window, send ids."""
from __future__ import annotations

import contextlib
import email
import multiprocessing
import re
from datetime import datetime, timedelta, timezone
from email.policy import default

import pytest
from sending_fixtures import campaign, enqueue, settings_in, spread

from sending.clock import FastClock, VirtualClock
from sending.delivery import drain
from sending.outbox import Outbox
from sending.records import record_sends
from sending.smtp import SinkHandler, SmtpSender, smtp_sink


@pytest.fixture()
def settings(tmp_path, monkeypatch):
    monkeypatch.delenv("INBOX_SECRET_KEY", raising=False)
    return settings_in(tmp_path)


def _drain(settings, outbox, handler, clock, **kw):
    with smtp_sink(handler=handler) as (host, port, _):
        return drain(outbox, lambda: SmtpSender(host, port), clock, record=lambda: record_sends(settings, outbox),
                     **kw)


class RawSink(SinkHandler):
    """Keeps each message's raw bytes too."""

    def __init__(self, reply=None):
        super().__init__(reply=reply)
        self.raw = []

    async def handle_DATA(self, server, session, envelope):
        answer = await super().handle_DATA(server, session, envelope)
        if answer.startswith("250"):
            self.raw.append(envelope.content)
        return answer


def test_messages_carry_every_standard_header(settings):
    from sending.tokens import read_token

    config = campaign(links={"base_url": "https://mail.shop.example"}, list_id="Shop news <news.shop.example>")
    now = datetime.now(timezone.utc)
    with Outbox.open(settings) as outbox:
        ids = enqueue(settings, config, outbox, [now - timedelta(minutes=1)] * 2)
        handler = RawSink()
        result = _drain(settings, outbox, handler, VirtualClock(now))
    assert result.sent == 2 and len(handler.raw) == 2
    ids_seen = set()
    for raw in handler.raw:
        assert max(len(line) for line in raw.split(b"\r\n")) <= 998
        msg = email.message_from_bytes(raw, policy=default)
        assert re.fullmatch(r"<[^<>@\s]+@shop\.example>", msg["Message-ID"])
        assert email.utils.parsedate_to_datetime(msg["Date"]).tzinfo is not None
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert msg["List-Id"] == "Shop news <news.shop.example>"
        https, mailto = re.fullmatch(r"<(https://[^>]+)>,\s*<(mailto:[^>]+)>", str(msg["List-Unsubscribe"])).groups()
        token = https.rsplit("/u/", 1)[1]
        assert https.startswith("https://mail.shop.example/u/") and token in mailto
        contact_id, send_id = read_token(settings, token)
        assert send_id == int(msg["X-Inbox-Send-Id"]) and contact_id == int(msg["X-Inbox-Contact-Id"])
        ids_seen.add(send_id)
        text = msg.get_body(("plain",)).get_content()
        html = msg.get_body(("html",)).get_content()
        for part in (text, html):
            assert "Shop Ltd, 1 Main St, Springfield" in part and https in part
        tags = dict(kv.split("=", 1) for kv in re.split(r",\s*", str(msg["X-SES-MESSAGE-TAGS"])))
        assert all(re.fullmatch(r"[A-Za-z0-9_-]{1,256}", v) for v in [*tags, *tags.values()])
        from sending.headers import ses_tag_decode

        assert ses_tag_decode(tags["campaign_id"]) == "spring.launch:v2"
        assert msg["X-Mailgun-Tag"] == "spring.launch:v2" and "send_at" not in msg["X-SMTPAPI"]
    assert ids_seen == set(ids)


def test_render_fills_tokens_blocks_and_both_parts_as_the_email_package_reads_them():
    from sending.render import first_name, personalize, render_email

    raw = render_email(sender="news@x.example", email="anna.schmidt@example.com", send_id=5,
                       variant={"subject": "{first_name}, <new> for you \N{SUN WITH FACE}"},
                       blocks=[{"content_id": 3, "name": "Guide & tips", "topic": "case_study", "format": "plain"},
                               {"content_id": 4, "name": ".hidden dot " + "long " * 40, "topic": "news",
                                "format": "plain"}],
                       headers={"X-Inbox-Decision-Id": "d-9"}, unsubscribe_url="https://x.example/u/t",
                       postal_address="X & Co, 1 Main St, Zürich")
    assert raw.isascii() and b"\n" not in raw.replace(b"\r\n", b"")
    msg = email.message_from_bytes(raw, policy=default)
    assert msg["Subject"] == "Anna, <new> for you \N{SUN WITH FACE}" and msg["X-Inbox-Decision-Id"] == "d-9"
    assert msg.get_content_type() == "multipart/alternative" and not msg.defects
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert "Hi Anna" in text and "Guide & tips" in text and "/c/5/3" in text and "X & Co, 1 Main St, Zürich" in text
    assert "Guide &amp; tips" in html and "&lt;new&gt;" in html and "X &amp; Co" in html  # HTML part is escaped
    assert 'href="https://x.example/u/t"' in html and ".hidden dot " + "long " * 40 in text
    assert first_name("j.doe+x@example.com") == "J" and personalize("{unknown} hi", {}) == "{unknown} hi"
    with pytest.raises(ValueError, match="X-Evil: header values must be one line"):
        render_email(sender="a@x.example", email="b@x.example", send_id=1, variant={"subject": "s"}, blocks=[],
                     headers={"X-Evil": "a\r\nBcc: c@x.example"}, unsubscribe_url="u", postal_address="p")


def test_forged_or_tampered_tokens_are_refused(settings):
    from sending.tokens import InvalidToken, make_token, read_token

    token = make_token(settings, 7, 9)
    assert read_token(settings, token) == (7, 9)
    c, s, mac = token.split(".")
    for bad in (f"8.{s}.{mac}", f"{c}.10.{mac}", f"{c}.{s}.{'0' * 32}", "7.9", "", token + "0"):
        with pytest.raises(InvalidToken):
            read_token(settings, bad)


def test_scheduled_messages_leave_within_a_minute_of_send_at_on_a_fast_clock(settings):
    start = datetime.now(timezone.utc)
    clock = FastClock(speed=240, start=start)             # 4 minutes per second: a minute is 250 ms
    send_ats = spread(start + timedelta(minutes=2), 8, timedelta(minutes=4))      # over half an hour
    with Outbox.open(settings) as outbox:
        ids = enqueue(settings, campaign(), outbox, send_ats, now=start)
        handler = RawSink()
        result = _drain(settings, outbox, handler, clock)
        rows = outbox.run_rows("spring.launch:v2", campaign().run_key()).set_index("send_id")
    assert result.sent == 8 and len(handler.raw) == 8
    late = (rows["sent_at_us"] - rows["send_at_us"]) / 1e6
    assert (late >= 0).all() and (late < 60).all(), late.describe()
    for raw in handler.raw:  # the Date header is the (clock) time it left, not before its send_at
        msg = email.message_from_bytes(raw, policy=default)
        sent = email.utils.parsedate_to_datetime(msg["Date"])
        scheduled = send_ats[ids.index(int(msg["X-Inbox-Send-Id"]))]
        assert timedelta(0) <= sent - scheduled.replace(microsecond=0) < timedelta(minutes=1)


def test_4xx_is_retried_with_exponential_backoff_and_5xx_is_a_hard_bounce(settings):
    from simulation.eventlog import read_table, table_path

    tries: dict[str, int] = {}

    def reply(msg):
        sid = msg["X-Inbox-Send-Id"]
        tries[sid] = tries.get(sid, 0) + 1
        if msg["To"].startswith("anna.schmidt0@"):
            return "550 5.1.1 mailbox unavailable"
        if tries[sid] <= 2:
            return "451 4.3.0 try again later"
        return None

    now = datetime.now(timezone.utc)
    clock = VirtualClock(now)
    with Outbox.open(settings) as outbox:
        ids = enqueue(settings, campaign(), outbox, [now] * 3, now=now)
        handler = SinkHandler(reply=reply)
        result = _drain(settings, outbox, handler, clock, backoff_s=60, max_attempts=5)
        rows = outbox.run_rows("spring.launch:v2", campaign().run_key()).set_index("send_id")
    assert len(handler.received) == 2 and result.bounced == 1 and result.sent == 2
    assert rows.loc[ids[0], "status"] == "bounced" and rows.loc[ids[0], "last_code"] == 550
    assert (rows.loc[ids[1:], "attempts"] == 3).all() and (rows.loc[ids[1:], "status"] == "sent").all()
    # two deferrals: 60 s then 120 s of (virtual) backoff before the third attempt
    assert clock.now() - now >= timedelta(seconds=180)
    events = read_table("events", table_path(settings.events_dir, "events"))
    sends = read_table("sends", table_path(settings.events_dir, "sends"))
    assert events[["send_id", "type"]].values.tolist() == [[ids[0], "bounce"]]
    assert sorted(sends["send_id"]) == ids and sends["decision_id"].notna().all()


def test_mailed_decisions_are_marked_before_each_wait_and_bounces_are_not(settings):
    """`record_sends`' mark gets the decisions of sent messages (not of a 5xx bounce), and the sender records
    before waiting for a scheduled message, so a campaign spread over days marks what left as it leaves."""
    from simulation.eventlog import read_table, table_path

    now = datetime.now(timezone.utc)
    clock = VirtualClock(now)
    marks: list[tuple[datetime, list[str]]] = []
    with Outbox.open(settings) as outbox:
        ids = enqueue(settings, campaign(), outbox, [now, now, now + timedelta(days=2)], now=now)
        handler = SinkHandler(reply=lambda m: "550 5.1.1 mailbox unavailable"
                              if m["To"].startswith("anna.schmidt0@") else None)
        with smtp_sink(handler=handler) as (host, port, _):
            drain(outbox, lambda: SmtpSender(host, port), clock,
                  record=lambda: record_sends(settings, outbox, lambda d: marks.append((clock.now(), d))))
    sends = read_table("sends", table_path(settings.events_dir, "sends")).set_index("send_id")
    assert sorted(sends.index) == ids
    assert [d for _, d in marks] == [[sends.loc[ids[1], "decision_id"]], [sends.loc[ids[2], "decision_id"]]]
    assert marks[0][0] < now + timedelta(days=2) <= marks[1][0]  # the first was marked before the 2-day wait


def test_4xx_until_max_attempts_fails_without_delivery(settings):
    now = datetime.now(timezone.utc)
    with Outbox.open(settings) as outbox:
        enqueue(settings, campaign(), outbox, [now], now=now)
        handler = SinkHandler(reply=lambda m: "421 4.7.0 slow down")
        result = _drain(settings, outbox, handler, VirtualClock(now), backoff_s=1, max_attempts=3)
        assert outbox.counts() == {"failed": 1}
    assert result.failed == 1 and result.deferred == 2 and handler.received == []


def test_rate_limit_per_sending_domain(settings):
    now = datetime.now(timezone.utc)
    clock = VirtualClock(now)
    with Outbox.open(settings) as outbox:
        enqueue(settings, campaign(), outbox, [now] * 21, now=now)
        rows_before = outbox.counts()
        _drain(settings, outbox, SinkHandler(), clock, rates={"shop.example": 5.0})
        sent = outbox.run_rows("spring.launch:v2", campaign().run_key())["sent_at_us"]
    assert rows_before == {"queued": 21}
    span = (sent.max() - sent.min()) / 1e6
    assert 3.0 <= span <= 3.5  # a burst of 5, then 16 more at 5/s


def test_provider_handoff_sends_now_with_the_providers_schedule_header(settings):
    now = datetime.now(timezone.utc).replace(microsecond=0)
    later, far = now + timedelta(hours=5), now + timedelta(days=5)
    for provider in ("sendgrid", "mailgun"):
        config = campaign(campaign_id=f"handoff-{provider}", delivery={"handoff": provider})
        with Outbox.open(settings) as outbox:
            enqueue(settings, config, outbox, [later, far], now=now)
            handler = RawSink()
            _drain(settings, outbox, handler, VirtualClock(now), campaign=(config.campaign_id, config.run_key()),
                   wait_for_scheduled=False)
            assert outbox.counts((config.campaign_id, config.run_key())) == {"sent": 1, "queued": 1}
        msg = email.message_from_bytes(handler.raw[0], policy=default)  # the far one waits for the horizon
        if provider == "sendgrid":
            assert '"send_at": %d' % int(later.timestamp()) in msg["X-SMTPAPI"]
        else:
            assert email.utils.parsedate_to_datetime(msg["X-Mailgun-Deliver-By"]) == later


def test_a_message_left_handed_by_a_crash_is_never_sent_again(settings):
    now = datetime.now(timezone.utc)
    with Outbox.open(settings) as outbox:
        ids = enqueue(settings, campaign(), outbox, [now] * 2, now=now)
        with outbox.handing(ids[0], 0) as pending:  # as a sender killed right after the dot's commit leaves it
            assert pending
    with Outbox.open(settings) as outbox:
        handler = SinkHandler()
        result = _drain(settings, outbox, handler, VirtualClock(now))
        assert outbox.counts() == {"unknown": 1, "sent": 1}
    assert result.recovered_unknown == 1 and [h[2]["X-Inbox-Send-Id"] for h in handler.received] == [str(ids[1])]
    with Outbox.open(settings) as outbox:  # delivered: body and address dropped; unknown: kept
        kept = dict(outbox.db.execute("SELECT send_id, length(message) + length(rcpt) FROM messages").fetchall())
    assert kept[ids[1]] == 0 and kept[ids[0]] > 0
    from simulation.eventlog import read_table, table_path

    assert sorted(read_table("sends", table_path(settings.events_dir, "sends"))["send_id"]) == ids


def _reserve(path, n, out):
    ob = Outbox(path)
    out.put([ob.reserve_send_ids(3, floor=50) for _ in range(n)])
    ob.close()


def test_send_ids_are_reserved_atomically_and_never_reused(settings):
    from sending.outbox import outbox_path

    path = outbox_path(settings)
    Outbox(path).close()
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_reserve, args=(path, 40, q)) for _ in range(3)]
    for p in procs:
        p.start()
    firsts = sorted(f for _ in procs for f in q.get(timeout=60))
    for p in procs:
        p.join(30)
    blocks = [set(range(f, f + 3)) for f in firsts]
    assert firsts[0] == 50 and len(set().union(*blocks)) == 3 * len(blocks)  # disjoint
    with Outbox(path) as ob:  # a block reserved by a run that died is skipped, never handed out again
        assert ob.reserve_send_ids(1, floor=1) == max(firsts) + 3


def test_campaign_file_refuses_auth_without_tls_and_bad_reward_ranges():
    from sending.campaign import parse_campaign

    base = {"campaign_id": "c", "variants": [1], "postal_address": "Shop Ltd, Springfield"}
    with pytest.raises(ValueError, match="smtp.username: SMTP AUTH needs tls"):
        parse_campaign({**base, "smtp": {"host": "h", "username": "u", "password": "p"}})
    assert parse_campaign({**base, "smtp": {"host": "h", "username": "u", "tls": "starttls"}}).smtp.tls == "starttls"
    with pytest.raises(ValueError, match="postal_address"):
        parse_campaign({"campaign_id": "c", "variants": [1], "smtp": {"host": "h"}})
    with pytest.raises(ValueError, match="reward_range"):
        parse_campaign({**base, "reward_range": [1, 0]})
    assert parse_campaign({**base, "reward_range": [0, 500]}).reward_range == (0, 500)
    with pytest.raises(ValueError, match="links.base_url"):
        parse_campaign({**base, "links": {"base_url": "http://plain.example"}})


def test_unreachable_smtp_host_is_one_line():
    from serving.runner import free_port
    from sending.smtp import SmtpUnavailable

    port = free_port()
    with pytest.raises(SmtpUnavailable, match=rf"^smtp 127.0.0.1:{port}: ConnectionRefusedError") as exc:
        SmtpSender("127.0.0.1", port, timeout=5)
    assert "\n" not in str(exc.value)


def test_outbox_eraser_removes_the_contacts_messages_and_leaves_no_bytes(settings):
    from privacy.erase import Subject, stores
    from sending.outbox import outbox_path
    from sending.privacy import erase_outbox, export_outbox

    assert "outbox" in [s.name for s in stores()]
    now = datetime.now(timezone.utc)
    with Outbox.open(settings) as outbox:
        ids = enqueue(settings, campaign(), outbox, [now] * 2, now=now)
    exported = export_outbox(settings, Subject((100,)))
    assert [r["send_id"] for r in exported] == ids[:1] and "anna.schmidt0@example.com" in exported[0]["message"]
    assert erase_outbox(settings, Subject((100,))) == 1 and erase_outbox(settings, Subject((100,))) == 0
    files = [p for p in outbox_path(settings).parent.iterdir() if p.is_file()]
    blob = b"".join(p.read_bytes() for p in files)
    assert b"anna.schmidt0@" not in blob and b"anna.schmidt1@" in blob
    with Outbox.open(settings) as outbox:
        assert outbox.reserve_send_ids(1) > max(ids)  # erased ids are never handed out again


def _self_signed(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_smtp_auth_goes_only_over_starttls(tmp_path):
    import ssl

    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    from serving.runner import free_port
    from sending.smtp import SmtpUnavailable

    cert, key = _self_signed(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    logins = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        logins.append((auth_data.login, session.ssl is not None))
        return AuthResult(success=auth_data.login == b"u" and auth_data.password == b"p")

    handler = SinkHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, tls_context=server_ctx,
                            require_starttls=True, authenticator=authenticator, auth_require_tls=True)
    controller.start()
    try:
        with pytest.raises(SmtpUnavailable, match="refusing AUTH without TLS"):
            SmtpSender("127.0.0.1", port, "u", "p", tls="none")
        assert logins == []  # no credentials went out in clear
        with pytest.raises(SmtpUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
            SmtpSender("127.0.0.1", port, "u", "p", tls="starttls")  # an unknown certificate is refused
        sender = SmtpSender("127.0.0.1", port, "u", "p", tls="starttls", context=client_ctx)
        body = b"From: a@x.example\r\nTo: b@x.example\r\nSubject: hi\r\n\r\nhello\r\n"
        outcome = sender.deliver("a@x.example", "b@x.example", body, lambda: contextlib.nullcontext(True))
        sender.close()
    finally:
        controller.stop()
    assert logins == [(b"u", True)] and outcome.code == 250 and len(handler.received) == 1


def test_parallel_connections_deliver_each_message_once(settings):
    import asyncio

    class SlowRelay(SinkHandler):
        """A relay that takes 50 ms per message and records how many sessions overlap."""

        def __init__(self):
            super().__init__()
            self.active = self.peak = 0

        async def handle_DATA(self, server, session, envelope):
            self.active += 1
            self.peak = max(self.peak, self.active)
            await asyncio.sleep(0.05)
            self.active -= 1
            return await super().handle_DATA(server, session, envelope)

    now = datetime.now(timezone.utc)
    with Outbox.open(settings) as outbox:
        ids = enqueue(settings, campaign(), outbox, [now] * 40, now=now)
        handler = SlowRelay()
        result = _drain(settings, outbox, handler, VirtualClock(now), connections=4)
        assert outbox.counts() == {"sent": 40}
    assert result.sent == 40 and handler.peak >= 2
    assert sorted(int(h["X-Inbox-Send-Id"]) for _, _, h in handler.received) == ids
