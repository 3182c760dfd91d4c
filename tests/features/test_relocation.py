"""A data directory copied to another path, the original renamed away: Feast and the read plans use the
copy's feature tables, whether the registry was applied with relative sources (now) or absolute ones
(before; re-applied by `get_store`), and a copy that cannot be re-applied fails naming the path."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import warnings
import pandas as pd
import pyarrow.parquet as pq
import pytest

warnings.filterwarnings("ignore", message="On demand feature view is an experimental feature")

@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A small world's event log and feature tables (no registry yet)."""
    from features.pipeline import build_features
    from simulation.eventlog import write_event_log
    from simulation.history import simulate_history
    from simulation.world import WorldConfig, generate_world

    data = tmp_path_factory.mktemp("relocation_world") / "data"
    world = generate_world(WorldConfig(n_contacts=300, n_days=30, seed=3))
    write_event_log(data / "events", simulate_history(world, progress=False))
    build_features(data / "events", data / "features")
    return data


def _settings(data):
    from inbox.settings import Settings

    return Settings(data_dir=data, tracking_uri=f"sqlite:///{data.parent / 'mlflow.db'}", artifact_root=data.parent)


def _move(built, tmp_path, register):
    """Copy `built` to tmp/orig, apply it there with `register(settings)`, record a read plan, copy
    tmp/orig to tmp/moved and rename tmp/orig away; the moved copy's settings."""
    from models.datasets import plan_reads

    orig = tmp_path / "orig" / "data"
    shutil.copytree(built, orig)
    register(_settings(orig))
    plan_reads(("lead_scoring",), _settings(orig))  # recorded beside the registry, copied with it
    shutil.copytree(orig, tmp_path / "moved" / "data")
    (tmp_path / "orig").rename(tmp_path / "gone")
    return _settings(tmp_path / "moved" / "data")


def _apply_relative(settings):
    from features.store import apply, get_store

    apply(get_store(settings), features_dir=settings.features_dir)


def _apply_absolute(settings):
    """What `inbox features apply` registered before sources were relative: absolute paths."""
    from features.definitions import build_repo
    from features.store import get_store

    store = get_store(settings)
    repo = build_repo(settings.features_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        store.apply([*repo["entities"], *repo["views"].values(), repo["odfv"], *repo["services"].values()])
    paths = [src.path for src in store.list_data_sources() if hasattr(src, "path")]
    assert paths and all(p.startswith(str(settings.features_dir)) for p in paths)


def _historical(store, settings):
    """Engagement features of a few contacts at the newest snapshot, from Feast, and from the copy's own table."""
    table = pq.read_table(settings.features_dir / "contact_engagement.parquet").to_pandas()
    when = table["event_timestamp"].max()
    newest = table[table["event_timestamp"] == when].set_index("contact_id").sort_index().head(5)
    entity = pd.DataFrame({"contact_id": newest.index, "event_timestamp": when})
    got = store.get_historical_features(entity_df=entity, features=["contact_engagement:sends_90d"]).to_df()
    return got.set_index("contact_id").sort_index()["sends_90d"], newest["sends_90d"]


def _assert_reads_the_copy(settings):
    from features.relocation import foreign_sources
    from features.store import get_store, source_file
    from models.datasets import plan_reads

    store = get_store(settings)
    assert foreign_sources(store, settings.features_dir) == {}
    for view in store.list_feature_views():
        assert source_file(store, view).startswith(str(settings.features_dir))
    got, want = _historical(store, settings)
    assert len(want) == 5
    pd.testing.assert_series_equal(got, want, check_names=False, check_dtype=False)
    reads, _ = plan_reads(("lead_scoring",), settings)  # no store: the recorded plan, or Feast's
    assert reads and all(str(r.path).startswith(str(settings.features_dir)) for r in reads)
    assert all(r.path.exists() for r in reads)


def test_a_relative_registry_reads_the_copy_without_changing(built, tmp_path):
    from models import read_plans

    settings = _move(built, tmp_path, _apply_relative)
    registry = (settings.feast_dir / "registry.db").read_bytes()
    assert b"/orig/" not in registry
    digest = read_plans.registry_digest(settings.feast_dir)
    assert read_plans.cached(settings.feast_dir, ("lead_scoring",), digest) is not None  # the copied record is valid
    _assert_reads_the_copy(settings)
    assert (settings.feast_dir / "registry.db").read_bytes() == registry  # nothing had to be re-applied


def test_an_absolute_registry_is_reapplied_from_the_copy(built, tmp_path, caplog):
    settings = _move(built, tmp_path, _apply_absolute)
    assert b"/orig/data/features" in (settings.feast_dir / "registry.db").read_bytes()
    with caplog.at_level("WARNING", logger="features.relocation"):
        _assert_reads_the_copy(settings)
    assert "re-applying it from this directory's tables" in caplog.text


def test_a_copy_without_its_tables_fails_naming_the_original_path(built, tmp_path):
    from features.store import get_store
    from inbox.locations import ForeignPathError

    settings = _move(built, tmp_path, _apply_absolute)
    (settings.features_dir / "contact_topics.parquet").unlink()
    with pytest.raises(ForeignPathError) as info:
        get_store(settings)
    assert str(tmp_path / "orig" / "data" / "features") in info.value.path
    assert info.value.fix == "inbox features all" and "contact_topics.parquet" in str(info.value)


def test_a_foreign_view_the_project_does_not_define_is_refused_not_read(built, tmp_path):
    from feast import FeatureView, FileSource

    from features.definitions import contact
    from features.store import get_store
    from inbox.locations import ForeignPathError

    def register(settings):
        _apply_relative(settings)
        path = str(settings.features_dir / "contact_topics.parquet")  # absolute, as another tool may register it
        view = FeatureView(name="custom", entities=[contact], source=FileSource(name="custom_source", path=path,
                                                                               timestamp_field="event_timestamp"))
        get_store(settings).apply([view])

    settings = _move(built, tmp_path, register)
    with pytest.raises(ForeignPathError) as info:
        get_store(settings)
    assert info.value.fix == "feast apply" and "custom" in str(info.value)
    assert info.value.path == str(tmp_path / "orig" / "data" / "features" / "contact_topics.parquet")


def test_processes_starting_together_on_an_absolute_copy_reapply_it_once_and_read_the_copy(built, tmp_path):
    """Three processes (serving workers starting) open the copied store at the same moment, Feast already imported."""
    settings = _move(built, tmp_path, _apply_absolute)
    go = tmp_path / "go"
    probe = ("import sys, time\n"
             "from pathlib import Path\n"
             "import feast\n"
             "from features.relocation import foreign_sources\n"
             "from features.store import get_store\n"
             "from inbox.settings import load_settings\n"
             "Path(sys.argv[1]).touch()\n"
             "while not Path(sys.argv[2]).exists():\n"
             "    time.sleep(0.001)\n"
             "s = load_settings()\n"
             "print(len(foreign_sources(get_store(s), s.features_dir)))\n")
    env = {**os.environ, "INBOX_DATA_DIR": str(settings.data_dir)}
    ready = [tmp_path / f"ready{i}" for i in range(3)]
    procs = [subprocess.Popen([sys.executable, "-c", probe, str(r), str(go)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for r in ready]
    deadline = time.monotonic() + 240
    while not all(r.exists() for r in ready) and time.monotonic() < deadline and all(p.poll() is None for p in procs):
        time.sleep(0.01)
    go.touch()
    outs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err for _, err in outs]
    assert [out.strip() for out, _ in outs] == ["0", "0", "0"]
    assert sum("re-applying it" in err for _, err in outs) == 1  # the others waited, then found it done
