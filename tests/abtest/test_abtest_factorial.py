"""Factorial designs (alias structure of known designs) and effect estimates vs statsmodels."""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from experiments.abtest.factorial import factorial_design
from experiments.abtest.factorial_effects import estimate_effects, estimate_effects_from_counts

FACTORS = ["subject=Save 20%|Last chance", "sender=Team,CEO", "content=short,long", "send_hour=9,17"]


def test_half_fraction_2_4_1_alias_structure():
    d = factorial_design(FACTORS, fraction=1)  # D = ABC (Box, Hunter and Hunter table 6.22)
    assert d.n_runs == 8 and d.defining_relation == ("ABCD",) and d.resolution == 4
    aliases = d.aliases()
    assert aliases["A"] == ["BCD"] and aliases["D"] == ["ABC"]
    assert aliases["AB"] == ["CD"] and aliases["AC"] == ["BD"] and aliases["AD"] == ["BC"]
    runs = d.runs
    assert (runs.D == runs.A * runs.B * runs.C).all()
    coded = runs[list("ABCD")].to_numpy()
    assert (coded.T @ coded == 8 * np.eye(4)).all()  # orthogonal, balanced
    table = d.alias_table()
    assert table.loc[table.effect == "A", "clear"].item() and not table.loc[table.effect == "AB", "clear"].item()
    assert set(runs.subject) == {"Save 20%", "Last chance"}


def test_full_factorial_and_resolution_iii_design():
    full = factorial_design(FACTORS)
    assert full.n_runs == 16 and full.resolution is None and full.aliases()["AB"] == []
    assert len(full.runs[list("ABCD")].drop_duplicates()) == 16
    d = factorial_design(["a=0,1", "b=0,1", "c=0,1", "d=0,1", "e=0,1"], generators=["D=AB", "E=AC"])
    assert d.defining_relation == ("ABD", "ACE", "BCDE") and d.resolution == 3
    assert d.aliases()["A"] == ["BD", "CE", "ABCDE"]


def test_assignment_is_balanced():
    d = factorial_design(FACTORS, fraction=1)
    assigned = d.assign(np.arange(8003), seed=1)
    counts = assigned.groupby(["subject", "sender", "content", "send_hour"]).size()
    assert len(counts) == 8 and counts.max() - counts.min() <= 1


def _simulated(n=48000, seed=0, fraction=0):
    d = factorial_design(FACTORS, fraction=fraction)
    df = d.assign(np.arange(n), seed=seed)
    x = {f.name: np.where(df[f.name] == f.high, 1, -1) for f in d.factors}
    # true half-effects: subject +0.012, sender -0.006, subject x content +0.004
    p = 0.10 + 0.012 * x["subject"] - 0.006 * x["sender"] + 0.004 * x["subject"] * x["content"]
    df["click"] = (np.random.default_rng(seed + 1).random(n) < p).astype(int)
    return d, df, x


def test_main_effects_and_interaction_recovered_and_equal_per_recipient_ols():
    d, df, x = _simulated()
    factors = [f.name for f in d.factors]
    out = estimate_effects(df, factors, "click", levels=d.levels).set_index("term")
    truth = {"subject": 0.024, "sender": -0.012, "content": 0.0, "send_hour": 0.0, "subject:content": 0.008}
    for term, effect in truth.items():
        row = out.loc[term]
        assert row.ci_low <= effect <= row.ci_high, (term, row.effect)
    assert out.loc["subject", "p_value"] < 1e-6
    # identical to per-recipient OLS with HC1 standard errors (statsmodels)
    cols = {"const": np.ones(len(df)), **{f: x[f] for f in factors}}
    for a, b in itertools.combinations(factors, 2):
        cols[f"{a}:{b}"] = x[a] * x[b]
    X = pd.DataFrame(cols)
    fit = sm.OLS(df.click.to_numpy(float), X).fit(cov_type="HC1")
    assert out.loc["intercept", "coef"] == pytest.approx(fit.params["const"])
    for term in X.columns[1:]:
        assert out.loc[term, "coef"] == pytest.approx(fit.params[term], abs=1e-12)
        assert out.loc[term, "se"] == pytest.approx(fit.bse[term], rel=1e-8)


def test_logistic_effects_equal_per_recipient_logit():
    d, df, x = _simulated(n=20000, seed=3)
    factors = [f.name for f in d.factors]
    out = estimate_effects(df, factors, "click", model="logistic", interactions=False, levels=d.levels)
    X = sm.add_constant(pd.DataFrame({f: x[f] for f in factors}))
    fit = sm.Logit(df.click.to_numpy(float), X).fit(disp=0)
    got = out.set_index("term")
    for f in factors:
        assert got.loc[f, "coef"] == pytest.approx(fit.params[f], rel=1e-6, abs=1e-9)
        assert got.loc[f, "se"] == pytest.approx(fit.bse[f], rel=1e-5)
        assert got.loc[f, "effect"] == pytest.approx(np.exp(2 * fit.params[f]), rel=1e-6)


def test_fractional_design_reports_aliased_interactions_instead_of_numbers():
    d, df, _ = _simulated(n=16000, fraction=1)
    out = estimate_effects(df, [f.name for f in d.factors], "click", levels=d.levels).set_index("term")
    # D = ABC: sender:content (BC) is aliased with subject:send_hour (AD)
    assert out.loc["sender:content", "aliased_with"] == "subject:send_hour"
    assert np.isnan(out.loc["sender:content", "coef"])
    assert out.loc["subject", "ci_low"] <= 0.024 <= out.loc["subject", "ci_high"]


def test_aggregated_counts_give_the_per_recipient_estimates():
    d, df, _ = _simulated(n=20000, seed=5)
    factors = [f.name for f in d.factors]
    runs = df.groupby(factors, as_index=False).agg(sends=("click", "size"), clicks=("click", "sum"))
    for model in ("linear", "logistic"):
        rows = estimate_effects(df, factors, "click", model=model, levels=d.levels)
        counts = estimate_effects_from_counts(runs, factors, sends="sends", successes="clicks", model=model,
                                              levels=d.levels)
        pd.testing.assert_frame_equal(rows, counts, rtol=1e-7)
