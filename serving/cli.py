"""`inbox publish`, `inbox serve` and `inbox send` (stdlib imports only at module level)."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    pub = subparsers.add_parser(
        "publish", help="compute every contact's predictions with the champions into the online store",
        description="Run the champions' per-contact steps (lead score and tier, send-time grid, content "
                    "contact tower) over the online store's latest features, in chunks, and write them to the "
                    "Feast view contact_predictions with the model versions. Run after training or materialize.")
    pub.add_argument("--chunk", type=int, default=4000, help="contacts per chunk (default 4000)")
    pub.set_defaults(func=publish)

    p = subparsers.add_parser("serve", help="run the scoring service (bentoml serve) on 127.0.0.1",
                              description="Run `bentoml serve serving.service:InboxService` in the foreground.")
    p.add_argument("--port", type=int, default=3000, help="TCP port (default 3000)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1, loopback only)")
    p.set_defaults(func=serve)

    s = subparsers.add_parser("send", help="send a campaign: audience -> decide -> render -> SMTP",
                              description="Send CAMPAIGN.yaml (see serving/campaign.py for the fields).")
    s.add_argument("campaign", help="campaign YAML file")
    s.add_argument("--url", help="URL of a running service (default: start one for this run)")
    s.add_argument("--demo", action="store_true",
                   help="simulated recipients respond through the webhooks (needs the simulated world)")
    s.add_argument("--seed", type=int, default=0, help="seed of the simulated responses (demo mode)")
    s.add_argument("--mbox", help="also store the messages the local SMTP sink receives in this mbox file")
    s.set_defaults(func=send)


def publish(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from serving.publish import publish as run

    from serving.publish import MAX_CHUNK

    if not 1 <= args.chunk <= MAX_CHUNK:
        raise ValueError(f"--chunk: expected an integer in 1..{MAX_CHUNK}, got {args.chunk}")
    summary = run(chunk=args.chunk, progress=True)
    table = Table(title="inbox publish")
    table.add_column("item")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        table.add_row(key, f"{value:,}" if isinstance(value, int) else str(value))
    Console().print(table)
    return 0


def serve(args: argparse.Namespace) -> int:
    import os
    import subprocess

    from inbox.settings import load_settings
    from serving.runner import PROJECT_ROOT, serve_command, settings_env

    if not 0 < args.port < 65536:
        raise ValueError(f"--port: expected 1-65535, got {args.port}")
    env = {**os.environ, **settings_env(load_settings())}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    return subprocess.call(serve_command(host=args.host, port=args.port), cwd=PROJECT_ROOT, env=env)


def send(args: argparse.Namespace) -> int:
    import contextlib
    from pathlib import Path

    from rich.console import Console

    from inbox.settings import load_settings
    from serving.campaign import load_campaign
    from serving.runner import start_service
    from serving.send import run_campaign

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
