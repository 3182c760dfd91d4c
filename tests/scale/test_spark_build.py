"""The feature build's contact snapshots on Spark (local[2]) equal the embedded build's, file for file."""
import pandas as pd
import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.slow


def test_spark_build_equals_embedded(tmp_path, spark):
    from features.pipeline import CONTACT_TABLES, TABLE_FILES, PipelineConfig, build_features
    from features.spark_build import build_features_spark
    from simulation.eventlog import write_event_log
    from simulation.history import simulate_history
    from simulation.world import WorldConfig, generate_world

    world = generate_world(WorldConfig(n_contacts=700, n_days=40, seed=3))
    write_event_log(tmp_path / "events", simulate_history(world, progress=False))
    cfg = PipelineConfig(chunk_contacts=128)  # several engine chunks per Spark partition
    embedded = build_features(tmp_path / "events", tmp_path / "embedded", config=cfg)
    on_spark = build_features_spark(spark, tmp_path / "events", tmp_path / "spark", partitions=3, config=cfg)
    for key in ("contact_engagement", "contact_send_time", "contact_topics", "contact_send_hours",
                "contact_profile", "content_features", "snapshots"):
        assert embedded[key] == on_spark[key]
    assert embedded["contact_engagement"] > 700  # several snapshots per contact
    for name, file in TABLE_FILES.items():
        a, b = pq.read_table(tmp_path / "embedded" / file), pq.read_table(tmp_path / "spark" / file)
        assert a.schema.equals(b.schema), name
        a, b = a.to_pandas(), b.to_pandas()
        if name not in CONTACT_TABLES:  # written by DuckDB in both builds, in no fixed row order
            key = [a.columns[0], "event_timestamp"]
            a, b = (t.sort_values(key, kind="stable", ignore_index=True) for t in (a, b))
        pd.testing.assert_frame_equal(a, b, check_exact=True, obj=name)  # NaN == NaN; the engine's tables as written
    assert not list((tmp_path / "spark").glob(".*"))  # no staging or facts left behind
