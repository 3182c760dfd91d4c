"""`inbox score`: traceable rows (version, time, snapshot), suppressed contacts left out, reasons that discriminate;
streamed batch by batch into a file that appears only when complete, with the rows of an in-memory pass."""
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.slow

MODELS = ("lead_scoring", "send_time", "content_preference")
WINDOW = (pd.Timestamp("2026-07-15T00:00Z"), pd.Timestamp("2026-07-16T00:00Z"))


@pytest.fixture(scope="module")
def trained(small_world_dir, tmp_path_factory):
    """The shared small world with all three models trained (fast) into a fresh MLflow store, once per module."""
    from trained_store import trained_into_fresh_store

    with trained_into_fresh_store(small_world_dir, tmp_path_factory, MODELS, label="scoring") as (settings, _):
        yield settings


@pytest.fixture()
def lead_model(trained):
    return trained


def _flags(settings):
    from features.pipeline import TABLE_FILES

    eng = pd.read_parquet(settings.features_dir / TABLE_FILES["contact_engagement"],
                          columns=["contact_id", "event_timestamp", "bounced", "unsubscribed", "complained"])
    eng = eng[eng["event_timestamp"] == eng["event_timestamp"].max()].set_index("contact_id")
    prof = pd.read_parquet(settings.features_dir / TABLE_FILES["contact_profile"], columns=["contact_id", "consent"])
    return eng.join(prof.drop_duplicates("contact_id", keep="last").set_index("contact_id"))


def test_score_leaves_out_suppressed_contacts_and_says_what_scored_each_row(lead_model, tmp_path, capsys):
    from inbox.cli import main
    from models.scoring import score_all

    settings = lead_model
    flags = _flags(settings)
    stop = flags["bounced"] | flags["unsubscribed"] | flags["complained"] | ~flags["consent"].astype(bool)
    assert 0 < stop.sum() < len(flags)  # the world has both kinds of contact

    out = tmp_path / "scores.parquet"
    assert main(["score", "lead_scoring", "--out", str(out)]) == 0
    assert f"{int(stop.sum()):,} suppressed contacts left out" in capsys.readouterr().out
    scores = pd.read_parquet(out)
    assert set(scores["contact_id"]) == set(flags.index[~stop])
    assert (scores["model_version"] == "1").all()
    assert scores["snapshot_date"].nunique() == 1
    assert pd.Timestamp(scores["snapshot_date"].iloc[0]) == flags["event_timestamp"].iloc[0].tz_localize(None)
    assert (pd.Timestamp.now(tz="UTC") - scores["scored_at"].iloc[0]) < pd.Timedelta("10min")

    every = score_all("lead_scoring", settings=settings, include_suppressed=True)
    assert len(every) == len(flags)
    why = every.set_index("contact_id")["suppressed"]
    assert set(why[why.notna()].index) == set(flags.index[stop])
    assert (why[flags.index[flags["bounced"]]] == "bounced").all()

    # reasons tell contacts apart: no flag in its ordinary state, and no single phrase leads for nearly everyone
    reasons = pd.Series([r for rs in scores["reasons_positive"] for r in rs] +
                        [r for rs in scores["reasons_negative"] for r in rs])
    assert not reasons.isin(["bounced: no", "unsubscribed: no", "complained: no", "consent: yes"]).any()
    top = scores["reasons_positive"].map(lambda r: r[0] if len(r) else None).value_counts(normalize=True)
    assert top.iloc[0] < 0.5, top.head()
    assert np.isfinite(scores["probability"]).all()


def _in_memory(name, settings):
    """Every contact's features in one frame, suppressed contacts dropped, the model applied once: what a
    pass holding the whole list computes."""
    from models.datasets import latest_contact_features, latest_content_features
    from models.loading import load_champion
    from models.scoring import suppression_reasons

    model = load_champion(name, tracking_uri=settings.tracking_uri)
    frame = latest_contact_features(model.services, settings)
    why = suppression_reasons(settings, frame["contact_id"].to_numpy(), frame["event_timestamp"].max())
    frame = frame[pd.isna(why)].reset_index(drop=True)
    if name == "lead_scoring":
        return model.score(frame)
    if name == "send_time":
        return model.best_slots(frame, frame["timezone"].fillna("UTC").to_numpy(), *WINDOW)
    return model.rank(frame, latest_content_features(settings), k=3)


