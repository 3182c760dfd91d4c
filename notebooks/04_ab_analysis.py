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
# # A/B/n test analysis and design
#
# Analyse one campaign of a simulated event log the way an analyst would: per-recipient outcomes
# from the event log, frequentist and Bayesian lifts against the control, a sample-ratio-mismatch
# (SRM) check, CUPED variance reduction, always-valid (sequential) results for a test that is watched
# while it runs; then plan the next test and design a fractional factorial. Every number comes from
# `experiments.abtest` (the same code behind `inbox ab ...`).
#
# The first cell holds the parameters (papermill can override them: `papermill -p N_CONTACTS 500 ...`).
# The second, `inbox.notebook.setup()`, points the project's settings at a temporary workspace: event
# log, features, Feast registry, bandit state and the MLflow store all land there. Set
# `INBOX_DATA_DIR`, `INBOX_ARTIFACT_ROOT` and `MLFLOW_TRACKING_URI` before starting Jupyter to work
# against a real installation instead (the same store the CLI and the service use).

# %% tags=["parameters"]
N_CONTACTS = 4_000  # contacts in the simulated world
N_DAYS = 45  # days of campaigns
SEED = 7
LOOKS = 15  # looks in the sequential replay

# %%
import pandas as pd
from IPython.display import display

from inbox.notebook import setup, show

settings = setup()

# %% [markdown]
# ## A simulated event log
#
# A small world (a few thousand contacts, six weeks of campaigns). Many campaigns send two to four
# content variants at random: those are A/B/n tests. Campaigns chosen by an adaptive allocator
# (`allocated`) are left out: a plain comparison of their variants is biased (see the bandit notebook
# for off-policy evaluation).

# %%
from simulation.cli import simulate_to_disk
from simulation.world import WorldConfig
from experiments.abtest.outcomes import campaign_summary

simulate_to_disk(WorldConfig(n_contacts=N_CONTACTS, n_days=N_DAYS, seed=SEED), settings=settings, progress=False)
campaigns = campaign_summary(settings.events_dir)
candidates = campaigns[(campaigns.variants >= 3) & ~campaigns.allocated]
campaign = candidates.sort_values("sends").campaign_id.iloc[-1]
print(f"{len(campaigns)} campaigns, {len(candidates)} uniform A/B/n tests; analysing {campaign}")
candidates.sort_values("sends", ascending=False).head()

# %% [markdown]
# One row per recipient: the variant (content id), 0/1 outcomes within 72 hours of the send, click
# and open counts, revenue, and the recipient's opens in the 28 days before the campaign
# (`pre_opens`, the CUPED covariate).

# %%
from experiments.abtest import campaign_outcomes
from experiments.abtest.campaign_analysis import content_labels

outcomes = campaign_outcomes(settings.events_dir, campaign, window_hours=72, pre_days=28)
control = sorted(outcomes.variant.unique())[0]
labels = content_labels(settings.events_dir)  # content id -> name, for plots and the MLflow table
print("variants:", ", ".join(f"{v} = {labels.get(str(v), '?')}" for v in sorted(outcomes.variant.unique())))
outcomes.groupby("variant")[["open", "click", "conversion", "unsubscribe", "revenue", "pre_opens"]].mean()

# %% [markdown]
# ## Frequentist and Bayesian results
#
# Decision metrics: open rate, click rate, click-to-open (a ratio metric, delta method) and revenue
# per recipient; unsubscribes are a one-sided guardrail. p-values are Holm-adjusted across the
# decision metrics; `chance_to_beat` and `expected_loss` are the Bayesian view of the same lift.

# %%
from experiments.abtest import AnalysisSettings, analyze

metrics = ["open:binary", "click:binary", "cto:ratio(clicks,opens)", "revenue:continuous"]
result = analyze(outcomes, "variant", control, metrics, AnalysisSettings(sequential=True),
                 guardrails=["unsubscribe:binary"], covariate="pre_opens")
columns = ["metric", "variant", "mean", "control_mean", "rel_lift", "rel_ci_low", "rel_ci_high",
           "p_value", "p_adjusted", "significant", "chance_to_beat", "expected_loss", "cuped"]
print("\n".join(result.warnings) or "no warnings")
result.to_frame()[columns]

