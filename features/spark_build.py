"""The feature build's contact snapshots run by Spark over contact partitions.

`build_features_spark(spark, events_dir, out_dir)` is `features.pipeline.build_features` with its
contact-snapshot step handed to Spark: the event log is reduced to fact arrays by the same DuckDB
step, the contacts are cut into `partitions` ranges (multiples of the engine's block), and each
Spark task (`mapInArrow`) builds a `SnapshotEngine` over its range and runs `engine.chunk` in the
same chunk sizes as the embedded build.

What a task holds follows its partition, not the list: the driver computes the population priors
(`features.snapshots.PopulationPriors`: per-day totals of the whole list, days x (4 + 2 topics + 48)
counts) once from every contact's facts, then cuts the facts into one pickle file per range
(`split_contacts`: a contact's facts stay in order), releasing its own copy as it goes. A task
reads only its range's file and gets the priors with its function (a small closure), so its rows
equal the embedded engine's over every contact (tested, table by table).

A task writes each chunk's tables as Arrow IPC files (zstd) beside the range files; only their
names pass through Spark, so neither the shuffle nor the driver's JVM holds the tables (Spark's
`toLocalIterator` gathers a whole partition in the JVM heap). The driver reads them in contact order
into the same `ParquetSink`, so the files are the embedded build's too. Content and profile tables
are the embedded code as is.

The range and chunk files live in a scratch folder inside the build's staging directory (local, or
storage shared by the driver and the executors), removed when the step ends, whether it succeeded
or failed.
"""
from __future__ import annotations

import bisect
import os
import pickle
import shutil
import uuid
from pathlib import Path

import pyarrow as pa

from features.snapshots import BLOCK

RESULT_SCHEMA = pa.schema([("table", pa.string()), ("lo", pa.int64()), ("path", pa.string()), ("facts", pa.int64())])
RESULT_DDL = "table string, lo long, path string, facts long"
IPC_OPTIONS = pa.ipc.IpcWriteOptions(compression="zstd")


