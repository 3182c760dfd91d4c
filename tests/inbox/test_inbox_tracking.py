"""Experiments are created once and described; runs are described."""
import mlflow

from inbox.settings import load_settings
from inbox.tracking import DEFAULT_EXPERIMENT_NOTE, EXPERIMENT_DESCRIPTIONS, NOTE_TAG, configure, describe_run


def test_configure_describes_the_experiment_and_describe_run_the_run(tmp_path, monkeypatch):
    monkeypatch.setenv("INBOX_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("INBOX_ARTIFACT_ROOT", str(tmp_path / "mlruns"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "mlruns").mkdir()
    settings = load_settings()
    first = configure(settings, "bandit-simulation")
    assert configure(settings, "bandit-simulation") == first  # found, not created twice
    exp = mlflow.get_experiment(first)
    assert exp.name == "inbox/bandit-simulation"
    assert exp.tags[NOTE_TAG] == EXPERIMENT_DESCRIPTIONS["bandit-simulation"]
    assert exp.artifact_location.startswith((tmp_path / "mlruns").as_uri())
    other = configure(settings, "scratch", description="a one-off study")
    assert mlflow.get_experiment(other).tags[NOTE_TAG] == "a one-off study"
    with mlflow.start_run() as run:
        describe_run("what this run holds")
    assert mlflow.get_run(run.info.run_id).data.tags[NOTE_TAG] == "what this run holds"
    # every experiment of the store is described, MLflow's own "Default" included
    assert all(e.tags.get(NOTE_TAG) for e in mlflow.search_experiments())
    assert mlflow.get_experiment_by_name("Default").tags[NOTE_TAG] == DEFAULT_EXPERIMENT_NOTE
