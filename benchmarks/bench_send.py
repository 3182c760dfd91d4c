"""Benchmark: render + enqueue + deliver to a local SMTP sink, vs a bare smtplib loop in the same run.

    .venv/bin/python benchmarks/bench_send.py [--messages 3000] [--repeat 2]

Both arms mail the same recipients through one SMTP connection to the same sink (aiosmtpd in its own
process, counting messages). The baseline is what a script would do with the standard library alone:
build an `EmailMessage` per recipient (subject, text and HTML part) and `send_message` it. The pipeline
does everything `inbox send` does for a message except the `/decide` call (decisions are made up here):
Jinja2 templates, every standard header and signed unsubscribe token, the outbox insert (SQLite, fsync per
batch), the sender (a durable `handed` commit per message before SMTP's end-of-data dot), and the sends
rows appended to the event log. The sink's count is checked against each arm's.
"""
from __future__ import annotations

import argparse
import multiprocessing
import smtplib
import tempfile
import time
from datetime import datetime, timezone
from email.message import EmailMessage
from pathlib import Path


class CountingSink:
    def __init__(self, counter):
        self.counter = counter

    async def handle_DATA(self, server, session, envelope):
        with self.counter.get_lock():
            self.counter.value += 1
        return "250 OK"


def run_sink(port, counter, ready, stop):
    from aiosmtpd.controller import Controller

    controller = Controller(CountingSink(counter), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    stop.wait()
    controller.stop()


def baseline(port: int, n: int) -> float:
    started = time.perf_counter()
    conn = smtplib.SMTP("127.0.0.1", port)
    for i in range(n):
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = "news@shop.example", f"anna.schmidt{i}@example.com", "Spring"
        msg.set_content(f"Hi Anna,\n\nSpring is here.\n\nUnsubscribe: https://shop.example/u/{i}\n")
        msg.add_alternative(f"<p>Hi Anna,</p><p>Spring is here.</p><a href='https://shop.example/u/{i}'>x</a>",
                            subtype="html")
        conn.send_message(msg)
    conn.quit()
    return time.perf_counter() - started


def pipeline(port: int, n: int, root: Path, durable: bool) -> dict[str, float]:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "sending"))
    from sending_fixtures import campaign, enqueue, settings_in

    from sending.clock import VirtualClock
    from sending.delivery import drain
    from sending.outbox import Outbox
    from sending.records import record_sends
    from sending.smtp import SmtpSender

    settings = settings_in(root)
    config = campaign()
    now = datetime.now(timezone.utc)
    with Outbox.open(settings) as outbox:
        t0 = time.perf_counter()
        for lo in range(0, n, 500):
            enqueue_batch = min(500, n - lo)
            enqueue(settings, config, outbox, [now] * enqueue_batch, now=now, contact0=lo)  # render + reserve ids + insert
        outbox.set_durable(durable)
        t1 = time.perf_counter()
        result = drain(outbox, lambda: SmtpSender("127.0.0.1", port), VirtualClock(now))
        t2 = time.perf_counter()
        record_sends(settings, outbox)
        t3 = time.perf_counter()
    assert result.sent == n, result
    return {"render + enqueue": t1 - t0, "deliver": t2 - t1, "sends rows": t3 - t2, "total": t3 - t0}


def main() -> None:
    from serving.runner import free_port

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    ctx = multiprocessing.get_context("spawn")
    counter, ready, stop = ctx.Value("i", 0), ctx.Event(), ctx.Event()
    port = free_port()
    sink = ctx.Process(target=run_sink, args=(port, counter, ready, stop), daemon=True)
    sink.start()
    ready.wait(30)
    best_base, best = float("inf"), {True: None, False: None}
    try:
        for _ in range(args.repeat):
            before = counter.value
            best_base = min(best_base, baseline(port, args.messages))
            assert counter.value - before == args.messages
            for durable in (True, False):
                with tempfile.TemporaryDirectory() as tmp:
                    before = counter.value
                    times = pipeline(port, args.messages, Path(tmp), durable)
                    assert counter.value - before == args.messages
                if best[durable] is None or times["total"] < best[durable]["total"]:
                    best[durable] = times
    finally:
        stop.set()
        sink.join(10)
    n = args.messages
    print(f"\nbench_send: {n:,} messages to a local aiosmtpd sink (best of {args.repeat})\n")
    print("| path | seconds | messages/s |")
    print("|---|---:|---:|")
    print(f"| bare smtplib loop (EmailMessage + send_message) | {best_base:.2f} | {n / best_base:,.0f} |")
    for durable, times in best.items():
        mode = "fsync per hand-off" if durable else "durable: false"
        for step, sec in times.items():
            label = "total (render + enqueue + deliver + sends rows)" if step == "total" else step
            print(f"| pipeline, {mode}: {label} | {sec:.2f} | {n / sec:,.0f} |")
    for durable, times in best.items():
        print(f"pipeline ({'fsync per hand-off' if durable else 'durable: false'}) / baseline throughput: "
              f"{best_base / times['total']:.2f}")


if __name__ == "__main__":
    main()
