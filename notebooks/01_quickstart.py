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
# # Quickstart: from an event log to three trained models
#
# The whole offline loop on a small simulated world, with the same code the CLI and the service use:
# simulate contacts and campaigns, build the feature tables and register them with Feast, pull a
# point-in-time training frame, train the three models (lead scoring, send time, content preference)
# into MLflow, compare each with its baseline and with the simulator's oracle, and read the online
# features the service would read at request time.
#
# The first cell holds the parameters (papermill can override them: `papermill -p N_CONTACTS 500 ...`).
# The second, `inbox.notebook.setup()`, points the project's settings at a temporary workspace: event
# log, features, Feast registry, bandit state and the MLflow store all land there. Set
# `INBOX_DATA_DIR`, `INBOX_ARTIFACT_ROOT` and `MLFLOW_TRACKING_URI` before starting Jupyter to work
# against a real installation instead (the same store the CLI and the service use).

# %% tags=["parameters"]
N_CONTACTS = 2_000  # contacts in the simulated world
N_DAYS = 60  # days of history
SEED = 7
FAST = True  # small training configs (False: the CLI's full configs)

# %%
import pandas as pd
from IPython.display import display

from inbox.notebook import setup, show

settings = setup()

# %% [markdown]
# ## 1. Simulate a world and its event log
#
# `simulate_to_disk` (= `inbox simulate`) draws contacts, content and 60 days of campaigns and writes
# the four event-log tables (contacts, content, sends, events) plus the hidden ground truth, which
# only the oracle columns below ever read.

# %%
from simulation.cli import simulate_to_disk
from simulation.eventlog import read_event_log
from simulation.world import WorldConfig

summary = simulate_to_disk(WorldConfig(n_contacts=N_CONTACTS, n_days=N_DAYS, seed=SEED), settings=settings, progress=False)
events = read_event_log(settings.events_dir)
display(pd.Series({k: v for k, v in summary.items() if not isinstance(v, dict)}, name="event log", dtype=object))
events["events"].head()

# %% [markdown]
# ## 2. Features: build, `feast apply`, materialize
#
# Daily point-in-time snapshots per contact (engagement, send-time profile, topic affinities,
# profile and email quality) and content features, registered as Feast feature views and services
# (`lead_scoring`, `send_time`, `content_preference`); the newest snapshot is loaded into the online
# store (= `inbox features all`).

# %%
from features.workflow import build_apply_materialize

steps = build_apply_materialize(settings=settings, progress=False)
pd.concat({step: pd.Series(items, dtype=object) for step, items in steps.items()}).to_frame("value")

# %% [markdown]
# ## 3. A point-in-time training frame
#
# Ask Feast for the `lead_scoring` features of three contacts at three dates. Each row gets the
# snapshot that was current at its timestamp, never a later one: the 30-day engagement counts grow
# with the date instead of leaking the future into the past.

# %%
from features.store import get_store
from features.training import training_frame

store = get_store(settings)
contact_ids = events["contacts"].contact_id.head(3)
dates = pd.to_datetime(["2026-05-20", "2026-06-10", "2026-06-29"], utc=True)
entity_df = pd.DataFrame([(c, d) for c in contact_ids for d in dates], columns=["contact_id", "event_timestamp"])
frame = training_frame(entity_df, "lead_scoring", store=store)
frame[["contact_id", "event_timestamp", "sends_30d", "opens_30d", "clicks_30d", "engagement_score", "industry"]]

# %% [markdown]
# ## 4. Train the three models
#
# `train_all` (= `inbox train all`) trains each model on a time split, logs an MLflow run (params,
# input datasets, metrics, plots, the model with its signature), registers a version as `challenger`
# and promotes it to `champion` if it beats the current champion on the same test period. `fast=True`
# keeps the configs small for this notebook. Each row compares the model with its baseline and with
# the oracle (the simulator's true probabilities: the ceiling no model can pass).

# %%
from models.training import train_all

results = pd.DataFrame(train_all(settings=settings, progress=False, fast=FAST))
results[["model", "metric", "baseline_name", "baseline", "ours", "oracle", "version", "promoted", "seconds"]]

# %% [markdown]
# ## 5. The MLflow runs
#
# Every run is in the tracking store (`mlflow ui --backend-store-uri <tracking uri>` shows the same).
# Below: a few metrics of each run, and the cumulative-gain/lift plot logged by the lead-scoring run
# (model vs logistic regression vs oracle).

# %%
import mlflow
from IPython.display import Image

mlflow.set_tracking_uri(settings.tracking_uri)
runs = mlflow.search_runs(experiment_names=[f"inbox/{m}" for m in results.model])
display(runs[["tags.model", "run_id", "tags.feature_source", "params.rows_train", "params.rows_test",
              "tags.promotion.decision", "metrics.train_seconds"]])
lead_run = results.set_index("model").loc["lead_scoring", "run_id"]
Image(mlflow.artifacts.download_artifacts(run_id=lead_run, artifact_path="plots/gain_lift.png"))

# %% [markdown]
# ## 6. Online features and the champions
#
# The service reads features from the online store with `OnlineReader` (one batched SQL read per
# request, same values as Feast's `get_online_features`) and scores with the champions loaded from
# the registry (`models:/lead_scoring@champion`).

# %%
from features.online import OnlineReader
from models.loading import load_champion

reader = OnlineReader(store)
online = reader.read("lead_scoring", contact_ids.to_numpy())
scorer = load_champion("lead_scoring", settings.tracking_uri)
display(online[["contact_id", "sends_30d", "opens_30d", "engagement_score", "industry", "seniority"]])
scorer.score(online)[["contact_id", "score", "tier", "reasons_positive", "reasons_negative"]]
