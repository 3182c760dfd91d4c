# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Contextual bandits: simulation, decision log, off-policy evaluation, promotion gate
#
# A bandit chooses which content variant each contact gets and learns from the clicks as they
# arrive. This notebook (1) races our policies (linear Thompson sampling, LinUCB, epsilon-greedy)
# against uniform allocation and Vowpal Wabbit on one simulated campaign with delayed rewards,
# (2) runs the production `Allocator` (the object the service calls) against the simulated world,
# (3) evaluates policies off-line from its decision log (IPS, SNIPS, DM, DR) and (4) shows the
# promotion gate that keeps a new policy version out of traffic until it is demonstrably better.
#
# The first cell holds the parameters (papermill can override them: `papermill -p N_CONTACTS 500 ...`).
# The second, `inbox.notebook.setup()`, points the project's settings at a temporary workspace: event
# log, features, Feast registry, bandit state and the MLflow store all land there. Set
# `INBOX_DATA_DIR`, `INBOX_ARTIFACT_ROOT` and `MLFLOW_TRACKING_URI` before starting Jupyter to work
# against a real installation instead (the same store the CLI and the service use).

# %% tags=["parameters"]
N_CONTACTS = 10_000  # contacts in the simulated world
DECISIONS = 4_000  # decisions in the policy race
ROUNDS = 4  # send rounds of the production allocator
RECIPIENTS = 8_000  # recipients per round
SEED = 3

# %%
import pandas as pd
from IPython.display import display

from inbox.notebook import setup, show

settings = setup()

# %% [markdown]
# ## A campaign simulated with every policy
#
# A small world (its contacts' public attributes are the context) and a campaign of five variants
# with distinct topics. Every policy sees the same contacts, the same click noise and the same
# delays: a click counts as a reward only if it arrives within the 12-hour wait window. Regret is
# measured against the simulator's oracle: the best variant for each contact.

# %%
from simulation.world import WorldConfig, generate_world
from experiments.bandit.simulate import SimulationConfig, run_simulation

world = generate_world(WorldConfig(n_contacts=N_CONTACTS, seed=SEED))
config = SimulationConfig(decisions=DECISIONS, n_contacts=N_CONTACTS, n_variants=5, days=5, wait_window_hours=12,
                          seed=SEED)
simulation = run_simulation(config, world=world)
print(f"oracle: {simulation.oracle_reward:.1f} expected clicks in {config.decisions:,} decisions")
simulation.table()

# %% [markdown]
# Left: cumulative regret (expected clicks lost against the oracle); flatter is better. Right:
# cumulative clicks. Vowpal Wabbit's contextual-bandit reductions (dashed) are the external
# reference; uniform allocation is what a plain A/B/n test does for its whole duration.

# %%
from experiments.bandit.plots import simulation_figure
from experiments.bandit.tracking import log_simulation

show(simulation_figure(simulation))
print("MLflow run", log_simulation(simulation, settings), "(experiment inbox/bandit-simulation)")

# %% [markdown]
# ## The production allocator against the simulated world
#
# `Allocator` keeps every decision (contact, context, eligible variants, probabilities, chosen
# variant, propensity, policy version) in a SQLite decision log before returning it, takes rewards
# keyed by decision id, and learns versioned snapshots. Here a campaign with the same five variants
# runs in rounds: choose for a batch of contacts, let the simulated recipients respond
# (`ResponseModel.sample`: opens and clicks with realistic delays), send the clicks back as rewards,
# and learn once the wait window has closed. With `gate=True` a new snapshot is only a candidate.

# %%
import numpy as np

from experiments.bandit import Allocator
from experiments.bandit.simulate import CONTEXT_ATTRIBUTES, VARIANT_FEATURES

variants = world.content.set_index("content_id").loc[simulation.variant_ids, list(VARIANT_FEATURES)].reset_index()
context = pd.get_dummies(world.contacts[list(CONTEXT_ATTRIBUTES)].astype(str), prefix_sep="=", dtype=float)
alloc = Allocator.open(settings.bandit_dir)
alloc.register_campaign("spring-launch", variants, list(context.columns), reward_event="click",
                        wait_window="12h", policy="lin_ts", floor=0.02)
variants

# %%
rng = np.random.default_rng(0)
start, window = pd.Timestamp("2026-05-04 08:00", tz="UTC"), pd.Timedelta("12h")
gate_rows = []
for round_ in range(ROUNDS):
    now = start + round_ * (window + pd.Timedelta("1h"))
    rows = rng.choice(len(world.contacts), min(RECIPIENTS, len(world.contacts)), replace=False)
    chosen = alloc.choose("spring-launch", world.contacts.contact_id.to_numpy()[rows], context.iloc[rows], now=now)
    responses = world.response.sample(chosen.contact_id, chosen.variant, [now] * len(chosen), rng)
    clicks = responses[responses.type == "click"]
    statuses = alloc.rewards(chosen.decision_id.to_numpy()[clicks.row], np.ones(len(clicks)), clicks.occurred_at,
                             [f"r{round_}-{i}" for i in clicks.row])
    version = alloc.learn(now=now + window, gate=True, track=True)
    for campaign_id, decision in alloc.gate_decisions:
        gate_rows.append({"round": round_, "candidate": decision.candidate_version, "live": decision.live_version,
                          "candidate DR low": decision.candidate.ci_low, "candidate DR": decision.candidate.value,
                          "live estimate": decision.live.value, "promoted": decision.promote})
    alloc.reload()
    print(f"round {round_}: served by v{chosen.policy_version.iloc[0]}, {len(clicks)} clicks "
          f"({statuses.count('late')} late), snapshot v{version} written, live now v{alloc.policy_version}")

# %% [markdown]
# ## The promotion gate
#
# Each candidate snapshot is evaluated on decisions it was never trained on (those served since its
# training cutoff by the live policy). It goes live only if the lower bound of its doubly-robust
# estimate (Dudik, Langford and Li 2011) beats the live policy's on-policy click rate. Each comparison
# is also an MLflow run in `inbox/bandit-promotion`. The gate is deliberately conservative: with a
# few thousand decisions per round and a click rate of a few percent, a candidate must be clearly
# better before it serves traffic.

# %%
pd.DataFrame(gate_rows)

# %% [markdown]
# ## Off-policy evaluation on the decision log
#
# The decision log holds what an adaptive policy needs for unbiased off-line evaluation: the
# propensity of every logged choice. Evaluate, on the later half of the log, uniform allocation and a
# greedy policy learned from the earlier half, next to the logging policy's own click rate. IPS and
# SNIPS re-weight the logged rewards; DM trusts a reward model; DR combines both.

# %%
from experiments.bandit.evaluate import LogColumns, evaluate_log, to_logged_bandit

log = alloc.log.decisions("spring-launch")
reward = alloc.log.rewards().query("late == 0").groupby("decision_id").reward.max()
table = pd.DataFrame(np.vstack(log.context), columns=context.columns, index=log.index).assign(
    variant=log.variant, propensity=log.propensity, decided_at=log.decided_at,
    reward=log.decision_id.map(reward).fillna(0.0))
data, actions = to_logged_bandit(table, LogColumns("variant", "reward", "propensity", tuple(context.columns),
                                                   timestamp="decided_at"))
print(f"{len(data):,} logged decisions over {len(actions)} variants")
evaluate_log(data, train_share=0.5)

# %%
alloc.close()
