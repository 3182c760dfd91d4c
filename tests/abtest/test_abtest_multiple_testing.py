"""Holm and Benjamini-Hochberg vs statsmodels.multipletests."""
from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from abtest_fixtures import recipient_table
from experiments.abtest import AnalysisSettings, analyze
from experiments.abtest.multiple_testing import benjamini_hochberg, holm


@pytest.mark.parametrize("seed", range(5))
def test_adjustments_match_statsmodels(seed):
    rng = np.random.default_rng(seed)
    p = np.concatenate([rng.uniform(0, 1, 12), rng.uniform(0, 0.01, 4), [0.02, 0.02]])  # with ties
    assert holm(p) == pytest.approx(multipletests(p, method="holm")[1])
    assert benjamini_hochberg(p) == pytest.approx(multipletests(p, method="fdr_bh")[1])


def test_analysis_adjusts_across_variants_and_metrics_but_not_guardrails():
    df = recipient_table(n=9000, seed=9, variants=("a", "b", "c"), open_lift=0.03)
    result = analyze(df, "variant", "a", ["open:binary", "revenue:continuous", "cto:ratio(click,open)"],
                     AnalysisSettings(correction="bh"), guardrails=["unsubscribe:binary"])
    decisions = [r for r in result.records if not r.guardrail]
    assert len(decisions) == 6
    raw = np.array([r.p_value for r in decisions])
    assert [r.p_holm for r in decisions] == pytest.approx(multipletests(raw, method="holm")[1])
    assert [r.p_adjusted for r in decisions] == pytest.approx(multipletests(raw, method="fdr_bh")[1])
    assert all(r.significant == (r.p_adjusted < 0.05) for r in decisions)
    assert all(r.p_adjusted is None for r in result.records if r.guardrail)


def test_sequential_p_values_get_the_same_correction():
    df = recipient_table(n=9000, seed=10, variants=("a", "b", "c"), open_lift=0.04)
    result = analyze(df, "variant", "a", ["open:binary", "click:binary"],
                     AnalysisSettings(sequential=True, correction="bh"))
    raw = np.array([r.seq_p_value for r in result.records])
    assert [r.seq_p_adjusted for r in result.records] == pytest.approx(multipletests(raw, method="fdr_bh")[1])
