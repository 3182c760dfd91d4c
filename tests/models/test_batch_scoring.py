"""`inbox score`: traceable rows (version, time, snapshot), suppressed contacts left out, reasons that discriminate."""
import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture()
def lead_model(model_settings):
    from models.training import train_model

    train_model("lead_scoring", settings=model_settings, progress=False, fast=True)
    return model_settings


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
