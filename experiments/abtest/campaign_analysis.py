"""Analyse one uniform A/B/n campaign of the event log and log it to MLflow (what `inbox demo` runs).

Picks the largest campaign whose variants were assigned at random (an allocator's
campaigns are left out: comparing their variants directly is biased), builds the
per-recipient outcomes, runs the standard analysis (open, click, click-to-open,
revenue; unsubscribes as a guardrail; CUPED on pre-period opens) and logs it with
the variants labelled by their content names.
"""
from __future__ import annotations

from experiments.abtest.analysis import analyze
from experiments.abtest.outcomes import campaign_outcomes, campaign_summary
from experiments.abtest.settings import AnalysisSettings

METRICS = ["open:binary", "click:binary", "cto:ratio(clicks,opens)", "revenue:continuous"]
GUARDRAILS = ["unsubscribe:binary"]


def largest_uniform_test(events_dir) -> str:
    """campaign_id of the uniform (not allocated) campaign with two or more variants and the most sends."""
    campaigns = campaign_summary(events_dir)
    tests = campaigns[(campaigns["variants"] >= 2) & ~campaigns["allocated"].astype(bool)]
    if tests.empty:
        raise ValueError("events: no campaign with two or more randomly assigned variants to analyse")
    return str(tests.sort_values(["sends", "campaign_id"]).iloc[-1]["campaign_id"])


def content_labels(events_dir) -> dict[str, str]:
    """{content id as text: content name} (how variants are labelled in plots and tables)."""
    import pandas as pd

    content = pd.read_parquet(f"{events_dir}/content.parquet", columns=["content_id", "name"])
    return dict(zip(content["content_id"].astype(str), content["name"].astype(str)))


def analyse_and_log(settings, campaign_id: str | None = None) -> dict:
    """Analyse `campaign_id` (default: the largest uniform test) and log the run; a short summary."""
    from experiments.abtest.tracking import log_analysis

    campaign_id = campaign_id or largest_uniform_test(settings.events_dir)
    outcomes = campaign_outcomes(settings.events_dir, campaign_id)
    outcomes["variant"] = outcomes["variant"].astype(str)
    control = sorted(outcomes["variant"].unique(), key=lambda v: (len(v), v))[0]
    result = analyze(outcomes, "variant", control, METRICS, AnalysisSettings(), guardrails=GUARDRAILS,
                     covariate="pre_opens")
    labels = content_labels(settings.events_dir)
    run_id = log_analysis(result, run_name=f"campaign {campaign_id}", labels=labels,
                          params={"campaign_id": campaign_id, "recipients": len(outcomes)})
    significant = [r for r in result.records if r.significant and not r.guardrail]
    return {"campaign": campaign_id, "recipients": len(outcomes), "variants": len(result.variants),
            "significant": [(r.metric, r.variant, r.rel_lift) for r in significant],
            "srm_mismatch": bool(result.srm.mismatch), "run_id": run_id}
