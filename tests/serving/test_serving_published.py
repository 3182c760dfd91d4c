"""Published predictions (`inbox publish`) and the request path that reads them.

Publish writes one row per stored contact with the champions' versions; serving answers from those
rows exactly as the models' batch methods answer on the same features (lead score, send slot over
DST changes / half-hour zones / quiet hours / empty windows, content order); a contact without a row,
or a row from other model versions, is computed live through the same models code and flagged; the
faster model steps (separate content towers, the padded slot choice) equal their references; and no
model step is implemented a second time under `serving/`.
"""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ZONES = ["America/New_York", "Europe/Berlin", "Asia/Kolkata", "Asia/Kathmandu", "Australia/Lord_Howe",
         "America/Sao_Paulo", "UTC", "Pacific/Chatham"]
UNKNOWN = 10**15
WINDOWS = [
    ("2026-03-07T00:00Z", "2026-03-10T00:00Z", (21, 7)),   # US spring-forward (Mar 8)
    ("2026-03-28T13:20Z", "2026-03-30T05:00Z", (22, 6)),   # EU spring-forward (Mar 29), unaligned start
    ("2026-10-24T00:00Z", "2026-10-26T12:00Z", (21, 7)),   # EU fall-back (Oct 25): a repeated local hour
    ("2026-11-01T00:00Z", "2026-11-02T12:00Z", None),      # US fall-back, no quiet hours
    ("2026-06-01T03:00Z", "2026-06-01T05:00Z", (21, 7)),   # short window: quiet everywhere it is night
    ("2026-06-01T00:00Z", "2026-06-10T00:00Z", (8, 20)),   # > a week: every hour-of-week repeats
]
SERVING = Path(__file__).resolve().parents[2] / "serving"


@pytest.fixture(scope="module")
def state(serving_world):
    from serving.state import ServingState

    st = ServingState.load(serving_world)
    yield st
    st.close()


@pytest.fixture(scope="module")
def batch(state):
    """Every stored contact of a sample plus one unknown contact, read as a request reads them."""
    from serving.predict import ContactBatch

    ids = np.append(state.reader.contact_ids(state.contact_services)[:300], UNKNOWN)
    return ContactBatch.read(state, ids, request_time=pd.Timestamp("2026-03-07T00:00Z").to_pydatetime())


def test_publish_writes_one_row_per_contact_with_model_versions(state):
    from features.definitions import MODEL_VERSION_COLUMNS, PREDICTIONS_VIEW

    ids = state.reader.contact_ids(state.contact_services)
    assert len(ids) > 0
    assert np.array_equal(state.reader.contact_ids(PREDICTIONS_VIEW), ids)  # one row per stored contact
    rows = state.reader.read_columns(PREDICTIONS_VIEW, ids)
    for name, column in MODEL_VERSION_COLUMNS.items():
        assert set(rows[column].tolist()) == {str(state.models[name].version)}
    assert np.isfinite(rows["lead_probability"]).all()
    assert set(np.unique(rows["send_level"]).tolist()) <= {0, 1, 2}


def test_batch_reads_published_rows_and_computes_unknown_contacts_live(state, batch):
    from serving.publish import no_feature_columns

    assert (batch.source[:-1] == "published").all()
    assert batch.source[-1] == "live" and batch.fallback[-1] and not batch.fallback[:-1].all()
    assert np.array_equal(batch.fallback, no_feature_columns(batch.features, state.fallback_columns,
                                                             len(batch.contact_ids)))


def test_a_restricted_read_equals_the_same_columns_of_the_full_read(state, batch):
    when = pd.Timestamp("2026-03-08T09:00Z").to_pydatetime()
    full = state.reader.read_columns(state.request_services, batch.contact_ids, request_time=when)
    only = ["timezone", "engagement_score", "local_hour", "lead_score", "send_p_h003", "no_such_feature"]
    got = state.reader.read_columns(state.request_services, batch.contact_ids, request_time=when, only=only)
    assert list(got) == ["contact_id", *[c for c in full if c in only]]
    for name, values in got.items():
        pd.testing.assert_series_equal(pd.Series(values), pd.Series(full[name]), check_exact=True)


def test_served_lead_scores_equal_the_model(state, batch):
    from serving.predict import lead_score_arrays

    ref = state.models["lead_scoring"].score(batch.merged, reasons=False)
    got = lead_score_arrays(batch)
    assert np.array_equal(got.probability, ref["probability"].to_numpy())
    assert np.array_equal(got.score, ref["score"].to_numpy())
    assert got.tier.tolist() == ref["tier"].tolist()


