"""The headers of one outgoing message: bulk-mail standards and each provider's tags.

- `List-Unsubscribe` with an https one-click URL and a mailto (RFC 2369) and
  `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058), which Gmail and
  Yahoo require of bulk senders; `List-Id` (RFC 2919); `Message-ID` (RFC 5322 3.6.4).
  `Date` is set when the message is handed to SMTP (`sending.delivery`).
- Our ids (`send_id`, `contact_id`, `decision_id`, `campaign_id`) as `X-Inbox-*`
  headers and in each provider's custom-data header, restricted to what that
  provider accepts: SendGrid `X-SMTPAPI` unique_args (JSON, ASCII), Mailgun
  `X-Mailgun-Variables` (JSON) and `X-Mailgun-Tag` (ASCII, <= 128 characters),
  Amazon SES `X-SES-MESSAGE-TAGS` (names and values only `[A-Za-z0-9_-]`, <= 256
  characters: other characters are escaped reversibly, see `ses_tag_value`).
- With a provider handoff, the provider holds the message until `send_at`:
  SendGrid `X-SMTPAPI` `send_at` (unix time, at most 72 h ahead), Mailgun
  `X-Mailgun-Deliver-By` (RFC 2822 date, at most 3 days ahead).
"""
from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from email.utils import format_datetime, make_msgid

from serving.webhooks import header_name

# how far ahead each provider accepts a scheduled time (the sender holds messages until then)
HANDOFF_HORIZON = {"sendgrid": timedelta(hours=72), "mailgun": timedelta(days=3)}
_SES_OK = re.compile(r"[^A-Za-z0-9-]")
_ASCII_TAG = re.compile(r"[^\x21-\x7e]")


def ses_tag_value(value: str) -> str:
    """Escape a value into SES's tag charset: every character outside `[A-Za-z0-9-]` (including `_`,
    the escape) becomes `_XX` per UTF-8 byte. Reversible with `ses_tag_decode`; at most 256 characters."""
    out = _SES_OK.sub(lambda m: "".join(f"_{b:02X}" for b in m.group(0).encode()), value)
    if len(out) > 256:
        raise ValueError(f"SES tag value too long after escaping ({len(out)} > 256 characters)")
    return out


def ses_tag_decode(value: str) -> str:
    """Inverse of `ses_tag_value` (for webhooks reading SES tags back)."""
    raw = re.sub(r"_([0-9A-F]{2})", lambda m: f"%{m.group(1)}", value)
    from urllib.parse import unquote

    return unquote(raw, errors="strict")


def mailgun_tag(value: str) -> str:
    """Mailgun tags: printable ASCII, at most 128 characters."""
    return _ASCII_TAG.sub("_", value)[:128]


def list_unsubscribe(url: str, mailto: str, token: str) -> bytes:
    """The raw `List-Unsubscribe` header line (RFC 2369), folded after its comma. Written as bytes and put
    before the generated headers: the email package would turn a URL longer than a line into an RFC 2047
    encoded-word, which mail clients do not read as a URL (lines stay far below RFC 5322's 998)."""
    for part in (url, mailto, token):
        if any(c in part for c in "<>\r\n, "):
            raise ValueError(f"List-Unsubscribe: unexpected character in {part!r}")
    return f"List-Unsubscribe: <{url}>,\r\n <mailto:{mailto}?subject=unsubscribe%20{token}>\r\n".encode("ascii")


def message_headers(config, *, send_id: int, contact_id: int, decision_id: str | None,
                    send_at: datetime | None) -> dict[str, str]:
    """Every header of one message except From/To/Subject/Date and List-Unsubscribe (`list_unsubscribe`)."""
    ids = {"send_id": str(send_id), "contact_id": str(contact_id), "decision_id": decision_id or "",
           "campaign_id": config.campaign_id}
    headers = {"Message-ID": make_msgid(idstring=f"s{send_id}", domain=config.sender_domain),
               "List-Id": config.list_header, "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
    headers.update({header_name(k): v for k, v in ids.items()})
    smtpapi: dict = {"unique_args": ids}
    handoff = config.delivery.handoff
    if handoff == "sendgrid" and send_at is not None:
        smtpapi["send_at"] = int(send_at.timestamp())
    headers["X-SMTPAPI"] = json.dumps(smtpapi, ensure_ascii=True)              # SendGrid custom args
    headers["X-Mailgun-Variables"] = json.dumps(ids, ensure_ascii=True)         # Mailgun user-variables
    headers["X-Mailgun-Tag"] = mailgun_tag(config.campaign_id)
    if handoff == "mailgun" and send_at is not None:
        headers["X-Mailgun-Deliver-By"] = format_datetime(send_at)
    headers["X-SES-MESSAGE-TAGS"] = ", ".join(f"{k}={ses_tag_value(v)}" for k, v in ids.items() if v)
    return headers
