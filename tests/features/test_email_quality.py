"""Email-address quality checks, no network."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.email_quality import damerau_levenshtein, email_quality, suggest_domain


@pytest.mark.parametrize(
    "email, valid, disposable, role, free, suggestion",
    [
        ("jane.doe@acme-corp.com", True, False, False, False, ""),
        ("Jane.Doe@Gmail.com", True, False, False, True, ""),
        ("info@acme-corp.com", True, False, True, False, ""),
        ("sales+eu@acme-corp.com", True, False, True, False, ""),
        ("someone@mailinator.com", True, True, False, False, ""),
        ("bob@hotmial.com", True, None, False, False, "hotmail.com"),
        ("bob@gmail.con", True, None, False, False, "gmail.com"),
        ("bob@yaho.com", True, None, False, False, "yahoo.com"),
        ("not-an-address", False, False, False, False, ""),
        ("two@@signs.com", False, False, False, False, ""),
        ("", False, False, False, False, ""),
    ],
)
def test_quality_cases(email, valid, disposable, role, free, suggestion):
    q = email_quality(pd.Series([email])).iloc[0]
    assert bool(q.email_valid) is valid
    if disposable is not None:  # the block list also lists some typo domains (spam traps)
        assert bool(q.email_disposable) is disposable
    assert bool(q.email_role_account) is role
    assert bool(q.email_free_mail) is free
    assert q.email_suggested_domain == suggestion
    assert bool(q.email_typo_suspected) is (suggestion != "")


def test_corporate_domains_near_popular_ones_are_not_typos():
    assert suggest_domain("gmail.com") is None
    assert suggest_domain("acme.com") is None      # distance 2 from aol.com, but short: limit 1
    assert damerau_levenshtein("gmial.com", "gmail.com") == 1  # a transposition is one edit


def test_aligned_to_index_and_handles_nulls():
    s = pd.Series(["a@b.com", None, "x@gmial.com"], index=[10, 20, 30])
    q = email_quality(s)
    assert list(q.index) == [10, 20, 30]
    assert not q.loc[20, "email_valid"]


EDGE_ADDRESSES = [
    "a@b.co", "A.B@Example.COM", "a_b%c+d-e@x-y.org", "a..b@x.com", ".a@x.com", "a.@x.com", "a@-x.com",
    "a@x-.com", "a@x.c0m", "a@x.123", "a@1.2.3.com", "ab--cd@x.com", "a@ab--cd.com", "a@xn--bcher-kva.com",
    "a@mail.local", "a@foo.test", "a@x.invalid", "a@localhost", "a@x.onion", "a@sub.arpa", "a@local.com",
    "a@x.y", "x" * 64 + "@x.com", "x" * 65 + "@x.com", "a@" + "x" * 63 + ".com", "a@" + "x" * 64 + ".com",
    "a@" + ".".join(["x" * 60] * 4) + ".com", "a b@x.com", "a@x..com", "a@@x.com", "@x.com", "a@", "",
    "ä@x.com", "a@bücher.de", "a@x.com\n", "_@x.com", "-@x.com", "a@1x.com", "a@x.com.", "a@.x.com",
    "a!b@x.com", "a'b@x.com", '"a b"@x.com', "a@[127.0.0.1]", "a@x.co.uk", "a@x.technology",
]


def _fuzzed(n: int, seed: int = 0) -> list[str]:
    """Address-like strings built from the characters the plain form and its edge cases turn on."""
    rng = np.random.default_rng(seed)
    pieces = ["a", "b", "x", "1", "-", ".", "_", "+", "%", "--", "xn--", "@", "com", "local", "test", "ä", " ", "!"]
    weight = np.array([8, 8, 8, 4, 2, 3, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1, 1], dtype=float)
    out = []
    for _ in range(n):
        local = "".join(rng.choice(pieces, size=rng.integers(1, 5), p=weight / weight.sum()))
        domain = "".join(rng.choice(pieces, size=rng.integers(1, 7), p=weight / weight.sum()))
        out.append(f"{local}@{domain}{rng.choice(['', '.com', '.c', '.de', '.local', '.1'])}")
    return out


def test_the_plain_form_never_accepts_what_the_validator_rejects():
    from features.email_quality import _syntax_ok, plainly_valid

    corpus = EDGE_ADDRESSES + _fuzzed(4000)
    fast = plainly_valid(corpus)
    slow = np.array([_syntax_ok(a) for a in corpus])
    assert not (fast & ~slow).any(), [a for a, f, s in zip(corpus, fast, slow) if f and not s]
    assert fast.sum() > 100 and (slow & ~fast).any()  # both paths are exercised
    # and the column email_quality returns is exactly the validator's verdict
    got = email_quality(pd.Series(corpus))["email_valid"].to_numpy()
    np.testing.assert_array_equal(got, [_syntax_ok(a.strip()) for a in corpus])
