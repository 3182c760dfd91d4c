"""`inbox send` (stdlib imports only at module level)."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    s = subparsers.add_parser("send", help="send a campaign: audience -> decide -> render -> SMTP",
                              description="Send CAMPAIGN.yaml (see sending/campaign.py for the fields).")
    s.add_argument("campaign", help="campaign YAML file")
    s.add_argument("--url", help="URL of a running service (default: start one for this run)")
    s.add_argument("--demo", action="store_true",
                   help="simulated recipients respond through the webhooks (needs the simulated world)")
    s.add_argument("--seed", type=int, default=0, help="seed of the simulated responses (demo mode)")
    s.add_argument("--mbox", help="also store the messages the local SMTP sink receives in this mbox file")
    s.set_defaults(func=send)


def send(args: argparse.Namespace) -> int:
    import contextlib
    from pathlib import Path

    from rich.console import Console

    from inbox.settings import load_settings
    from sending.campaign import load_campaign
    from sending.pipeline import run_campaign
    from serving.runner import start_service

    config = load_campaign(args.campaign)
    settings = load_settings()
    with contextlib.ExitStack() as stack:
        url = args.url
        if url is None:
            url = stack.enter_context(start_service(settings)).url
        result = run_campaign(config, url.rstrip("/"), settings, demo=args.demo, progress=True, seed=args.seed,
                              mbox_path=Path(args.mbox) if args.mbox else None)
    Console().print(result_table(result))
    return 0


def result_table(result):
    from rich.table import Table

    table = Table(title=f"campaign {result.campaign_id}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [("audience (consent, not suppressed)", result.audience), ("skipped: suppressed", result.suppressed),
            ("skipped: no consent", result.no_consent), ("sent", result.sent),
            ("no features (fallback)", result.fallback),
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
