"""Email-address quality: syntax, disposable and free-mail domains, role accounts, typos.

Checks run once per distinct address (syntax) or distinct domain (everything
else), never per row. No network lookups: `email-validator` runs with
`check_deliverability=False`. Addresses of the plain form
`local@label.label.tld` (a conservative subset of what `email-validator` accepts,
matched with one vectorized regular expression) skip the validator; only the
rest are checked one by one. Disposable domains come from the
`disposable-email-domains` block list.

A typo is a domain that is not itself a known domain but is within
Damerau-Levenshtein distance 1 (2 for domains of 10+ characters) of a popular
mail domain, or has a popular name with a mistyped TLD (gmail.con); the
suggested correction is that popular domain (gmial.com -> gmail.com).
"""
from __future__ import annotations

import re
from functools import lru_cache

import numpy as np
import pandas as pd

QUALITY_COLUMNS = (
    "email_valid",
    "email_disposable",
    "email_role_account",
    "email_free_mail",
    "email_typo_suspected",
    "email_suggested_domain",
)

FREE_MAIL_DOMAINS = frozenset(
    """gmail.com googlemail.com yahoo.com yahoo.co.uk yahoo.fr yahoo.de ymail.com hotmail.com
    hotmail.co.uk hotmail.fr hotmail.de outlook.com live.com msn.com aol.com icloud.com me.com mac.com
    gmx.de gmx.net gmx.com web.de t-online.de mail.ru yandex.ru yandex.com protonmail.com proton.me
    zoho.com mail.com qq.com 163.com 126.com naver.com free.fr orange.fr laposte.net libero.it
    comcast.net verizon.net att.net sbcglobal.net btinternet.com""".split()
)

# the domains people mistype most; typo suggestions point only here
POPULAR_DOMAINS = (
    "gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "aol.com", "icloud.com", "live.com",
    "msn.com", "gmx.de", "web.de", "mail.ru", "yandex.ru", "protonmail.com", "comcast.net",
    "googlemail.com", "hotmail.co.uk", "yahoo.co.uk",
)

ROLE_LOCAL_PARTS = frozenset(
    """admin administrator info sales support contact hello office marketing noreply no-reply
    donotreply do-not-reply webmaster postmaster hostmaster abuse billing accounts accounting
    team hr jobs careers help enquiries inquiries service newsletter press media legal privacy
    security mail feedback orders""".split()
)

_TLD_TYPOS = {"con": "com", "cmo": "com", "ocm": "com", "comm": "com", "om": "com", "vom": "com",
              "xom": "com", "cm": "com", "nte": "net", "ner": "net", "ent": "net"}


def damerau_levenshtein(a: str, b: str) -> int:
    """Optimal-string-alignment distance (Damerau 1964): edits incl. adjacent swaps."""
    d = np.zeros((len(a) + 1, len(b) + 1), dtype=np.int32)
    d[:, 0] = np.arange(len(a) + 1)
    d[0, :] = np.arange(len(b) + 1)
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            d[i, j] = min(d[i - 1, j] + 1, d[i, j - 1] + 1, d[i - 1, j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i, j] = min(d[i, j], d[i - 2, j - 2] + 1)
    return int(d[len(a), len(b)])


@lru_cache(maxsize=65536)
def suggest_domain(domain: str) -> str | None:
    """The popular domain `domain` is probably a typo of, or None."""
    domain = domain.lower()
    if not domain or domain in FREE_MAIL_DOMAINS or domain in POPULAR_DOMAINS:
        return None
    name, _, tld = domain.rpartition(".")
    if tld in _TLD_TYPOS and f"{name}.{_TLD_TYPOS[tld]}" in POPULAR_DOMAINS:
        return f"{name}.{_TLD_TYPOS[tld]}"
    best, best_d = None, 99
    for p in POPULAR_DOMAINS:
        if abs(len(p) - len(domain)) > 2:
            continue
        dist = damerau_levenshtein(domain, p)
        if dist < best_d:
            best, best_d = p, dist
    limit = 2 if len(domain) >= 10 else 1
    return best if best is not None and 0 < best_d <= limit else None


# plain ASCII dot-atom local part @ two or more hostname labels, alphabetic TLD
_PLAIN = (r"^[A-Za-z0-9_%+-]+(\.[A-Za-z0-9_%+-]+)*@"
          r"([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$")


def plainly_valid(addresses) -> np.ndarray:
    """True where an address certainly passes `email-validator` (the rest must be checked by it).

    The plain form, within the length limits (local part <= 64, address <= 254), without
    a label that has "--" in its third and fourth characters (reserved unless Punycode)
    and without a special-use name (`email_validator.SPECIAL_USE_DOMAIN_NAMES`) among its labels.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    from email_validator import SPECIAL_USE_DOMAIN_NAMES

    a = pa.array(list(addresses) if not isinstance(addresses, (pa.Array, pa.ChunkedArray)) else addresses,
                 type=pa.string())
    domain = pc.utf8_lower(pc.replace_substring_regex(a, "^[^@]*@", ""))  # one "@" in the plain form
    special = "|".join(map(re.escape, SPECIAL_USE_DOMAIN_NAMES)) or "$^"
    ok = pc.and_(pc.match_substring_regex(a, _PLAIN), pc.less_equal(pc.utf8_length(a), 254))
    ok = pc.and_(ok, pc.less_equal(pc.find_substring(a, "@"), 64))
    ok = pc.and_(ok, pc.invert(pc.match_substring_regex(domain, r"(^|\.)[^.]{2}--")))
    ok = pc.and_(ok, pc.invert(pc.match_substring_regex(domain, rf"(^|\.)({special})(\.|$)")))
    return pc.fill_null(ok, False).to_numpy(zero_copy_only=False).astype(bool)


def _syntax_ok(address: str) -> bool:
    from email_validator import EmailNotValidError, validate_email

    try:
        validate_email(address, check_deliverability=False)
        return True
    except EmailNotValidError:
        return False


def email_quality(emails: pd.Series) -> pd.DataFrame:
    """Quality columns (see QUALITY_COLUMNS) for a Series of addresses, aligned to its index."""
    from disposable_email_domains import blocklist

    emails = emails.fillna("").astype(str).str.strip()
    codes, uniques = pd.factorize(emails)
    valid_u = plainly_valid(uniques)
    rest = np.flatnonzero(~valid_u)
    valid_u[rest] = np.fromiter((_syntax_ok(uniques[i]) for i in rest), dtype=bool, count=len(rest))
    valid = valid_u[codes]
    local = emails.str.rpartition("@")[0].str.lower()
    domain = emails.str.rpartition("@")[2].str.lower()
    dcodes, domains = pd.factorize(domain)
    suggestion = np.array([suggest_domain(d) or "" for d in domains], dtype=object)[dcodes]
    disposable = np.array([d in blocklist for d in domains], dtype=bool)[dcodes]
    free = np.array([d in FREE_MAIL_DOMAINS for d in domains], dtype=bool)[dcodes]
    role = local.str.split("+").str[0].isin(ROLE_LOCAL_PARTS).to_numpy()
    return pd.DataFrame(
        {
            "email_valid": valid,
            "email_disposable": disposable,
            "email_role_account": role,
            "email_free_mail": free,
            "email_typo_suspected": suggestion != "",
            "email_suggested_domain": suggestion.astype(str),
        },
        index=emails.index,
    )
