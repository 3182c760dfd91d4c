"""The notebooks: percent-format `.py` sources paired with output-free `.ipynb`, run with papermill.

Each notebook is executed from its `.py` source (jupytext reads it, papermill injects small
parameters after the `parameters` cell and runs it in a fresh kernel of this interpreter), with the
working directory and INBOX_DATA_DIR / INBOX_ARTIFACT_ROOT / MLFLOW_TRACKING_URI in a tmp dir, so
nothing is written into the repository. Any cell error fails the test with the cell's traceback;
warnings, MLflow registration chatter and float-formatted counts in the outputs fail it too.
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import jupytext
import nbformat
import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"
SOURCES = sorted(NOTEBOOK_DIR.glob("*.py"))
TIMEOUT_PER_CELL = 300
# Small worlds: enough rows for every model and analysis step, quick enough for the suite.
PARAMETERS = {
    "01_quickstart": {"N_CONTACTS": 1_000, "N_DAYS": 50},
    "02_model_review": {"N_CONTACTS": 800, "N_DAYS": 50},
    "03_bandit": {"N_CONTACTS": 3_000, "DECISIONS": 1_500, "ROUNDS": 3, "RECIPIENTS": 2_500},
    "04_ab_analysis": {"N_CONTACTS": 2_500, "N_DAYS": 40, "LOOKS": 6},
}


def test_sources_and_notebooks_are_paired():
    assert [p.stem for p in SOURCES] == sorted(PARAMETERS)
    assert sorted(p.stem for p in NOTEBOOK_DIR.glob("*.ipynb")) == sorted(PARAMETERS)
    assert not (NOTEBOOK_DIR / "build_notebooks.py").exists()


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_ipynb_matches_its_source_and_has_no_outputs(source):
    text = jupytext.read(source)
    paired = nbformat.read(source.with_suffix(".ipynb"), as_version=4)
    nbformat.validate(paired)
    assert [(c.cell_type, c.source) for c in paired.cells] == [(c.cell_type, c.source) for c in text.cells], (
        f"{source.with_suffix('.ipynb').name} is out of date: run `jupytext --sync notebooks/{source.name}`")
    for i, cell in enumerate(c for c in paired.cells if c.cell_type == "code"):
        assert cell.outputs == [], f"{source.stem}: code cell {i} has outputs"
        assert cell.execution_count is None, f"{source.stem}: code cell {i} has an execution count"
    assert paired.metadata["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_parameters_cell_then_one_setup_call(source):
    code = [c for c in jupytext.read(source).cells if c.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", []), f"{source.stem}: first code cell is not `parameters`"
    names = set(re.findall(r"^([A-Z_]+) = ", code[0].source, flags=re.M))
    assert set(PARAMETERS[source.stem]) <= names, f"{source.stem}: unknown parameter in the test"
    setup = code[1].source
    assert setup.endswith("from inbox.notebook import setup, show\n\nsettings = setup()"), setup
    assert "environ" not in setup and "warnings" not in setup


def _texts(nb, stream: str | None = None):
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.output_type == "stream" and (stream is None or out.name == stream):
                yield out.text
            elif stream is None and out.output_type in ("execute_result", "display_data"):
                yield out.get("data", {}).get("text/plain", "")


@pytest.mark.slow
@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_notebook_runs_from_its_source(source, tmp_path, monkeypatch):
    import papermill

    monkeypatch.setenv("INBOX_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("INBOX_ARTIFACT_ROOT", str(tmp_path / "mlruns"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    (tmp_path / "mlruns").mkdir()
    notebook = tmp_path / f"{source.stem}.ipynb"
    jupytext.write(jupytext.read(source), notebook)
    t0 = time.perf_counter()
    nb = papermill.execute_notebook(
        str(notebook), str(tmp_path / "executed.ipynb"), parameters=PARAMETERS[source.stem],
        kernel_name="python3", cwd=str(tmp_path), progress_bar=False, execution_timeout=TIMEOUT_PER_CELL,
    )  # raises PapermillExecutionError (with the traceback) on the first failing cell
    print(f"{source.stem}: {time.perf_counter() - t0:.1f} s")
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), f"{source.stem}: no inline plot was drawn"
    stderr = "".join(_texts(nb, "stderr"))
    assert "Warning" not in stderr, stderr
    assert "Successfully registered model" not in stderr, stderr
    assert not re.search(r"\b(contacts|sends|events|rows)\s+\d[\d,]*\.0+\b", "".join(_texts(nb))), (
        "a count printed as a float")
