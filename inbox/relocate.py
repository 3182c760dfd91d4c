"""`inbox relocate`: make a copied or moved data directory and artifact root use their own files.

Run after restoring a backup at another path, mounting a volume elsewhere, or copying a world. Each
step goes through the component's public API only:

- Feast: the registry's file sources are re-applied from this directory's feature tables when they
  name another directory (`features.relocation`; `get_store` does this by itself too).
- MLflow (SQLite store): experiments, runs, logged models and model versions keep absolute artifact
  URIs, and MLflow has no public call that changes one. So an `inbox/...` experiment whose location is
  elsewhere is renamed `<name> (moved from <old location>)` (tag `inbox.moved_from`) and a new `inbox/...` experiment is created
  in this artifact root (new runs write here); each model version whose files are elsewhere is
  registered again from this root's copy of its files (`create_model_version`: same run, tags and
  description, tag `relocated_from_version`), the old version gets tag `relocated_to_version`, and
  its aliases (champion, challenger) move to the new version. Model versions change numbers, so rows
  published by `inbox publish` name the old versions until it is run again (serving computes them live
  and flags them meanwhile).

What stays behind: old runs' and logged models' artifact URIs (the MLflow UI shows their artifacts from
the old path), and versions whose files are not in this root, which fail to load with a clear error.
"""
from __future__ import annotations

import argparse
from pathlib import Path

MOVED_SUFFIX = " (moved from {})"
MAX_NAME = 250  # MLflow's experiment name column holds 256 characters
MOVED_TAG = "inbox.moved_from"  # on an experiment renamed by `inbox relocate`: its old artifact location


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "relocate", help="after copying or moving the data dir / artifact root: use their own files",
        description="Re-apply the Feast registry from this data directory's tables and re-register MLflow "
                    "experiments and model versions whose artifacts are still at the old path (through public "
                    "APIs; model versions get new numbers, aliases follow). Run `inbox publish` afterwards when "
                    "predictions were published.")
    p.add_argument("--dry-run", action="store_true", help="only report what points elsewhere")
    p.set_defaults(func=_main)


def _main(args) -> int:
    from inbox.settings import load_settings

    report = relocate(load_settings(), dry_run=args.dry_run)
    for line in report["lines"]:
        print(line)
    if not report["lines"]:
        print("nothing points outside this data directory and artifact root")
    return 0


def relocate(settings, dry_run: bool = False) -> dict:
    """Fix what `settings`' directories store about another directory; {'lines': [...], 'versions': {...}}
    with `versions` mapping (model, old version) to the new version."""
    lines: list[str] = []
    lines += _relocate_feast(settings, dry_run)
    versions: dict[tuple[str, str], str] = {}
    lines += _relocate_mlflow(settings, dry_run, versions)
    if versions and not dry_run and _published(settings):
        lines.append("published predictions name the old model versions: run `inbox publish`")
    return {"lines": lines, "versions": versions}


def _relocate_feast(settings, dry_run: bool) -> list[str]:
    if not (Path(settings.feast_dir) / "registry.db").exists():
        return []
    from feast import FeatureStore

    from features.relocation import ensure_local_sources, foreign_sources
    from features.store import render_config

    render_config(settings.feast_dir)
    store = FeatureStore(repo_path=str(Path(settings.feast_dir).resolve()))  # not get_store: it would fix it first
    if dry_run:
        foreign = foreign_sources(store, settings.features_dir)
        return [f"Feast: {what} reads {path} (would be re-applied)" for what, path in foreign.items()]
    foreign = ensure_local_sources(store, settings.features_dir)
    return [f"Feast: {what} read {path}; re-applied from {settings.features_dir}" for what, path in foreign.items()]


def _relocate_mlflow(settings, dry_run: bool, versions: dict) -> list[str]:
    from inbox.tracking import local_artifact_roots

    roots = local_artifact_roots(settings.tracking_uri, settings.artifact_root)
    db = Path(settings.tracking_uri[len("sqlite:///"):]) if roots else None
    if roots is None or not db.exists():
        return []
    import mlflow

    from inbox.tracking import set_tracking_uri

    set_tracking_uri(settings.tracking_uri)
    client = mlflow.MlflowClient(settings.tracking_uri)
    return _experiments(client, settings, roots, dry_run) + _model_versions(client, roots, dry_run, versions)


