"""The shared first cell of every notebook in `notebooks/`: one call, `setup()`.

A notebook works against the installation named by `INBOX_DATA_DIR`,
`INBOX_ARTIFACT_ROOT` and `MLFLOW_TRACKING_URI` when they are set (the same
store the CLI and the service use), otherwise in a fresh temporary workspace so
that running a notebook never writes into the repository. `setup()` also turns
on inline plots and readable pandas output, and quiets MLflow's informational
chatter; it does not hide warnings.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from inbox.settings import Settings


def setup(workspace: str | os.PathLike | None = None) -> "Settings":
    """Point the project's settings at a workspace and prepare the notebook's display.

    `workspace`: a directory for the data and the MLflow store when the environment names none
    (default: a new temporary directory). Returns `inbox.settings.load_settings()`.
    """
    import pandas as pd

    from inbox.settings import load_settings

    missing = [v for v in ("INBOX_DATA_DIR", "INBOX_ARTIFACT_ROOT") if v not in os.environ]
    if missing:
        root = Path(workspace) if workspace is not None else Path(tempfile.mkdtemp(prefix="inbox-notebook-"))
        os.environ.setdefault("INBOX_DATA_DIR", str(root / "data"))
        os.environ.setdefault("INBOX_ARTIFACT_ROOT", str(root / "mlruns"))
    artifact_root = Path(os.environ["INBOX_ARTIFACT_ROOT"]).resolve()
    artifact_root.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{artifact_root / 'mlflow.db'}")
    # MLflow's own switches: INFO lines ("Successfully registered model ...") and tqdm bars are
    # progress chatter in a notebook, not results.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    _inline_plots()
    pd.set_option("display.width", 160, "display.max_columns", 30, "display.precision", 4)
    settings = load_settings()
    print(f"data: {settings.data_dir}\ntracking: {settings.tracking_uri}")
    return settings


def show(fig) -> None:
    """Draw a figure returned by the project's plot functions (they render off-screen) inline."""
    import matplotlib.pyplot as plt
    from IPython.display import display

    display(fig)
    plt.close(fig)


def _inline_plots() -> None:
    try:
        from IPython import get_ipython
    except ImportError:  # plain Python: nothing to configure
        return
    shell = get_ipython()
    if shell is not None:
        shell.run_line_magic("matplotlib", "inline")
