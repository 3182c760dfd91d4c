"""Removing a contact's rows from one file-backed store, atomically, leaving no bytes behind.

Parquet: the file is streamed batch by batch into a temp file beside it without the contact's rows
(same Arrow schema and metadata) and renamed over the original, so a crash leaves the old file
or the new one, never half of one; statistics and dictionaries are rebuilt from the rows kept.

SQLite: the delete runs in one transaction, then `VACUUM` rebuilds the file (deleted cells can
survive in free space and, for a key in an index or WITHOUT ROWID b-tree, as a divider key in an
interior page; `secure_delete` alone does not reach those) and `wal_checkpoint(TRUNCATE)` empties
the write-ahead log, which still holds the pages as they were before. VACUUM copies the database,
so its cost grows with the file: erase several contacts in one run.
"""
from __future__ import annotations

import json
import os
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def parquet_rows(path: Path | list[Path], contact_ids, column: str = "contact_id") -> pa.Table:
    """The rows of these contacts in a Parquet file or list of files (empty table when none or no file)."""
    files = [p for p in ([path] if isinstance(path, (str, os.PathLike)) else path) if Path(p).exists()]
    if not files:
        return pa.table({})
    ids = pa.array(np.asarray(contact_ids, dtype=np.int64), pa.int64())
    return pads.dataset([str(p) for p in files], format="parquet").to_table(filter=pc.field(column).isin(ids))


def parquet_batches(source: pq.ParquetFile, batch_rows: int, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    """The file's rows as record batches of at most `batch_rows`, read one row group at a time by its own
    reader: one `iter_batches` over every row group keeps buffers of each group it has passed until it
    ends (pyarrow 25), so its memory grows with the file; this way it is bounded by one row group."""
    for group in range(source.metadata.num_row_groups):
        yield from source.iter_batches(batch_size=batch_rows, columns=columns, row_groups=[group])


def parquet_without(path: Path, contact_ids, column: str = "contact_id", batch_rows: int = 1_000_000) -> int:
    """Rewrite `path` without the rows whose `column` is one of `contact_ids`; rows removed (0: untouched)."""
    if not path.exists():
        return 0
    ids = pa.array(np.asarray(contact_ids, dtype=np.int64), pa.int64())
    hits = pads.dataset(str(path), format="parquet").count_rows(filter=pc.field(column).isin(ids))
    if hits == 0:
        return 0
    source = pq.ParquetFile(path)
    schema = source.schema_arrow
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
            for batch in parquet_batches(source, batch_rows):
                keep = pc.invert(pc.is_in(batch.column(column).cast(pa.int64()), value_set=ids))
                writer.write_batch(pa.RecordBatch.from_arrays(batch.filter(keep).columns, schema=schema))
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return hits


def atomic_write_bytes(path: Path, write) -> None:
    """Write a file through `write(fileobj)` into a temp file beside `path`, then rename it into place."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sqlite_delete(path: Path, statements: list[tuple[str, tuple]], compact: bool = True) -> dict[str, int]:
    """Run DELETE statements (sql, params) in one transaction, then compact the file; {sql label: rows}.

    A statement's label is its first table name after FROM. Nothing happens if the file is missing.
    """
    if not path.exists():
        return {}
    db = sqlite3.connect(path, isolation_level=None, timeout=60)
    try:
        db.execute("PRAGMA secure_delete=ON")
        counts: dict[str, int] = {}
        db.execute("BEGIN IMMEDIATE")
        try:
            for sql, params in statements:
                label = sql.split(" FROM ", 1)[1].split()[0].strip('"')
                counts[label] = counts.get(label, 0) + db.execute(sql, params).rowcount
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        if compact:
            compact_sqlite(db)
        return counts
    finally:
        db.close()


def compact_sqlite(db: sqlite3.Connection) -> None:
    """VACUUM and truncate the WAL, so deleted rows leave no copy in the file or its log."""
    db.execute("VACUUM")
    if db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        return
    for _ in range(100):  # a reader mid-transaction blocks the truncation; readers are short
        if db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0:
            return
        time.sleep(0.1)
    raise RuntimeError("WAL checkpoint blocked by a reader for 10 s; re-run the erasure (it resumes)")


def ids_json(contact_ids) -> str:
    return json.dumps([int(c) for c in contact_ids])
