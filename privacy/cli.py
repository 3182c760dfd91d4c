"""`inbox privacy erase | export | consent` (stdlib-only imports at module level)."""
from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser("privacy", help="export or erase a contact from every store; consent ledger")
    sub = p.add_subparsers(dest="privacy_command", metavar="ACTION")
    for name, helptext in (("erase", "remove a contact from every store (keeps a hashed suppression entry)"),
                           ("export", "write a contact's data from every store as JSON")):
        a = sub.add_parser(name, help=helptext)
        a.add_argument("--contact", type=int, action="append", default=[], metavar="ID", help="contact id (repeatable)")
        a.add_argument("--email", action="append", default=[], metavar="ADDR", help="email address (repeatable)")
        if name == "export":
            a.add_argument("--out", metavar="FILE", help="write here (default: standard output)")
        a.set_defaults(func=_erase if name == "erase" else _export)
    s = sub.add_parser("seed", help="bring the consent ledger up to date with the event log")
    s.add_argument("--force", action="store_true", help="even when the event log did not change")
    s.set_defaults(func=_seed)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _subject(args):
    from inbox.settings import load_settings
    from privacy.erase import resolve

    settings = load_settings()
    return settings, resolve(settings, args.contact, args.email)


def _erase(args) -> int:
    import sys

    from privacy.erase import erase

    settings, subject = _subject(args)
    out = erase(settings, subject, progress=lambda name: print(f"erasing: {name}", file=sys.stderr))
    for name, n in out.stores.items():
        print(f"{name}: {n}" + (f" ({out.notes[name]})" if name in out.notes else ""))
    print(f"audit subject: {out.subject_hash}")
    return 0


def _export(args) -> int:
    import json
    import sys

    from privacy.erase import export
    from privacy.files import atomic_write_bytes

    settings, subject = _subject(args)
    out = export(settings, subject)
    text = json.dumps({"contact_ids": list(subject.contact_ids), "stores": out.data}, indent=2, default=str)
    if args.out:
        from pathlib import Path

        atomic_write_bytes(Path(args.out).resolve(), lambda fh: fh.write(text.encode()))
    else:
        sys.stdout.write(text + "\n")
    return 0


def _seed(args) -> int:
    from inbox.settings import load_settings
    from privacy.seed import seed_consent

    print(seed_consent(load_settings(), force=args.force))
    return 0
