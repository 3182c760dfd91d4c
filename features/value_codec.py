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
    if len(u) == 0 or u.max() < 128:  # the common case: lengths and small counts are one byte
        return u.astype(np.uint8), np.ones(len(u), dtype=np.int64)
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


def fixed_elements(arr: pa.Array, feast_type: str) -> np.ndarray | None:
    """(n, width) bytes of `RepeatedValue.val` elements when every row has the same width, else None.

    Covers non-null doubles, floats, bools and small non-negative ints: most feature columns.
    """
    n = len(arr)
    if arr.null_count:
        return None
    if feast_type in ("Float64", "Float32"):
        width, tag, dt = (8, _TAG_DOUBLE, "<f8") if feast_type == "Float64" else (4, _TAG_FLOAT, "<f4")
        raw = np.ascontiguousarray(arr.to_numpy(zero_copy_only=False).astype(dt)).view(np.uint8).reshape(n, width)
        head = (_TAG_REPEATED_VAL, width + 1, tag)
    elif feast_type == "Bool":
        raw = np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.uint8).reshape(n, 1)
        head = (_TAG_REPEATED_VAL, 2, _TAG_BOOL)
    elif feast_type == "Int64":
        ints = arr.cast(pa.int64()).to_numpy()
        if n and (ints.min() < 0 or ints.max() >= 128):
            return None
        raw = ints.astype(np.uint8).reshape(n, 1)
        head = (_TAG_REPEATED_VAL, 2, _TAG_INT64)
    else:
        return None
    out = np.empty((n, 3 + raw.shape[1]), dtype=np.uint8)
    out[:, :3] = head
    out[:, 3:] = raw
    return out


def repeated_value_payloads(columns: list[tuple[pa.Array, str]]) -> list[bytes]:
    """One serialized `RepeatedValue` per row from (Arrow column, Feast type name) pairs.

    Runs of fixed-width columns become one (n, width) byte matrix; the variable-width
    rest (nulls, strings, large ints) goes through `interleave`.
    """
    n = len(columns[0][0]) if columns else 0
    parts: list[Part] = []
    block: list[np.ndarray] = []

    def flush():
        if block:
            m = np.concatenate(block, axis=1)
            parts.append((m.reshape(-1), np.full(n, m.shape[1], dtype=np.int64)))
            block.clear()

    for arr, ftype in columns:
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        fixed_cols = fixed_elements(arr, ftype)
        if fixed_cols is not None:
            block.append(fixed_cols)
            continue
        flush()
        vflat, vlen = value_part(arr, ftype)
        lflat, llen = varint(vlen)
        parts += [constant(_TAG_REPEATED_VAL, n), (lflat, llen), (vflat, vlen)]
    flush()
    flat, row_len = parts[0] if len(parts) == 1 else interleave(parts)
    whole = flat.tobytes()
    ends = np.cumsum(row_len)
    starts = ends - row_len
    return [whole[a:b] for a, b in zip(starts.tolist(), ends.tolist())]


def int64_entity_keys(prefix: bytes, ids: np.ndarray) -> list[bytes]:
    """Feast v3 serialized entity keys for one int64 join key: a fixed prefix then the 8-byte value."""
    raw = np.asarray(ids, dtype="<i8").tobytes()
    return [prefix + raw[i : i + 8] for i in range(0, len(raw), 8)]


def decode_payloads(payloads: list[bytes], layout: list[str], wanted: dict[str, str]) -> dict[str, np.ndarray]:
    """Columns of `wanted` {feature: Feast type} from `RepeatedValue` payloads that follow `layout`.

    The inverse of `repeated_value_payloads`, vectorized over rows: the walk goes
    feature by feature through every row at once. Nulls (empty Values) become NaN in
    float columns, or None in object columns; an all-null column is an object column
    of None. This mirrors how pandas builds Feast's `to_df()` from Python lists.
    """
    k = len(payloads)
    if k * len(wanted) <= 400:  # small reads: protobuf's C parser beats per-feature numpy overhead
        return _decode_small(payloads, layout, wanted)
    whole = b"".join(payloads)
    buf = np.frombuffer(whole + b"\x00" * 12, dtype=np.uint8)
    lengths = np.fromiter((len(p) for p in payloads), dtype=np.int64, count=k)
    if lengths.min() == lengths.max():
        uniform = _decode_uniform(buf, whole, k, int(lengths[0]), layout, wanted)
        if uniform is not None:
            return uniform
    ends = np.cumsum(lengths)
    pos = ends - lengths
    out: dict[str, np.ndarray] = {}
    for name in layout:
        b1 = buf[pos + 1].astype(np.int64)
        if b1.max(initial=0) >= 0x80:  # element longer than 127 bytes: two-byte length
            two = b1 >= 0x80
            size = np.where(two, (b1 & 0x7F) | (buf[pos + 2].astype(np.int64) << 7), b1)
            start = pos + 2 + two
        else:
            size, start = b1, pos + 2  # start: first byte of the Value message (its tag)
        ftype = wanted.get(name)
        if ftype is not None:
            out[name] = _decode_values(buf, whole, start, size, ftype)
        pos = start + size
    if k and not np.array_equal(pos, ends):
        raise ValueError("online store payload does not follow its layout (corrupt row?)")
    return out


