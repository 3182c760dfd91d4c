"""The project's one MLflow convention, shared by models, the bandit and A/B analyses.

Every run goes to experiment `inbox/<name>` in the installation's tracking store
(`settings.tracking_uri`, SQLite by default), with artifacts under
`settings.artifact_root` (MLflow would otherwise put them under `./mlruns`
relative to the working directory); with a tracking server (`MLFLOW_TRACKING_URI=http://...`,
the scale profile) the server stores and serves them (`--artifacts-destination`). Each experiment and run carries a
description (MLflow's `mlflow.note.content` tag, shown in the UI's description
box) so a reviewer knows what it holds without reading code. Lives in `inbox/`
so that `experiments` does not import `models` (DESIGN's dependency direction).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from inbox.settings import Settings

EXPERIMENT_PREFIX = "inbox"
# MLflow's UI shows this tag as the description of an experiment or a run.
NOTE_TAG = "mlflow.note.content"

EXPERIMENT_DESCRIPTIONS = {
    "lead_scoring": "Lead scoring: P(conversion within the label window) per contact from its point-in-time "
                    "features. One run per training; each registers a version of model `lead_scoring`, compared "
                    "with the champion on the same test period (promotion.json, champion_vs_challenger).",
    "send_time": "Send-time optimisation: P(open within 24 h) by local hour of the week per contact, with segment "
                 "and population fallbacks. Primary metric: share of the oracle's uplift over a random hour.",
    "content_preference": "Content preference: a two-tower ranker of content for a contact, scored by NDCG@3 "
                          "against the simulator's true click probabilities.",
    "ab-tests": "A/B/n test analyses: one run per analysed campaign. Headline metrics per decision metric; "
                "the full result table (tables/ab_results.json), lift and posterior plots under plots/.",
    "bandit-simulation": "Contextual-bandit policies raced on one simulated campaign with delayed rewards: a parent "
                         "run per race (table, plot) with one child run per policy; expand it and open the chart "
                         "view to compare cumulative_regret and cumulative_reward over the decisions.",
    "bandit-promotion": "Promotion gate of the bandit allocator: a candidate policy snapshot goes live only when "
                        "its doubly-robust lower bound beats the live policy's estimate. One run per decision.",
}
# MLflow creates experiment 0, "Default", in every new store; nothing of ours goes there.
DEFAULT_EXPERIMENT_NOTE = ("MLflow's default experiment, created with the store. Algorithmic Inbox logs nothing here: "
                           "its runs are in the `inbox/...` experiments (models, A/B analyses, bandit races and gates).")


def set_tracking_uri(uri: str) -> None:
    """`mlflow.set_tracking_uri`, importing MLflow's SQL store (for a database URI) with one warning silenced.

    MLflow 3.17's SQL store module configures its mappers at import with a loader option SQLAlchemy 2.1
    deprecates (``noload``): a deprecation warning nobody running `inbox` can act on. A filter set once at
    start-up does not hold (imported libraries put their own DeprecationWarning filters in front of it), so
    the module is imported here, the first time, inside a filter of that one message."""
    import warnings

    import mlflow

    if not uri.startswith(("http://", "https://", "databricks")):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"The ``noload`` loader strategy is deprecated")
            import mlflow.store.tracking.sqlalchemy_store  # noqa: F401
    mlflow.set_tracking_uri(uri)


def local_artifact_roots(tracking_uri: str, artifact_root=None) -> tuple[Path, ...] | None:
    """Where a SQLite tracking store's local artifacts belong: the database's directory and `artifact_root`.

    None for any other store (a tracking server, a shared database): its artifact locations are its own,
    not part of a data directory that can be copied. A local location outside these directories was
    written before the store was copied or moved (`inbox.locations`)."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    db = Path(tracking_uri[len("sqlite:///"):].split("?", 1)[0])
    return tuple(dict.fromkeys(p.resolve() for p in (db.parent, *([artifact_root] if artifact_root else []))))


def check_experiment_location(settings: "Settings", experiment) -> None:
    """Raise `ForeignPathError` when a local store's experiment keeps its artifacts outside this store
    (new runs would write into the directory it was copied from)."""
    from inbox.locations import ForeignPathError, outside

    roots = local_artifact_roots(settings.tracking_uri, settings.artifact_root)
    stale = roots and outside(experiment.artifact_location, roots)
    if stale:
        raise ForeignPathError(f"MLflow experiment {experiment.name!r}'s artifact location", stale,
                               settings.artifact_root)


def configure(settings: "Settings", experiment: str, description: str | None = None) -> str:
    """Point MLflow at the installation's store and select (or create) `inbox/<experiment>`.

    The experiment's description is `description`, else `EXPERIMENT_DESCRIPTIONS[experiment]`
    (set when missing or changed). Returns the experiment id. An experiment of a copied or moved local
    store whose artifacts are still the original's raises `inbox.locations.ForeignPathError`.
    """
    import mlflow

    set_tracking_uri(settings.tracking_uri)
    name = f"{EXPERIMENT_PREFIX}/{experiment}"
    client = mlflow.MlflowClient()
    found = client.get_experiment_by_name(name)
    if found is None and settings.tracking_uri.startswith(("http://", "https://")):
        exp_id = client.create_experiment(name)  # a tracking server: its served artifacts (mlflow-artifacts:/)
        tags = {}
    elif found is None:
        location = Path(settings.artifact_root) / "artifacts"
        location.mkdir(parents=True, exist_ok=True)
        exp_id = client.create_experiment(name, artifact_location=location.resolve().as_uri())
        tags = {}
    else:
        check_experiment_location(settings, found)
        exp_id, tags = found.experiment_id, found.tags
    text = description or EXPERIMENT_DESCRIPTIONS.get(experiment)
    if text and tags.get(NOTE_TAG) != text:
        client.set_experiment_tag(exp_id, NOTE_TAG, text)
    default = client.get_experiment_by_name("Default")
    if default is not None and default.lifecycle_stage == "active" and NOTE_TAG not in default.tags:
        client.set_experiment_tag(default.experiment_id, NOTE_TAG, DEFAULT_EXPERIMENT_NOTE)
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


def describe_run(text: str) -> None:
    """Set the active run's description (markdown, shown at the top of the run page)."""
    import mlflow

    mlflow.set_tag(NOTE_TAG, text)
