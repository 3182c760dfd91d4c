"""The vectorized protobuf encoder writes exactly what protobuf itself serializes."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
from feast.protos.feast.types.Value_pb2 import RepeatedValue, Value

from features.value_codec import repeated_value_payloads, varint


def _value(x, ftype):
    if x is None:
        return Value()
    return {"Float64": lambda: Value(double_val=x), "Float32": lambda: Value(float_val=x),
            "Int64": lambda: Value(int64_val=x), "Bool": lambda: Value(bool_val=x),
            "String": lambda: Value(string_val=x)}[ftype]()


def test_payloads_equal_protobuf_serialization():
    rng = np.random.default_rng(1)
    n = 500
    def nulls(xs):
        return [None if rng.random() < 0.2 else x for x in xs]
    cols = [
        (pa.array(nulls(rng.normal(size=n).tolist()), pa.float64()), "Float64"),
        (pa.array(nulls(rng.random(n).astype(np.float32).tolist()), pa.float32()), "Float32"),
        (pa.array(nulls(rng.integers(-(2**62), 2**62, n).tolist()), pa.int64()), "Int64"),
        (pa.array(nulls(rng.integers(0, 300, n).tolist()), pa.int64()), "Int64"),
        (pa.array(nulls((rng.random(n) < 0.5).tolist()), pa.bool_()), "Bool"),
        (pa.array(nulls(["é" * int(k) for k in rng.integers(0, 200, n)])), "String"),
    ]
    got = repeated_value_payloads(cols)
    pylists = [c.to_pylist() for c, _ in cols]
    for i in range(n):
        want = RepeatedValue(val=[_value(vals[i], t) for vals, (_, t) in zip(pylists, cols)]).SerializeToString()
        assert got[i] == want, f"row {i}"


def test_varint_boundaries():
    values = np.array([0, 1, 127, 128, 16383, 16384, 2**63 - 1], dtype=np.uint64)
    flat, lengths = varint(values)
    assert lengths.tolist() == [1, 1, 1, 2, 2, 3, 9]
    assert flat[:3].tolist() == [0, 1, 127] and flat[3:5].tolist() == [0x80, 0x01]
