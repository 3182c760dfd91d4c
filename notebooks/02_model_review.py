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
# # Model review: champion vs challenger
#
# Every training run registers a new version of its model as `challenger`; `champion` moves only
# when the challenger wins on the same test period. This notebook reviews, for each model in the
# MLflow registry, the champion against its rival (the challenger, or the champion it replaced when
# the challenger won): the promotion decisions, the primary metric of both versions re-measured on
# the same rows, calibration and lift of the lead scorer, the reasons behind individual lead scores,
# send-time heatmaps and content rankings.
#
# The first cell holds the parameters (papermill can override them: `papermill -p N_CONTACTS 500 ...`).
# The second, `inbox.notebook.setup()`, points the project's settings at a temporary workspace: event
# log, features, Feast registry, bandit state and the MLflow store all land there. Set
# `INBOX_DATA_DIR`, `INBOX_ARTIFACT_ROOT` and `MLFLOW_TRACKING_URI` before starting Jupyter to work
# against a real installation instead (the same store the CLI and the service use).

# %% tags=["parameters"]
N_CONTACTS = 1_200  # contacts in the simulated world (only used when the registry is empty)
N_DAYS = 60
SEED = 7
FAST = True  # small training and review configs (False: the full test set)

# %%
import pandas as pd
from IPython.display import display

from inbox.notebook import setup, show

settings = setup()

# %% [markdown]
# ## The registry
#
# Pointed at an installation that has trained models, this reviews them as they are. In a fresh
# workspace the next cell builds a small registry first: a simulated world, its features, the three
# models (version 1, champions) and a retrained challenger of each (version 2, another seed), whose
# promotion is decided on merit. (Without `feast apply` the training frames use the same
# point-in-time join directly on the feature tables.)

# %%
import mlflow

from models.loading import MODEL_NAMES

mlflow.set_tracking_uri(settings.tracking_uri)
client = mlflow.MlflowClient()
if not client.search_registered_models():
    from features.workflow import build
    from models.training import train_all
    from simulation.cli import simulate_to_disk
    from simulation.world import WorldConfig

    simulate_to_disk(WorldConfig(n_contacts=N_CONTACTS, n_days=N_DAYS, seed=SEED), settings=settings, progress=False)
    build(settings, progress=False)
    train_all(settings=settings, progress=False, fast=FAST, seed=SEED)  # version 1: the champions
    train_all(settings=settings, progress=False, fast=FAST, seed=SEED + 1)  # version 2: challengers

def versions_to_review(name):
    # the champion and its rival: the challenger or, when the challenger won, the champion it replaced
    champion = client.get_model_version_by_alias(name, "champion")
    challenger = client.get_model_version_by_alias(name, "challenger")
    if challenger.version != champion.version:
        return {"champion": champion, "challenger": challenger}
    before = client.get_run(champion.run_id).data.tags.get("promotion.champion_before", "none")
    return {"champion": champion, **({} if before == "none" else {"previous": client.get_model_version(name, before)})}


registry = [{"model": name, "role": role, "version": v.version, "run_id": v.run_id,
             "promotion": v.tags.get("promotion"), "reason": v.tags.get("promotion_reason")}
            for name in MODEL_NAMES for role, v in versions_to_review(name).items()]
with pd.option_context("display.max_colwidth", 120):
    display(pd.DataFrame(registry))

# %% [markdown]
# ## Both versions on the same test rows
#
# Each model's spec rebuilds its point-in-time test set and scores any registered version with the
# promotion metric (AUC for lead scoring, the share of the oracle's send-time uplift over a random
# hour, NDCG@3 of content ranking against the simulator's true click probabilities).
# The parameter `FAST` selects the small training configs; set it to False to review on the full test set.

# %%
from models.harness import TrainingContext
from models.loading import load_version
from models.training import make_spec

context = TrainingContext(settings, fast=FAST)
review, scores = {}, []
for name in MODEL_NAMES:
    spec = make_spec(name, fast=FAST)
    prepared = spec.prepare(context)
    versions = {role: load_version(name, v.version, settings.tracking_uri)
                for role, v in versions_to_review(name).items()}
    review[name] = (spec, prepared, versions)
    for role, model in versions.items():
        scores.append({"model": name, "metric": spec.primary_metric, "role": role, "version": model.version,
                       "value": spec.score_predictor(model, prepared, context)})
