"""A whole installation (data dir + MLflow artifact root) copied to another path and the original renamed
away: before `inbox relocate`, everything that would read the original's MLflow artifacts (model loading,
`inbox score`, serving start-up, new runs) fails naming the original path and the command; after it,
they read and write the copy's own files, and the command has nothing left to do."""
from __future__ import annotations

import shutil
import warnings

import pandas as pd
import pytest

warnings.filterwarnings("ignore", message="On demand feature view is an experimental feature")



def _env(mp, root):
    mp.setenv("INBOX_DATA_DIR", str(root / "data"))
    mp.setenv("INBOX_ARTIFACT_ROOT", str(root / "mlruns"))
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlruns' / 'mlflow.db'}")


@pytest.fixture(scope="module")
def moved(tmp_path_factory):
    """(root of the copy, root the original was renamed to): a 600-contact world with features applied and
    materialized, three fast champions and published predictions, built in `orig`, copied to `moved`."""
    from features.pipeline import build_features
    from features.store import apply, get_store, materialize
    from inbox.settings import load_settings
    from models.training import train_all
    from serving.publish import publish
    from simulation.cli import simulate_to_disk
    from simulation.world import WorldConfig

    base = tmp_path_factory.mktemp("relocate")
    orig = base / "orig"
    (orig / "mlruns").mkdir(parents=True)
    with pytest.MonkeyPatch.context() as mp:
        _env(mp, orig)
        settings = load_settings()
        simulate_to_disk(WorldConfig(n_contacts=600, n_days=60, seed=5), settings=settings, progress=False)
        build_features(settings.events_dir, settings.features_dir)
        train_all(settings=settings, progress=False, fast=True)
        store = get_store(settings)
        apply(store, settings)
        materialize(store, settings)
        publish(settings, progress=False)
    shutil.copytree(orig, base / "moved")
    orig.rename(base / "gone")
    return base / "moved", orig


def _run(capsys, *argv):
    from inbox.cli import main

    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_moved_installation_fails_clearly_until_relocated_then_uses_its_own_files(moved, monkeypatch, capsys,
                                                                                 tmp_path):
    import mlflow

    from inbox.locations import ForeignPathError, is_within, local_path
    from inbox.settings import load_settings
    from inbox.tracking import configure
    from models.loading import load_champion, load_version, model_dir
    from serving.state import ServingState

    root, orig = moved
    _env(monkeypatch, root)
    settings = load_settings()
    mlflow.set_tracking_uri(settings.tracking_uri)  # as a new process on the copy would (the fixture set the original's)

    # before: each boundary names the original's path and the command, and reads nothing there
    for attempt in (lambda: load_champion("lead_scoring"), lambda: configure(settings, "lead_scoring"),
                    lambda: ServingState.load(settings)):
        with pytest.raises(ForeignPathError) as info:
            attempt()
        assert is_within(info.value.path, orig) and info.value.fix == "inbox relocate"
        assert str(orig) in str(info.value) and "inbox relocate" in str(info.value)
    out_file = tmp_path / "scores.parquet"
    code, _, err = _run(capsys, "score", "lead_scoring", "--out", str(out_file))
    assert code == 2 and "inbox relocate" in err and str(orig) in err and not out_file.exists()

    code, out, _ = _run(capsys, "relocate", "--dry-run")
    assert code == 0 and "would be registered again" in out
    with pytest.raises(ForeignPathError):  # a dry run changes nothing
        load_champion("lead_scoring")

    code, out, _ = _run(capsys, "relocate")
    assert code == 0 and "aliases challenger, champion moved" in out and "run `inbox publish`" in out

    # after: models, scoring, serving and new runs use the copy
    artifacts = root / "mlruns"
    versions = {}
    for name in ("lead_scoring", "send_time", "content_preference"):
        champion = load_champion(name)
        versions[name] = str(champion.version)
        assert versions[name] != "1" and is_within(model_dir(name, versions[name]), artifacts)
        with pytest.raises(ForeignPathError, match=f"registered this directory's copy as version {versions[name]}"):
            load_version(name, "1")
    code, _, err = _run(capsys, "score", "lead_scoring", "--out", str(out_file))
    assert code == 0, err
    scores = pd.read_parquet(out_file)
    assert len(scores) > 0 and set(scores["model_version"].astype(str)) == {versions["lead_scoring"]}
    state = ServingState.load(settings)
    try:
        assert state.model_versions == versions
    finally:
        state.close()
    configure(settings, "lead_scoring")
    with mlflow.start_run() as run:
        mlflow.log_text("relocated", "probe.txt")
    written = local_path(mlflow.get_run(run.info.run_id).info.artifact_uri) / "probe.txt"
    assert is_within(written, artifacts) and written.read_text() == "relocated"
    code, out, _ = _run(capsys, "relocate")
    assert code == 0 and out.strip() == "nothing points outside this data directory and artifact root"
