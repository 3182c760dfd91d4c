"""Stream Arrow tables into Parquet files on a background thread (atomic on success).

Each file has a declared schema (`features.table_schemas`): the writer is opened
with it, and a chunk whose schema differs is rejected in the caller's thread with
the columns that differ, before anything is queued.

The snapshot engine computes chunk k+1 with numpy while chunk k is encoded and
written: Arrow's Parquet writer releases the GIL, so on two cores writing is
almost free in wall time. Every file is written to a hidden temp path and
renamed into place only when all chunks are in; on any error nothing is left.

Encoding: Zstandard (level 1); dictionary encoding only for the non-float columns
(keys, timestamps, counts, flags: few distinct values; floats differ in nearly every
row, so a dictionary would be tried and abandoned); statistics only for the key and
timestamp columns (what readers filter on). Rows arrive contact-major from the
snapshot engine, so consecutive values of a column are close and compress well.
"""
from __future__ import annotations

import queue
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROW_GROUP_SIZE = 262_144
STATISTICS_COLUMNS = ["contact_id", "content_id", "event_timestamp"]


class ParquetSink:
    """`put(name, table)` appends to `paths[name]` (schema `schemas[name]`); `close()` waits, then renames
    every file into place."""

    def __init__(self, paths: dict[str, Path], schemas: dict[str, pa.Schema], queue_size: int = 2):
        self.paths = {name: Path(p) for name, p in paths.items()}
        if set(schemas) != set(self.paths):
            raise ValueError(f"schemas for {sorted(schemas)} but output files for {sorted(self.paths)}")
        self.schemas = dict(schemas)
        self.tmps = {name: p.with_name(f".{p.name}.tmp") for name, p in self.paths.items()}
        self.rows = dict.fromkeys(self.paths, 0)
        self.cpu_seconds = 0.0
        self._writers: dict[str, pq.ParquetWriter] = {}
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="parquet-sink", daemon=True)
        self._thread.start()

    def put(self, name: str, table: pa.Table) -> None:
        if name not in self.paths:
            raise KeyError(f"no output file for table {name!r}")
        if not table.schema.equals(self.schemas[name]):
            raise ValueError(f"{name}: chunk schema differs from the declared one: {_differences(table.schema, self.schemas[name])}")
        self._raise_if_failed()
        self._queue.put((name, table))

    def put_all(self, tables: dict[str, pa.Table]) -> None:
        for name, table in tables.items():
            self.put(name, table)

    def _run(self) -> None:
        import time

        while True:
            item = self._queue.get()
            if item is None:
                self.cpu_seconds = time.thread_time()  # what writing cost (this thread only)
                return
            if self._error is not None:
                continue  # drain after a failure
            name, table = item
            try:
                writer = self._writers.get(name)
                if writer is None:
                    schema = self.schemas[name]
                    writer = self._writers[name] = pq.ParquetWriter(
                        self.tmps[name], schema, compression="zstd", compression_level=1,
                        use_dictionary=[f.name for f in schema if not pa.types.is_floating(f.type)],
                        write_statistics=[c for c in STATISTICS_COLUMNS if c in schema.names])
                writer.write_table(table, row_group_size=ROW_GROUP_SIZE)
                self.rows[name] += table.num_rows
            except BaseException as exc:  # re-raised in the caller's thread
                self._error = exc

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise RuntimeError(f"writing feature tables failed: {self._error}") from self._error

    def _finish(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        for writer in self._writers.values():
            writer.close()

    def close(self) -> dict[str, int]:
        """Finish writing, rename every file into place; rows written per table."""
        self._finish()
        self._raise_if_failed()
        for name in self._writers:
            self.tmps[name].replace(self.paths[name])
        return dict(self.rows)

    def abort(self) -> None:
        """Stop and delete every temp file (after an error in the producer)."""
        self._error = self._error or RuntimeError("aborted")
        self._finish()
        for tmp in self.tmps.values():
            tmp.unlink(missing_ok=True)

    def __enter__(self) -> "ParquetSink":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()


def _differences(got: pa.Schema, declared: pa.Schema) -> str:
    want = {f.name: f.type for f in declared}
    have = {f.name: f.type for f in got}
    out = [f"{n}: {have[n]} (declared {want[n]})" for n in want if n in have and have[n] != want[n]]
    out += [f"{n}: missing" for n in want if n not in have] + [f"{n}: undeclared" for n in have if n not in want]
    return "; ".join(out) or f"column order {got.names} vs declared {declared.names}"
