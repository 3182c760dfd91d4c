"""The send plan as an input of the lead score: the stored rate-vs-sends line survives MLflow, a plan moves the
probabilities' mean to the line's rate without reordering contacts, and `inbox score --planned-sends` validates."""
import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained_lead(small_world_dir, tmp_path_factory):
    """The shared small world with the lead model trained (fast) into a fresh MLflow store, and its prepared rows."""
    from trained_store import trained_into_fresh_store
    from models.harness import TrainingContext
    from models.training import make_spec

    with trained_into_fresh_store(small_world_dir, tmp_path_factory, ["lead_scoring"], "send_plan") as (settings, r):
        spec = make_spec("lead_scoring", fast=True)
        ctx = TrainingContext(settings)
        yield settings, r["lead_scoring"], spec, ctx, spec.prepare(ctx)


def test_stored_send_volume_line_round_trips_through_mlflow(trained_lead):
    from models.loading import load_champion

    settings, result, spec, ctx, prepared = trained_lead
    model = load_champion("lead_scoring", tracking_uri=settings.tracking_uri)
    line = spec.send_volume_prior(prepared, ctx)  # the same rows as training: the same line
    assert line is not None and model.send_volume == line
    assert line.source_rate == pytest.approx(prepared.valid["converted"].mean())
    assert line.windows == prepared.frame.loc[prepared.frame["block"] != "test", "event_timestamp"].nunique()
    assert line.slope > 0  # more sends, more conversions
    # the run logged what the evaluation served: the plan of the test window and the calibration with it
    import mlflow

    metrics = mlflow.MlflowClient(settings.tracking_uri).get_run(result.run_id).data.metrics
    plan = spec.planned_sends(prepared, ctx)
    assert metrics["test_planned_sends"] == pytest.approx(plan)
    p = model.planned_probability(model.probability(prepared.test), plan)
    assert metrics["test_calibration_ratio"] == pytest.approx(p.mean() / prepared.test["converted"].mean())


def test_a_plan_moves_the_mean_to_its_rate_and_keeps_the_ranking(trained_lead):
    import copy

    from models.loading import load_champion

    settings, _, _, _, prepared = trained_lead
    model = load_champion("lead_scoring", tracking_uri=settings.tracking_uri)
    line = model.send_volume
    rows = prepared.valid  # the calibrator's period: its mean probability is about the source rate
    plain = model.score(rows, reasons=False)
    target = line.source_rate / 2
    plan = (target - line.intercept) / line.slope  # the send volume whose rate is half the source's
    shifted = model.score(rows, reasons=False, planned_sends=plan)
    assert line.rate(plan) == pytest.approx(target)
    ratio = shifted["probability"].mean() / plain["probability"].mean()
    assert ratio == pytest.approx(target / line.source_rate, rel=0.05)  # odds scaling ~ rate scaling at these rates
    assert (np.argsort(shifted["probability"].to_numpy(), kind="stable")
            == np.argsort(plain["probability"].to_numpy(), kind="stable")).all()
    pd.testing.assert_frame_equal(shifted[["contact_id", "score", "tier"]], plain[["contact_id", "score", "tier"]])
    assert model.score(rows, reasons=False, planned_sends=None)["probability"].equals(plain["probability"])
    with pytest.raises(ValueError, match="^planned_sends: expected a finite number"):
        model.score(rows, reasons=False, planned_sends=-1.0)
    old = copy.copy(model)
    old.send_volume = None  # a version trained before the line was stored
    with pytest.raises(ValueError, match="^planned_sends: .*no stored send-volume relation"):
        old.score(rows, reasons=False, planned_sends=plan)


def test_inbox_score_planned_sends_flag(trained_lead, tmp_path, capsys, monkeypatch):
    from inbox.cli import main
    from models.loading import load_champion

    settings = trained_lead[0]
    for var, value in (("INBOX_DATA_DIR", settings.data_dir), ("INBOX_ARTIFACT_ROOT", settings.artifact_root),
                       ("MLFLOW_TRACKING_URI", settings.tracking_uri)):
        monkeypatch.setenv(var, str(value))
    out = tmp_path / "lead.parquet"
    for bad in ("-1", "nan", "inf", "lots"):
        assert main(["score", "lead_scoring", "--out", str(out), f"--planned-sends={bad}"]) == 2
        assert "--planned-sends:" in capsys.readouterr().err
    assert main(["score", "send_time", "--out", str(out), "--planned-sends", "2"]) == 2
    assert "--planned-sends: applies to lead_scoring only" in capsys.readouterr().err
    assert not out.exists()
    assert main(["score", "lead_scoring", "--out", str(out), "--no-reasons"]) == 0
    plain = pd.read_parquet(out)
    assert main(["score", "lead_scoring", "--out", str(out), "--no-reasons", "--planned-sends", "1.5"]) == 0
    planned = pd.read_parquet(out)
    model = load_champion("lead_scoring", tracking_uri=settings.tracking_uri)
    assert np.allclose(planned["probability"], model.planned_probability(plain["probability"].to_numpy(), 1.5))
    assert (planned["score"] == plain["score"]).all()