def _ranges(n: int, partitions: int) -> list[tuple[int, int]]:
    """At most `partitions` contact ranges covering 0..n, each a multiple of BLOCK but the last."""
    per_part = -(-max(n, 1) // max(partitions, 1))
    size = -(-per_part // BLOCK) * BLOCK
    return [(lo, min(lo + size, n)) for lo in range(0, max(n, 1), size)]


def _write_ranges(ev, bounds: list[tuple[int, int]], directory: Path) -> list[str]:
    """Each range's facts to its own pickle in `directory`; `ev`'s fact arrays are released as they are cut."""
    from features.snapshots import split_contacts

    pieces = split_contacts(ev, bounds)
    paths = []
    for k in range(len(pieces)):
        path = directory / f"range-{k:05d}.pkl"
        with open(path, "wb") as fh:
            pickle.dump(pieces[k], fh, protocol=pickle.HIGHEST_PROTOCOL)
        pieces[k] = None  # the driver keeps no range once written
        paths.append(str(path))
    return paths


def _write_chunk(table: pa.Table, path: Path) -> str:
    """One chunk's table as an Arrow IPC file (temp file + rename: a retried task never leaves half a file)."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema, options=IPC_OPTIONS) as writer:
        writer.write_table(table)
    tmp.replace(path)
    return str(path)


def _range_snapshots(days, cfg, priors, out: str):
    """mapInArrow function: (lo, hi, path) ranges -> (table, chunk start, Arrow IPC file in `out`, facts loaded) rows."""

    def run(batches):
        from features.pipeline import chunk_contacts, snapshot_engine

        for batch in batches:
            for lo, hi, path in zip(*(batch.column(c).to_pylist() for c in ("lo", "hi", "path"))):
                with open(path, "rb") as fh:
                    ev = pickle.load(fh)
                if len(ev.contact_ids) != hi - lo:
                    raise ValueError(f"{path}: holds {len(ev.contact_ids)} contacts, expected range {lo}..{hi}")
                facts = ev.n_facts()
                engine = snapshot_engine(ev, days, cfg, priors)
                del ev
                step = chunk_contacts(engine, cfg)
                for a in range(0, max(hi - lo, 1), step):
                    for name, table in engine.chunk(a, min(a + step, hi - lo)).items():
                        chunk = _write_chunk(table, Path(out) / f"{name}-{lo + a:012d}.arrow")
                        yield pa.RecordBatch.from_pydict({"table": [name], "lo": [lo + a], "path": [chunk],
                                                          "facts": [facts]}, schema=RESULT_SCHEMA)
                del engine

    return run


class SparkContactSnapshots:
    """A `contact_snapshots` step for `build_features` that runs the snapshot engine on Spark.

    After a run, `tasks` holds one record per partition: its contact range (`lo`, `hi`) and the
    fact rows its task loaded (`facts`, as counted by the task); `facts_total`: the whole list's."""

    def __init__(self, spark, partitions: int = 4):
        if int(partitions) < 1:
            raise ValueError(f"partitions must be >= 1, got {partitions}")
        self.spark, self.partitions = spark, int(partitions)
        self.tasks: list[dict] = []
        self.facts_total = 0

    def __call__(self, ev, days, cfg, out_dir: Path, say) -> dict:
        from features.parquet_sink import ParquetSink
        from features.pipeline import CONTACT_TABLES, TABLE_FILES, snapshot_priors
        from features.table_schemas import contact_table_schemas

        n, n_facts = len(ev.contact_ids), ev.n_facts()
        self.tasks, self.facts_total = [], n_facts
        bounds = _ranges(n, self.partitions)
        priors = snapshot_priors(ev, days)  # from every contact's facts, before they are cut
        scratch = Path(out_dir) / f".facts-{uuid.uuid4().hex}"
        scratch.mkdir(parents=True)
        try:
            paths = _write_ranges(ev, bounds, scratch)
            frame = self.spark.createDataFrame([(lo, hi, p) for (lo, hi), p in zip(bounds, paths)],
                                               "lo long, hi long, path string").repartitionByRange(len(bounds), "lo")
            say(f"contact snapshots on Spark: {len(bounds)} partitions of {n:,} contacts, {n_facts:,} facts")
            # the tables stay in files: only their names pass through Spark and the driver's JVM
            rows = sorted(frame.mapInArrow(_range_snapshots(days, cfg, priors, str(scratch)), RESULT_DDL).collect(),
                          key=lambda row: (row["lo"], row["table"]))
            starts, loaded = [lo for lo, _ in bounds], {}
            schemas = contact_table_schemas(ev.topics)
            with ParquetSink({name: Path(out_dir) / TABLE_FILES[name] for name in CONTACT_TABLES},
                             {name: schemas[name] for name in CONTACT_TABLES}) as sink:
                for row in rows:
                    with pa.OSFile(row["path"]) as src:
                        sink.put(row["table"], pa.ipc.open_file(src).read_all())
                    os.unlink(row["path"])
                    loaded[bisect.bisect_right(starts, row["lo"]) - 1] = row["facts"]
                counts = sink.close()
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        self.tasks = [{"lo": lo, "hi": hi, "facts": loaded.get(k)} for k, (lo, hi) in enumerate(bounds)]
        biggest = max((t["facts"] or 0 for t in self.tasks), default=0)
        say(f"contact snapshots on Spark: the largest task loaded {biggest:,} of {n_facts:,} facts")
        return counts


def spark_contact_snapshots(spark, partitions: int = 4) -> SparkContactSnapshots:
    """A `contact_snapshots` step for `build_features` that runs the snapshot engine on Spark."""
    return SparkContactSnapshots(spark, partitions)


def build_features_spark(spark, events_dir, out_dir, partitions: int = 4, **kwargs) -> dict:
    """`features.pipeline.build_features` with the contact snapshots computed on Spark."""
    from features.pipeline import build_features

    return build_features(events_dir, out_dir, contact_snapshots=spark_contact_snapshots(spark, partitions), **kwargs)
