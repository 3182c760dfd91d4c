"""Write the notebooks in this directory from the cell sources below (outputs stripped).

    .venv/bin/python notebooks/build_notebooks.py          # rewrite every *.ipynb
    .venv/bin/python notebooks/build_notebooks.py --check  # exit 1 if a notebook differs

Edit the cells here, not in Jupyter, so the committed notebooks stay output-free and
reviewable; `tests/notebooks/test_notebooks.py` checks both and runs every notebook.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

# Shared first cells: a throw-away workspace unless the reader already configured one.
WORKSPACE = '''\
%matplotlib inline
import os
import tempfile
from pathlib import Path

# Everything this notebook writes goes to a temporary workspace, unless you set these yourself.
workspace = None
for variable, folder in (("INBOX_DATA_DIR", "data"), ("INBOX_ARTIFACT_ROOT", "mlruns")):
    if variable not in os.environ:
        workspace = workspace or Path(tempfile.mkdtemp(prefix="inbox-notebook-"))
        os.environ[variable] = str(workspace / folder)
artifact_root = Path(os.environ["INBOX_ARTIFACT_ROOT"]).resolve()
artifact_root.mkdir(parents=True, exist_ok=True)
os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{artifact_root / 'mlflow.db'}")
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

import warnings

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display

from inbox.settings import load_settings


def show(fig):
    """Draw a figure returned by the project's plot functions (they render off-screen) inline."""
    display(fig)
    plt.close(fig)


warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", message="IProgress not found")
pd.set_option("display.width", 160, "display.max_columns", 30, "display.precision", 4)
settings = load_settings()
print(f"data: {settings.data_dir}\\ntracking: {settings.tracking_uri}")'''

WORKSPACE_MD = """\
The first cell points the project's settings (`inbox.settings.load_settings`) at a temporary
workspace: event log, features, Feast registry, bandit state and the MLflow store all land there.
Set `INBOX_DATA_DIR`, `INBOX_ARTIFACT_ROOT` and `MLFLOW_TRACKING_URI` before starting Jupyter to
work against a real installation instead (the same store the CLI and the service use)."""


def md(text: str):
    return new_markdown_cell(text.strip("\n"))


def code(text: str):
    return new_code_cell(text.strip("\n"))


def ab_analysis() -> list:
    return [
        md("""
# A/B/n test analysis and design

Analyse one campaign of a simulated event log the way an analyst would: per-recipient outcomes
from the event log, frequentist and Bayesian lifts against the control, a sample-ratio-mismatch
(SRM) check, CUPED variance reduction, always-valid (sequential) results for a test that is watched
while it runs; then plan the next test and design a fractional factorial. Every number comes from
`experiments.abtest` (the same code behind `inbox ab ...`).

""" + WORKSPACE_MD),
        code(WORKSPACE),
        md("""
## A simulated event log

A small world (a few thousand contacts, six weeks of campaigns). Many campaigns send two to four
content variants at random: those are A/B/n tests. Campaigns chosen by an adaptive allocator
(`allocated`) are left out: a plain comparison of their variants is biased (see the bandit notebook
for off-policy evaluation)."""),
        code("""
from simulation.cli import simulate_to_disk
from simulation.world import WorldConfig
from experiments.abtest.outcomes import campaign_summary

simulate_to_disk(WorldConfig(n_contacts=4_000, n_days=45, seed=7), settings=settings, progress=False)
campaigns = campaign_summary(settings.events_dir)
candidates = campaigns[(campaigns.variants >= 3) & ~campaigns.allocated]
campaign = candidates.sort_values("sends").campaign_id.iloc[-1]
print(f"{len(campaigns)} campaigns, {len(candidates)} uniform A/B/n tests; analysing {campaign}")
candidates.sort_values("sends", ascending=False).head()"""),
        md("""
One row per recipient: the variant (content id), 0/1 outcomes within 72 hours of the send, click
and open counts, revenue, and the recipient's opens in the 28 days before the campaign
(`pre_opens`, the CUPED covariate)."""),
        code("""
from experiments.abtest import campaign_outcomes

outcomes = campaign_outcomes(settings.events_dir, campaign, window_hours=72, pre_days=28)
control = sorted(outcomes.variant.unique())[0]
outcomes.groupby("variant")[["open", "click", "conversion", "unsubscribe", "revenue", "pre_opens"]].mean()"""),
        md("""
## Frequentist and Bayesian results

Decision metrics: open rate, click rate, click-to-open (a ratio metric, delta method) and revenue
per recipient; unsubscribes are a one-sided guardrail. p-values are Holm-adjusted across the
decision metrics; `chance_to_beat` and `expected_loss` are the Bayesian view of the same lift."""),
        code("""
from experiments.abtest import AnalysisSettings, analyze

metrics = ["open:binary", "click:binary", "cto:ratio(clicks,opens)", "revenue:continuous"]
result = analyze(outcomes, "variant", control, metrics, AnalysisSettings(sequential=True),
                 guardrails=["unsubscribe:binary"], covariate="pre_opens")
columns = ["metric", "variant", "mean", "control_mean", "rel_lift", "rel_ci_low", "rel_ci_high",
           "p_value", "p_adjusted", "significant", "chance_to_beat", "expected_loss", "cuped"]
print("\\n".join(result.warnings) or "no warnings")
result.to_frame()[columns]"""),
        md("""
Each bar is the relative lift with its 95% interval (green: significant after adjustment; the grey
line is the always-valid confidence sequence). Below: posterior densities of each variant's mean,
and the chance that each variant is the best one."""),
        code("""
from experiments.abtest import plot_lifts, plot_posteriors

show(plot_lifts(result))"""),
        code("""
show(plot_posteriors(result))
result.summary_frame()[["metric", "variant", "n", "mean", "ci_low", "ci_high", "chance_to_be_best"]]"""),
        md("""
## Sample-ratio mismatch

The chi-square test compares the recipients per variant with the planned (equal) split. A healthy
test passes. To see what a broken one looks like, drop a fifth of one variant's non-openers (as a
tracking bug that loses some sends would): the SRM check flags it and the analysis warns not to
trust the lifts."""),
        code("""
print("as sent:", result.srm)
treatment = sorted(outcomes.variant.unique())[1]
lost = outcomes[(outcomes.variant == treatment) & (outcomes.open == 0)].sample(frac=0.2, random_state=0).index
broken = analyze(outcomes.drop(index=lost), "variant", control, ["open:binary"])
print("with lost sends:", broken.srm)
print("\\n".join(broken.warnings))"""),
        md("""
## CUPED

Recipients who opened a lot before the test keep doing so; subtracting that predictable part
(Deng et al. 2013) narrows the interval of the lift without moving its expectation.
`variance_reduction` is the share of the lift's variance removed."""),
        code("""
plain = analyze(outcomes, "variant", control, ["open:binary"]).to_frame()
cuped = analyze(outcomes, "variant", control, ["open:binary"], covariate="pre_opens").to_frame()
pd.DataFrame({
    "variant": plain.variant,
    "lift": plain.abs_lift, "ci width": plain.abs_ci_high - plain.abs_ci_low,
    "lift (CUPED)": cuped.abs_lift, "ci width (CUPED)": cuped.abs_ci_high - cuped.abs_ci_low,
    "variance_reduction": cuped.variance_reduction,
})"""),
        md("""
## Watching a running test

Replaying the campaign look by look (in send order): the fixed-horizon p-value is only valid at
the planned end, so peeking at it inflates false positives. The mSPRT always-valid p-value and the
confidence sequence (Johari et al. 2017) may be checked at every look."""),
        code("""
from experiments.abtest import plot_sequential, sequential_history

history = sequential_history(outcomes, "variant", control, "open:binary", "send_id", looks=15)
show(plot_sequential(history))"""),
        md("""
## Record the analysis in MLflow

The run holds the settings, every lift as a metric, the JSON result and the plots (experiment
`ab-tests`; open it with `mlflow ui --backend-store-uri <tracking uri>`)."""),
        code("""
from experiments.abtest import log_analysis

run_id = log_analysis(result, run_name=campaign, histories=[history])
print("MLflow run", run_id)"""),
        md("""
## Plan the next test

Sample size per variant to detect a 10% relative lift of the click rate we just measured, with
three variants (Dunnett's many-to-one correction); the smallest lift this campaign's size could
detect; and Test & Roll (Feit and Berman 2019): the profit-maximizing test size when the winner is
then sent to the rest of the list."""),
        code("""
from experiments.abtest.sizing import minimum_detectable_effect, sample_size
from experiments.abtest.test_roll import test_and_roll

click_rate = outcomes.loc[outcomes.variant == control, "click"].mean()
n_per_variant = int(outcomes.variant.value_counts().min())
plans = {
    "sample size (10% lift)": sample_size("binary", 0.10, baseline=click_rate, relative=True, variants=3,
                                          correction="dunnett"),
    "MDE at this campaign's size": minimum_detectable_effect("binary", n_per_variant, baseline=click_rate,
                                                             variants=3, correction="dunnett"),
}
plan_table = pd.DataFrame({name: plan.to_dict() for name, plan in plans.items()})
roll = test_and_roll(population=50_000, prior_mean=click_rate, prior_sd=click_rate / 4)
display(plan_table.loc[["baseline", "mde_abs", "mde_rel", "critical_value", "n_per_variant", "total"]])
pd.Series(roll.to_dict())"""),
        md("""
## A fractional factorial design

Four two-level factors in 8 runs instead of 16: a 2^(4-1) design with generator D = ABC, resolution
IV (main effects are clear of two-factor interactions; two-factor interactions are aliased in
pairs). Recipients are assigned to runs in equal numbers; after the send,
`experiments.abtest.estimate_effects` fits the main effects and interactions."""),
        code("""
from experiments.abtest import factorial_design

design = factorial_design(["subject=Save 20%|Last chance", "sender=Team,CEO", "length=short,long",
                           "send_hour=9,17"], fraction=1)
print(f"{design.n_runs} runs, generators {design.generators}, defining relation I = "
      f"{' = '.join(design.defining_relation)}, resolution {design.resolution}")
display(design.runs)
design.alias_table()"""),
        code("""
assignment = design.assign(outcomes.contact_id.unique(), seed=1)
assignment.groupby(["subject", "sender", "length", "send_hour"]).size().rename("recipients")"""),
    ]


def bandit() -> list:
    return [
        md("""
# Contextual bandits: simulation, decision log, off-policy evaluation, promotion gate

A bandit chooses which content variant each contact gets and learns from the clicks as they
arrive. This notebook (1) races our policies (linear Thompson sampling, LinUCB, epsilon-greedy)
against uniform allocation and Vowpal Wabbit on one simulated campaign with delayed rewards,
(2) runs the production `Allocator` (the object the service calls) against the simulated world,
(3) evaluates policies off-line from its decision log (IPS, SNIPS, DM, DR) and (4) shows the
promotion gate that keeps a new policy version out of traffic until it is demonstrably better.

""" + WORKSPACE_MD),
        code(WORKSPACE),
        md("""
## A campaign simulated with every policy

A small world (its contacts' public attributes are the context) and a campaign of five variants
with distinct topics. Every policy sees the same contacts, the same click noise and the same
delays: a click counts as a reward only if it arrives within the 12-hour wait window. Regret is
measured against the simulator's oracle: the best variant for each contact."""),
        code("""
from simulation.world import WorldConfig, generate_world
from experiments.bandit.simulate import SimulationConfig, run_simulation

world = generate_world(WorldConfig(n_contacts=10_000, seed=3))
config = SimulationConfig(decisions=4_000, n_contacts=10_000, n_variants=5, days=5, wait_window_hours=12, seed=3)
simulation = run_simulation(config, world=world)
print(f"oracle: {simulation.oracle_reward:.1f} expected clicks in {config.decisions:,} decisions")
simulation.table()"""),
        md("""
Left: cumulative regret (expected clicks lost against the oracle); flatter is better. Right:
cumulative clicks. Vowpal Wabbit's contextual-bandit reductions (dashed) are the external
reference; uniform allocation is what a plain A/B/n test does for its whole duration."""),
        code("""
from experiments.bandit.plots import simulation_figure
from experiments.bandit.tracking import log_simulation

show(simulation_figure(simulation))
print("MLflow run", log_simulation(simulation, settings), "(experiment inbox/bandit-simulation)")"""),
        md("""
## The production allocator against the simulated world

`Allocator` keeps every decision (contact, context, eligible variants, probabilities, chosen
variant, propensity, policy version) in a SQLite decision log before returning it, takes rewards
keyed by decision id, and learns versioned snapshots. Here a campaign with the same five variants
runs in rounds: choose for a batch of contacts, let the simulated recipients respond
(`ResponseModel.sample`: opens and clicks with realistic delays), send the clicks back as rewards,
and learn once the wait window has closed. With `gate=True` a new snapshot is only a candidate."""),
        code("""
import numpy as np

from experiments.bandit import Allocator
from experiments.bandit.simulate import CONTEXT_ATTRIBUTES, VARIANT_FEATURES

variants = world.content.set_index("content_id").loc[simulation.variant_ids, list(VARIANT_FEATURES)].reset_index()
context = pd.get_dummies(world.contacts[list(CONTEXT_ATTRIBUTES)].astype(str), prefix_sep="=", dtype=float)
alloc = Allocator.open(settings.bandit_dir)
alloc.register_campaign("spring-launch", variants, list(context.columns), reward_event="click",
                        wait_window="12h", policy="lin_ts", floor=0.02)
variants"""),
        code("""
rng = np.random.default_rng(0)
start, window = pd.Timestamp("2026-05-04 08:00", tz="UTC"), pd.Timedelta("12h")
gate_rows = []
for round_ in range(4):
    now = start + round_ * (window + pd.Timedelta("1h"))
    rows = rng.choice(len(world.contacts), 8_000, replace=False)
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
          f"({statuses.count('late')} late), snapshot v{version} written, live now v{alloc.policy_version}")"""),
        md("""
## The promotion gate

Each candidate snapshot is evaluated on decisions it was never trained on (those served since its
training cutoff by the live policy). It goes live only if the lower bound of its doubly-robust
estimate (Dudik, Langford and Li 2011) beats the live policy's on-policy click rate. Each comparison
is also an MLflow run in `inbox/bandit-promotion`. The gate is deliberately conservative: with a
few thousand decisions per round and a click rate of a few percent, a candidate must be clearly
better before it serves traffic."""),
        code("""
pd.DataFrame(gate_rows)"""),
        md("""
## Off-policy evaluation on the decision log

The decision log holds what an adaptive policy needs for unbiased off-line evaluation: the
propensity of every logged choice. Evaluate, on the later half of the log, uniform allocation and a
greedy policy learned from the earlier half, next to the logging policy's own click rate. IPS and
SNIPS re-weight the logged rewards; DM trusts a reward model; DR combines both."""),
        code("""
from experiments.bandit.evaluate import LogColumns, evaluate_log, to_logged_bandit

log = alloc.log.decisions("spring-launch")
reward = alloc.log.rewards().query("late == 0").groupby("decision_id").reward.max()
table = pd.DataFrame(np.vstack(log.context), columns=context.columns, index=log.index).assign(
    variant=log.variant, propensity=log.propensity, decided_at=log.decided_at,
    reward=log.decision_id.map(reward).fillna(0.0))
data, actions = to_logged_bandit(table, LogColumns("variant", "reward", "propensity", tuple(context.columns),
                                                   timestamp="decided_at"))
print(f"{len(data):,} logged decisions over {len(actions)} variants")
evaluate_log(data, train_share=0.5)"""),
        code("""
alloc.close()"""),
    ]


def quickstart() -> list:
    return [
        md("""
# Quickstart: from an event log to three trained models

The whole offline loop on a small simulated world, with the same code the CLI and the service use:
simulate contacts and campaigns, build the feature tables and register them with Feast, pull a
point-in-time training frame, train the three models (lead scoring, send time, content preference)
into MLflow, compare each with its baseline and with the simulator's oracle, and read the online
features the service would read at request time.

""" + WORKSPACE_MD),
        code(WORKSPACE),
        md("""
## 1. Simulate a world and its event log

`simulate_to_disk` (= `inbox simulate`) draws contacts, content and 60 days of campaigns and writes
the four event-log tables (contacts, content, sends, events) plus the hidden ground truth, which
only the oracle columns below ever read."""),
        code("""
from simulation.cli import simulate_to_disk
from simulation.eventlog import read_event_log
from simulation.world import WorldConfig

summary = simulate_to_disk(WorldConfig(n_contacts=2_000, n_days=60, seed=7), settings=settings, progress=False)
events = read_event_log(settings.events_dir)
display(pd.Series({k: v for k, v in summary.items() if not isinstance(v, dict)}, name="event log"))
events["events"].head()"""),
        md("""
## 2. Features: build, `feast apply`, materialize

Daily point-in-time snapshots per contact (engagement, send-time profile, topic affinities,
profile and email quality) and content features, registered as Feast feature views and services
(`lead_scoring`, `send_time`, `content_preference`); the newest snapshot is loaded into the online
store (= `inbox features all`)."""),
        code("""
from features.workflow import build_apply_materialize

steps = build_apply_materialize(settings=settings, progress=False)
pd.concat({step: pd.Series(items, dtype=object) for step, items in steps.items()}).to_frame("value")"""),
        md("""
## 3. A point-in-time training frame

Ask Feast for the `lead_scoring` features of three contacts at three dates. Each row gets the
snapshot that was current at its timestamp, never a later one: the 30-day engagement counts grow
with the date instead of leaking the future into the past."""),
        code("""
from features.store import get_store
from features.training import training_frame

store = get_store(settings)
contact_ids = events["contacts"].contact_id.head(3)
dates = pd.to_datetime(["2026-05-20", "2026-06-10", "2026-06-29"], utc=True)
entity_df = pd.DataFrame([(c, d) for c in contact_ids for d in dates], columns=["contact_id", "event_timestamp"])
frame = training_frame(entity_df, "lead_scoring", store=store)
frame[["contact_id", "event_timestamp", "sends_30d", "opens_30d", "clicks_30d", "engagement_score", "industry"]]"""),
        md("""
## 4. Train the three models

`train_all` (= `inbox train all`) trains each model on a time split, logs an MLflow run (params,
input datasets, metrics, plots, the model with its signature), registers a version as `challenger`
and promotes it to `champion` if it beats the current champion on the same test period. `fast=True`
keeps the configs small for this notebook. Each row compares the model with its baseline and with
the oracle (the simulator's true probabilities: the ceiling no model can pass)."""),
        code("""
from models.training import train_all

results = pd.DataFrame(train_all(settings=settings, progress=False, fast=True))
results[["model", "metric", "baseline_name", "baseline", "ours", "oracle", "version", "promoted", "seconds"]]"""),
        md("""
## 5. The MLflow runs

Every run is in the tracking store (`mlflow ui --backend-store-uri <tracking uri>` shows the same).
Below: a few metrics of each run, and the cumulative-gain/lift plot logged by the lead-scoring run
(model vs logistic regression vs oracle)."""),
        code("""
import mlflow
from IPython.display import Image

mlflow.set_tracking_uri(settings.tracking_uri)
runs = mlflow.search_runs(experiment_names=[f"inbox/{m}" for m in results.model])
display(runs[["tags.model", "run_id", "tags.feature_source", "params.rows_train", "params.rows_test",
              "tags.promotion.decision", "metrics.train_seconds"]])
lead_run = results.set_index("model").loc["lead_scoring", "run_id"]
Image(mlflow.artifacts.download_artifacts(run_id=lead_run, artifact_path="plots/gain_lift.png"))"""),
        md("""
## 6. Online features and the champions

The service reads features from the online store with `OnlineReader` (one batched SQL read per
request, same values as Feast's `get_online_features`) and scores with the champions loaded from
the registry (`models:/lead_scoring@champion`)."""),
        code("""
from features.online import OnlineReader
from models.loading import load_champion

reader = OnlineReader(store)
online = reader.read("lead_scoring", contact_ids.to_numpy())
scorer = load_champion("lead_scoring", settings.tracking_uri)
display(online[["contact_id", "sends_30d", "opens_30d", "engagement_score", "industry", "seniority"]])
scorer.score(online)[["contact_id", "score", "tier", "reasons_positive", "reasons_negative"]]"""),
    ]


def model_review() -> list:
    return [
        md("""
# Model review: champion vs challenger

Every training run registers a new version of its model as `challenger`; `champion` moves only
when the challenger wins on the same test period. This notebook reviews, for each model in the
MLflow registry, the champion against its rival (the challenger, or the champion it replaced when
the challenger won): the promotion decisions, the primary metric of both versions re-measured on
the same rows, calibration and lift of the lead scorer, the reasons behind individual lead scores,
send-time heatmaps and content rankings.

""" + WORKSPACE_MD),
        code(WORKSPACE),
        md("""
## The registry

Pointed at an installation that has trained models, this reviews them as they are. In a fresh
workspace the next cell builds a small registry first: a simulated world, its features, the three
models (version 1, champions) and a retrained challenger of each (version 2, another seed), whose
promotion is decided on merit. (Without `feast apply` the training frames use the same
point-in-time join directly on the feature tables.)"""),
        code("""
import mlflow

from models.loading import MODEL_NAMES

mlflow.set_tracking_uri(settings.tracking_uri)
client = mlflow.MlflowClient()
if not client.search_registered_models():
    from features.workflow import build
    from models.training import train_all
    from simulation.cli import simulate_to_disk
    from simulation.world import WorldConfig

    simulate_to_disk(WorldConfig(n_contacts=1_200, n_days=60, seed=7), settings=settings, progress=False)
    build(settings, progress=False)
    train_all(settings=settings, progress=False, fast=True, seed=7)  # version 1: the champions
    train_all(settings=settings, progress=False, fast=True, seed=8)  # version 2: challengers

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
    display(pd.DataFrame(registry))"""),
        md("""
## Both versions on the same test rows

Each model's spec rebuilds its point-in-time test set and scores any registered version with the
promotion metric (AUC for lead scoring, the share of the oracle's send-time uplift over a random
hour, NDCG@3 of content ranking against the simulator's true click probabilities).
`FAST = True` uses the small training configs; set it to False to review on the full test set."""),
        code("""
from models.harness import TrainingContext
from models.loading import load_version
from models.training import make_spec

FAST = True
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
pd.DataFrame(scores).set_index(["model", "metric", "role"])"""),
        md("""
## Lead scoring: calibration and lift

First: predicted probability against the observed conversion rate per decile (on the diagonal =
calibrated: a predicted 3% means 3 of 100 such contacts convert). Then: the share of all conversions
found in the top x% of contacts ranked by score, and the lift over random targeting. The oracle is
the simulator's true probability, the best any model could do."""),
        code("""
from models import plots

spec, prepared, versions = review["lead_scoring"]
test = prepared.test
y = test[prepared.label].to_numpy()
curves = {f"{role} v{model.version}": model.probability(test) for role, model in versions.items()}
curves["oracle"] = spec.oracle(prepared, context)  # the simulator's true conversion probability
show(plots.calibration(y, curves))
show(plots.gain_and_lift(y, curves))"""),
        md("""
## Why a contact scores high or low

The champion scores every contact's newest features; each score comes with the features that
pushed it up or down most (per-row SHAP contributions of the gradient-boosted model, phrased for a
sales team). The three highest and the two lowest scores:"""),
        code("""
from models.datasets import latest_content_features, latest_contact_features

lead = versions["champion"]
scored = lead.score(latest_contact_features(lead.services, settings)).sort_values("score", ascending=False)
with pd.option_context("display.max_colwidth", None):
    display(pd.concat([scored.head(3), scored.tail(2)])[["contact_id", "score", "tier", "reasons_positive",
                                                        "reasons_negative"]])
scored.groupby("tier").agg(contacts=("contact_id", "size"), mean_probability=("probability", "mean"))"""),
        md("""
## Send time: predicted open probability by local hour of the week

Each panel is a 7 x 24 grid of P(open within 24 h) by the local day and hour of the send. The
first two average over all contacts (champion and challenger); the others are single contacts:
contacts with enough history get their own grid, the others fall back to their segment's or the
population's grid (`level`)."""),
        code("""
import numpy as np

_, _, planners = review["send_time"]
send_features = latest_contact_features(planners["champion"].services, settings)
grids = {role: planner.grid(send_features) for role, planner in planners.items()}
grid, level = grids["champion"]
examples = [int(np.flatnonzero(level == lv)[0]) for lv in ("contact", "segment", "population") if (level == lv).any()][:2]
heatmaps = {f"{role} v{planners[role].version}: mean over {len(send_features):,} contacts": np.nanmean(g, axis=0)
            for role, (g, _) in grids.items()}
heatmaps.update({f"contact {send_features.contact_id.iloc[i]} ({level[i]} level)": grid[i] for i in examples})
show(plots.hour_of_week_heatmap(heatmaps))"""),
        md("""
The best slot per contact in the next 24 hours after the data ends, never in local quiet hours
(21:00-07:00):"""),
        code("""
window_start = send_features.event_timestamp.max() + pd.Timedelta(hours=9)
sample = send_features.head(6)
planners["champion"].best_slots(sample, sample.timezone, window_start, window_start + pd.Timedelta(hours=24))"""),
        md("""
## Content rankings

The top three content items for a few contacts from the champion and the challenger (a two-tower
network: contacts and content are embedded separately, so new content is ranked from its
features alone)."""),
        code("""
from simulation.eventlog import read_table

_, _, rankers = review["content_preference"]
contacts = latest_contact_features(rankers["champion"].services, settings).head(3)
catalog = latest_content_features(settings)
names = read_table("content", settings.events_dir / "content.parquet")[["content_id", "name", "topic", "format"]]
rankings = pd.concat([ranker.rank(contacts, catalog, k=3).assign(model=f"{role} v{ranker.version}")
                      for role, ranker in rankers.items()])
rankings.merge(names, on="content_id").sort_values(["contact_id", "model", "rank"]).set_index(
    ["contact_id", "model", "rank"])"""),
    ]


NOTEBOOKS = {
    "02_model_review.ipynb": model_review,
    "01_quickstart.ipynb": quickstart,
    "03_bandit.ipynb": bandit,
    "04_ab_analysis.ipynb": ab_analysis,
}


def build(name: str):
    nb = new_notebook(cells=NOTEBOOKS[name]())
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for i, cell in enumerate(nb.cells):  # stable ids: regenerating gives identical files
        cell.id = f"{Path(name).stem.split('_')[0]}-{i:02d}"
    nbformat.validate(nb)
    return nb


def _write(text: str, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".ipynb.tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if a notebook is out of date")
    args = parser.parse_args(argv)
    stale = []
    for name in NOTEBOOKS:
        path = HERE / name
        text = nbformat.writes(build(name))
        if path.exists() and path.read_text() == text:
            continue
        stale.append(name)
        if not args.check:
            _write(text, path)
    if args.check and stale:
        print("out of date (run notebooks/build_notebooks.py):", ", ".join(stale), file=sys.stderr)
        return 1
    if not args.check:
        print("wrote", ", ".join(stale) or "nothing (all up to date)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
