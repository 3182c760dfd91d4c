"""Signed unsubscribe / preference-centre tokens (`<contact_id>.<send_id>.<mac>`).

The MAC is 128 bits of HMAC-SHA256 under the installation key
(`inbox.secrets.keyed_digest`, purpose "unsubscribe") over the two ids, so a
token cannot be guessed or derived from another recipient's: the ids alone
open nothing. The ids are not personal data (no address in the URL).
"""
from __future__ import annotations

import hmac
import re

PURPOSE = "unsubscribe"
MAC_HEX = 32  # 128 bits
_TOKEN = re.compile(rf"^(\d{{1,19}})\.(\d{{1,19}})\.([0-9a-f]{{{MAC_HEX}}})$")


class InvalidToken(ValueError):
    """The token is malformed or its MAC does not verify."""


def _mac(settings, contact_id: int, send_id: int) -> str:
    from inbox.secrets import keyed_digest

    return keyed_digest(settings, PURPOSE, f"{int(contact_id)}.{int(send_id)}".encode())[:MAC_HEX]


def make_token(settings, contact_id: int, send_id: int) -> str:
    return f"{int(contact_id)}.{int(send_id)}.{_mac(settings, contact_id, send_id)}"


def read_token(settings, token: str) -> tuple[int, int]:
    """(contact_id, send_id) of a valid token; InvalidToken otherwise (constant-time MAC check)."""
    m = _TOKEN.match(token or "")
    if m is None:
        raise InvalidToken("token: malformed")
    contact_id, send_id = int(m.group(1)), int(m.group(2))
    if not hmac.compare_digest(m.group(3), _mac(settings, contact_id, send_id)):
        raise InvalidToken("token: signature does not verify")
    return contact_id, send_id
