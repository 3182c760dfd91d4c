"""Per-contact rows in MLflow artifacts, found and removed through MLflow's public client API.

What holds per-contact rows (checked on a world run through the whole pipeline):

- each logged model's input example (`input_example.json`, `serving_input_example.json`): the
  encoded feature rows of the first test contacts (`models/*: log_model`), without their contact
  ids, so they cannot be attributed to one contact. An erasure therefore removes the example from
  every logged model (the two files, and `saved_input_example_info` from `MLmodel`; loading and
  serving never read it). Models logged after the erasure carry a new example again.
- run tables (`mlflow.log_table`, JSON `{"columns", "data"}`) with a `contact_id` column: the
  subject's rows are dropped and the table logged again. None of today's runs log one; the
  check keeps a future table from becoming a blind spot.

Not per-contact: plots, tier and comparison tables (aggregates), `promotion.json`, dataset
records in the tracking database (schema, row count and a digest, no rows).

Artifact writes go through the artifact repository (`log_artifact` replaces a file, then the
examples are deleted): re-running after a crash finishes the job.

Only this installation's files are read or changed. A local (SQLite) store that was copied or moved
still records the original directory's artifact locations (`inbox.locations`); each one outside this
store's directories is taken to its copy here (`counterpart`), and one without a copy here is not
touched and is named in the erasure's note: erasing from the copy must never rewrite, or depend on,
the directory it was copied from.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

EXAMPLE_FILES = ("input_example.json", "serving_input_example.json")


def _client(settings):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=settings.tracking_uri)


def _tracking_exists(settings) -> bool:
    uri = settings.tracking_uri
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///"):]).exists()
    return True


def _experiments(client) -> list[str]:
    from mlflow.entities import ViewType

    return [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]


def _logged_models(client, experiment_ids):
    token = None
    while True:
        page = client.search_logged_models(experiment_ids=experiment_ids, page_token=token)
        yield from page
        token = page.token
        if not token:
            return


def _runs(client, experiment_ids):
    from mlflow.entities import ViewType

    token = None
    while True:
        page = client.search_runs(experiment_ids, run_view_type=ViewType.ALL, page_token=token)
        yield from page
        token = page.token
        if not token:
            return


class _Locations:
    """Maps a recorded artifact location to the one this installation owns (`None`: not here)."""

    def __init__(self, settings):
        from inbox.tracking import local_artifact_roots

        self.roots = local_artifact_roots(settings.tracking_uri, settings.artifact_root)
        self.missing: list[str] = []

    def own(self, uri: str) -> str | None:
        from inbox.locations import counterpart, outside

        foreign = self.roots and outside(uri, self.roots)
        if not foreign:
            return uri
        here = counterpart(foreign, self.roots, min_parts=2)
        if here is None:
            self.missing.append(str(foreign))
            return None
        return here.as_uri()

    def note(self) -> str | None:
        if not self.missing:
            return None
        return (f"{len(self.missing)} MLflow artifact location(s) outside this store with no copy in it were not "
                f"touched (first: {self.missing[0]}; this store was copied or moved, see `inbox relocate`)")


def _walk(repo, path: str | None = None):
    for info in repo.list_artifacts(path):
        if info.is_dir:
            yield from _walk(repo, info.path)
        else:
            yield info.path


def erase_input_examples(settings, subject):
    """Remove every logged model's input example and the subject's rows from run tables, in this
    installation's files only; files changed (an `Erased` with a note when some were not here)."""
    from mlflow.models import Model
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    from privacy.erase import Erased

    if not _tracking_exists(settings):
        return 0
    client = _client(settings)
    experiments = _experiments(client)
    where = _Locations(settings)
    changed = 0
    seen = set()
    for model in _logged_models(client, experiments):
        location = where.own(model.artifact_location)
        if location is None or location in seen:
            continue
        seen.add(location)
        repo = get_artifact_repository(location)
        names = {info.path for info in repo.list_artifacts()}
        present = [f for f in EXAMPLE_FILES if f in names]
        if not present:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            if "MLmodel" in names:
                meta = Model.load(repo.download_artifacts("MLmodel", tmp))
                if meta.saved_input_example_info is not None:
                    meta.saved_input_example_info = None
                    out = Path(tmp) / "rewritten" / "MLmodel"
                    out.parent.mkdir()
                    meta.save(str(out))
                    repo.log_artifact(str(out))
        for f in present:
            repo.delete_artifacts(f)
            changed += 1
    for run in _runs(client, experiments):
        location = where.own(run.info.artifact_uri)
        if location is None:
            continue
        repo = get_artifact_repository(location)
        for path in _walk(repo):
            if path.endswith(".json"):
                changed += _filter_table(repo, path, subject)
    note = where.note()
    return changed if note is None else Erased(changed, note)


def _filter_table(repo, path: str, subject) -> int:
    """Drop the subject's rows from a logged table with a `contact_id` column; 1 if rewritten."""
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(repo.download_artifacts(path, tmp))
        try:
            table = json.loads(local.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError):
            return 0
        if not (isinstance(table, dict) and "contact_id" in table.get("columns", [])):
            return 0
        at = table["columns"].index("contact_id")
        ids = set(subject.contact_ids)
        kept = [row for row in table["data"] if row[at] not in ids]
        if len(kept) == len(table["data"]):
            return 0
        table["data"] = kept
        local.write_text(json.dumps(table))
        repo.log_artifact(str(local), str(Path(path).parent) if "/" in path else None)
        return 1


def export_input_examples(settings, subject) -> list[dict]:
    """The subject's rows in run tables (input examples carry no contact id: nothing attributable)."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    if not _tracking_exists(settings):
        return []
    client = _client(settings)
    where = _Locations(settings)
    out = []
    ids = set(subject.contact_ids)
    for run in _runs(client, _experiments(client)):
        location = where.own(run.info.artifact_uri)
        if location is None:
            continue
        repo = get_artifact_repository(location)
        for path in _walk(repo):
            if not path.endswith(".json"):
                continue
            with tempfile.TemporaryDirectory() as tmp:
                try:
                    table = json.loads(Path(repo.download_artifacts(path, tmp)).read_text())
                except (UnicodeDecodeError, json.JSONDecodeError):
                    continue
            if isinstance(table, dict) and "contact_id" in table.get("columns", []):
                at = table["columns"].index("contact_id")
                out += [{"run_id": run.info.run_id, "artifact": path, **dict(zip(table["columns"], row))}
                        for row in table["data"] if row[at] in ids]
    return out
