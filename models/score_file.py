"""A Parquet file written batch by batch and put in place only when complete.

`inbox score` appends each scored batch as it comes (`pyarrow.parquet.ParquetWriter`) to a hidden
temp file beside the target; leaving the `with` block normally renames it onto the target
(`os.replace`, atomic on one file system), any exception (Ctrl-C included) deletes it. A reader of
the target sees the previous file or the complete new one, never a part.

The file's schema is the first batch's. A column with no value in that batch (Arrow type null,
or a list of nulls) is typed as a string column: the only output columns that can be empty in a
batch are texts (reasons, suppression reasons, local times).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def _typed(field: pa.Field) -> pa.Field:
    if pa.types.is_null(field.type):
        return field.with_type(pa.string())
    if pa.types.is_list(field.type) and pa.types.is_null(field.type.value_type):
        return field.with_type(pa.list_(pa.string()))
    return field


def parquet_target(path) -> Path:
    """`path` as a Path, checked to name a .parquet file (the error names --out, the CLI flag)."""
    path = Path(path)
    if path.suffix != ".parquet":
        raise ValueError(f"--out: expected a .parquet file name, got {str(path)!r}")
    return path


class ScoreFile:
    """`with ScoreFile(path) as out: out.write(frame) ...`; `frames` and `rows` count what was written."""

    def __init__(self, path):
        self.path = parquet_target(path)
        self.frames = self.rows = 0
        self._tmp: Path | None = None
        self._writer: pq.ParquetWriter | None = None
        self._schema: pa.Schema | None = None

    def __enter__(self) -> "ScoreFile":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        os.close(fd)
        self._tmp = Path(tmp)
        return self

    def write(self, frame: pd.DataFrame) -> None:
        """Append `frame`'s rows (its columns and dtypes must match the first frame's)."""
        if self._tmp is None:
            raise RuntimeError("ScoreFile.write outside its `with` block")
        if self._schema is None:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            self._schema = pa.schema([_typed(f) for f in table.schema], metadata=table.schema.metadata)
            self._writer = pq.ParquetWriter(self._tmp, self._schema)
            table = table.cast(self._schema)
        else:
            if list(frame.columns) != self._schema.names:
                raise ValueError(f"frame: columns {list(frame.columns)} differ from the file's {self._schema.names}")
            table = pa.Table.from_pandas(frame, schema=self._schema, preserve_index=False)
        self._writer.write_table(table)
        self.frames += 1
        self.rows += len(frame)

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if self._writer is not None:
                self._writer.close()
            if exc_type is None:
                if self._writer is None:
                    raise ValueError(f"{self.path}: nothing was written (a file needs at least one frame)")
                os.replace(self._tmp, self.path)
        finally:
            if self._tmp is not None:
                self._tmp.unlink(missing_ok=True)
            self._tmp = None
