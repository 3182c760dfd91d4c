"""`inbox publish` and `inbox serve` (stdlib imports only at module level; `inbox send` is in sending/cli.py)."""
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
