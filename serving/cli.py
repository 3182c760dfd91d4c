"""`inbox publish`, `inbox serve` and `inbox keys` (stdlib imports only at module level; `inbox send` is in sending/cli.py)."""
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

    k = subparsers.add_parser("keys", help="API keys of the service: create, list, revoke",
                              description="API keys are bearer tokens with scopes: send (decide, score, send_time, "
                                          "rank_content, choose_variant), reward (reward), admin (reload and the "
                                          "other operations). Only their SHA-256 is stored, under the data dir.")
    ks = k.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    kc = ks.add_parser("create", help="create a key and print its token once")
    kc.add_argument("--scope", action="append", required=True, metavar="SCOPE",
                    help="send, reward or admin (repeat or comma-separate for several)")
    kc.add_argument("--name", default="", help="a label for the key (who or what uses it)")
    kc.set_defaults(func=keys_create)
    ks.add_parser("list", help="list keys (ids, names, scopes, revocation; never tokens)").set_defaults(func=keys_list)
    kr = ks.add_parser("revoke", help="revoke a key by its id (effective on the next request)")
    kr.add_argument("id", help="the key id (16 hex digits, the part after 'inbox_' in the token)")
    kr.set_defaults(func=keys_revoke)


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
    from inbox.settings import load_settings
    from serving.runner import serve_foreground

    if not 0 < args.port < 65536:
        raise ValueError(f"--port: expected 1-65535, got {args.port}")
    return serve_foreground(load_settings(), host=args.host, port=args.port)


def keys_create(args: argparse.Namespace) -> int:
    from inbox.settings import load_settings
    from serving.api_keys import ENV_VAR, KeyStore

    key, token = KeyStore(load_settings().data_dir).create(args.scope, name=args.name)
    print(f"created key {key.id} ({', '.join(key.scopes)}); its token, shown only now:")
    print(token)
    print(f"clients send it as 'Authorization: Bearer <token>' (the inbox clients read {ENV_VAR})")
    return 0


def keys_list(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from inbox.settings import load_settings
    from serving.api_keys import KeyStore

    table = Table(title="API keys")
    for column in ("id", "name", "scopes", "created", "revoked"):
        table.add_column(column)
    for key in KeyStore(load_settings().data_dir).read():
        table.add_row(key.id, key.name, ",".join(key.scopes), key.created_at, key.revoked_at or "")
    Console().print(table)
    return 0


def keys_revoke(args: argparse.Namespace) -> int:
    from inbox.settings import load_settings
    from serving.api_keys import KeyStore

    key = KeyStore(load_settings().data_dir).revoke(args.id)
    print(f"revoked key {key.id} at {key.revoked_at}")
    return 0
