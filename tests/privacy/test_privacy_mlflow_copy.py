"""Erasure and export in a copied MLflow store touch the copy's artifacts only.

A SQLite store copied to another path still records the original's absolute artifact locations; the
MLflow eraser must act on the copy's own files (never rewrite the directory it was copied from), and
name what it could not find here instead of reading the original."""
from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest


def _env(mp, root):
    mp.setenv("INBOX_DATA_DIR", str(root / "data"))
    mp.setenv("INBOX_ARTIFACT_ROOT", str(root / "mlruns"))
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlruns' / 'mlflow.db'}")


@pytest.fixture()
def copied(tmp_path, monkeypatch):
    """(original root, copy root): one run with a logged model (input example) and a table with
    contact ids, logged in the original, then the whole installation copied."""
    import mlflow

    from inbox.settings import load_settings
    from inbox.tracking import configure

    orig = tmp_path / "orig"
    (orig / "mlruns").mkdir(parents=True)
    with monkeypatch.context() as mp:
        _env(mp, orig)
        settings = load_settings()
        configure(settings, "privacy-copy")
        class Echo(mlflow.pyfunc.PythonModel):  # a tiny model, logged with an input example as ours are
            def predict(self, context, model_input):
                return model_input

        with mlflow.start_run():
            mlflow.pyfunc.log_model(name="echo", python_model=Echo(), input_example=pd.DataFrame({"x": [1.0, 2.0]}))
            mlflow.log_table(pd.DataFrame({"contact_id": [1, 2, 3], "score": [0.1, 0.2, 0.3]}), "tables/scores.json")
    shutil.copytree(orig, tmp_path / "copy")
    return orig, tmp_path / "copy"


def _examples(root):
    return sorted(p.relative_to(root) for p in (root / "mlruns").rglob("input_example.json"))


def _table_ids(root):
    (path,) = list((root / "mlruns").rglob("scores.json"))
    table = json.loads(path.read_text())
    return sorted(row[table["columns"].index("contact_id")] for row in table["data"])


def test_erasure_in_a_copy_changes_the_copy_and_leaves_the_original(copied, monkeypatch):
    from inbox.settings import load_settings
    from privacy.erase import Subject
    from privacy.mlflow_artifacts import erase_input_examples, export_input_examples

    orig, copy = copied
    assert _examples(orig) and _examples(copy) == _examples(orig)
    _env(monkeypatch, copy)
    settings = load_settings()
    exported = export_input_examples(settings, Subject((2,)))
    assert [r["contact_id"] for r in exported] == [2]
    changed = erase_input_examples(settings, Subject((2,)))
    assert changed == 3  # the copy's two example files (input, serving input) and its table
    assert _examples(copy) == [] and _table_ids(copy) == [1, 3]
    assert _examples(orig) and _table_ids(orig) == [1, 2, 3]  # the original directory untouched


def test_erasure_in_a_copy_whose_original_is_gone_and_a_location_missing_here(copied, monkeypatch):
    from inbox.settings import load_settings
    from privacy.erase import Erased, Subject
    from privacy.mlflow_artifacts import erase_input_examples

    orig, copy = copied
    orig.rename(orig.parent / "gone")
    (example,) = [copy / p for p in _examples(copy)]
    shutil.rmtree(example.parent)  # the logged model's files are not in the copy either
    _env(monkeypatch, copy)
    out = erase_input_examples(load_settings(), Subject((3,)))
    assert isinstance(out, Erased) and out.rows == 1  # the table, reached through the copy
    assert str(orig) in out.note and "inbox relocate" in out.note
    assert _table_ids(copy) == [1, 2]