pd.DataFrame(scores).set_index(["model", "metric", "role"])

# %% [markdown]
# ## Lead scoring: calibration and lift
#
# First: predicted probability against the observed conversion rate per decile (on the diagonal =
# calibrated: a predicted 3% means 3 of 100 such contacts convert). Then: the share of all conversions
# found in the top x% of contacts ranked by score, and the lift over random targeting. The oracle is
# the simulator's true probability, the best any model could do.

# %%
from models import plots

spec, prepared, versions = review["lead_scoring"]
test = prepared.test
y = test[prepared.label].to_numpy()
curves = {f"{role} v{model.version}": model.probability(test) for role, model in versions.items()}
curves["oracle"] = spec.oracle(prepared, context)  # the simulator's true conversion probability
show(plots.calibration(y, curves))
show(plots.gain_and_lift(y, curves))

# %% [markdown]
# ## Why a contact scores high or low
#
# The champion scores every contact's newest features; each score comes with the features that
# pushed it up or down most (per-row SHAP contributions of the gradient-boosted model, phrased for a
# sales team). The three highest and the two lowest scores:

# %%
from models.datasets import latest_content_features, latest_contact_features

lead = versions["champion"]
scored = lead.score(latest_contact_features(lead.services, settings)).sort_values("score", ascending=False)
with pd.option_context("display.max_colwidth", None):
    display(pd.concat([scored.head(3), scored.tail(2)])[["contact_id", "score", "tier", "reasons_positive",
                                                        "reasons_negative"]])
scored.groupby("tier").agg(contacts=("contact_id", "size"), mean_probability=("probability", "mean"))

# %% [markdown]
# ## Send time: predicted open probability by local hour of the week
#
# Each panel is a 7 x 24 grid of P(open within 24 h) by the local day and hour of the send. The
# first two average over all contacts (champion and challenger); the others are single contacts:
# contacts with enough history get their own grid, the others fall back to their segment's or the
# population's grid (`level`).

# %%
import numpy as np

_, _, planners = review["send_time"]
send_features = latest_contact_features(planners["champion"].services, settings)
grids = {role: planner.grid(send_features) for role, planner in planners.items()}
grid, level = grids["champion"]
examples = [int(np.flatnonzero(level == lv)[0]) for lv in ("contact", "segment", "population") if (level == lv).any()][:2]
heatmaps = {f"{role} v{planners[role].version}: mean over {len(send_features):,} contacts": np.nanmean(g, axis=0)
            for role, (g, _) in grids.items()}
heatmaps.update({f"contact {send_features.contact_id.iloc[i]} ({level[i]} level)": grid[i] for i in examples})
show(plots.hour_of_week_heatmap(heatmaps))

# %% [markdown]
# The best slot per contact in the next 24 hours after the data ends, never in local quiet hours
# (21:00-07:00):

# %%
window_start = send_features.event_timestamp.max() + pd.Timedelta(hours=9)
sample = send_features.head(6)
planners["champion"].best_slots(sample, sample.timezone, window_start, window_start + pd.Timedelta(hours=24))

# %% [markdown]
# ## Content rankings
#
# The top three content items for a few contacts from the champion and the challenger (a two-tower
# network: contacts and content are embedded separately, so new content is ranked from its
# features alone).

# %%
from simulation.eventlog import read_table

_, _, rankers = review["content_preference"]
contacts = latest_contact_features(rankers["champion"].services, settings).head(3)
catalog = latest_content_features(settings)
names = read_table("content", settings.events_dir / "content.parquet")[["content_id", "name", "topic", "format"]]
rankings = pd.concat([ranker.rank(contacts, catalog, k=3).assign(model=f"{role} v{ranker.version}")
                      for role, ranker in rankers.items()])
rankings.merge(names, on="content_id").sort_values(["contact_id", "model", "rank"]).set_index(
    ["contact_id", "model", "rank"])
