"""Read and write the event log with validation and atomic writes.

Readers reject bad input with `SchemaError` naming the table, column and
problem. Writers validate first, write to a temporary file beside the target
and rename it into place, so a failure never leaves a half-written table.

A table is a base file `<table>.parquet` plus the segments appends add beside
it (`simulation.segments`: layout, merging, the lock): `append_new_rows` costs
time in proportion to its batch, not to the log. Readers list a table's files
with `table_files` (or give `read_table` / `files_of` the base path).
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from simulation import segments
from simulation.schema import TABLES, TableSchema


class SchemaError(ValueError):
    def __init__(self, table: str, column: str | None, problem: str):
        self.table, self.column, self.problem = table, column, problem
        where = f"{table}.{column}" if column else table
        super().__init__(f"{where}: {problem}")


def _schema(table: str) -> TableSchema:
    if table not in TABLES:
        raise SchemaError(table, None, f"unknown table; expected one of {sorted(TABLES)}")
    return TABLES[table]


def _to_arrow(data: pd.DataFrame | pa.Table) -> pa.Table:
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pd.DataFrame):
        return pa.Table.from_pandas(data, preserve_index=False)
    raise TypeError(f"expected a pandas DataFrame or pyarrow Table, got {type(data).__name__}")


def _cast_column(table: str, col, arr: pa.ChunkedArray) -> pa.ChunkedArray:
    want = col.type
    got = arr.type
    if pa.types.is_timestamp(want):
        if not pa.types.is_timestamp(got):
            raise SchemaError(table, col.name, f"expected a UTC timestamp, got {got}")
        if got.tz is None:
            raise SchemaError(table, col.name, "naive timestamp; timestamps must be timezone-aware UTC")
        return arr.cast(want)  # converts any tz to UTC instant representation
    if got == want:
        return arr
    ok = (
        (pa.types.is_integer(want) and pa.types.is_integer(got))
        or (pa.types.is_floating(want) and (pa.types.is_floating(got) or pa.types.is_integer(got)))
        or (pa.types.is_string(want) and (pa.types.is_large_string(got) or pa.types.is_dictionary(got)))
        or (pa.types.is_null(got) and col.nullable)
    )
    if not ok:
        raise SchemaError(table, col.name, f"expected {want}, got {got}")
    try:
        return arr.cast(want)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise SchemaError(table, col.name, f"cannot cast {got} to {want}: {exc}") from None


def _duplicates(arr: pa.ChunkedArray) -> tuple[object, int]:
    """(one duplicated value, number of surplus copies); (None, 0) when all values are distinct.

    Integer ids go through numpy (an increasing column is checked in one pass,
    otherwise sort and compare neighbours): Arrow's hash-based count_distinct
    takes seconds on millions of ids.
    """
    if pa.types.is_integer(arr.type):
        x = arr.to_numpy()
        if len(x) < 2 or bool((x[1:] > x[:-1]).all()):
            return None, 0
        s = np.sort(x)
        same = s[1:] == s[:-1]
        n_dup = int(same.sum())
        return (s[1:][same][0].item(), n_dup) if n_dup else (None, 0)
    distinct = len(pc.unique(arr))
    if distinct == len(arr):
        return None, 0
    vc = pc.value_counts(arr)
    dup = pc.filter(vc, pc.greater(vc.field("counts"), 1))[0]["values"].as_py()
    return dup, len(arr) - distinct


def validate(table: str, data: pd.DataFrame | pa.Table) -> pa.Table:
    """Return `data` as an Arrow table in the contract's schema, or raise SchemaError."""
    schema = _schema(table)
    at = _to_arrow(data)
    missing = [c.name for c in schema.columns if c.name not in at.column_names]
    if missing:
        raise SchemaError(table, missing[0], f"missing column (required: {', '.join(missing)})")
    arrays = []
    for col in schema.columns:
        arr = _cast_column(table, col, at.column(col.name))
        nulls = arr.null_count
        if nulls and not col.nullable:
            raise SchemaError(table, col.name, f"{nulls} null value(s) in a required column")
        if col.non_negative and len(arr) - nulls:
            lo = pc.min(arr).as_py()
            if lo is not None and lo < 0:
                raise SchemaError(table, col.name, f"negative value {lo}; must be >= 0")
        if col.min_exclusive is not None and len(arr) - nulls:
            lo = pc.min(arr).as_py()
            if lo is not None and lo <= col.min_exclusive:
                raise SchemaError(table, col.name, f"value {lo} must be > {col.min_exclusive}")
        if col.max_inclusive is not None and len(arr) - nulls:
            hi = pc.max(arr).as_py()
            if hi is not None and hi > col.max_inclusive:
                raise SchemaError(table, col.name, f"value {hi} must be <= {col.max_inclusive}")
        if col.allowed is not None and len(arr):
            bad = pc.filter(arr, pc.invert(pc.is_in(arr, value_set=pa.array(col.allowed))))
            if len(bad):
                raise SchemaError(
                    table, col.name, f"unknown value {bad[0].as_py()!r}; allowed: {', '.join(col.allowed)}"
                )
        if col.unique and len(arr):
            dup, n_dup = _duplicates(arr)
            if n_dup:
                raise SchemaError(table, col.name, f"duplicate id {dup!r} ({n_dup} duplicate(s))")
        arrays.append(arr)
    return pa.Table.from_arrays(arrays, schema=schema.arrow)


