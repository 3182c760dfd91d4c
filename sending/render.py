"""Render one email per recipient from Jinja2 templates (HTML + text parts).

Personalization tokens: `first_name` (from the address, e.g. anna.schmidt@ -> Anna),
`email`, `send_id`; the chosen variant gives the subject (its `{first_name}`
token filled in) and the headline; the ranked content blocks fill the body.
Both parts end with the sender's postal address and a visible link to the
unsubscribe / preference page (CAN-SPAM 15 U.S.C. 7704(a)(5); the same URL as
`List-Unsubscribe`). The HTML template autoescapes (the text part does not).
"""
from __future__ import annotations

import re
from email.message import EmailMessage
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
                 base_url: str = "https://inbox.example") -> EmailMessage:
    html_t, text_t = environments()
    tokens = {"first_name": first_name(email), "email": email, "send_id": send_id}
    context = {**tokens, "headline": personalize(variant["subject"], tokens), "blocks": blocks,
               "unsubscribe_url": unsubscribe_url, "postal_address": postal_address, "base_url": base_url}
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = email
    msg["Subject"] = personalize(variant["subject"], tokens)
    for name, value in headers.items():
        msg[name] = value
    msg.set_content(text_t.render(**context))
    msg.add_alternative(html_t.render(**context), subtype="html")
    return msg