@pytest.mark.parametrize("start,end,quiet", WINDOWS)
def test_served_send_slots_equal_the_model(state, batch, start, end, quiet):
    """Published grids, every fallback level, zones with :30/:45 offsets and DST changes: the same slot,
    probability and level as `SendTimePlanner.best_slots` on the batch's features."""
    from serving.predict import send_slots

    zones = np.array([ZONES[i % len(ZONES)] for i in range(len(batch.contact_ids))], dtype=object)
    batch.columns["timezone"] = zones  # the zone comes with the features
    ref = state.models["send_time"].best_slots(batch.merged, zones, start, end, quiet_hours=quiet)
    got = send_slots(state, batch, start, end, quiet)
    pd.testing.assert_frame_equal(got, ref, check_exact=True)
    assert set(got["level"]) == {"contact", "segment", "population"}


@pytest.mark.parametrize("start,end,quiet", WINDOWS)
def test_a_batch_read_for_its_window_gives_the_same_slots(state, batch, start, end, quiet):
    """A request reads only the grid hours its window can use (`window_hours`); the slots are the
    model's. A batch read for another window reads the hours it lacks."""
    from models.slots import window_hours
    from serving.predict import ContactBatch, send_slots

    zones = np.array([ZONES[i % len(ZONES)] for i in range(len(batch.contact_ids))], dtype=object)
    ref = state.models["send_time"].best_slots(batch.merged, zones, start, end, quiet_hours=quiet)
    for hours in (window_hours(start, end, quiet), window_hours(*WINDOWS[4])):
        got = ContactBatch.read(state, batch.contact_ids, hours=hours)
        assert got.hours == frozenset(hours.tolist())
        got.columns["timezone"] = zones
        pd.testing.assert_frame_equal(send_slots(state, got, start, end, quiet), ref, check_exact=True)


def _pandas_knows(zone: str) -> bool:
    try:
        pd.Timestamp(0, tz=zone)
    except Exception:  # noqa: BLE001 - pytz's UnknownTimeZoneError and friends
        return False
    return True


def test_window_hours_hold_every_zones_allowed_slots():
    from zoneinfo import available_timezones

    from models.slots import window_bounds, window_hours, zone_slots

    zones = sorted(z for z in available_timezones() if _pandas_knows(z))  # not "Factory", "localtime"
    for start, end, quiet in [*WINDOWS, ("2026-12-31T20:00Z", "2027-01-01T20:00Z", (21, 7))]:
        hours = set(window_hours(start, end, quiet).tolist())
        bounds = window_bounds(start, end, quiet)
        for zone in zones:
            assert set(zone_slots(*bounds, zone).how.tolist()) <= hours, (start, zone)
    assert len(window_hours("2026-06-01T00:00Z", "2026-06-02T00:00Z", (21, 7))) < 168 / 2


@pytest.mark.parametrize("subset", [None, "some"])
def test_served_content_order_equals_the_model_ranking(state, batch, subset):
    from serving.predict import content_order, content_rankings

    catalog = state.catalog
    content_ids = None if subset is None else catalog["content_id"].to_numpy()[::3]
    candidates = catalog if subset is None else catalog[catalog["content_id"].isin(content_ids)]
    ref = state.models["content_preference"].rank(batch.merged, candidates, k=4)
    pd.testing.assert_frame_equal(content_rankings(state, batch, content_ids, 4), ref, check_exact=True)
    order = ref["content_id"].to_numpy().reshape(len(batch.contact_ids), -1).tolist()
    assert content_order(state, batch, content_ids, 4) == order


def test_stale_row_is_computed_live_and_flagged(state, serving_world):
    """A published row from another model version is not served: the contact is computed live (same answer
    as the model on its features), `source: live`; re-publishing makes it published again."""
    from features.store import get_store
    from serving.decide import decide
    from serving.predict import ContactBatch, default_window, lead_score_arrays, send_slots
    from serving.publish import arrow_rows, contact_predictions, published_view
    from serving_provider_samples import CAMPAIGN

    ids = state.reader.contact_ids(state.contact_services)[:3]
    store = get_store(serving_world)
    view = published_view(store, state.models, serving_world.features_dir)
    online = store._get_provider().online_store
    fresh = ContactBatch.read(state, ids)
    stale = {**state.model_versions, "send_time": "0"}
    online.write_arrow(store.config, view, arrow_rows(contact_predictions(state.models, fresh.merged.iloc[:1]),
                                                      fresh.fallback[:1], stale,
                                                      pd.Timestamp.now(tz="UTC").to_pydatetime()),
                       "contact_id", "event_timestamp")
    try:
        batch = ContactBatch.read(state, ids)
        assert batch.source.tolist() == ["live", "published", "published"]
        start, end = default_window()
        pd.testing.assert_frame_equal(send_slots(state, batch, start, end),
                                      state.models["send_time"].best_slots(batch.merged, batch.timezones, start, end))
        assert np.array_equal(lead_score_arrays(batch).probability, lead_score_arrays(fresh).probability)
        out = decide(state, CAMPAIGN, ids, start, end)
        assert [d.source for d in out.decisions] == ["live", "published", "published"]
    finally:
        online.write_arrow(store.config, view, arrow_rows(contact_predictions(state.models, fresh.merged.iloc[:1]),
                                                          fresh.fallback[:1], state.model_versions,
                                                          pd.Timestamp.now(tz="UTC").to_pydatetime()),
                           "contact_id", "event_timestamp")
    assert ContactBatch.read(state, ids).source.tolist() == ["published"] * 3


