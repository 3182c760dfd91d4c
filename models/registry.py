"""Model registry: register each run as `challenger`, promote to `champion` only on a win.

Every training run registers a new version of its model name and points the
`challenger` alias at it. The champion (if any) is re-evaluated by the caller
on the *same* test rows as the challenger; `champion` moves only if the
challenger is strictly better on the model's primary metric. The first version
of a name becomes champion. The decision is logged to the challenger's run
(metrics, tags, `promotion.json`) and as tags on the model version.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Callable

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


def register(model_uri: str, name: str, run_id: str, tags: dict[str, str] | None = None) -> str:
    """Register `model_uri` as a new version of `name`, alias it `challenger`; return the version."""
    import mlflow

    client = mlflow.MlflowClient()
    version = str(mlflow.register_model(model_uri, name, tags=tags).version)
    client.set_registered_model_alias(name, CHALLENGER, version)
    client.set_model_version_tag(name, version, "run_id", run_id)
    return str(version)


def decide(
    name: str,
    metric: str,
    challenger_version: str,
    challenger_value: float,
    evaluate_version: Callable[[str], float],
    higher_is_better: bool = True,
) -> PromotionDecision:
    """Compare challenger against the current champion and move the alias if it wins.

    `evaluate_version(version)` must score that registered version on the
    challenger's test rows and return the primary metric.
    """
    import mlflow

    client = mlflow.MlflowClient()
    current = champion_version(name)
    champion_value: float | None = None
    if current is None:
        promoted, reason = True, "first version of the model becomes champion"
    elif current == challenger_version:
        promoted, reason = True, "challenger is already champion"
    else:
        try:
            champion_value = float(evaluate_version(current))
        except (ValueError, KeyError, TypeError, RuntimeError) as exc:
            # The champion cannot score the features this code builds (e.g. the feature set
            # changed), so it could not serve with this code either: the challenger takes over.
            promoted = True
            reason = (f"champion v{current} is incompatible with the current features and was replaced "
                      f"by challenger v{challenger_version}: {exc}")
        else:
            if math.isnan(champion_value):
                better = True
            elif higher_is_better:
                better = challenger_value > champion_value
            else:
                better = challenger_value < champion_value
            promoted = better
            verb = "beats" if better else "does not beat"
            reason = (
                f"challenger v{challenger_version} {metric}={challenger_value:.5f} {verb} "
                f"champion v{current} {metric}={champion_value:.5f} on the same test period"
            )
    if promoted:
        client.set_registered_model_alias(name, CHAMPION, challenger_version)
    decision = PromotionDecision(
        name, metric, challenger_version, float(challenger_value), current, champion_value, promoted, reason
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
    mlflow.log_text(json.dumps(decision.as_dict(), indent=2), "promotion.json")
