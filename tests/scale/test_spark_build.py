"""The feature build's contact snapshots on Spark (local[2]) equal the embedded build's, file for file,
and each Spark task loads only its own contact range's facts."""
import copy

import pandas as pd
import pyarrow.parquet as pq
import pytest

from tests.features.fact_fixtures import facts_in, random_facts

pytestmark = pytest.mark.slow


def _assert_same_files(a_dir, b_dir, names):
    from features.pipeline import CONTACT_TABLES, TABLE_FILES

    for name in names:
        a, b = pq.read_table(a_dir / TABLE_FILES[name]), pq.read_table(b_dir / TABLE_FILES[name])
        assert a.schema.equals(b.schema), name
        a, b = a.to_pandas(), b.to_pandas()
        if name not in CONTACT_TABLES:  # written by DuckDB in both builds, in no fixed row order
            key = [a.columns[0], "event_timestamp"]
            a, b = (t.sort_values(key, kind="stable", ignore_index=True) for t in (a, b))
        pd.testing.assert_frame_equal(a, b, check_exact=True, obj=name)  # NaN == NaN; the engine's tables as written


def test_spark_build_equals_embedded(tmp_path, spark):
    from features.pipeline import TABLE_FILES, PipelineConfig, build_features
    from features.spark_build import spark_contact_snapshots
    from simulation.eventlog import write_event_log
    from simulation.history import simulate_history
    from simulation.world import WorldConfig, generate_world

    world = generate_world(WorldConfig(n_contacts=700, n_days=40, seed=3))
    write_event_log(tmp_path / "events", simulate_history(world, progress=False))
    cfg = PipelineConfig(chunk_contacts=128)  # several engine chunks per Spark partition
    embedded = build_features(tmp_path / "events", tmp_path / "embedded", config=cfg)
    step = spark_contact_snapshots(spark, partitions=3)
    on_spark = build_features(tmp_path / "events", tmp_path / "spark", config=cfg, contact_snapshots=step)
    for key in ("contact_engagement", "contact_send_time", "contact_topics", "contact_send_hours",
                "contact_profile", "content_features", "snapshots"):
        assert embedded[key] == on_spark[key]
    assert embedded["contact_engagement"] > 700  # several snapshots per contact
    _assert_same_files(tmp_path / "embedded", tmp_path / "spark", TABLE_FILES)
    assert [(t["lo"], t["hi"]) for t in step.tasks] == [(0, 256), (256, 512), (512, 700)]
    assert sum(t["facts"] for t in step.tasks) == step.facts_total > 0
    assert max(t["facts"] for t in step.tasks) < step.facts_total / 2  # no task holds the list's facts
    assert not list((tmp_path / "spark").glob(".*"))  # no staging or facts left behind


def test_each_task_loads_only_its_range(tmp_path, spark):
    """Four partitions of 64 contacts, the third without any fact; the contacts on both sides of every
    partition boundary have facts. Each task's own count of the facts it loaded is its range's."""
    from features.pipeline import CONTACT_TABLES, PipelineConfig, _write_contact_snapshots
    from features.spark_build import spark_contact_snapshots

    ev, days = random_facts(256, seed=11, silent=(128, 192), busy=(63, 64, 127, 192, 255))
    whole = copy.deepcopy(ev)
    cfg = PipelineConfig(chunk_contacts=64)
    (tmp_path / "embedded").mkdir()
    (tmp_path / "spark").mkdir()
    embedded = _write_contact_snapshots(copy.deepcopy(ev), days, cfg, tmp_path / "embedded", lambda msg: None)
    step = spark_contact_snapshots(spark, partitions=4)
    assert step(ev, days, cfg, tmp_path / "spark", lambda msg: None) == embedded
    _assert_same_files(tmp_path / "embedded", tmp_path / "spark", CONTACT_TABLES)
    assert [(t["lo"], t["hi"]) for t in step.tasks] == [(0, 64), (64, 128), (128, 192), (192, 256)]
    assert [t["facts"] for t in step.tasks] == [facts_in(whole, lo, hi) for lo, hi in [(0, 64), (64, 128),
                                                                                       (128, 192), (192, 256)]]
    assert step.tasks[2]["facts"] == 0 and step.facts_total == whole.n_facts()
    assert sorted(p.name for p in (tmp_path / "spark").iterdir()) == sorted(f"{n}.parquet" for n in CONTACT_TABLES)


def test_range_files_are_removed_when_a_task_fails(tmp_path, spark):
    from features.pipeline import PipelineConfig
    from features.spark_build import spark_contact_snapshots

    ev, days = random_facts(200, seed=2)
    cfg = PipelineConfig(engagement_weights={"open": "not a number"})  # fails inside each task's engine
    with pytest.raises(Exception, match="not a number|ufunc|UFuncTypeError|multiply"):
        spark_contact_snapshots(spark, partitions=2)(ev, days, cfg, tmp_path, lambda msg: None)
    assert list(tmp_path.iterdir()) == []  # no range file, no half-written table


def test_range_files_are_removed_when_the_driver_fails(tmp_path, spark):
    from features.pipeline import PipelineConfig
    from features.spark_build import spark_contact_snapshots

    seen = []

    def say(msg):
        seen.append(sorted(p.name for p in tmp_path.glob(".facts-*/*")))
        raise KeyboardInterrupt("stopped by the operator")

    ev, days = random_facts(200, seed=2)
    with pytest.raises(KeyboardInterrupt):
        spark_contact_snapshots(spark, partitions=2)(ev, days, PipelineConfig(), tmp_path, say)
    assert seen == [["range-00000.pkl", "range-00001.pkl"]]  # written before the job ran
    assert list(tmp_path.iterdir()) == []
