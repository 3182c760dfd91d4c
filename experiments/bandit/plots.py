"""Matplotlib (Agg) figures: cumulative regret and reward of a simulation."""
from __future__ import annotations


def simulation_figure(result):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_regret, ax_reward) = plt.subplots(1, 2, figsize=(11, 4))
    for r in result.results:
        style = "--" if r.name.startswith("vw_") else "-"
        ax_regret.plot(r.cum_regret, style, label=r.name)
        ax_reward.plot(r.cum_reward, style, label=r.name)
    ax_regret.set(title="Cumulative regret vs. per-contact oracle", xlabel="decisions", ylabel="expected clicks lost")
    ax_reward.set(title="Cumulative reward (clicks)", xlabel="decisions", ylabel="clicks")
    ax_regret.legend(fontsize=8)
    fig.tight_layout()
    return fig
