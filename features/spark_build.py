"""The feature build's contact snapshots run by Spark over contact partitions.

`build_features_spark(spark, events_dir, out_dir)` is `features.pipeline.build_features` with its
contact-snapshot step handed to Spark: the event log is reduced to fact arrays by the same DuckDB
step, the contacts are cut into `partitions` ranges (multiples of the engine's block), and each
Spark task (`mapInArrow`) builds the same `SnapshotEngine` over the facts and runs `engine.chunk`
for its range, in the same chunk sizes as the embedded build. The population priors are computed by
every engine from all facts, so a partition's rows equal the embedded build's (tested). The tables
come back to the driver in contact order as Arrow IPC and are written by the same `ParquetSink`,
so the files are the embedded build's too. Content and profile tables are the embedded code as is.

The facts reach the tasks as one pickle file beside the build (local or shared storage): every task
holds all facts, so this spreads the compute, which is what grows with contacts x days, not the
memory of the facts.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import pyarrow as pa

from features.snapshots import BLOCK

RESULT_SCHEMA = "table string, lo long, ipc binary"


def _ranges(n: int, partitions: int) -> list[tuple[int, int]]:
    """`partitions` contact ranges covering 0..n, each a multiple of BLOCK but the last."""
    size = max(BLOCK, -(-max(n, 1) // max(partitions, 1)) // BLOCK * BLOCK or BLOCK)
    return [(lo, min(lo + size, n)) for lo in range(0, max(n, 1), size)]


def _partition_snapshots(facts_path: str, days, cfg):
    """mapInArrow function: (lo, hi) ranges -> (table, chunk start, Arrow IPC stream) rows."""

    def run(batches):
        from features.pipeline import chunk_contacts, snapshot_engine

        engine = None
        for batch in batches:
            for lo, hi in zip(batch.column("lo").to_pylist(), batch.column("hi").to_pylist()):
                if engine is None:
                    with open(facts_path, "rb") as fh:
                        engine = snapshot_engine(pickle.load(fh), days, cfg)
                    step = chunk_contacts(engine, cfg)
                for a in range(lo, max(hi, lo + 1), step):
                    for name, table in engine.chunk(a, min(a + step, hi)).items():
                        sink = pa.BufferOutputStream()
                        with pa.ipc.new_stream(sink, table.schema) as writer:
                            writer.write_table(table)
                        yield pa.RecordBatch.from_pydict(
                            {"table": [name], "lo": [a], "ipc": [sink.getvalue().to_pybytes()]},
                            schema=pa.schema([("table", pa.string()), ("lo", pa.int64()), ("ipc", pa.binary())]))

    return run


def spark_contact_snapshots(spark, partitions: int = 4):
    """A `contact_snapshots` step for `build_features` that runs the snapshot engine on Spark."""

    def write(ev, days, cfg, out_dir: Path, say) -> dict:
        from features.parquet_sink import ParquetSink
        from features.pipeline import CONTACT_TABLES, TABLE_FILES
        from features.table_schemas import contact_table_schemas

        n = len(ev.contact_ids)
        facts = Path(out_dir) / ".facts.pkl"
        with open(facts, "wb") as fh:
            pickle.dump(ev, fh, protocol=pickle.HIGHEST_PROTOCOL)
        ranges = _ranges(n, partitions)
        frame = spark.createDataFrame(ranges, "lo long, hi long").repartitionByRange(len(ranges), "lo")
        rows = frame.mapInArrow(_partition_snapshots(str(facts), days, cfg), RESULT_SCHEMA).orderBy("lo", "table")
        say(f"contact snapshots on Spark: {len(ranges)} partitions of {n:,} contacts")
        schemas = contact_table_schemas(ev.topics)
        with ParquetSink({name: Path(out_dir) / TABLE_FILES[name] for name in CONTACT_TABLES},
                         {name: schemas[name] for name in CONTACT_TABLES}) as sink:
            for row in rows.toLocalIterator():
                sink.put(row["table"], pa.ipc.open_stream(row["ipc"]).read_all())
            counts = sink.close()
        facts.unlink(missing_ok=True)
        return counts

    return write


def build_features_spark(spark, events_dir, out_dir, partitions: int = 4, **kwargs) -> dict:
    """`features.pipeline.build_features` with the contact snapshots computed on Spark."""
    from features.pipeline import build_features

    return build_features(events_dir, out_dir, contact_snapshots=spark_contact_snapshots(spark, partitions), **kwargs)
