"""SMTP delivery and the local SMTP sink `inbox send` starts by default.

The sink (aiosmtpd on 127.0.0.1, a free port) accepts every message and
counts it (optionally appending it to an mbox file), so a campaign can run
end to end without mailing anyone. Any SMTP host can be used instead.
"""
from __future__ import annotations

import contextlib
import mailbox
import smtplib
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path


@dataclass
class SinkHandler:
    mbox_path: Path | None = None
    received: list = field(default_factory=list)   # (envelope from, recipients, headers dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd hook
        from email import message_from_bytes
        from email.policy import default

        msg = message_from_bytes(envelope.content, policy=default)
        with self.lock:
            self.received.append((envelope.mail_from, list(envelope.rcpt_tos), dict(msg.items())))
            if self.mbox_path is not None:
                box = mailbox.mbox(self.mbox_path)
                box.add(msg)
                box.close()
        return "250 Message accepted for delivery"


@contextlib.contextmanager
def smtp_sink(mbox_path: Path | None = None):
    """Yields (host, port, handler) of a running local sink; stopped on exit."""
    from aiosmtpd.controller import Controller

    from serving.runner import free_port

    handler = SinkHandler(Path(mbox_path) if mbox_path else None)
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield "127.0.0.1", port, handler
    finally:
        controller.stop()


class SmtpSender:
    """One SMTP connection reused for a whole campaign."""

    def __init__(self, host: str, port: int, username: str | None = None, password: str | None = None,
                 starttls: bool = False, timeout: float = 30):
        self.conn = smtplib.SMTP(host, port, timeout=timeout)
        if starttls:
            self.conn.starttls()
        if username:
            self.conn.login(username, password or "")

    def send(self, msg: EmailMessage) -> None:
        self.conn.send_message(msg)

    def close(self) -> None:
        with contextlib.suppress(smtplib.SMTPException, OSError):
            self.conn.quit()
