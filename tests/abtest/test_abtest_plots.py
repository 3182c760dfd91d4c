"""Plots return matplotlib figures with one panel per metric."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from abtest_fixtures import recipient_table
from experiments.abtest import AnalysisSettings, analyze, plot_lifts, plot_posteriors


def test_lift_and_posterior_figures(tmp_path):
    df = recipient_table(n=3000, seed=6, variants=("a", "b", "c"))
    result = analyze(df, "variant", "a", ["open:binary", "revenue:continuous"], AnalysisSettings(sequential=True),
                     guardrails=["unsubscribe:binary"])
    lifts, posts = plot_lifts(result), plot_posteriors(result)
    assert len(lifts.axes) == 3 and len(posts.axes) == 3
    assert [t.get_text() for t in lifts.axes[0].get_yticklabels()] == ["b", "c"]
    assert len(posts.axes[0].get_lines()) == 3  # one density per variant
    lifts.savefig(tmp_path / "lift.png")
    assert (tmp_path / "lift.png").stat().st_size > 1000


def test_lift_colours_follow_the_drawn_interval_and_variants_carry_names():
    import numpy as np

    from experiments.abtest.plots import BAD, GOOD, NEUTRAL

    df = recipient_table(n=6000, seed=3, variants=("a", "b", "c"), open_lift=0.05)
    result = analyze(df, "variant", "a", ["open:binary", "click:binary"])
    fig = plot_lifts(result, labels={"b": "Save 20% this week only", "c": "Last chance"})
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["b · Save 20% this week only", "c · Last chance"]
    for ax, metric in zip(fig.axes, ["open", "click"]):
        bars = [line for line in ax.get_lines() if line.get_linewidth() == 3]
        for line, variant in zip(bars, ["b", "c"]):
            r = result.record(metric, variant)
            excludes_zero = r.rel_ci_low > 0 or r.rel_ci_high < 0
            expected = (GOOD if r.rel_ci_low > 0 else BAD) if excludes_zero else NEUTRAL
            assert line.get_color() == expected
            assert np.allclose(line.get_xdata(), [r.rel_ci_low, r.rel_ci_high])
    assert result.record("open", "b").rel_ci_low > 0  # the planted lift shows up green


def test_cuped_rate_posteriors_stay_on_zero_one():
    import numpy as np

    df = recipient_table(n=3000, seed=4, variants=("a", "b"))
    result = analyze(df, "variant", "a", ["unsubscribe:binary"], covariate="pre")
    assert result.records[0].cuped
    for s in result.summaries:
        assert s.posterior.family == "beta"
        mean = s.posterior.a / (s.posterior.a + s.posterior.b)
        assert np.isclose(mean, s.mean)
        assert s.posterior.interval(0.9999)[0] >= 0.0