def _experiments(client, settings, roots, dry_run: bool) -> list[str]:
    from mlflow.entities import ViewType

    from inbox.locations import outside
    from inbox.tracking import EXPERIMENT_PREFIX

    lines = []
    for exp in client.search_experiments(view_type=ViewType.ACTIVE_ONLY):
        old = outside(exp.artifact_location, roots)
        if old is None or not exp.name.startswith(f"{EXPERIMENT_PREFIX}/") or MOVED_TAG in exp.tags:
            continue
        if dry_run:
            lines.append(f"MLflow: experiment {exp.name!r} keeps artifacts in {old} (would be renamed and recreated)")
            continue
        moved = _moved_name(exp, old)
        client.rename_experiment(exp.experiment_id, moved)
        client.set_experiment_tag(exp.experiment_id, MOVED_TAG, str(old))
        location = Path(settings.artifact_root) / "artifacts"
        location.mkdir(parents=True, exist_ok=True)
        client.create_experiment(exp.name, artifact_location=location.resolve().as_uri(),
                                 tags={k: v for k, v in exp.tags.items() if k != MOVED_TAG})
        lines.append(f"MLflow: experiment {exp.name!r} recreated in {location} (its old runs, artifacts in {old}, "
                     f"are under {moved!r})")
    return lines


def _moved_name(exp, old) -> str:
    """The old experiment's new name: `<name> (moved from <old location>)`, or with its id when that is too long
    for MLflow's name column (the old location is in the tag either way)."""
    name = exp.name + MOVED_SUFFIX.format(old)
    return name if len(name) <= MAX_NAME else f"{exp.name} (moved, experiment {exp.experiment_id})"


def _model_versions(client, roots, dry_run: bool, versions: dict) -> list[str]:
    from inbox.locations import counterpart, outside
    from models.loading import RELOCATED_TO_TAG

    lines = []
    for model in _pages(client.search_registered_models):
        aliases: dict[str, list[str]] = {}  # version -> its aliases (search_model_versions leaves them out)
        for alias, version in (model.aliases or {}).items():
            aliases.setdefault(str(version), []).append(alias)
        for mv in sorted(_pages(client.search_model_versions, f"name = '{model.name}'"), key=lambda v: int(v.version)):
            if RELOCATED_TO_TAG in mv.tags:
                continue
            old = outside(client.get_model_version_download_uri(mv.name, mv.version), roots)
            if old is None:
                continue
            here = counterpart(old, roots)
            if here is None or not (here / "MLmodel").exists():
                lines.append(f"MLflow: {mv.name} version {mv.version}: its files ({old}) are not in this artifact "
                             "root; left as is (loading it fails with a clear error)")
                continue
            if dry_run:
                lines.append(f"MLflow: {mv.name} version {mv.version} reads {old} (would be registered again "
                             f"from {here})")
                continue
            new = client.create_model_version(
                mv.name, here.resolve().as_uri(), run_id=mv.run_id,
                tags={**mv.tags, "relocated_from_version": str(mv.version), "relocated_from": str(old)},
                description=mv.description or None)
            client.set_model_version_tag(mv.name, mv.version, RELOCATED_TO_TAG, str(new.version))
            moved = aliases.get(str(mv.version), [])
            for alias in moved:
                client.set_registered_model_alias(mv.name, alias, new.version)
            versions[(mv.name, str(mv.version))] = str(new.version)
            moved = f", aliases {', '.join(moved)} moved" if moved else ""
            lines.append(f"MLflow: {mv.name} version {mv.version} registered again from {here} as version "
                         f"{new.version}{moved}")
    return lines


def _pages(search, *args):
    """Every result of an MLflow search call, following its page tokens."""
    token = None
    while True:
        page = search(*args, page_token=token)
        yield from page
        token = page.token
        if not token:
            return


def _published(settings) -> bool:
    from features.definitions import PREDICTIONS_VIEW
    from features.store import get_store

    if not (Path(settings.feast_dir) / "registry.db").exists():
        return False
    return any(v.name == PREDICTIONS_VIEW for v in get_store(settings).list_feature_views())