def _assert_same_rows(got: pd.DataFrame, want: pd.DataFrame) -> None:
    """Same rows, order, dtypes; ids, scores, tiers, slots, ranks and reasons exact. Floats to 1e-12 relative:
    the lead model's linear part (a BLAS matrix-vector product) can differ in the last bit with the number of
    rows it is given, which the batch size changes."""
    def plain(frame):  # reason lists come back from Parquet as arrays
        return frame.apply(lambda c: c.map(lambda v: tuple(v) if isinstance(v, (list, np.ndarray)) else v)
                           if c.dtype == object else c)

    got, want = plain(got), plain(want)
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-12, atol=0)
    for col in want.columns:
        if not pd.api.types.is_float_dtype(want[col]):
            pd.testing.assert_series_equal(got[col], want[col], check_exact=True)


@pytest.mark.parametrize("name", MODELS)
def test_streamed_file_holds_the_rows_of_one_in_memory_pass(trained, tmp_path, name):
    from models.scoring import score_all, score_to_file

    seen = []
    window = dict(window_start=WINDOW[0], window_end=WINDOW[1]) if name == "send_time" else {}
    run, rows = score_to_file(name, tmp_path / "out.parquet", trained, chunk=300,
                              progress=lambda done, total: seen.append((done, total)), **window)
    total = seen[-1][1]
    assert seen == [(min(done, total), total) for done in range(300, total + 300, 300)]  # one call per batch
    assert len(seen) > 5
    got = pd.read_parquet(tmp_path / "out.parquet")
    assert pq.ParquetFile(tmp_path / "out.parquet").metadata.num_row_groups == len(seen)  # appended per batch
    assert len(got) == rows and run.suppressed > 0 and not list(tmp_path.glob(".*"))

    want = _in_memory(name, trained)
    _assert_same_rows(got[list(want.columns)], want)
    assert (got["model_version"] == "1").all() and got["scored_at"].nunique() == 1
    assert (got["snapshot_date"] == run.snapshot.date()).all()
    collected = score_all(name, trained, chunk=1000, **window)  # the DataFrame path: the same batches, collected
    _assert_same_rows(collected.drop(columns="scored_at"), got.drop(columns="scored_at"))


def test_a_failure_mid_way_leaves_the_previous_file_and_no_part(trained, tmp_path):
    from models.scoring import score_to_file

    out = tmp_path / "scores.parquet"
    before = pd.DataFrame({"contact_id": [1, 2]})
    before.to_parquet(out)

    def interrupt(done, total):
        if done >= 600:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        score_to_file("lead_scoring", out, trained, chunk=300, progress=interrupt)
    pd.testing.assert_frame_equal(pd.read_parquet(out), before)
    assert [p.name for p in tmp_path.iterdir()] == ["scores.parquet"]  # the temp file is gone
    fresh = tmp_path / "new.parquet"
    with pytest.raises(KeyboardInterrupt):
        score_to_file("send_time", fresh, trained, chunk=300, progress=interrupt)
    assert [p.name for p in tmp_path.iterdir()] == ["scores.parquet"]


def test_score_file_types_columns_empty_in_the_first_frame_and_refuses_other_columns(tmp_path):
    from models.score_file import ScoreFile

    path = tmp_path / "f.parquet"
    with ScoreFile(path) as out:
        out.write(pd.DataFrame({"contact_id": [1], "why": [None], "reasons": [[]]}))
        out.write(pd.DataFrame({"contact_id": [2], "why": ["bounced"], "reasons": [["opened 3 emails"]]}))
        with pytest.raises(ValueError, match="columns"):
            out.write(pd.DataFrame({"contact_id": [3]}))
    got = pd.read_parquet(path)
    assert got["why"].tolist() == [None, "bounced"] and [list(r) for r in got["reasons"]] == [[], ["opened 3 emails"]]
    with pytest.raises(ValueError, match="--out"):
        ScoreFile(tmp_path / "f.csv")
