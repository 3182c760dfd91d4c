"""`OnlineReader.read_columns`: several services' contact sides in one read, as numpy columns,
equal to Feast's `get_online_features`; and the grouped payload decoder equal to `decode_payloads`."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from tests.features.test_feast_store import REQUEST_TIME, feast_read, world_store  # noqa: F401 - fixture

SERVICES = ("lead_scoring", "send_time", "content_preference")


def _contact_side(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c != "content_id"]


@pytest.mark.parametrize("n", [1, 3, 40])  # 1 and 3: the Python walk; 40: the numpy walk
def test_read_columns_equal_feast(world_store, n):  # noqa: F811
    from features.online import OnlineReader

    _, store, _, history = world_store
    contacts = history["contacts"]["contact_id"].to_numpy()
    ids = np.concatenate([contacts[:n], [10**9]])  # one unknown contact
    content = np.resize(history["content"]["content_id"].to_numpy(), len(ids))
    reader = OnlineReader(store)
    got = reader.read_columns(SERVICES, ids, request_time=REQUEST_TIME)
    assert list(got)[0] == "contact_id" and all(isinstance(v, np.ndarray) for v in got.values())
    seen = set()
    for svc in SERVICES:
        cids = content if svc == "content_preference" else None
        want = feast_read(store, svc, ids, cids)
        own = reader.read(svc, ids, content_ids=cids, request_time=REQUEST_TIME)
        contact_cols = [c for c in _contact_side(own) if c in got]
        # every contact-side column of the service is there (the content side is not read)
        assert set(_contact_side(own)) - set(contact_cols) <= set(reader.read("content_catalog",
                                                                              content_ids=content[:1]).columns)
        frame = pd.DataFrame({c: got[c] for c in contact_cols})
        pd.testing.assert_frame_equal(frame, want[contact_cols], check_exact=True)
        pd.testing.assert_frame_equal(frame, own[contact_cols], check_exact=True)
        seen.update(contact_cols)
    assert seen == set(got)  # nothing extra
    lead_cols = [c for c in reader.read("lead_scoring", ids[:1]).columns if c != "contact_id"]
    assert all(pd.isna(got[c][-1]) for c in lead_cols)  # the unknown contact: all null


def test_read_columns_plan_is_the_union_in_service_order(world_store):  # noqa: F811
    from features.online import OnlineReader

    _, store, _, _ = world_store
    reader = OnlineReader(store)
    plan = reader.contact_plan(SERVICES)
    assert plan is reader.contact_plan(list(SERVICES))  # cached
    assert plan.columns[0] == "contact_id" and len(plan.columns) == len(set(plan.columns))
    first = [c for c in reader.contact_plan("lead_scoring").columns]
    assert plan.columns[: len(first)] == first
    one = reader.read_columns("send_time", [1, 2], request_time=REQUEST_TIME)
    assert list(one) == reader.contact_plan("send_time").columns
    with pytest.raises(ValueError, match="services"):
        reader.read_columns([], [1])


def _random_columns(rng, n: int, null: float):
    def nulls(xs):
        return [None if rng.random() < null else x for x in xs]

    return [
        (pa.array(nulls(rng.normal(size=n).tolist()), pa.float64()), "Float64"),
        (pa.array(nulls(rng.random(n).astype(np.float32).tolist()), pa.float32()), "Float32"),
        (pa.array(nulls(rng.integers(-(2**62), 2**62, n).tolist()), pa.int64()), "Int64"),
        (pa.array(nulls(rng.integers(0, 300, n).tolist()), pa.int64()), "Int64"),
        (pa.array(nulls(rng.integers(-5, 300, n).tolist()), pa.int32()), "Int32"),
        (pa.array(nulls((rng.random(n) < 0.5).tolist()), pa.bool_()), "Bool"),
        (pa.array(nulls(["é" * int(k) for k in rng.integers(0, 50, n)])), "String"),
        (pa.array(nulls(["x" * int(k) for k in rng.integers(100, 300, n)])), "String"),  # general decoder
    ]


@pytest.mark.parametrize("n", [1, 4, 5, 60])
@pytest.mark.parametrize("null", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("long_strings", [False, True])
def test_grouped_decoder_equals_decode_payloads(n, null, long_strings):
    from features.online_decode import decode_columns
    from features.value_codec import decode_payloads, repeated_value_payloads

    rng = np.random.default_rng(n * 10 + int(null * 10))
    cols = _random_columns(rng, n, null)
    if not long_strings:
        cols = cols[:-1]
    payloads = repeated_value_payloads(cols)
    layout = [f"f{i}" for i in range(len(cols))]
    wanted = {f"f{i}": t for i, (_, t) in enumerate(cols) if i != 1}  # one feature not wanted
    want = decode_payloads(payloads, layout, wanted)
    got = decode_columns(payloads, layout, wanted)
    assert list(got) == list(want)
    for name in want:
        assert got[name].dtype == want[name].dtype, name
        if want[name].dtype == object:
            assert got[name].tolist() == want[name].tolist(), name
        else:
            assert np.array_equal(got[name], want[name], equal_nan=True), name


def test_grouped_decoder_rejects_a_payload_that_breaks_its_layout():
    from features.online_decode import decode_columns
    from features.value_codec import repeated_value_payloads

    payloads = repeated_value_payloads([(pa.array([1.0, 2.0]), "Float64")] * 3)
    for rows in (payloads[:1], payloads * 3):
        with pytest.raises(ValueError, match="layout"):
            decode_columns(rows, ["a", "b"], {"a": "Float64", "b": "Float64"})
