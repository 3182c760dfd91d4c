"""`inbox` command line. Thin: each package registers its own sub-commands.

Every package owning commands has a `cli.py` with
`register(subparsers: argparse._SubParsersAction) -> None`; it must import only
the standard library at module level (heavy imports go inside the handlers) so
that `inbox --help` stays fast. A handler is set with
`parser.set_defaults(func=handler)`; it receives the parsed namespace and
returns an exit code (or None for 0).
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

COMMAND_MODULES = [
    "simulation.cli",
    "features.cli",
    "models.cli",
    "experiments.bandit.cli",
    "experiments.abtest.cli",
    "serving.cli",
    "sending.cli",
    "privacy.cli",
    "inbox.demo",
    "inbox.relocate",
]


class UsageError(Exception):
    """Bad input at the command line; printed without a traceback, exit 2."""


def parse_utc(flag: str, text: str):
    """An ISO 8601 time given to `flag`, as an aware UTC datetime (UTC when it names no zone)."""
    from datetime import datetime, timezone

    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{flag}: not an ISO 8601 time: {text!r}") from None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("algorithmic-inbox")
    except PackageNotFoundError:
        return "unknown (not installed)"


class _Parser(argparse.ArgumentParser):
    """Every parser (sub-commands are made with the parent's class) records itself as `_parser`, so an
    unknown flag is reported with the usage of the command it was given to (argparse leaves such extras
    to the top-level parser, whose usage says nothing about the sub-command)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.set_defaults(_parser=self)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="inbox", description="Algorithmic Inbox: email personalization and experimentation."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        if importlib.util.find_spec(name) is None:
            continue
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        getattr(args, "_parser", parser).error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code = args.func(args)
    except (UsageError, ValueError, FileNotFoundError) as exc:
        print(f"inbox {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
