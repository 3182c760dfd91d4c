"""Review plots: bar charts with readable names and printed values, labelled colour bars."""
from __future__ import annotations

import numpy as np

from models import plots


def test_bars_are_horizontal_with_one_value_label_per_bar():
    values = {"ours": 0.8143, "population_best_hour": 0.7, "segment_best_hour_with_a_long_name": 0.75, "oracle": 1.0}
    fig = plots.bars("NDCG@3 on the test period", values, "NDCG@3")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == list(values)  # names on the y axis: no overlap
    printed = [t.get_text() for t in ax.texts] or [t.get_text() for c in ax.containers for t in c.datavalues]
    assert printed == ["0.8143", "0.7000", "0.7500", "1.0000"]
    assert ax.get_xlabel() == "NDCG@3"


def test_heatmap_colour_bars_are_labelled():
    fig = plots.hour_of_week_heatmap({"population": np.linspace(0, 0.3, 168), "contact 7": np.full(168, 0.1)})
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(bars) == 2 and all(b.get_ylabel() == "predicted P(open within 24 h)" for b in bars)