def _decode_uniform(buf, whole: bytes, k: int, width: int, layout: list[str], wanted: dict[str, str]):
    """Rows of equal length whose element headers are byte-identical share one structure:
    walk the first row once, check the headers of all rows at once, then read every
    feature at fixed offsets. None if the rows differ in structure."""
    rows = buf[: k * width].reshape(k, width)
    first = rows[0]
    spans, header_cols, p = [], [], 0
    for _ in layout:
        if p + 1 >= width or first[p] != _TAG_REPEATED_VAL:
            return None
        b1 = int(first[p + 1])
        if b1 >= 0x80:
            size, start = (b1 & 0x7F) | (int(first[p + 2]) << 7), p + 3
        else:
            size, start = b1, p + 2
        header_cols.extend(range(p, start + (1 if size else 0)))  # 0x0a, length, value tag
        spans.append((start, size))
        p = start + size
    if p != width:
        return None
    cols = np.asarray(header_cols)
    if not (rows[:, cols] == first[cols]).all():
        return None
    starts_of_rows = np.arange(k, dtype=np.int64) * width
    out = {}
    for name, (start, size) in zip(layout, spans):
        ftype = wanted.get(name)
        if ftype is None:
            continue
        out[name] = _decode_values(buf, whole, starts_of_rows + start, np.full(k, size, dtype=np.int64), ftype)
    return out


def _decode_values(buf, whole: bytes, start: np.ndarray, size: np.ndarray, ftype: str) -> np.ndarray:
    present = size > 0
    body = start + 1
    if ftype in ("Float64", "Float32"):
        width, dt = (8, "<f8") if ftype == "Float64" else (4, "<f4")
        raw = buf[body[:, None] + np.arange(width)[None, :]]
        vals = np.ascontiguousarray(raw).view(dt).reshape(-1).astype(np.float64)
        vals[~present] = np.nan
        return _nullable(vals, present, float_ok=True)
    if ftype in ("Int64", "Int32"):
        nbytes = np.maximum(size - 1, 0)
        raw = buf[body[:, None] + np.arange(10)[None, :]].astype(np.uint64) & np.uint64(0x7F)
        raw[np.arange(10)[None, :] >= nbytes[:, None]] = 0
        vals = (raw << (np.arange(10, dtype=np.uint64) * np.uint64(7))[None, :]).sum(axis=1, dtype=np.uint64)
        vals = vals.view(np.int64)
        if ftype == "Int32":
            vals = vals.astype(np.int32).astype(np.int64)
        if present.all():
            return vals
        as_float = vals.astype(np.float64)
        as_float[~present] = np.nan
        return _nullable(as_float, present, float_ok=True)
    if ftype == "Bool":
        vals = buf[body] == 1
        return vals if present.all() else _nullable(vals, present, float_ok=False)
    if ftype == "String":
        vals = np.empty(len(start), dtype=object)
        slen = buf[body].astype(np.int64)
        if present.all() and slen.max(initial=0) < 0x80:  # one-byte lengths: slice directly
            first = (body + 1).tolist()
            vals[:] = [whole[a: a + n].decode("utf-8") for a, n in zip(first, slen.tolist())]
            return vals
        for i, (s, n, ok) in enumerate(zip(body.tolist(), size.tolist(), present.tolist())):
            if not ok:
                continue
            # string_val: varint length then UTF-8 bytes
            ln, shift, j = 0, 0, s
            while True:
                byte = whole[j]
                ln |= (byte & 0x7F) << shift
                j += 1
                if byte < 0x80:
                    break
                shift += 7
            vals[i] = whole[j: j + ln].decode("utf-8")
        return vals
    raise TypeError(f"no fast decoding for Feast type {ftype}")


def _nullable(vals: np.ndarray, present: np.ndarray, float_ok: bool) -> np.ndarray:
    if present.all():
        return vals
    if not present.any():
        return np.full(len(vals), None, dtype=object)
    if float_ok:
        return vals
    obj = vals.astype(object)
    obj[~present] = None
    return obj


def _decode_small(payloads: list[bytes], layout: list[str], wanted: dict[str, str]) -> dict[str, np.ndarray]:
    """Same result as the vectorized walk, via protobuf parsing (fast for a few rows)."""
    from feast.protos.feast.types.Value_pb2 import RepeatedValue

    rows = [RepeatedValue.FromString(p).val for p in payloads]
    out = {}
    for j, name in enumerate(layout):
        ftype = wanted.get(name)
        if ftype is None:
            continue
        vals = []
        for r in rows:
            fields = r[j].ListFields()
            vals.append(fields[0][1] if fields else None)
        present = np.array([v is not None for v in vals], dtype=bool)
        if not present.any():
            out[name] = np.full(len(vals), None, dtype=object)
        elif ftype in ("Float64", "Float32") or (ftype in ("Int64", "Int32") and not present.all()):
            out[name] = np.array([np.nan if v is None else v for v in vals], dtype=np.float64)
        elif ftype in ("Int64", "Int32"):
            out[name] = np.array(vals, dtype=np.int64)
        elif ftype == "Bool" and present.all():
            out[name] = np.array(vals, dtype=bool)
        else:
            out[name] = np.array(vals, dtype=object)
    return out
