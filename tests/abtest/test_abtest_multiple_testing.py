"""Holm and Benjamini-Hochberg: the published example, and the analysis's families."""
from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from abtest_fixtures import recipient_table
from experiments.abtest import AnalysisSettings, analyze
from experiments.abtest.multiple_testing import benjamini_hochberg, holm


# Benjamini and Hochberg (1995), section 4: 15 p-values from a clinical trial. At level 0.05 their
# procedure rejects the four smallest; Bonferroni-type procedures (Holm included) reject three.
BH_1995 = np.array([0.0001, 0.0004, 0.0019, 0.0095, 0.0201, 0.0278, 0.0298, 0.0344, 0.0459, 0.3240,
                    0.4262, 0.5719, 0.6528, 0.7590, 1.0000])


def test_benjamini_hochberg_1995_example():
    rng = np.random.default_rng(0)
    order = rng.permutation(BH_1995.size)  # the adjustment must not depend on the input order
    bh, h = np.empty(15), np.empty(15)
    bh[order], h[order] = benjamini_hochberg(BH_1995[order]), holm(BH_1995[order])
    assert int((bh <= 0.05).sum()) == 4
    assert int((h <= 0.05).sum()) == 3
    # by the definitions: BH p(i) m / i made monotone from the top; Holm p(i) (m - i + 1) from the bottom
    assert bh[:6] == pytest.approx([0.0015, 0.003, 0.0095, 0.0095 * 15 / 4, 0.0201 * 3, 0.0298 * 15 / 7])
    assert h[:5] == pytest.approx([0.0015, 0.0004 * 14, 0.0019 * 13, 0.0095 * 12, 0.0201 * 11])
    assert bh.max() == h.max() == 1.0


def test_no_correction_and_bad_names():
    from experiments.abtest.multiple_testing import adjust

    assert adjust(BH_1995, "none") == pytest.approx(BH_1995)
    with pytest.raises(ValueError, match="correction"):
        adjust(BH_1995, "bonferroni-ish")


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
