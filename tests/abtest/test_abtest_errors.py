"""Bad input is rejected with a clear message naming the field."""
from __future__ import annotations

import pytest

from abtest_fixtures import recipient_table
from experiments.abtest import AnalysisSettings, analyze
from experiments.abtest.metrics import parse_metric
from experiments.abtest.sizing import sample_size
from experiments.abtest.factorial import factorial_design
from experiments.abtest.srm import parse_split
from experiments.abtest.test_roll import test_and_roll as plan_test_and_roll


@pytest.fixture(scope="module")
def df():
    return recipient_table(n=600, seed=0)


@pytest.mark.parametrize("kwargs,message", [
    (dict(variant="arm"), "missing column(s) ['arm']"),
    (dict(metrics=["opens:binary"]), "missing column(s) ['opens']"),
    (dict(metrics=["cto:ratio(click,opened)"]), "missing column(s) ['opened']"),
    (dict(covariate="pre_period"), "missing column(s) ['pre_period']"),
    (dict(control="z"), "control 'z' not found in column 'variant'"),
    (dict(metrics=["revenue:binary"]), "metric 'revenue' is declared binary but column 'revenue'"),
    (dict(metrics=["open:binary", "open:continuous"]), "metric names must be unique"),
    (dict(split={"a": 0.5, "c": 0.5}), "variants ['b'] are in the data but not in the split"),
    (dict(split={"a": 0.7, "b": 0.7}), "split weights must sum to 1"),
    (dict(metrics=[]), "at least one metric"),
])
def test_analyze_rejects_bad_input(df, kwargs, message):
    args = dict(variant="variant", control="a", metrics=["open:binary"]) | kwargs
    with pytest.raises(ValueError) as err:
        analyze(df, **args)
    assert message in str(err.value)


def test_fewer_than_two_variants(df):
    with pytest.raises(ValueError, match="at least two variants"):
        analyze(df[df.variant == "a"], "variant", "a", ["open:binary"])


def test_missing_values_and_non_numeric(df):
    bad = df.assign(revenue=df.revenue.where(df.index > 3), score=df.score.astype(str))
    with pytest.raises(ValueError, match="'revenue' has 4 missing values"):
        analyze(bad, "variant", "a", ["revenue:continuous"])
    with pytest.raises(ValueError, match="column 'score' must be numeric"):
        analyze(bad, "variant", "a", ["score:continuous"])


@pytest.mark.parametrize("text,message", [
    ("open", "expected COL:binary"), ("open:bool", "kind must be binary"),
    ("cto:ratio(click)", "kind must be binary"), ("open:binary:up", "direction must be"),
])
def test_bad_metric_specs(text, message):
    with pytest.raises(ValueError, match=message):
        parse_metric(text)


@pytest.mark.parametrize("text,message", [
    ("a=0.5;b=0.5", "not a number"), ("a0.5,b=0.5", "NAME=WEIGHT"), ("a=1", "at least two"),
    ("a=0.5,a=0.5", "given twice"), ("a=-0.5,b=1.5", "positive"), ("a=0.3,b=0.3", "sum to 1"),
])
def test_bad_split_specs(text, message):
    with pytest.raises(ValueError, match=message):
        parse_split(text)


def test_bad_settings_and_design_inputs():
    with pytest.raises(ValueError, match="alpha"):
        AnalysisSettings(alpha=1.5)
    with pytest.raises(ValueError, match="alternative"):
        AnalysisSettings(alternative="bigger")
    with pytest.raises(ValueError, match="positive --sd"):
        sample_size("continuous", 1.0, baseline=10.0)
    with pytest.raises(ValueError, match="not a rate"):
        sample_size("binary", 0.2, baseline=0.9)
    with pytest.raises(ValueError, match="variants"):
        sample_size("binary", 0.01, baseline=0.1, variants=1)
    with pytest.raises(ValueError, match="population"):
        plan_test_and_roll(2, 0.1, 0.01)
    with pytest.raises(ValueError, match="NAME=LOW,HIGH"):
        factorial_design(["subject=A", "sender=x,y"])
    with pytest.raises(ValueError, match="no standard generators"):
        factorial_design(["a=0,1", "b=0,1", "c=0,1"], fraction=2)
    with pytest.raises(ValueError, match="generator 'D=AE'"):
        factorial_design(["a=0,1", "b=0,1", "c=0,1", "d=0,1"], generators=["D=AE"])


def test_effects_rejects_non_binary_factor(df):
    from experiments.abtest.factorial_effects import estimate_effects

    with pytest.raises(ValueError, match="exactly two levels"):
        estimate_effects(df.assign(f=df.index % 3), ["f"], "open")
    with pytest.raises(ValueError, match="0/1 outcome"):
        estimate_effects(df, ["variant"], "revenue", model="logistic")


def test_degenerate_metrics_warn_instead_of_crashing():
    import json
    import warnings

    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"v": rng.choice(["a", "b"], 2000), "complaint": 0, "revenue": 0.0})
    df.loc[df.v == "b", "complaint"] = (rng.random((df.v == "b").sum()) < 0.01).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy division warnings leak out
        result = analyze(df, "v", "a", ["revenue:continuous"], AnalysisSettings(sequential=True),
                         guardrails=["complaint:binary"])
    assert any("no variation" in w for w in result.warnings)
    assert any("control mean is 0" in w for w in result.warnings)
    assert result.record("complaint", "b").harm  # complaints from zero: harm, one-sided
    json.loads(result.to_json())  # nan/inf become null
