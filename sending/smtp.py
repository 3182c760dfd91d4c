"""SMTP delivery with a recorded hand-off point, and the local SMTP sink.

`SmtpSender.deliver` speaks MAIL, RCPT and DATA and sends the message body,
then writes the end-of-data dot (RFC 5321 4.1.1.4) inside `handoff()`, a
context in which the outbox has already taken its write lock and staged the
`handed` mark, committed as soon as the dot is written. A server accepts a
message only on that dot, so a sender killed before it delivered nothing (the
row is still `queued` and goes out on the next run), and one killed after the
commit left a `handed` row (never re-sent). The only window in which a kill
can lose track is between writing the dot and the commit's log write: a few
microseconds of CPU, no waiting (the lock is taken before the dot).

Credentials are sent only over TLS: implicit TLS (`tls: ssl`, RFC 8314) or
STARTTLS (RFC 3207) with certificate verification; AUTH without TLS is refused.

The sink (aiosmtpd on 127.0.0.1, a free port) accepts every message and
counts it (optionally appending it to an mbox file), so a campaign can run
end to end without mailing anyone. Any SMTP host can be used instead.
"""
from __future__ import annotations

import contextlib
import mailbox
import re
import smtplib
import socket
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable


class SmtpUnavailable(RuntimeError):
    """The SMTP host cannot be reached or refuses the session (one line, no traceback)."""


class ConnectionLost(RuntimeError):
    """The connection broke before the hand-off point: nothing was delivered."""


@dataclass(frozen=True)
class Outcome:
    code: int | None        # the server's reply (None: no reply after the dot)
    handed: bool            # the end-of-data dot was sent
    stage: str              # mail | rcpt | data | dot


@dataclass
class SinkHandler:
    mbox_path: Path | None = None
    received: list = field(default_factory=list)   # (envelope from, recipients, headers dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    reply: Callable[[object], str | None] | None = None  # optional: a reply other than 250 for some messages

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd hook
        from email import message_from_bytes
        from email.policy import default

        msg = message_from_bytes(envelope.content, policy=default)
        if self.reply is not None:
            answer = self.reply(msg)
            if answer is not None:
                return answer
        with self.lock:
            self.received.append((envelope.mail_from, list(envelope.rcpt_tos), dict(msg.items())))
            if self.mbox_path is not None:
                box = mailbox.mbox(self.mbox_path)
                box.add(msg)
                box.close()
        return "250 Message accepted for delivery"


@contextlib.contextmanager
def smtp_sink(mbox_path: Path | None = None, handler: SinkHandler | None = None):
    """Yields (host, port, handler) of a running local sink; stopped on exit."""
    from aiosmtpd.controller import Controller

    from serving.runner import free_port

    handler = handler or SinkHandler(Path(mbox_path) if mbox_path else None)
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield "127.0.0.1", port, handler
    finally:
        controller.stop()


def dot_stuffed(data: bytes) -> bytes:
    """RFC 5321 4.5.2 transparency: a line starting with '.' gets another; the body ends with CRLF."""
    data = re.sub(rb"(?m)^\.", b"..", data)
    return data if data.endswith(b"\r\n") else data + b"\r\n"


class SmtpSender:
    """One SMTP connection reused for many messages."""

    def __init__(self, host: str, port: int, username: str | None = None, password: str | None = None,
                 tls: str = "none", timeout: float = 30, context: ssl.SSLContext | None = None):
        if tls not in ("none", "starttls", "ssl"):
            raise ValueError(f"tls: expected none, starttls or ssl, got {tls!r}")
        self.where = f"{host}:{port}"
        try:
            if tls == "ssl":
                self.conn = smtplib.SMTP_SSL(host, port, timeout=timeout,
                                             context=context or ssl.create_default_context())
            else:
                self.conn = smtplib.SMTP(host, port, timeout=timeout)
            # the body and the end-of-data dot go out as separate writes: without TCP_NODELAY, Nagle's
            # algorithm holds the dot until the body is acknowledged (a delayed-ACK stall per message)
            self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.conn.ehlo()
            if tls == "starttls":
                self.conn.starttls(context=context or ssl.create_default_context())
                self.conn.ehlo()
            if username:
                if not isinstance(self.conn.sock, ssl.SSLSocket):  # never reached through CampaignConfig
                    raise SmtpUnavailable(f"smtp {self.where}: refusing AUTH without TLS")
                self.conn.login(username, password or "")
        except (OSError, smtplib.SMTPException) as exc:
            raise SmtpUnavailable(f"smtp {self.where}: {_reason(exc)}") from None

    def send(self, msg) -> None:
        self.conn.send_message(msg)

    def deliver(self, mail_from: str, rcpt: str, data: bytes, handoff) -> Outcome:
        """Send one message (bytes with CRLF line ends); the dot is written inside `handoff()`, a context
        manager yielding True (False: the message is abandoned and the connection dropped, nothing
        delivered)."""
        conn = self.conn
        try:
            code, _ = conn.mail(mail_from, [] if (mail_from + rcpt).isascii() else ["SMTPUTF8"])  # RFC 6531
            if code != 250:
                return self._refused(code, "mail")
            code, _ = conn.rcpt(rcpt)
            if code not in (250, 251):
                return self._refused(code, "rcpt")
            code, _ = conn.docmd("DATA")
            if code != 354:
                return self._refused(code, "data")
            conn.send(dot_stuffed(data))
        except (OSError, smtplib.SMTPServerDisconnected) as exc:
            raise ConnectionLost(f"smtp {self.where}: {_reason(exc)}") from None
        try:
            with handoff() as pending:
                if pending:
                    conn.send(b".\r\n")
            if not pending:
                self.close()
                raise ConnectionLost(f"smtp {self.where}: message no longer pending; connection dropped")
            code, _ = conn.getreply()
        except (OSError, smtplib.SMTPServerDisconnected):
            return Outcome(None, True, "dot")
        return Outcome(code, True, "dot")

    def _refused(self, code: int, stage: str) -> Outcome:
        with contextlib.suppress(smtplib.SMTPException, OSError):
            self.conn.rset()
        return Outcome(code, False, stage)

    def close(self) -> None:
        with contextlib.suppress(smtplib.SMTPException, OSError):
            self.conn.quit()
        with contextlib.suppress(OSError):
            self.conn.close()


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if type(exc).__name__ not in text else text
