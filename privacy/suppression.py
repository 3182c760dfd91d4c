"""The suppression list: addresses never to be mailed again, stored only as keyed hashes.

An erased contact leaves no address behind, yet a later re-import of the same address must not
be mailed (GDPR Recital 66 / Art. 17: keeping the minimum needed to honour an objection). So the
list holds HMAC-SHA256 digests of normalized addresses under the installation key
(`inbox.secrets.keyed_digest`, purpose "suppression"): without the key nobody can test whether
an address is on it. The ledger maps each contact to its address digest (`contacts` table,
filled by `privacy.seed`), so the server checks suppression by contact id.

Normalization: Unicode NFC, surrounding whitespace removed, lower case. The local part of an
address is case-sensitive by RFC 5321 s. 2.4, but no mailbox provider treats it so; folding it
means "Ann@x.org" and "ann@x.org" are one suppression.
"""
from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from inbox.secrets import keyed_digest, signing_key
from privacy.consent import ConsentLedger, now_us

PURPOSE = "suppression"


def normalize_emails(emails) -> pa.Array:
    """Vectorized normalization (NFC, trimmed, lower case) of an array of addresses."""
    arr = pa.array(emails, type=pa.string()) if not isinstance(emails, (pa.Array, pa.ChunkedArray)) else emails
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return pc.utf8_lower(pc.utf8_trim_whitespace(pc.utf8_normalize(arr, form="NFC")))


def normalize_email(email: str) -> str:
    if not isinstance(email, str) or not email.strip():
        raise ValueError(f"email: expected a non-empty string, got {type(email).__name__}")
    return normalize_emails([email])[0].as_py()


def email_digests(settings, emails) -> list[str]:
    """Keyed digests of the normalized addresses (the same as `email_digest` for each, in bulk)."""
    normalized = normalize_emails(emails).to_pylist()
    purpose_key = hmac.new(signing_key(settings), PURPOSE.encode(), hashlib.sha256).digest()
    base = hmac.new(purpose_key, digestmod=hashlib.sha256)

    def one(value: str) -> str:
        h = base.copy()
        h.update(value.encode())
        return h.hexdigest()

    return [one(v) for v in normalized]


def email_digest(settings, email: str) -> str:
    return keyed_digest(settings, PURPOSE, normalize_email(email).encode())


def _digests(settings, emails: Iterable[str]) -> list[str]:
    emails = list(emails)
    for i, e in enumerate(emails):
        if not isinstance(e, str) or not e.strip():
            raise ValueError(f"emails[{i}]: expected a non-empty string")
    return email_digests(settings, emails)


def add_digests(ledger: ConsentLedger, digests: Iterable[str], reason: str) -> int:
    """Suppress these digests and mark their contacts (caller holds the ledger's transaction); rows added."""
    digests = list(digests)
    before = ledger.db.total_changes
    added_us = now_us()
    ledger.db.executemany("INSERT OR IGNORE INTO suppression (email_digest, reason, added_us) VALUES (?, ?, ?)",
                          [(d, reason, added_us) for d in digests])
    added = ledger.db.total_changes - before
    ledger.derive_suppressed(digests)
    return added


def suppress(settings, emails: Iterable[str], reason: str) -> int:
    """Add addresses to the suppression list (as keyed digests); rows added."""
    digests = _digests(settings, emails)
    with ConsentLedger.open(settings) as ledger, ledger.transaction():
        return add_digests(ledger, digests, reason)


def is_suppressed(settings, emails: Iterable[str]) -> np.ndarray:
    """Row-aligned bool: whether each address is on the suppression list."""
    import json

    digests = _digests(settings, emails)
    with ConsentLedger.open(settings) as ledger:
        hits = {r[0] for r in ledger.db.execute(
            "SELECT email_digest FROM suppression WHERE email_digest IN (SELECT value FROM json_each(?))",
            (json.dumps(digests),))}
    return np.fromiter((d in hits for d in digests), dtype=bool, count=len(digests))
