"""Sequential history over looks: cumulative statistics, running min p, running intersection."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

from abtest_fixtures import recipient_table
from experiments.abtest import AnalysisSettings, analyze, plot_sequential, sequential_history


@pytest.fixture(scope="module")
def table():
    df = recipient_table(n=12000, seed=13, open_lift=0.03)
    df["sent_at"] = pd.Timestamp("2026-05-01", tz="UTC") + pd.to_timedelta(np.arange(len(df)) * 7, unit="s")
    return df.sample(frac=1.0, random_state=0)  # time order must come from the column, not the rows


def test_last_look_equals_the_full_analysis_and_history_is_monotone(table):
    history = sequential_history(table, "variant", "a", "open:binary", "sent_at", looks=12)
    last = history.iloc[-1]
    full = analyze(table, "variant", "a", ["open:binary"], AnalysisSettings(sequential=True)).record("open", "b")
    assert last.n == full.n and last.control_n == full.control_n
    assert last.abs_lift == pytest.approx(full.abs_lift)
    assert last.fixed_p_value == pytest.approx(full.p_value)
    assert last.always_valid_p_value <= full.seq_p_value + 1e-12  # running minimum over looks
    assert (np.diff(history.always_valid_p_value) <= 0).all()
    assert (np.diff(history.cs_low) >= 0).all() and (np.diff(history.cs_high) <= 0).all()
    # cumulative counts at a middle look equal a direct count over the earliest recipients
    k = len(table) * 5 // 12
    first = table.sort_values("sent_at").iloc[:k]
    row = history[history.look == 5].iloc[0]
    assert row.n == (first.variant == "b").sum()
    assert row.abs_lift == pytest.approx(first[first.variant == "b"].open.mean() - first[first.variant == "a"].open.mean())
    fig = plot_sequential(history)
    assert len(fig.axes) == 2