def test_a_new_champion_version_serves_every_row_live(serving_world):
    """Rows published for other versions than the loaded champions (e.g. right after a promotion, before
    `inbox publish`) are all computed live, with the model's answers."""
    from serving.predict import ContactBatch, lead_score_arrays
    from serving.state import ServingState

    st = ServingState.load(serving_world)
    try:
        st.models["lead_scoring"].version = "999"
        batch = ContactBatch.read(st, st.reader.contact_ids(st.contact_services)[:20])
        assert (batch.source == "live").all()
        ref = st.models["lead_scoring"].score(batch.merged, reasons=False)
        assert np.array_equal(lead_score_arrays(batch).probability, ref["probability"].to_numpy())
    finally:
        st.close()


# --- the faster model steps equal their references ----------------------------------------------
def test_content_towers_equal_the_exported_module(state, batch):
    """`ContentRanker` scores through its eager towers; the exported module on pair rows agrees."""
    import torch

    model = state.models["content_preference"]
    A = model.contact_encoder.transform(batch.merged)
    B = model.content_encoder.transform(state.catalog)
    n, m = len(A), len(B)
    pairs = np.ascontiguousarray(np.hstack([np.repeat(A, m, axis=0), np.tile(B, (n, 1))]), dtype=np.float32)
    with torch.no_grad():
        want = model.module(torch.from_numpy(pairs)).numpy().astype(np.float64).reshape(n, m)
    got = model.scores_from_sides(model.contact_side(A), model.content_side(B))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(model.predict_matrix(pairs).reshape(n, m), want, rtol=1e-5, atol=1e-7)
    one = model.contact_side(A[:1])  # a one-row batch: the same tower output as in a large batch
    assert np.array_equal(one, model.contact_side(A)[:1])


@pytest.mark.parametrize("start,end,quiet", WINDOWS)
def test_slot_choice_equals_a_per_contact_reference(start, end, quiet):
    """`models.slots.choose_slots` (zones' slots padded into one matrix, one argmax) against the plain
    definition: per row, its zone's candidate slots outside quiet hours, the first best score."""
    from models.slots import candidate_slots, choose_slots, is_quiet, validate_quiet_hours

    rng = np.random.default_rng(3)
    grid = rng.random((40, 168))
    grid[:, ::7] = grid[:, 1::7]  # ties: the earliest slot wins
    grid[5] = np.nan              # nothing finite: no slot can win over another, the first allowed is taken
    zones = np.array([ZONES[i % len(ZONES)] for i in range(len(grid))], dtype=object)
    got = choose_slots(grid, zones, start, end, quiet)
    q = validate_quiet_hours(quiet)
    for i, zone in enumerate(zones):
        slots = candidate_slots(start, end, zone)
        slots = slots[~is_quiet(slots["local_hour"].to_numpy(), q)]
        if slots.empty:
            assert pd.isna(got["send_at"][i]) and got["how"][i] == -1 and np.isnan(got["probability"][i])
            continue
        scores = np.where(np.isfinite(grid[i, slots["how"]]), grid[i, slots["how"]], -np.inf)
        best = int(np.argmax(scores))
        assert got["send_at"][i] == slots["send_at"].iloc[best]
        assert got["local_time"][i] == slots["local_time"].iloc[best]
        assert got["how"][i] == slots["how"].iloc[best]


def test_a_window_without_allowed_slots_gives_none(state, batch):
    got = state.models["send_time"].best_slots(batch.merged.iloc[:5], ["UTC"] * 5, "2026-06-01T22:00Z",
                                               "2026-06-02T05:00Z", (21, 7))
    assert got["send_at"].isna().all() and got["probability"].isna().all() and len(got) == 5


