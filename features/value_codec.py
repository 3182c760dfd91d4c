"""Vectorized encoding of Arrow columns into Feast `RepeatedValue` protobuf bytes.

The batch online store keeps one row per entity whose payload is a
`feast.types.RepeatedValue` message: one `feast.types.Value` per feature, in
the feature view's order. Building millions of `Value` objects in Python is
what makes Feast's stock materialization slow, so this module writes the
protobuf wire format directly with numpy (wire format:
https://protobuf.dev/programming-guides/encoding/). The bytes are identical
to `RepeatedValue(val=[...]).SerializeToString()` (tested), so protobuf
parses them back.

Value field numbers (feast/types/Value.proto): string_val 2, int32_val 3,
int64_val 4, double_val 5, float_val 6, bool_val 7. A null is an empty Value.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_TAG_STRING, _TAG_INT32, _TAG_INT64, _TAG_DOUBLE, _TAG_FLOAT, _TAG_BOOL = 0x12, 0x18, 0x20, 0x29, 0x35, 0x38
_TAG_REPEATED_VAL = 0x0A  # RepeatedValue.val, field 1, length-delimited

Part = tuple[np.ndarray, np.ndarray]  # (flat uint8 bytes, per-row lengths)


def varint(values: np.ndarray) -> Part:
    """Base-128 varints of unsigned 64-bit values, per row."""
    u = np.asarray(values).astype(np.uint64, copy=False)
    n = np.ones(len(u), dtype=np.int64)
    for k in range(1, 10):
        n += u >= np.uint64(1 << (7 * k))
    shifts = np.arange(10, dtype=np.uint64) * np.uint64(7)
    groups = ((u[:, None] >> shifts[None, :]) & np.uint64(0x7F)).astype(np.uint8)
    cont = np.arange(10)[None, :] < (n[:, None] - 1)
    groups |= (cont * 0x80).astype(np.uint8)
    mask = np.arange(10)[None, :] < n[:, None]
    return groups[mask], n


def constant(byte: int, n_rows: int, present: np.ndarray | None = None) -> Part:
    lengths = np.ones(n_rows, dtype=np.int64) if present is None else present.astype(np.int64)
    return np.full(int(lengths.sum()), byte, dtype=np.uint8), lengths


def fixed(raw: np.ndarray, width: int, present: np.ndarray) -> Part:
    """Fixed-width little-endian values; rows where `present` is False contribute nothing."""
    flat = np.ascontiguousarray(raw[present]).view(np.uint8).reshape(-1)
    return flat, present.astype(np.int64) * width


def interleave(parts: list[Part]) -> Part:
    """Concatenate, row by row, the bytes of several parts (all with the same number of rows)."""
    lengths = np.stack([p[1] for p in parts], axis=1)
    row_len = lengths.sum(axis=1)
    total = int(row_len.sum())
    out = np.empty(total, dtype=np.uint8)
    # start of (row, part) in the output
    starts = (np.cumsum(row_len) - row_len)[:, None] + (np.cumsum(lengths, axis=1) - lengths)
    for j, (flat, ln) in enumerate(parts):
        if len(flat) == 0:
            continue
        src_start = np.cumsum(ln) - ln
        offset = np.repeat(starts[:, j] - src_start, ln)
        out[offset + np.arange(len(flat))] = flat
    return out, row_len


def _masked(values: np.ndarray, present: np.ndarray, fill) -> np.ndarray:
    return np.where(present, values, fill)


def value_part(arr: pa.Array, feast_type: str) -> Part:
    """The bytes of one `Value` per row (empty for nulls), for a Feast primitive type name."""
    n = len(arr)
    present = ~np.asarray(arr.is_null(), dtype=bool) if arr.null_count else np.ones(n, dtype=bool)
    if feast_type == "Float64":
        raw = _masked(arr.to_numpy(zero_copy_only=False).astype("<f8"), present, 0.0)
        return interleave([constant(_TAG_DOUBLE, n, present), fixed(raw, 8, present)])
    if feast_type == "Float32":
        raw = _masked(arr.to_numpy(zero_copy_only=False).astype("<f4"), present, 0.0)
        return interleave([constant(_TAG_FLOAT, n, present), fixed(raw, 4, present)])
    if feast_type in ("Int64", "Int32"):
        ints = pc.fill_null(arr.cast(pa.int64()), 0).to_numpy().astype(np.int64)
        flat, lengths = _present_varint(ints.view(np.uint64), present)  # negatives: 10-byte two's complement
        tag = _TAG_INT64 if feast_type == "Int64" else _TAG_INT32
        return interleave([constant(tag, n, present), (flat, lengths)])
    if feast_type == "Bool":
        bits = np.asarray(pc.fill_null(arr.cast(pa.bool_()), False).to_numpy(zero_copy_only=False), dtype=np.uint8)
        return interleave([constant(_TAG_BOOL, n, present), (bits[present], present.astype(np.int64))])
    if feast_type == "String":
        s = pc.fill_null(arr.cast(pa.string()), "")
        if isinstance(s, pa.ChunkedArray):
            s = s.combine_chunks()
        offsets = np.frombuffer(s.buffers()[1], dtype=np.int32)[s.offset : s.offset + n + 1]
        data = np.frombuffer(s.buffers()[2], dtype=np.uint8) if s.buffers()[2] is not None else np.zeros(0, np.uint8)
        slen = (offsets[1:] - offsets[:-1]).astype(np.int64) * present
        # gather the string bytes of present rows
        idx = np.repeat(offsets[:-1].astype(np.int64), slen) + (np.arange(int(slen.sum())) - np.repeat(np.cumsum(slen) - slen, slen))
        lflat, llen = _present_varint(slen, present)
        return interleave([constant(_TAG_STRING, n, present), (lflat, llen), (data[idx], slen)])
    raise TypeError(f"no fast encoding for Feast type {feast_type}")


def _present_varint(values: np.ndarray, present: np.ndarray) -> Part:
    """Varints of the present rows; absent rows get length 0."""
    flat, ln = varint(values[present])
    lengths = np.zeros(len(values), dtype=np.int64)
    lengths[present] = ln
    return flat, lengths


def repeated_value_payloads(columns: list[tuple[pa.Array, str]]) -> list[bytes]:
    """One serialized `RepeatedValue` per row from (Arrow column, Feast type name) pairs."""
    n = len(columns[0][0]) if columns else 0
    parts: list[Part] = []
    for arr, ftype in columns:
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        vflat, vlen = value_part(arr, ftype)
        lflat, llen = varint(vlen)
        parts += [constant(_TAG_REPEATED_VAL, n), (lflat, llen), (vflat, vlen)]
    flat, row_len = interleave(parts)
    whole = flat.tobytes()
    ends = np.cumsum(row_len)
    starts = ends - row_len
    return [whole[a:b] for a, b in zip(starts.tolist(), ends.tolist())]


def int64_entity_keys(prefix: bytes, ids: np.ndarray) -> list[bytes]:
    """Feast v3 serialized entity keys for one int64 join key: a fixed prefix then the 8-byte value."""
    raw = np.asarray(ids, dtype="<i8").tobytes()
    return [prefix + raw[i : i + 8] for i in range(0, len(raw), 8)]
