"""Model registry: register each run as `challenger`, promote to `champion` only on a paired win.

Every training run registers a new version of its model name and points the
`challenger` alias at it. The champion (if any) is scored by the caller on the
*same* test rows as the challenger and the two are compared by a paired test
(`models.paired`: DeLong for AUC, a paired bootstrap for per-unit means);
`champion` moves only if the CI of the difference is above zero, and only if
the challenger is not significantly worse than the best baseline (CI of its
difference to that baseline below zero). The first version of a name becomes
champion under the same baseline condition. The decision, with every paired
test, is logged to the challenger's run (metrics, tags, `promotion.json`) and
as tags on the model version.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from models.paired import PairedTest

CHAMPION, CHALLENGER = "champion", "challenger"


@dataclass(frozen=True)
class PromotionDecision:
    name: str
    metric: str
    challenger_version: str
    challenger_value: float
    champion_version: str | None  # the champion before the decision
    champion_value: float | None
    promoted: bool
    reason: str
    vs_champion: dict | None = None  # PairedTest.as_dict() of challenger - champion
    vs_baseline: dict | None = None  # PairedTest.as_dict() of challenger - best baseline

    def as_dict(self) -> dict:
        return asdict(self)


def champion_version(name: str) -> str | None:
    """Version the `champion` alias points at, or None."""
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient()
    try:
        return str(client.get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException:
        return None


def register(model_uri: str, name: str, run_id: str, tags: dict[str, str] | None = None,
             model_id: str | None = None) -> str:
    """Register `model_uri` as a new version of `name` (`models.tracking.register_version`: with the model's
    description, no registration chatter on stderr), alias it `challenger`; return the version."""
    import mlflow

    from models.tracking import register_version

    client = mlflow.MlflowClient()
    version = register_version(model_uri, name, run_id, tags=tags, model_id=model_id)
    client.set_registered_model_alias(name, CHALLENGER, version)
    client.set_model_version_tag(name, version, "run_id", run_id)
    return str(version)


def _describe(t) -> str:
    return f"{t.metric} diff {t.diff:+.5f}, 95% CI [{t.ci_low:+.5f}, {t.ci_high:+.5f}], p={t.p_superior:.4f} ({t.method})"


def decide(
    name: str,
    metric: str,
    challenger_version: str,
    challenger_value: float,
    compare_version: Callable[[str], "PairedTest"],
    vs_baseline: "PairedTest | None" = None,
    baseline_name: str = "best baseline",
    baseline_servable: bool = False,
) -> PromotionDecision:
    """Compare the challenger with the current champion on the same test rows and move the alias if it wins.

    `compare_version(version)` returns the paired test of challenger minus that registered version on the
    challenger's test rows (higher is better). `vs_baseline` is the challenger's paired test against the best
    baseline: significantly worse (CI below zero) blocks promotion, except for a first version whose baseline
    cannot be served (`baseline_servable` False): something must serve, and the reason says what it lost to.
    """
    import mlflow

    client = mlflow.MlflowClient()
    current = champion_version(name)
    champion_value: float | None = None
    test = None
    worse = vs_baseline is not None and vs_baseline.significantly_worse
    if worse and current is None and not baseline_servable:
        promoted = True
        reason = (f"first version becomes champion although significantly worse than the baseline {baseline_name} "
                  f"({_describe(vs_baseline)}), which this model's serving path cannot serve")
    elif worse:
        promoted = False
        reason = (f"challenger v{challenger_version} is significantly worse than the baseline {baseline_name} "
                  f"({_describe(vs_baseline)}); not promoted")
    elif current is None:
        promoted, reason = True, "first version of the model becomes champion"
    elif current == challenger_version:
        promoted, reason = True, "challenger is already champion"
    else:
        try:
            test = compare_version(current)
        except (ValueError, KeyError, TypeError, RuntimeError) as exc:
            # The champion cannot score the features this code builds (e.g. the feature set
            # changed), so it could not serve with this code either: the challenger takes over.
            promoted = True
            reason = (f"champion v{current} is incompatible with the current features and was replaced "
                      f"by challenger v{challenger_version}: {exc}")
        else:
            champion_value = test.reference
            promoted = test.wins or math.isnan(test.reference)
            verb = "wins over" if promoted else "does not win over"
            reason = (f"challenger v{challenger_version} {metric}={test.ours:.5f} {verb} champion v{current} "
                      f"{metric}={test.reference:.5f} on the same test rows: {_describe(test)}")
    if vs_baseline is not None and not worse:
        reason += f"; vs {baseline_name}: {_describe(vs_baseline)}"
    if promoted:
        client.set_registered_model_alias(name, CHAMPION, challenger_version)
    decision = PromotionDecision(
        name, metric, challenger_version, float(challenger_value), current, champion_value, promoted, reason,
        None if test is None else test.as_dict(), None if vs_baseline is None else vs_baseline.as_dict(),
    )
    client.set_model_version_tag(name, challenger_version, "promotion", "promoted" if promoted else "rejected")
    client.set_model_version_tag(name, challenger_version, "promotion_reason", reason[:4000])
    return decision


def log_decision(decision: PromotionDecision) -> None:
    """Record the comparison in the active run."""
    import mlflow

    mlflow.set_tags(
        {
            "promotion.decision": "promoted" if decision.promoted else "rejected",
            "promotion.champion_before": decision.champion_version or "none",
            "promotion.reason": decision.reason[:4000],
        }
    )
    if decision.champion_value is not None:
        mlflow.log_metric(f"champion_{decision.metric}", decision.champion_value)
    if decision.vs_champion is not None:
        t = decision.vs_champion
        mlflow.log_metrics({f"paired_vs_champion_{k}": float(t[v]) for k, v in (
            ("diff", "diff"), ("ci_low", "ci_low"), ("ci_high", "ci_high"), ("z", "statistic"), ("p", "p_superior"))})
    mlflow.log_text(json.dumps(decision.as_dict(), indent=2), "promotion.json")
