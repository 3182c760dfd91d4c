"""Sample-ratio mismatch vs scipy's chi-square, with planned splits and zero-unit variants."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from abtest_fixtures import recipient_table
from experiments.abtest import analyze
from experiments.abtest.srm import parse_split, srm_test


def test_srm_matches_chisquare_and_flags_only_real_mismatch():
    ok = srm_test({"a": 5030, "b": 4970})
    assert ok.p_value == pytest.approx(stats.chisquare([5030, 4970]).pvalue)
    assert not ok.mismatch
    bad = srm_test({"a": 5200, "b": 4800})
    assert bad.mismatch and bad.p_value < 0.001
    uneven = srm_test({"a": 2000, "b": 8000}, {"a": 0.2, "b": 0.8})
    assert not uneven.mismatch and uneven.chi2 == pytest.approx(0.0)


def test_zero_unit_variant_still_counts():
    result = srm_test({"a": 5000, "b": 5000}, parse_split("a=1,b=1,c=1".replace("1", "0.3333333333")))
    assert result.observed == (5000, 5000, 0) and result.mismatch
    assert result.p_value == pytest.approx(stats.chisquare([5000, 5000, 0]).pvalue)


def test_analysis_reports_srm_with_planned_split_including_missing_variant():
    df = recipient_table(n=4000, seed=1)
    result = analyze(df, "variant", "a", ["open:binary"], split={"a": 0.25, "b": 0.25, "c": 0.5})
    assert result.srm.mismatch and result.srm.variants == ("a", "b", "c")
    assert result.srm.observed[2] == 0
    assert any("mismatch" in w for w in result.warnings)
    assert any("fewer than 2 units" in w for w in result.warnings)
    assert [r.variant for r in result.records] == ["b"]


def test_srm_detection_rate_in_simulation():
    """Counts drawn with a 51/49 leak over 50,000 units are flagged; fair draws almost never are."""
    rng = np.random.default_rng(0)
    leaked = rng.binomial(50000, 0.51, 300)
    fair = rng.binomial(50000, 0.50, 300)
    flag = lambda a: srm_test({"a": int(a), "b": int(50000 - a)}).mismatch
    assert np.mean([flag(a) for a in leaked]) > 0.8
    assert np.mean([flag(a) for a in fair]) < 0.01


def test_percent_splits_are_normalised():
    assert parse_split("a=50,b=50") == {"a": 0.5, "b": 0.5}