def test_slot_choice_rejects_what_it_should(state, batch):
    planner = state.models["send_time"]
    level, seg, grid = planner.slot_inputs(batch.merged.iloc[:2])
    with pytest.raises(ValueError, match="timezone"):
        planner.choose([1, 2], level, seg, grid, ["UTC", "Mars/Olympus"], *WINDOWS[0])
    with pytest.raises(ValueError, match="window_end"):
        planner.choose([1, 2], level, seg, grid, ["UTC", "UTC"], WINDOWS[0][1], WINDOWS[0][0])
    with pytest.raises(ValueError, match="window_start"):
        planner.choose([1, 2], level, seg, grid, ["UTC", "UTC"], "2026-03-07T00:00", WINDOWS[0][1])
    with pytest.raises(ValueError, match="quiet_hours"):
        planner.choose([1, 2], level, seg, grid, ["UTC", "UTC"], *WINDOWS[0][:2], (25, 3))


# --- one implementation ------------------------------------------------------------------------
MODEL_LIBRARIES = {"lightgbm", "torch", "sklearn"}
MODEL_INTERNALS = {"booster", "module", "predict_matrix", "contact_tower", "content_tower", "contact_grid",
                   "posterior", "encoder", "contact_encoder", "content_encoder", "segment_grids", "population_grid"}


def test_no_model_step_is_implemented_under_serving():
    """Serving calls the models' public steps; it imports no model library (torch only to set its thread
    count) and reaches into no model internals."""
    for gone in ("contact_table.py", "fast_slots.py", "accelerate.py", "towers.py", "bentoml_fastpath.py"):
        assert not (SERVING / gone).exists(), gone
    for path in sorted(SERVING.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                for name in names:
                    root = name.split(".")[0]
                    if root == "torch" and path.name == "state.py":
                        continue  # single_threaded: torch.set_num_threads
                    assert root not in MODEL_LIBRARIES, f"{path.name} imports {name}"
            if isinstance(node, ast.Attribute):
                assert node.attr not in MODEL_INTERNALS, f"{path.name}:{node.lineno} uses .{node.attr}"


def test_serving_modules_import_without_a_cycle():
    import subprocess
    import sys

    for module in ("serving.predict", "serving.state", "serving.decide", "serving.publish", "serving.warmup"):
        out = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True,
                             cwd=SERVING.parent, timeout=120)
        assert out.returncode == 0, out.stderr


def test_a_structural_champion_is_served_live_until_published_then_from_its_rows(serving_world):
    """The structural regression as champion (model choice, `models.structural_logit`): its contact vectors
    have another width than the published two-tower's, so every row is computed live with the same ranking as
    the model; `inbox publish` for it re-applies the view and serving reads its rows, with the same ranking."""
    from models.content_preference_training import ContentPreferenceSpec
    from models.harness import TrainingContext
    from models.structural_logit import contact_view, content_view
    from serving.predict import ContactBatch, content_rankings
    from serving.publish import publish
    from serving.state import ServingState

    spec = ContentPreferenceSpec(ContentPreferenceSpec().config.fast())
    structural = spec.structural(spec.prepare(TrainingContext(serving_world, fast=True)))
    structural.version = "999"

    def served(st):
        st.models["content_preference"] = structural
        ids = st.reader.contact_ids(st.contact_services)[:25]
        batch = ContactBatch.read(st, ids)
        # the online store's values are the categories the regression was fitted on (types as in training)
        A = structural.contact_encoder.transform(contact_view(batch.merged))
        assert (A[:, : structural.contact_encoder.n_cat] > 0).all()
        B = structural.content_encoder.transform(content_view(st.catalog))
        traits = [j for j, c in enumerate(structural.content_encoder.encoder.columns[: structural.content_encoder.n_cat])
                  if c not in ("item", "urgent_topic")]  # an item or urgency x topic pair may be new to the model
        assert (B[:, traits] > 0).all()
        ref = structural.rank(batch.merged, st.catalog, k=3)
        pd.testing.assert_frame_equal(content_rankings(st, batch, None, 3), ref, check_exact=True)
        return batch.source

    st = ServingState.load(serving_world)
    try:
        assert structural.tower_width != st.models["content_preference"].tower_width
        assert (served(st) == "live").all()
        models = {**st.models, "content_preference": structural}
    finally:
        st.close()
    try:
        publish(serving_world, progress=False, models=models)
        st = ServingState.load(serving_world)
        try:
            assert (served(st) == "published").all()
        finally:
            st.close()
    finally:
        publish(serving_world, progress=False)  # the champions' rows again, for the other tests
