"""Segmented event-log tables: an append is a new immutable Parquet file, merged in tiers.

Rewriting a whole table on every append (a webhook flush, a send round) costs time linear in the
log; here an append costs time linear in its batch, plus merges whose cost is amortized.

Layout of table T in the events directory (`table_files` is the one way readers list it):

    T.parquet                           base file, written whole (simulator, `write_table`, older worlds)
    T.parquet.d/part-<lo>-<hi>.parquet  segments; lo, hi are 12-digit sequence numbers

Every file covers a closed range of sequence numbers, the base [0, 0]. An append writes
`part-<n>-<n>` (n one above every hi) to a temp file in the directory and renames it into place. A
merge of consecutive files writes one `part-<lo>-<hi>` spanning their ranges and renames it in:
that rename is the merge's commit point. A file whose range lies inside another's is superseded:
readers skip it, and a writer deletes it once the file that covers it is GRACE_SECONDS old (a
reader that listed it just before can still open it), at once on erasure and whole-table writes.
Row order is the base, then the segments by lo. A crash leaves temp files (`.part-*.tmp`, deleted
by a later writer) or superseded files, never half a segment or a row twice. A whole-table write
of a table that has segments writes `part-0-<n>`, which supersedes every file before it.

Merging (`merge_plan`) is size-tiered, as in the LSM-tree family (P. O'Neil, E. Cheng, D. Gawlick,
E. O'Neil, "The log-structured merge-tree (LSM-tree)", Acta Informatica 33, 1996) and the
logarithmic method (J. L. Bentley, J. B. Saxe, "Decomposable searching problems I: static-to-
dynamic transformation", J. Algorithms 1, 1980): a file's tier is floor(log_FANIN(rows / MIN_ROWS));
a run of at least FANIN consecutive files of one tier becomes one file of a higher tier. With
appends of similar size every row is rewritten about log_FANIN(table rows / MIN_ROWS) times and a
table holds at most FANIN - 1 files per tier. Appends of very different sizes can interleave
tiers, so a table with more than MAX_FILES files also merges its FANIN consecutive files with the
fewest rows. Merges stream one row group at a time.

Every writer holds `eventlog_lock(events_dir)` (flock on `events_dir/.eventlog.lock`).
"""
from __future__ import annotations

import contextlib
import fcntl
import math
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

LOCK = ".eventlog.lock"
FANIN = 4
MIN_ROWS = 4096
MAX_FILES = 32
GRACE_SECONDS = 3600.0
ROW_GROUP_ROWS = 262_144
_PART = re.compile(r"^part-(\d{12})-(\d{12})\.parquet$")
_TEMP = re.compile(r"^\.part.*\.tmp$")


