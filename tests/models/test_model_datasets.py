import numpy as np
import pandas as pd


def test_asof_join_equals_feast_historical_features(model_settings):
    """The fast as-of join returns what Feast's get_historical_features returns, row for row."""
    from features.store import get_store
    from features.training import training_frame
    from models.datasets import feature_frame, plan_reads

    reads, origin = plan_reads(("lead_scoring", "content_preference"), model_settings)
    assert origin == "feast-registry"
    assert {r.view for r in reads} == {"contact_engagement", "contact_profile", "contact_topics", "content_features"}
    eng = pd.read_parquet(model_settings.features_dir / "contact_engagement.parquet",
                          columns=["contact_id", "event_timestamp"])
    entity = eng.sample(150, random_state=1).reset_index(drop=True)
    entity["event_timestamp"] = entity["event_timestamp"] + pd.to_timedelta(
        np.random.default_rng(0).integers(0, 2 * 86400, len(entity)), unit="s")  # between snapshots, within TTL
    entity["content_id"] = np.int64(3)
    fast = feature_frame(entity, ("lead_scoring", "content_preference"), model_settings)
    assert len(fast) == len(entity)  # every entity row is kept (missing features are NaN)
    store = get_store(model_settings)
    for service in ("lead_scoring", "content_preference"):
        slow = training_frame(entity, service, store=store)  # Feast may drop rows it cannot join
        cols = [c for c in slow.columns if c not in entity.columns]
        keys = ["contact_id", "event_timestamp"]
        both = slow[keys + cols].merge(fast[keys + cols], on=keys, suffixes=("_feast", "_ours"))
        assert len(both) == len(slow) >= 0.9 * len(entity)
        for c in cols:
            a, b = both[f"{c}_feast"], both[f"{c}_ours"]
            if pd.api.types.is_numeric_dtype(a) or pd.api.types.is_bool_dtype(a):
                a, b = a.astype(float), b.astype(float)
                same = (a.isna() & b.isna()) | np.isclose(a, b, rtol=1e-6, atol=1e-9)
            else:
                same = (a.isna() & b.isna()) | (a.astype(str) == b.astype(str))
            assert same.all(), f"{service}.{c} differs from Feast: {both.loc[~same, keys + [f'{c}_feast', f'{c}_ours']].head()}"
