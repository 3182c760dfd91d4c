"""The sender: delivers what the outbox holds when it is due, once.

`drain(outbox, connect, clock, ...)` takes the due messages in order of their
due time, waits (on the clock) for the next one, and respects a rate per
sending domain (token bucket). For each message the outbox takes its write lock
and stages the row as `handed`, the sender writes SMTP's end-of-data dot, and
the outbox commits at once (`Outbox.handing`, `sending.smtp`), so for a sender
killed at any moment:

- before the dot: nothing was committed, the server dropped the unfinished
  message; the row is still pending and the next run sends it: once;
- after the commit: the row is `handed`; the next run marks it `unknown` and
  does not send it again (the server had the whole message). `unknown`
  messages get their sends row like delivered ones, so provider events about
  them still attribute;
- between writing the dot and the commit's log write (a few microseconds of
  CPU; no lock or I/O wait in between): the message went out but its row is
  still pending, and the next run sends it a second time. This is the only
  crash window; it never loses a message.

Replies: 2xx sent; 4xx deferred and retried after `backoff * 2**(attempt-1)`
(capped at 6 h) until `max_attempts`, then failed; 5xx a hard bounce (a `bounce`
event in the event log, which suppresses the contact). One drainer per outbox
at a time (an exclusive file lock); within it, `connections` SMTP connections
deliver in parallel threads (a remote relay's round trips overlap; each
message's `handed` commit is still its own). Every `RECORD_EVERY` messages, before
waiting for a scheduled one and at the end the sends rows are appended to the
event log (`sending.records`).
"""
from __future__ import annotations

import contextlib
import fcntl
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Callable

from sending.smtp import ConnectionLost

MAX_BACKOFF_S = 6 * 3600
BATCH = 200
RECORD_EVERY = 5000  # messages between appends of sends rows to the event log


def us(t: datetime) -> int:
    return int(t.timestamp() * 1_000_000)


def from_us(v: int) -> datetime:
    return datetime.fromtimestamp(v / 1_000_000, tz=timezone.utc)


class DrainBusy(RuntimeError):
    """Another sender is draining this outbox."""


@dataclass
class DrainResult:
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    bounced: int = 0
    unknown: int = 0
    recovered_unknown: int = 0
    reconnects: int = 0
    max_lateness_s: float = 0.0  # largest (sent time - send_at) in clock seconds


class DomainRates:
    """Token bucket per sending domain (rate per second, burst of one second's worth)."""

    def __init__(self, rates: dict[str, float]):
        self.rates = rates
        self.tokens: dict[str, float] = {}
        self.at: dict[str, datetime] = {}

    def wait(self, domain: str, now: datetime) -> float:
        """Seconds to wait before sending one message from `domain` (and take its token)."""
        rate = self.rates.get(domain)
        if rate is None:
            return 0.0
        burst = max(1.0, rate)
        tokens = self.tokens.get(domain, burst)
        last = self.at.get(domain, now)
        tokens = min(burst, tokens + (now - last).total_seconds() * rate)
        wait = 0.0 if tokens >= 1 else (1 - tokens) / rate
        self.tokens[domain] = tokens - 1 + wait * rate
        self.at[domain] = now + timedelta(seconds=wait)
        return wait


@contextlib.contextmanager
def drain_lock(outbox):
    with open(outbox.path.with_name("drain.lock"), "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DrainBusy(f"outbox {outbox.path}: another sender is draining it") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def drain(outbox, connect: Callable[[], object], clock, *, campaign: tuple[str, str] | None = None,
          rates: dict[str, float] | None = None, max_attempts: int = 8, backoff_s: float = 60.0,
          record: Callable[[], object] | None = None, wait_for_scheduled: bool = True,
          poll_s: float = 30.0, connections: int = 1) -> DrainResult:
    """Deliver due messages (of one campaign run, or all) until none is pending, waiting on `clock` for
    scheduled ones (or returning when nothing is due yet, with `wait_for_scheduled=False`), over
    `connections` SMTP connections in parallel (each message's hand-off still committed on its own)."""
    from concurrent.futures import ThreadPoolExecutor

    if connections < 1:
        raise ValueError("connections: must be >= 1")
    result = DrainResult()
    limiter = DomainRates(rates or {})
    lock = threading.Lock()            # the outbox connection, the limiter and the result are shared
    local = threading.local()
    senders: list = []

    def work(msg) -> None:
        with lock:
            wait = limiter.wait(msg.domain, clock.now())
        clock.sleep(wait)
        smtp = getattr(local, "smtp", None)
        if smtp is None:
            smtp = local.smtp = connect()
            with lock:
                senders.append(smtp)
        try:
            _deliver_one(outbox, smtp, msg, clock, result, max_attempts, backoff_s, lock)
        except ConnectionLost:
            smtp.close()
            smtp = local.smtp = connect()  # SmtpUnavailable if the host went away: the run stops, resumable
            with lock:
                senders.append(smtp)
                result.reconnects += 1
            _deliver_one(outbox, smtp, msg, clock, result, max_attempts, backoff_s, lock)

    with drain_lock(outbox):
        result.recovered_unknown = outbox.recover()
        if record is not None:
            record()
        pool = ThreadPoolExecutor(connections, thread_name_prefix="smtp")
        since_record = 0
        try:
            while True:
                outbox.flush()  # results noted since the last handoff: deferred rows become due again
                now = clock.now()
                batch = outbox.due(us(now), BATCH, campaign)
                if not batch:
                    nxt = outbox.next_due_us(campaign)
                    if nxt is None or not wait_for_scheduled:
                        break
                    if record is not None and since_record:  # what left is recorded (and marked sent) before a wait
                        record()
                        since_record = 0
                    clock.sleep(min(max((nxt - us(now)) / 1e6, 0.0), poll_s))
                    continue
                if connections == 1:
                    for msg in batch:
                        work(msg)
                else:
                    for _ in pool.map(work, batch):
                        pass
                since_record += len(batch)
                if record is not None and since_record >= RECORD_EVERY:
                    outbox.flush()
                    record()
                    since_record = 0
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            for smtp in senders:
                smtp.close()
            outbox.flush()
            if record is not None:
                record()
    return result


def _deliver_one(outbox, smtp, msg, clock, result: DrainResult, max_attempts: int, backoff_s: float,
                 lock: threading.Lock) -> None:
    now = clock.now()
    data = f"Date: {format_datetime(now)}\r\n".encode() + msg.message

    @contextlib.contextmanager
    def handoff():
        with lock, outbox.handing(msg.send_id, us(now)) as pending:
            yield pending

    outcome = smtp.deliver(msg.mail_from, msg.rcpt, data, handoff)
    code = outcome.code
    attempt = msg.attempts + 1
    retry_at = us(now + timedelta(seconds=min(backoff_s * 2 ** (attempt - 1), MAX_BACKOFF_S)))
    if outcome.handed and code is None:
        status = "unknown"
    elif code is not None and 200 <= code < 300:
        status = "sent"
    elif code is not None and 500 <= code < 600:
        status = "bounced"
    else:  # 4xx (or anything unexpected): retry later, until max_attempts
        status = "failed" if attempt >= max_attempts else "deferred"
    with lock:
        if outcome.handed:
            outbox.note_result(msg.send_id, status, code, retry_at)
        else:
            outbox.note_refused(msg.send_id, status, code or 0, retry_at, us(now))
        setattr(result, status, getattr(result, status) + 1)
        if status == "sent":
            result.max_lateness_s = max(result.max_lateness_s, (us(now) - msg.send_at_us) / 1e6)