# %% [markdown]
# Each bar is the relative lift with its unadjusted 95% interval, coloured when that interval
# excludes zero; the unadjusted p sits beside it, then the Holm-adjusted p (a tick when significant
# after adjustment). The grey line is the always-valid confidence sequence. Below: posterior
# densities of each variant's rate (Beta) or mean, and the chance that each variant is the best one.

# %%
from experiments.abtest import plot_lifts, plot_posteriors

show(plot_lifts(result, labels=labels))

# %%
show(plot_posteriors(result, labels=labels))
result.summary_frame()[["metric", "variant", "n", "mean", "ci_low", "ci_high", "chance_to_be_best"]]

# %% [markdown]
# ## Sample-ratio mismatch
#
# The chi-square test compares the recipients per variant with the planned (equal) split. A healthy
# test passes. To see what a broken one looks like, drop a fifth of one variant's non-openers (as a
# tracking bug that loses some sends would): the SRM check flags it and the analysis warns not to
# trust the lifts.

# %%
print("as sent:", result.srm)
treatment = sorted(outcomes.variant.unique())[1]
lost = outcomes[(outcomes.variant == treatment) & (outcomes.open == 0)].sample(frac=0.2, random_state=0).index
broken = analyze(outcomes.drop(index=lost), "variant", control, ["open:binary"])
print("with lost sends:", broken.srm)
print("\n".join(broken.warnings))

# %% [markdown]
# ## CUPED
#
# Recipients who opened a lot before the test keep doing so; subtracting that predictable part
# (Deng et al. 2013) narrows the interval of the lift without moving its expectation.
# `variance_reduction` is the share of the lift's variance removed.

# %%
plain = analyze(outcomes, "variant", control, ["open:binary"]).to_frame()
cuped = analyze(outcomes, "variant", control, ["open:binary"], covariate="pre_opens").to_frame()
pd.DataFrame({
    "variant": plain.variant,
    "lift": plain.abs_lift, "ci width": plain.abs_ci_high - plain.abs_ci_low,
    "lift (CUPED)": cuped.abs_lift, "ci width (CUPED)": cuped.abs_ci_high - cuped.abs_ci_low,
    "variance_reduction": cuped.variance_reduction,
})

# %% [markdown]
# ## Watching a running test
#
# Replaying the campaign look by look (in send order): the fixed-horizon p-value is only valid at
# the planned end, so peeking at it inflates false positives. The mSPRT always-valid p-value and the
# confidence sequence (Johari et al. 2017) may be checked at every look.

# %%
from experiments.abtest import plot_sequential, sequential_history

history = sequential_history(outcomes, "variant", control, "open:binary", "send_id", looks=LOOKS)
show(plot_sequential(history))

# %% [markdown]
# ## Record the analysis in MLflow
#
# The run holds the settings, a few headline metrics per decision metric, the full result table
# (`tables/ab_results.json`), the plots and the verdict as its description (experiment
# `inbox/ab-tests`; open it with `mlflow ui --backend-store-uri <tracking uri>`).

# %%
from experiments.abtest import log_analysis

run_id = log_analysis(result, run_name=campaign, histories=[history], labels=labels)
print("MLflow run", run_id)

# %% [markdown]
# ## Plan the next test
#
# Sample size per variant to detect a 10% relative lift of the click rate we just measured, with
# three variants (Dunnett's many-to-one correction); the smallest lift this campaign's size could
# detect; and Test & Roll (Feit and Berman 2019): the profit-maximizing test size when the winner is
# then sent to the rest of the list.

# %%
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
pd.Series(roll.to_dict())

# %% [markdown]
# ## A fractional factorial design
#
# Four two-level factors in 8 runs instead of 16: a 2^(4-1) design with generator D = ABC, resolution
# IV (main effects are clear of two-factor interactions; two-factor interactions are aliased in
# pairs). Recipients are assigned to runs in equal numbers; after the send,
# `experiments.abtest.estimate_effects` fits the main effects and interactions.

# %%
from experiments.abtest import factorial_design

design = factorial_design(["subject=Save 20%|Last chance", "sender=Team,CEO", "length=short,long",
                           "send_hour=9,17"], fraction=1)
print(f"{design.n_runs} runs, generators {design.generators}, defining relation I = "
      f"{' = '.join(design.defining_relation)}, resolution {design.resolution}")
display(design.runs)
design.alias_table()

# %%
assignment = design.assign(outcomes.contact_id.unique(), seed=1)
assignment.groupby(["subject", "sender", "length", "send_hour"]).size().rename("recipients")
