"""The scale profile: which setting moves each part off the embedded default, and the loop's batch steps.

| part                               | setting                                  | embedded default (unset)     |
|------------------------------------|------------------------------------------|------------------------------|
| Feast online store + predictions   | INBOX_ONLINE_STORE=redis://HOST:PORT/DB  | SQLite under <data>/feast    |
| decision log, rewards, snapshots   | INBOX_DECISION_LOG=postgresql://...      | SQLite under <data>/bandit   |
| MLflow tracking + model artifacts  | MLFLOW_TRACKING_URI=http://HOST:PORT     | SQLite + files under mlruns/ |
| batch scoring                      | `models.spark_scoring` (Spark)           | in-process (`inbox score`)   |

`compose.yaml` sets all three for every service replica. `build_world` runs the loop's batch steps
(simulate, features build, train, Feast apply + materialize, publish) each in its own process, as
`inbox demo` does, against whatever the environment configures (tests and benchmarks call it with
the scale settings exported).
"""
from __future__ import annotations

import os

SETTINGS = ("INBOX_ONLINE_STORE", "INBOX_DECISION_LOG", "MLFLOW_TRACKING_URI")


def active() -> dict[str, str]:
    """The scale settings present in the environment."""
    return {name: os.environ[name] for name in SETTINGS if os.environ.get(name)}


def build_world(settings, contacts: int, days: int, seed: int = 7, fast: bool = True) -> dict:
    """Simulate a world, build + apply + materialize its features, train the three models (`fast`:
    the quick configuration the tests use) and publish predictions; each step in a spawned process."""
    from inbox.demo import in_child_process
    from simulation.world import WorldConfig

    out = {"simulate": in_child_process("simulation.cli:simulate_to_disk", WorldConfig(n_contacts=contacts, n_days=days,
                                        seed=seed), settings=settings, progress=False)}
    out["features"] = in_child_process("features.workflow:build", settings=settings, progress=False)
    # trained from the Parquet tables before Feast is applied, as tests/serving/conftest.py does
    out["train"] = in_child_process("models.training:train_all", settings=settings, progress=False, fast=fast)
    out["apply"] = in_child_process("features.workflow:apply_repo", settings=settings, progress=False)
    out["materialize"] = in_child_process("features.workflow:materialize_online", settings=settings, progress=False)
    out["publish"] = in_child_process("serving.publish:publish", settings=settings, progress=False)
    return out


def register_campaign(settings, campaign_id: str, n_variants: int = 3) -> list[int]:
    """Register a campaign over the first `n_variants` content items (click reward; context: engagement
    score and 30-day open rate) in the configured decision log; the variant ids."""
    from experiments.bandit import Allocator
    from sending.campaign import VARIANT_FEATURES
    from simulation.eventlog import read_table, table_path

    content = read_table("content", table_path(settings.events_dir, "content"))
    variants = content.head(n_variants)[["content_id", *VARIANT_FEATURES]]
    variants = variants.astype({c: float for c in VARIANT_FEATURES if c not in ("topic", "format")})
    alloc = Allocator.open(settings.bandit_dir)
    try:
        alloc.register_campaign(campaign_id, variants, ["engagement_score", "open_rate_30d"], reward_event="click")
    finally:
        alloc.close()
    return variants["content_id"].tolist()
