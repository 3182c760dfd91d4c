"""Read plans recorded beside the Feast registry: taken only for the registry's exact bytes, equal to the
plan Feast gives, and a process that takes one joins features without importing Feast."""
import json
import os
import shutil
import subprocess
import sys

import pytest

SERVICES = ("send_time", "lead_scoring")


@pytest.fixture()
def settings(small_world_dir, tmp_path):
    """The shared world's feature tables with a private copy of its Feast registry (plans are written there)."""
    from inbox.settings import Settings

    data = tmp_path / "data"
    (data / "feast").mkdir(parents=True)
    shutil.copy2(small_world_dir / "data" / "feast" / "registry.db", data / "feast" / "registry.db")
    (data / "features").symlink_to(small_world_dir / "data" / "features")
    return Settings(data_dir=data, tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", artifact_root=tmp_path)


def _feast_plan(settings):
    from features.store import get_store
    from models.datasets import plan_reads

    return plan_reads(SERVICES, settings, store=get_store(settings))


def test_recorded_plan_equals_feast_plan_and_is_taken_only_for_the_same_registry(settings):
    from features.store import apply, get_store
    from models.datasets import plan_reads
    from models.read_plans import PLANS_FILE

    truth = _feast_plan(settings)
    plans = settings.feast_dir / PLANS_FILE
    assert not plans.exists()  # a given store never records
    assert plan_reads(SERVICES, settings) == truth  # read through Feast, recorded
    assert plan_reads(SERVICES, settings) == truth  # taken from the record
    book = json.loads(plans.read_text())
    for row in book["plans"]["+".join(SERVICES)]:
        row["features"] = row["features"][:1]
    plans.write_text(json.dumps(book))
    assert plan_reads(SERVICES, settings)[0] != truth[0]  # the record is what a matching registry gets
    apply(get_store(settings), features_dir=settings.features_dir)  # the registry's bytes change
    assert plan_reads(SERVICES, settings) == _feast_plan(settings)  # the stale record is not taken
    assert json.loads(plans.read_text())["registry_sha256"] != book["registry_sha256"]


def test_a_recorded_plan_joins_features_without_importing_feast(settings):
    from models.datasets import plan_reads

    plan_reads(SERVICES, settings)  # records the plan
    probe = (
        "import sys\n"
        "from inbox.settings import load_settings\n"
        "from models.contact_batches import ContactBatches\n"
        f"batches = ContactBatches({SERVICES!r}, load_settings(), batch=500)\n"
        "first = next(iter(batches))\n"
        "print(len(first), first.attrs['feature_source'], 'feast' in sys.modules)\n"
    )
    env = {**os.environ, "INBOX_DATA_DIR": str(settings.data_dir)}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    rows, source, feast_loaded = out.stdout.split()
    assert int(rows) == 500 and source.startswith("feast-registry+asof") and feast_loaded == "False"