def table_path(events_dir: str | os.PathLike, table: str) -> Path:
    """The table's base file `<table>.parquet`. Appended rows live in segments beside it: readers list
    a table with `table_files`, or pass this path to `read_table` / `files_of`, which add them."""
    _schema(table)
    return segments.base_path(events_dir, table)


def table_files(events_dir: str | os.PathLike, table: str) -> list[Path]:
    """Every file of `table`, in row order (base file, then segments); [] when the table has none."""
    _schema(table)
    return segments.table_files(events_dir, table)


def files_of(table: str, source: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """The files to read for `source`: a table's base path (`table_path`) means all of its files, any
    other path itself (when it exists), a sequence those paths."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.name == f"{table}.parquet" and table in TABLES:
            return segments.table_files(path.parent, table)
        return [path] if path.exists() else []
    return [Path(p) for p in source]


def sql_file_list(files: Sequence[str | os.PathLike]) -> str:
    """`files` as a DuckDB list literal, e.g. for `read_parquet([...])` in a view (no parameters there)."""
    return "[" + ", ".join("'" + str(f).replace("'", "''") + "'" for f in files) + "]"


def write_table(table: str, data: pd.DataFrame | pa.Table, path: str | os.PathLike) -> Path:
    """Validate then atomically write one table to `path` (a .parquet file). At the base path
    (`table_path`) of a table with appended segments this replaces the whole table, segments included."""
    at = validate(table, data)
    path = Path(path)
    if path.name == f"{table}.parquet" and segments.segment_dir(path.parent, table).exists():
        with segments.eventlog_lock(path.parent):
            return _replace_tables(path.parent, {table: at})[table]
    os.replace(_write_temp(at, path), path)
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_temp(at: pa.Table, target: Path) -> str:
    """Write `at` to a new temp file beside `target` (removed again if the write fails); its name."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        pq.write_table(at, tmp, compression="zstd")
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file normal permissions
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def _replace_tables(events_dir: Path, validated: dict[str, pa.Table]) -> dict[str, Path]:
    """Write every table whole: all temp files first, then the renames, then the files they supersede
    are deleted (`segments.whole_table_target`). Nothing is replaced when a write fails. Lock held."""
    written: list[tuple[str, str, Path]] = []
    try:
        for name, at in validated.items():
            target = segments.whole_table_target(events_dir, name)
            written.append((name, _write_temp(at, target), target))
    except BaseException:
        for _, tmp, _ in written:
            Path(tmp).unlink(missing_ok=True)
        raise
    for name, tmp, target in written:
        os.replace(tmp, target)
    for name, _, _ in written:
        segments.cleanup(events_dir, name, grace=0)
    return {name: target for name, _, target in written}


def append_new_rows(table: str, rows: pd.DataFrame | pa.Table, events_dir: str | os.PathLike, key: str) -> int:
    """Append the rows of `rows` whose `key` is not in the table yet, as a new segment; rows added.

    Time follows the batch, not the log: `new_rows` looks the keys up only in row groups whose key
    statistics can hold them, `append_rows` writes the rest. The caller holds `segments.eventlog_lock(events_dir)`.
    """
    return append_rows(table, new_rows(table, rows, events_dir, key), events_dir)


def new_rows(table: str, rows: pd.DataFrame | pa.Table, events_dir: str | os.PathLike, key: str) -> pa.Table:
    """The validated rows of `rows` whose `key` the table does not hold (exact; reads only row groups
    whose key statistics can hold one, `segments.rows_with_keys`). Lock held, to append them."""
    new = validate(table, rows)
    if new.num_rows:
        seen = segments.rows_with_keys(table_files(events_dir, table), key, new.column(key).to_numpy())
        if seen is not None:
            new = new.filter(pc.invert(pc.is_in(new.column(key), value_set=seen.column(key).combine_chunks())))
    return new


def append_rows(table: str, rows: pd.DataFrame | pa.Table, events_dir: str | os.PathLike, *,
                seq: int | None = None) -> int:
    """Append `rows` as one segment, numbered `seq` (default `next_seq`), without looking their keys up
    in the table: for a writer that knows they are new (e.g. a journal that keeps every key it has
    written, `serving.eventsink`). Validated (keys unique within the batch), written as one segment
    (temp file, then rename), then the table's files are merged by the tier policy
    (`segments.compact`); rows added. The caller holds `segments.eventlog_lock(events_dir)`.
    """
    new = validate(table, rows)
    if new.num_rows == 0:
        return 0
    segments.write_segment(events_dir, table, new, seq)
    segments.compact(events_dir, table, _schema(table).arrow)
    return new.num_rows


def next_seq(events_dir: str | os.PathLike, table: str) -> int:
    """The sequence number `append_rows` gives the table's next segment; a writer records it before
    writing, so after a crash `segments.file_holding` tells whether that segment landed. Lock held."""
    _schema(table)
    return segments.next_seq(events_dir, table)


def compact_table(events_dir: str | os.PathLike, table: str, *, full: bool = False) -> int:
    """Merge the table's files by the tier policy (all into one when `full`); merges done. Lock held."""
    return segments.compact(events_dir, table, _schema(table).arrow, full=full)


def read_table(table: str, path: str | os.PathLike | Sequence[str | os.PathLike], *,
               as_arrow: bool = False) -> pd.DataFrame | pa.Table:
    """Read and validate one table (`files_of(table, path)`: a base path reads its segments too);
    `SchemaError` names the problem."""
    files = files_of(table, path)
    if not files:
        raise FileNotFoundError(f"{table}: no such file {path}")
    parts = []
    for file in files:
        try:
            parts.append(pq.read_table(file))
        except pa.ArrowInvalid as exc:
            raise SchemaError(table, None, f"{file} is not a readable Parquet file: {exc}") from None
    try:
        at = parts[0] if len(parts) == 1 else pa.concat_tables(parts, promote_options="permissive")
    except pa.ArrowInvalid as exc:
        raise SchemaError(table, None, f"files of different schemas: {exc}") from None
    at = validate(table, at)
    return at if as_arrow else at.to_pandas()


def write_event_log(events_dir: str | os.PathLike, tables: dict[str, pd.DataFrame | pa.Table]) -> None:
    """Validate every table, write each to a temp file, then rename them all into place; the segments
    of a table written here are superseded and deleted.

    Nothing is written if any table is invalid or any write fails (the previous log stays whole).
    """
    validated = {name: validate(name, data) for name, data in tables.items()}
    with segments.eventlog_lock(events_dir):
        _replace_tables(Path(events_dir), validated)


def read_event_log(events_dir: str | os.PathLike, *, as_arrow: bool = False) -> dict:
    return {name: read_table(name, table_path(events_dir, name), as_arrow=as_arrow) for name in TABLES}
