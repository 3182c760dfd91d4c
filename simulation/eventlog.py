"""Read and write the event log with validation and atomic writes.

Readers reject bad input with `SchemaError` naming the table, column and
problem. Writers validate first, write to a temporary file beside the target
and rename it into place, so a failure never leaves a half-written table.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

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
    _schema(table)
    return Path(events_dir) / f"{table}.parquet"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_table(table: str, data: pd.DataFrame | pa.Table, path: str | os.PathLike) -> Path:
    """Validate then atomically write one table to `path` (a .parquet file)."""
    return _write_validated(validate(table, data), path)


def _write_validated(at: pa.Table, path: str | os.PathLike) -> Path:
    """Atomically write an already validated table: temp file beside the target, then rename."""
    path = Path(path)
    os.replace(_write_temp(at, path), path)
    return path


def _write_temp(at: pa.Table, path: Path) -> str:
    """Write `at` to a new temp file beside `path` (removed again if the write fails); its name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        pq.write_table(at, tmp, compression="zstd")
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file normal permissions
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def append_new_rows(table: str, rows: pd.DataFrame | pa.Table, path: str | os.PathLike, key: str,
                    batch_rows: int = 1_000_000) -> int:
    """Append the rows of `rows` whose `key` is not in the table yet; atomically; returns rows added.

    Streams: the existing file is copied batch by batch into a temp file and the new rows written
    after it, so memory is one batch, not the table (a 1M-contact log holds ~50M events). Existing
    keys are looked up only among the new ones (row groups whose key statistics exclude them are
    skipped). Existing rows were validated when written; the new ones are validated here.
    """
    path = Path(path)
    new = validate(table, rows)
    if not path.exists():
        _write_validated(new, path)
        return new.num_rows
    schema = _schema(table).arrow
    if new.num_rows:
        seen = pq.read_table(path, columns=[key], filters=[(key, "in", new.column(key).to_pylist())])
        new = new.filter(pc.invert(pc.is_in(new.column(key), value_set=seen.column(key).combine_chunks())))
    if new.num_rows == 0:
        return 0
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows):
                writer.write_batch(pa.RecordBatch.from_arrays(
                    [batch.column(f.name).cast(f.type) for f in schema], schema=schema))
            writer.write_table(new)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return new.num_rows


def read_table(table: str, path: str | os.PathLike, *, as_arrow: bool = False) -> pd.DataFrame | pa.Table:
    """Read and validate one table; `SchemaError` names the problem."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{table}: no such file {path}")
    try:
        at = pq.read_table(path)
    except pa.ArrowInvalid as exc:
        raise SchemaError(table, None, f"{path} is not a readable Parquet file: {exc}") from None
    at = validate(table, at)
    return at if as_arrow else at.to_pandas()


def write_event_log(events_dir: str | os.PathLike, tables: dict[str, pd.DataFrame | pa.Table]) -> None:
    """Validate every table, write each to a temp file, then rename them all into place.

    Nothing is written if any table is invalid or any write fails (the previous log stays whole).
    """
    validated = {name: validate(name, data) for name, data in tables.items()}
    written: list[tuple[str, Path]] = []
    try:
        for name, at in validated.items():
            path = table_path(events_dir, name)
            written.append((_write_temp(at, path), path))
    except BaseException:
        for tmp, _ in written:
            Path(tmp).unlink(missing_ok=True)
        raise
    for tmp, path in written:
        os.replace(tmp, path)


def read_event_log(events_dir: str | os.PathLike, *, as_arrow: bool = False) -> dict:
    return {name: read_table(name, table_path(events_dir, name), as_arrow=as_arrow) for name in TABLES}
