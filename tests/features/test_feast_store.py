"""Real Feast on a small simulated world: apply, materialize, online reads, point-in-time training."""
from __future__ import annotations

import warnings
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest

warnings.filterwarnings("ignore", message="On demand feature view is an experimental feature")

REQUEST_TIME = datetime(2026, 6, 1, 15, 30, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def world_store(tmp_path_factory):
    from features.store import get_store
    from features.workflow import build_apply_materialize
    from inbox.settings import load_settings
    from simulation.eventlog import write_event_log
    from simulation.history import simulate_history
    from simulation.world import WorldConfig, generate_world

    data = tmp_path_factory.mktemp("world")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INBOX_DATA_DIR", str(data))
        settings = load_settings()
        world = generate_world(WorldConfig(n_contacts=300, n_days=30, seed=3))
        history = simulate_history(world, progress=False)
        write_event_log(settings.events_dir, history)
        summary = build_apply_materialize(settings=settings, progress=False)
        yield settings, get_store(settings), summary, history


def _rows(svc, contact_ids, content_ids=None):
    rows = [{"contact_id": int(c)} for c in contact_ids]
    for i, r in enumerate(rows):
        if svc == "send_time":
            r["request_time"] = REQUEST_TIME
        if content_ids is not None:
            r["content_id"] = int(content_ids[i])
    return rows


def feast_read(store, svc, contact_ids=None, content_ids=None):
    if svc == "content_catalog":
        rows = [{"content_id": int(c)} for c in content_ids]
    else:
        rows = _rows(svc, contact_ids, content_ids)
    return store.get_online_features(features=store.get_feature_service(svc), entity_rows=rows).to_df()


def test_apply_and_materialize_summary(world_store):
    settings, store, summary, history = world_store
    assert summary["apply"]["feature_services"] == 4
    assert {s.name for s in store.list_feature_services()} >= {"lead_scoring", "send_time", "content_preference"}
    eng = pd.read_parquet(settings.features_dir / "contact_engagement.parquet")
    assert summary["materialize"]["contact_engagement rows"] == eng["contact_id"].nunique()
    assert (settings.feast_dir / "online.db").exists() and (settings.feast_dir / "registry.db").exists()


def test_online_values_are_the_newest_snapshot(world_store):
    settings, store, _, _ = world_store
    eng = pd.read_parquet(settings.features_dir / "contact_engagement.parquet")
    newest = eng.sort_values("event_timestamp").groupby("contact_id").tail(1).set_index("contact_id")
    ids = newest.index[:25].to_numpy()
    online = feast_read(store, "lead_scoring", ids).set_index("contact_id")
    for col in ("sends_30d", "open_rate_30d", "engagement_score", "days_since_last_open", "unsubscribed"):
        np.testing.assert_allclose(online.loc[ids, col].astype(float), newest.loc[ids, col].astype(float), rtol=1e-12)


@pytest.mark.parametrize("n", [3, 40])  # 3: protobuf decoding path; 40: vectorized walk
@pytest.mark.parametrize("svc", ["lead_scoring", "send_time", "content_preference", "content_catalog"])
def test_online_reader_equals_feast(world_store, svc, n):
    from features.online import OnlineReader

    _, store, _, history = world_store
    contacts = history["contacts"]["contact_id"].to_numpy()
    ids = np.concatenate([contacts[:n], [10**9]])  # one unknown contact
    content = np.resize(history["content"]["content_id"].to_numpy(), len(ids))
    reader = OnlineReader(store)
    if svc == "content_catalog":
        got = reader.read(svc, content_ids=content)
        want = feast_read(store, svc, content_ids=content)
    else:
        kw = {"request_time": REQUEST_TIME} if svc == "send_time" else {}
        cids = content if svc == "content_preference" else None
        got = reader.read(svc, ids, content_ids=cids, **kw)
        want = feast_read(store, svc, ids, cids)
    assert set(got.columns) == set(want.columns)
    pd.testing.assert_frame_equal(got, want[got.columns])
    if svc != "content_catalog":  # the unknown contact: every contact-side feature is null
        contact_side = [c for c in got.columns if c not in ("contact_id", "content_id", "local_hour",
                        "local_weekday", "local_is_weekend") and not c.startswith(("content_", "subject_", "has_"))]
        assert got.iloc[-1][contact_side].isna().all()


def test_online_reader_unknown_only_and_all_null_columns(world_store):
    from features.online import OnlineReader

    _, store, _, _ = world_store
    got = OnlineReader(store).read("lead_scoring", [10**9, 10**9 + 1])
    want = feast_read(store, "lead_scoring", [10**9, 10**9 + 1])
    pd.testing.assert_frame_equal(got, want[got.columns])


def test_online_reader_rejects_bad_input(world_store):
    from features.online import OnlineReader

    _, store, _, _ = world_store
    reader = OnlineReader(store)
    with pytest.raises(ValueError, match="content_id"):
        reader.read("content_preference", [1, 2])
    with pytest.raises(ValueError, match="same length"):
        reader.read("content_preference", [1, 2], content_ids=[1])
    assert len(reader.read("lead_scoring", [])) == 0


def test_stock_sqlite_store_reads_the_same_values(world_store, tmp_path):
    """Feast's own materialization into its stock SQLite store gives what the batch store serves."""
    from features.store import STOCK_STORE_TYPE, apply, get_store

    settings, store, _, history = world_store
    stock = get_store(feast_dir=tmp_path / "stock", online_store_type=STOCK_STORE_TYPE)
    apply(stock, features_dir=settings.features_dir)
    stock.materialize(start_date=datetime(2000, 1, 1, tzinfo=timezone.utc), end_date=datetime.now(timezone.utc),
                      feature_views=["contact_engagement", "contact_profile", "contact_send_hours"])
    ids = history["contacts"]["contact_id"].to_numpy()[:30]
    want = feast_read(stock, "lead_scoring", ids)
    got = feast_read(store, "lead_scoring", ids)
    pd.testing.assert_frame_equal(got[sorted(got.columns)], want[sorted(want.columns)])
    # the sparse send-hour view (int32 in Parquet, Int64 in Feast) through Feast's own materialize
    refs = [f"contact_send_hours:{f.name}" for f in store.get_feature_view("contact_send_hours").features]
    rows = [{"contact_id": int(c)} for c in ids]
    want = stock.get_online_features(features=refs, entity_rows=rows).to_df()
    got = store.get_online_features(features=refs, entity_rows=rows).to_df()
    pd.testing.assert_frame_equal(got[sorted(got.columns)], want[sorted(want.columns)])


def test_training_frame_is_point_in_time(world_store):
    """opens_total in a training row counts only first opens before the row's snapshot day."""
    from features.training import training_frame

    _, store, _, history = world_store
    rng = np.random.default_rng(0)
    contacts = history["contacts"]["contact_id"].to_numpy()
    start = history["sends"]["sent_at"].min()
    entity = pd.DataFrame({
        "contact_id": rng.choice(contacts, 60),
        "event_timestamp": start + pd.to_timedelta(rng.uniform(2, 29, 60), unit="D"),
    })
    frame = training_frame(entity, "lead_scoring", store=store)
    assert len(frame) == len(entity)
    assert (frame["contact_id"].to_numpy() == entity["contact_id"].to_numpy()).all()
    ev, sends = history["events"], history["sends"]
    first_open = ev[ev["type"] == "open"].groupby("send_id")["occurred_at"].min()
    first_open = pd.DataFrame({"t": first_open}).join(sends.set_index("send_id")["contact_id"])
    for _, r in frame.iterrows():
        day = r["event_timestamp"].floor("D")
        opens = first_open[first_open["contact_id"] == r["contact_id"]]["t"]
        expected = (opens < day).sum()
        if pd.isna(r["opens_total"]):  # no snapshot yet: the contact did not exist before that day
            created = history["contacts"].set_index("contact_id").loc[r["contact_id"], "created_at"]
            assert created >= day - pd.Timedelta(days=1) and expected == 0
            continue
        assert r["opens_total"] == expected
        assert r["opens_total"] <= (opens < r["event_timestamp"]).sum()


def _expected_send_hour_counts(history, grid: pd.DataFrame) -> pd.DataFrame:
    """Independent count of sends / opened sends by local send hour, for each (contact, snapshot) row."""
    sends, contacts, ev = history["sends"], history["contacts"], history["events"]
    tz = contacts.set_index("contact_id")["timezone"]
    s = sends[["send_id", "contact_id", "sent_at"]].copy()
    local = pd.Series(index=s.index, dtype=object)
    for zone, idx in s.groupby(s["contact_id"].map(tz)).groups.items():
        local.loc[idx] = list(s.loc[idx, "sent_at"].dt.tz_convert(zone))
    s["col"] = [f"{'we' if t.weekday() >= 5 else 'wd'}_h{t.hour:02d}" for t in local]
    s["opened_at"] = s["send_id"].map(ev[ev["type"] == "open"].groupby("send_id")["occurred_at"].min())
    m = grid[["contact_id", "event_timestamp"]].merge(s, on="contact_id")
    day = m["event_timestamp"]
    sent = m[m["sent_at"] < day].pivot_table(index=["contact_id", "event_timestamp"], columns="col",
                                            values="send_id", aggfunc="count")
    opened = m[m["opened_at"] < day].pivot_table(index=["contact_id", "event_timestamp"], columns="col",
                                                values="send_id", aggfunc="count")
    out = grid.set_index(["contact_id", "event_timestamp"])[[]]
    for kind in ("wd", "we"):
        for h in range(24):
            c = f"{kind}_h{h:02d}"
            out[f"sent_{c}"] = sent[c] if c in sent else 0
            out[f"sent_opened_{c}"] = opened[c] if c in opened else 0
    return out.fillna(0).astype(int)


def test_sparse_send_hour_counts_equal_dense_recount(world_store):
    """Every daily (contact, snapshot) row: the newest sparse row at or before it == a recount from events."""
    from models.datasets import feature_frame

    settings, store, _, history = world_store
    grid = pd.read_parquet(settings.features_dir / "contact_engagement.parquet", columns=["contact_id", "event_timestamp"])
    sparse = pd.read_parquet(settings.features_dir / "contact_send_hours.parquet")
    assert len(sparse) < len(grid) and not sparse.duplicated(["contact_id", "event_timestamp"]).any()
    joined = feature_frame(grid, "send_time", settings, store=store).set_index(["contact_id", "event_timestamp"])
    want = _expected_send_hour_counts(history, grid)
    cols = list(want.columns)
    assert joined[cols].notna().all().all()  # every daily row finds a sparse row (no TTL, a row at the start)
    np.testing.assert_array_equal(joined.loc[want.index, cols].to_numpy(int), want[cols].to_numpy())
    # the online store holds the newest counts of every contact
    newest = want.groupby(level="contact_id").tail(1).droplevel("event_timestamp")
    ids = newest.index.to_numpy()[:40]
    online = feast_read(store, "send_time", ids).set_index("contact_id")
    np.testing.assert_array_equal(online.loc[ids, cols].to_numpy(int), newest.loc[ids, cols].to_numpy())
