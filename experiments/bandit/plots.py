"""Matplotlib figures: cumulative regret and reward of a simulation."""
from __future__ import annotations


def simulation_figure(result):
    # A bare Figure: no pyplot state, no backend switch (renders headless and inline alike).
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4))
    ax_regret, ax_reward = fig.subplots(1, 2)
    for r in result.results:
        style = "--" if r.name.startswith("vw_") else "-"
        ax_regret.plot(r.cum_regret, style, label=r.name)
        ax_reward.plot(r.cum_reward, style, label=r.name)
    ax_regret.set(title="Cumulative regret vs. per-contact oracle", xlabel="decisions", ylabel="expected clicks lost")
    ax_reward.set(title="Cumulative reward (clicks)", xlabel="decisions", ylabel="clicks")
    ax_regret.legend(fontsize=8)
    fig.tight_layout()
    return fig
