"""`inbox send` (stdlib imports only at module level)."""
from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    s = subparsers.add_parser(
        "send", help="queue a campaign (audience -> decide -> render -> outbox); --run delivers it",
        description="Queue CAMPAIGN.yaml (see sending/campaign.py for the fields) in the outbox, each message "
                    "with its decided send time; with --run, also deliver every message of the run when due "
                    "(waiting for scheduled ones). Re-running the same file resumes: nobody is decided or "
                    "mailed twice. Failures print one line and exit 1.")
    s.add_argument("campaign", help="campaign YAML file")
    s.add_argument("--url", help="URL of a running service (default: start one for this run)")
    s.add_argument("--run", action="store_true", help="deliver the run's messages when due (the sender)")
    s.add_argument("--clock-speed", type=float, default=1.0,
                   help="run the sender's clock this many times faster than real time (tests, rehearsals)")
    s.add_argument("--demo", action="store_true",
                   help="deliver at once on a virtual clock; simulated recipients respond through the webhooks")
    s.add_argument("--seed", type=int, default=0, help="seed of the simulated responses (demo mode)")
    s.add_argument("--mbox", help="also store the messages the local SMTP sink receives in this mbox file")
    s.set_defaults(func=send)


def send(args: argparse.Namespace) -> int:
    import contextlib
    from pathlib import Path

    from rich.console import Console

    from inbox.settings import load_settings
    from sending.campaign import load_campaign
    from sending.clock import FastClock, SystemClock
    from sending.delivery import DrainBusy
    from sending.pipeline import SendError, run_campaign
    from sending.smtp import SmtpUnavailable
    from serving.runner import start_service

    if not args.clock_speed > 0:
        raise ValueError(f"--clock-speed: must be > 0, got {args.clock_speed}")
    config = load_campaign(args.campaign)
    settings = load_settings()
    clock = None if args.demo else (SystemClock() if args.clock_speed == 1 else FastClock(args.clock_speed))
    try:
        with contextlib.ExitStack() as stack:
            url = args.url
            if url is None:
                try:
                    url = stack.enter_context(start_service(settings)).url
                except (RuntimeError, TimeoutError) as exc:
                    raise SendError(f"could not start the service: {str(exc).splitlines()[0]}") from None
            result = run_campaign(config, url.rstrip("/"), settings, demo=args.demo, clock=clock,
                                  deliver=args.run or args.demo, progress=True, seed=args.seed,
                                  mbox_path=Path(args.mbox) if args.mbox else None)
    except (SendError, SmtpUnavailable, DrainBusy) as exc:
        print(f"inbox send: error: {exc}", file=sys.stderr)
        return 1
    Console().print(result_table(result))
    return 0


def result_table(result):
    from rich.table import Table

    table = Table(title=f"campaign {result.campaign_id} (run {result.run})")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [("audience (may be mailed; this run)", result.audience),
            ("already queued before (resumed)", result.already_queued), ("queued now", result.enqueued),
            ("refused by /decide", result.refused)]
    rows += [(f"skipped: {reason}", n) for reason, n in sorted(result.skipped.items())]
    rows += [(f"outbox: {status}", n) for status, n in sorted(result.outbox.items())]
    rows += [("sent", result.sent)]
    if result.sent_marks:
        m = result.sent_marks
        rows += [("decisions marked sent (new, before, unknown to the service)",
                  f"{m['marked']:,}, {m['already']:,}, {m['unknown']:,}")]
    rows += [("no features (fallback)", result.fallback),
             ("predictions computed live (no current published row)", result.live)]
    rows += [(f"variant {v}", n) for v, n in result.variants.items()]
    if result.oracle_reward is not None:
        rows += [("events posted to webhooks", result.events_posted), ("webhook calls", result.webhook_calls),
                 ("rewards", ", ".join(f"{k}={v}" for k, v in sorted(result.rewards.items())) or "0"),
                 ("expected reward of the chosen variants (oracle)", f"{result.oracle_reward:.4f}"),
                 ("expected reward of a uniform choice (oracle)", f"{result.oracle_uniform:.4f}")]
    for name, value in rows:
        table.add_row(name, f"{value:,}" if isinstance(value, int) else str(value))
    return table
