"""Email-address quality checks, no network."""
from __future__ import annotations

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
