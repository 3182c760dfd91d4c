"""Local send/open hour bins equal pandas' conversion across DST transitions, unknown zones as UTC."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.snapshots import local_hour_bins

ZONES = ["America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "Asia/Kathmandu", "America/St_Johns",
         "Pacific/Chatham", "UTC", "Not/AZone"]


def pandas_bins(c, t, tz_codes, zones):
    out = np.zeros(len(t), dtype=np.int64)
    for i, (cc, tt) in enumerate(zip(c, t)):
        ts = pd.Timestamp(int(tt), unit="us", tz="UTC")
        try:
            ts = ts.tz_convert(zones[tz_codes[cc]])
        except Exception:
            pass
        out[i] = ts.hour + 24 * (ts.dayofweek >= 5)
    return out


@pytest.mark.parametrize("n_facts", [400_000, 400])
def test_bins_across_dst_transitions(n_facts):
    rng = np.random.default_rng(n_facts)
    tz_codes = np.arange(len(ZONES))
    c = rng.integers(0, len(ZONES), n_facts)
    # spring/autumn transitions of both hemispheres fall in Mar-Apr and Sep-Nov 2026
    start = pd.Timestamp("2026-03-25", tz="UTC").value // 1000
    t = start + rng.integers(0, 14 * 86_400_000_000, n_facts)
    t[: n_facts // 2] += 190 * 86_400_000_000
    got = local_hour_bins(c, t, tz_codes, ZONES)
    sample = rng.choice(n_facts, min(n_facts, 3000), replace=False)
    np.testing.assert_array_equal(got[sample], pandas_bins(c[sample], t[sample], tz_codes, ZONES))
    assert set(np.unique(got)) <= set(range(48))
