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