@contextlib.contextmanager
def eventlog_lock(events_dir: str | os.PathLike):
    """Exclusive lock held by every process writing an event-log table (appends, merges, erasure)."""
    events_dir = Path(events_dir)
    events_dir.mkdir(parents=True, exist_ok=True)
    with open(events_dir / LOCK, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def base_path(events_dir: str | os.PathLike, table: str) -> Path:
    return Path(events_dir) / f"{table}.parquet"


def segment_dir(events_dir: str | os.PathLike, table: str) -> Path:
    return Path(events_dir) / f"{table}.parquet.d"


@dataclass(frozen=True)
class Piece:
    """One file of a table and the closed range of sequence numbers it covers."""

    path: Path
    lo: int
    hi: int


def _pieces(events_dir, table: str) -> list[Piece]:
    """Every file of the table, superseded ones included, by (lo, -hi)."""
    out = []
    base = base_path(events_dir, table)
    if base.exists():
        out.append(Piece(base, 0, 0))
    folder = segment_dir(events_dir, table)
    if folder.is_dir():
        for entry in os.scandir(folder):
            m = _PART.match(entry.name)
            if m:
                out.append(Piece(Path(entry.path), int(m.group(1)), int(m.group(2))))
    return sorted(out, key=lambda p: (p.lo, -p.hi))


def _split(pieces: list[Piece]) -> tuple[list[Piece], list[tuple[Piece, Piece]]]:
    """(live files in order, [(superseded file, the live file covering it)])."""
    live: list[Piece] = []
    dead: list[tuple[Piece, Piece]] = []
    for p in pieces:  # by lo, widest first: a range inside an earlier one is superseded
        if live and p.hi <= live[-1].hi:
            dead.append((p, live[-1]))
        else:
            live.append(p)
    return live, dead


def table_files(events_dir: str | os.PathLike, table: str) -> list[Path]:
    """The files holding table `table`, in row order; [] when it has none. The one entry point for
    readers: pass the list to `pyarrow.dataset.dataset`, DuckDB's `read_parquet([...])`, or loop."""
    return [p.path for p in _split(_pieces(events_dir, table))[0]]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temp_in(folder: Path, name: str) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    return tmp


def _publish(tmp: str, target: Path) -> Path:
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file normal permissions
    os.replace(tmp, target)
    return target


def _part_name(lo: int, hi: int) -> str:
    return f"part-{lo:012d}-{hi:012d}.parquet"


def _next_seq(pieces: list[Piece]) -> int:
    return max((p.hi for p in pieces), default=0) + 1


def next_seq(events_dir, table: str) -> int:
    """The sequence number the table's next appended segment takes (one above every file's hi). Lock held."""
    return _next_seq(_pieces(events_dir, table))


def file_holding(events_dir, table: str, seq: int) -> Path | None:
    """The live file whose range holds sequence number `seq` (the segment appended as `seq`, or the
    merge or whole-table write that replaced it); None when no file does."""
    return next((p.path for p in _split(_pieces(events_dir, table))[0] if p.lo <= seq <= p.hi), None)


def write_segment(events_dir, table: str, at: pa.Table, seq: int | None = None) -> Path:
    """Write the validated rows `at` as segment `part-<seq>-<seq>` (default `next_seq`; a given `seq`
    must be at least that, so it is one no file holds) by temp file, then rename. Lock held."""
    first = _next_seq(_pieces(events_dir, table))
    if seq is None:
        seq = first
    elif seq < first:
        raise ValueError(f"{table}: segment {seq} is taken (the next free one is {first})")
    folder = segment_dir(events_dir, table)
    tmp = _temp_in(folder, "part")
    try:
        pq.write_table(at, tmp, compression="zstd", row_group_size=ROW_GROUP_ROWS)
        return _publish(tmp, folder / _part_name(seq, seq))
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def whole_table_target(events_dir, table: str) -> Path:
    """The final path of a whole-table write: the base file while the table
    has no live segment, else `part-0-<n>`, which supersedes every file of the table. Lock held."""
    pieces = _pieces(events_dir, table)
    live = _split(pieces)[0]
    if any(p.lo > 0 or p.hi > 0 for p in live):
        folder = segment_dir(events_dir, table)
        folder.mkdir(exist_ok=True)
        return folder / _part_name(0, _next_seq(pieces))
    return base_path(events_dir, table)


def rows_with_keys(files: list[Path], key: str, wanted, columns: list[str] | None = None) -> pa.Table | None:
    """Rows of `files` whose integer `key` is in `wanted`, with `columns` (default: the key only); None
    when there are none. Reads only row groups whose key statistics can hold a wanted key, and in
    them the key column first, the other columns only of groups that hold one."""
    wanted = np.unique(np.asarray(wanted, dtype=np.int64))
    columns = columns or [key]
    parts = []
    if len(wanted) == 0:
        return None
    value_set = pa.array(wanted)
    for path in files:
        pf = pq.ParquetFile(path, pre_buffer=False)
        idx = pf.schema_arrow.get_field_index(key)
        for g in range(pf.metadata.num_row_groups):
            stats = pf.metadata.row_group(g).column(idx).statistics
            if stats is not None and stats.has_min_max:
                inside = np.searchsorted(wanted, stats.max, "right") - np.searchsorted(wanted, stats.min, "left")
                if inside == 0:
                    continue
            ids = pf.read_row_group(g, columns=[key])
            hit = pc.is_in(ids.column(0), value_set=value_set)  # a hash lookup per key
            if pc.any(hit).as_py():
                parts.append((pf.read_row_group(g, columns=columns) if columns != [key] else ids).filter(hit))
    return pa.concat_tables(parts, promote_options="permissive") if parts else None


def column_max(files: list[Path], column: str):
    """Largest value of `column` over `files` (None when no rows): from row-group statistics where every
    group has them, else read."""
    top = None
    for path in files:
        pf = pq.ParquetFile(path, pre_buffer=False)
        idx = pf.schema_arrow.get_field_index(column)
        for g in range(pf.metadata.num_row_groups):
            rg = pf.metadata.row_group(g)
            if rg.num_rows == 0:
                continue
            stats = rg.column(idx).statistics
            if stats is not None and stats.has_min_max:
                value = stats.max
            else:
                value = pc.max(pf.read_row_group(g, columns=[column]).column(0)).as_py()
            if value is not None and (top is None or value > top):
                top = value
    return top


# --- merging ---------------------------------------------------------------------------------------
def tier(rows: int, fanin: int = FANIN, min_rows: int = MIN_ROWS) -> int:
    return int(math.floor(math.log(max(rows, min_rows) / min_rows, fanin) + 1e-9))


def merge_plan(rows: list[int], fanin: int = FANIN, min_rows: int = MIN_ROWS,
               max_files: int = MAX_FILES) -> tuple[int, int] | None:
    """The next merge of consecutive files with these row counts, as (start, stop) indices, or None.

    The lowest-tier run of at least `fanin` consecutive files of one tier; else, past `max_files`
    files, the `fanin` consecutive files with the fewest rows."""
    tiers = [tier(r, fanin, min_rows) for r in rows]
    best = None
    i = 0
    while i < len(tiers):
        j = i
        while j < len(tiers) and tiers[j] == tiers[i]:
            j += 1
        if j - i >= fanin and (best is None or tiers[i] < tiers[best[0]]):
            best = (i, j)
        i = j
    if best is not None:
        return best
    if len(rows) > max_files:
        sums = np.convolve(np.asarray(rows, dtype=np.float64), np.ones(fanin), "valid")
        start = int(np.argmin(sums))
        return start, start + fanin
    return None


def _merge(events_dir, table: str, pieces: list[Piece], schema: pa.Schema) -> Path:
    """Write `pieces` (consecutive) as one segment spanning their ranges; streamed, one row group at a time."""
    folder = segment_dir(events_dir, table)
    tmp = _temp_in(folder, "part")
    try:
        with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
            held: list[pa.RecordBatch] = []
            n = 0
            for piece in pieces:
                source = pq.ParquetFile(piece.path, pre_buffer=False)
                for g in range(source.metadata.num_row_groups):
                    for batch in source.iter_batches(batch_size=ROW_GROUP_ROWS, row_groups=[g]):
                        held.append(pa.RecordBatch.from_arrays(
                            [batch.column(f.name).cast(f.type) for f in schema], schema=schema))
                        n += batch.num_rows
                        if n >= ROW_GROUP_ROWS:
                            writer.write_table(pa.Table.from_batches(held, schema), row_group_size=ROW_GROUP_ROWS)
                            held, n = [], 0
            if held:
                writer.write_table(pa.Table.from_batches(held, schema), row_group_size=ROW_GROUP_ROWS)
        return _publish(tmp, folder / _part_name(pieces[0].lo, pieces[-1].hi))
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def compact(events_dir, table: str, schema: pa.Schema, *, full: bool = False) -> int:
    """Merge the table's files by `merge_plan` (all of them into one when `full`); merges done. Lock held."""
    merges = 0
    while True:
        live = _split(_pieces(events_dir, table))[0]
        if full:
            plan = (0, len(live)) if len(live) > 1 else None
        else:
            plan = merge_plan([pq.read_metadata(p.path).num_rows for p in live])
        if plan is None:
            break
        _merge(events_dir, table, live[plan[0]:plan[1]], schema)
        merges += 1
    cleanup(events_dir, table)
    return merges


def cleanup(events_dir, table: str, grace: float = GRACE_SECONDS) -> int:
    """Delete superseded files whose covering file is older than `grace` seconds, and temp files older
    than that; files deleted. The segment folder goes when it is empty. Lock held."""
    now = time.time()
    gone = 0
    for old, cover in _split(_pieces(events_dir, table))[1]:
        if grace <= 0 or now - cover.path.stat().st_mtime >= grace:
            old.path.unlink(missing_ok=True)
            gone += 1
    folder = segment_dir(events_dir, table)
    if folder.is_dir():
        for entry in os.scandir(folder):
            if _TEMP.match(entry.name) and (grace <= 0 or now - entry.stat().st_mtime >= grace):
                Path(entry.path).unlink(missing_ok=True)
                gone += 1
        with contextlib.suppress(OSError):
            folder.rmdir()  # only when empty
    return gone
