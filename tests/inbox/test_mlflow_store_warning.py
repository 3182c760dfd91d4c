"""Opening the MLflow SQL store through `inbox.tracking.set_tracking_uri` prints no SQLAlchemy deprecation warning."""
import subprocess
import sys


def _stderr(code: str, tmp_path) -> str:
    run = subprocess.run([sys.executable, "-W", "default::DeprecationWarning", "-c", code], capture_output=True,
                         text=True, timeout=120, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert run.returncode == 0, run.stderr
    return run.stderr


def test_the_sql_store_opens_without_the_noload_warning(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    quiet = _stderr(f"from inbox.tracking import set_tracking_uri; set_tracking_uri({uri!r});"
                    "import mlflow; mlflow.MlflowClient().search_experiments()", tmp_path)
    assert "noload" not in quiet
    loud = _stderr("import mlflow.store.tracking.sqlalchemy_store", tmp_path)  # the warning this silences
    assert "noload" in loud
