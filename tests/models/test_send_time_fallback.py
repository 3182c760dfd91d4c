import lightgbm as lgb
import numpy as np
import pandas as pd

from models.encoding import FeatureEncoder
from models.send_time import SLOT_COLUMNS, SendTimePlanner, share_columns
from models.slots import HOURS_PER_WEEK


def _planner():
    enc = FeatureEncoder(["seniority", "open_rate_90d"], {"seniority": ["director", "ic"]})
    rng = np.random.default_rng(0)
    X = rng.random((400, len(enc.columns) + len(SLOT_COLUMNS)))
    y = (X[:, 1] > 0.5).astype(int)
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_threads": 1, "min_data_in_leaf": 5},
                        lgb.Dataset(X, y), 5)
    how = np.arange(HOURS_PER_WEEK)
    segment = np.where(how % 24 == 8, 0.5, 0.1)  # segment "ic|software" prefers 08:00
    population = np.where(how % 24 == 15, 0.4, 0.1)  # population prefers 15:00
    return SendTimePlanner(booster, enc, ["ic|software"], segment[None, :], population, min_contact_opens=3)


def _features():
    rows = []
    for cid, opens, seniority, industry in [(1, 12, "ic", "software"), (2, 0, "ic", "software"),
                                            (3, 1, "director", "unknown_industry")]:
        r = {"contact_id": cid, "seniority": seniority, "industry": industry, "open_rate_90d": 0.2,
             "opens_weekday": opens, "opens_weekend": 0, "best_hour_weekday": 9, "best_hour_weekend": 10}
        r.update({c: 1 / 24 for c in share_columns("wd") + share_columns("we")})
        rows.append(r)
    return pd.DataFrame(rows)


def test_levels_fall_back_contact_segment_population():
    planner = _planner()
    out = planner.best_slots(_features(), ["Europe/Berlin"] * 3, "2026-06-03T00:00Z", "2026-06-04T00:00Z")
    assert out["level"].tolist() == ["contact", "segment", "population"]
    local = out["send_at"].dt.tz_convert("Europe/Berlin").dt.hour.tolist()
    assert local[1] == 8 and local[2] == 15  # segment and population grids decided
    assert out["probability"].iloc[1] == 0.5 and out["probability"].iloc[2] == 0.4
    assert list(out.columns) == ["contact_id", "send_at", "local_time", "probability", "level"]


def test_threshold_moves_contacts_between_levels():
    planner = _planner()
    planner.min_contact_opens = 20
    level, _ = planner.levels(_features())
    assert level.tolist() == ["segment", "segment", "population"]
