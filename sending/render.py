"""Render one email per recipient from Jinja2 templates (HTML + text parts).

Personalization tokens: `first_name` (from the address, e.g. anna.schmidt@ -> Anna),
`email`, `send_id`; the chosen variant gives the subject (its `{first_name}`
token filled in) and the headline; the ranked content blocks fill the body.
Both parts end with the sender's postal address and a visible link to the
unsubscribe / preference page (CAN-SPAM 15 U.S.C. 7704(a)(5); the same URL as
`List-Unsubscribe`). The HTML template autoescapes (the text part does not).
"""
from __future__ import annotations

import quopri
import re
import secrets
from email.header import Header
from functools import lru_cache
from pathlib import Path

TEMPLATES = Path(__file__).with_name("templates")


@lru_cache(maxsize=4)
def environments(directory: str = str(TEMPLATES)):
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    loader = FileSystemLoader(directory)
    html = Environment(loader=loader, autoescape=select_autoescape(["j2", "html"]), undefined=StrictUndefined)
    text = Environment(loader=loader, autoescape=False, undefined=StrictUndefined)
    return html.get_template("email.html.j2"), text.get_template("email.txt.j2")


def first_name(email: str) -> str:
    local = email.split("@", 1)[0]
    part = re.split(r"[._+\-0-9]", local)[0]
    return part.capitalize() if part else "there"


def personalize(subject: str, tokens: dict) -> str:
    """Fill `{first_name}`-style tokens; unknown tokens are left as they are."""
    return re.sub(r"\{(\w+)\}", lambda m: str(tokens.get(m.group(1), m.group(0))), subject)


def render_email(*, sender: str, email: str, send_id: int, variant: dict, blocks: list[dict],
                 headers: dict[str, str], unsubscribe_url: str, postal_address: str,
                 base_url: str = "https://inbox.example") -> bytes:
    """The message as SMTP-ready bytes (CRLF line ends): multipart/alternative (RFC 2046 5.1.4), text
    then HTML, UTF-8 quoted-printable (RFC 2045 6.7); a non-ASCII subject RFC 2047-encoded. Written
    directly: the `email` package's generators parse and re-fold every header, which cost more than
    everything else a message needs. Tests parse the bytes back with `email.policy.default`."""
    html_t, text_t = environments()
    tokens = {"first_name": first_name(email), "email": email, "send_id": send_id}
    context = {**tokens, "headline": personalize(variant["subject"], tokens), "blocks": blocks,
               "unsubscribe_url": unsubscribe_url, "postal_address": postal_address, "base_url": base_url}
    subject = personalize(variant["subject"], tokens)
    boundary = "=_" + secrets.token_hex(16)  # random: cannot occur in the parts
    top = {"From": sender, "To": email,
           "Subject": subject if subject.isascii() else Header(subject, "utf-8").encode(linesep="\r\n"),
           **headers, "MIME-Version": "1.0", "Content-Type": f'multipart/alternative; boundary="{boundary}"'}
    out = [header_lines(top), b"\r\n"]
    for subtype, body in (("plain", text_t.render(**context)), ("html", html_t.render(**context))):
        out += [f"--{boundary}\r\nContent-Type: text/{subtype}; charset=\"utf-8\"\r\n"
                "Content-Transfer-Encoding: quoted-printable\r\n\r\n".encode(), _qp(body), b"\r\n"]
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out)


def header_lines(headers: dict[str, str]) -> bytes:
    """`Name: value` lines; values must be single lines (a folded RFC 2047 value keeps its CRLF + space)."""
    lines = []
    for name, value in headers.items():
        if re.search(r"\r(?!\n )|(?<!\r)\n|[\x00]", value):
            raise ValueError(f"{name}: header values must be one line")
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines).encode("utf-8")  # non-ASCII only in an internationalized address (RFC 6532)


def _qp(text: str) -> bytes:
    return quopri.encodestring(text.encode("utf-8")).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
