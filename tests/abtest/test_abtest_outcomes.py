"""Campaign outcomes from a real (simulated) event log, checked against a pandas computation."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from experiments.abtest import analyze
from experiments.abtest.outcomes import campaign_outcomes, campaign_summary
from inbox.cli import main


@pytest.fixture(scope="module")
def events_dir(tmp_path_factory):
    from simulation.eventlog import write_event_log
    from simulation.history import simulate_history
    from simulation.world import WorldConfig, generate_world

    out = tmp_path_factory.mktemp("data") / "events"
    world = generate_world(WorldConfig(n_contacts=3000, n_days=40, seed=3))
    write_event_log(out, simulate_history(world, progress=False))
    return out


def _largest_campaign(events_dir) -> str:
    summary = campaign_summary(events_dir)
    return summary[summary.variants >= 2].sort_values("sends").campaign_id.iloc[-1]


def test_outcomes_match_a_pandas_join(events_dir):
    campaign = _largest_campaign(events_dir)
    got = campaign_outcomes(events_dir, campaign, window_hours=48, pre_days=14).set_index("send_id")
    sends = pd.read_parquet(events_dir / "sends.parquet")
    events = pd.read_parquet(events_dir / "events.parquet")
    sends = sends[sends.campaign_id == campaign]
    joined = events.merge(sends[["send_id", "sent_at"]], on="send_id")
    joined = joined[joined.occurred_at <= joined.sent_at + pd.Timedelta(hours=48)]
    assert len(got) == len(sends) and set(got.variant) == set(sends.content_id.astype(str))
    for kind in ("open", "click", "unsubscribe"):
        expected = sends.send_id.isin(joined.loc[joined.type == kind, "send_id"]).astype(int).to_numpy()
        assert (got.loc[sends.send_id, kind].to_numpy() == expected).all(), kind
    revenue = joined[joined.type == "conversion"].groupby("send_id").value.sum()
    assert got.revenue.sum() == pytest.approx(revenue.sum())
    t0 = sends.sent_at.min()
    pre = events[(events.occurred_at < t0) & (events.occurred_at >= t0 - pd.Timedelta(days=14))
                 & (events.type == "open")].groupby("contact_id").size()
    expected_pre = sends.contact_id.map(pre).fillna(0).astype(int).to_numpy()
    assert (got.loc[sends.send_id, "pre_opens"].to_numpy() == expected_pre).all()


def test_outcomes_feed_the_analysis_and_cli(events_dir, tmp_path, monkeypatch, capsys):
    campaign = _largest_campaign(events_dir)
    df = campaign_outcomes(events_dir, campaign)
    control = sorted(df.variant.unique())[0]
    result = analyze(df, "variant", control, ["open:binary", "click:binary", "cto:ratio(clicks,opens)"],
                     guardrails=["unsubscribe:binary"], covariate="pre_opens")
    assert {r.metric for r in result.records} == {"open", "click", "cto", "unsubscribe"}
    assert all(np.isfinite(r.p_value) for r in result.records if r.metric == "open")
    monkeypatch.setenv("INBOX_DATA_DIR", str(events_dir.parent))
    out = tmp_path / "ab.parquet"
    assert main(["ab", "outcomes", campaign, "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert pd.read_parquet(out).shape[0] == len(df)
    assert main(["ab", "analyze", str(out), "--variant", "variant", "--control", control,
                 "--metric", "open:binary", "--no-mlflow", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["variants"][0] == control


def test_unknown_campaign_is_a_clear_error(events_dir):
    with pytest.raises(ValueError, match="campaign 'nope' has no sends"):
        campaign_outcomes(events_dir, "nope")
