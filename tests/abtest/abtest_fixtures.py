"""Synthetic per-recipient tables for the abtest tests (small, seeded)."""
from __future__ import annotations

import numpy as np
import pandas as pd


def recipient_table(n: int = 6000, seed: int = 0, variants=("a", "b"), open_lift=0.0, rho_pre=0.0) -> pd.DataFrame:
    """Opens, clicks (only after an open), revenue (mostly zero), unsubscribes, a pre-period covariate."""
    rng = np.random.default_rng(seed)
    variant = rng.choice(np.array(variants), size=n)
    treated = variant != variants[0]
    pre = rng.normal(0.0, 1.0, n)
    latent = rho_pre * pre + np.sqrt(1 - rho_pre**2) * rng.normal(0.0, 1.0, n)
    opened = (rng.random(n) < 0.2 + open_lift * treated).astype(np.int64)
    clicked = opened * (rng.random(n) < 0.15)
    revenue = np.where(rng.random(n) < 0.05, rng.lognormal(3.0, 1.0, n), 0.0)
    return pd.DataFrame({
        "variant": variant,
        "open": opened,
        "click": clicked,
        "revenue": revenue,
        "score": 10.0 + latent * 3.0,
        "pre": pre,
        "unsubscribe": (rng.random(n) < 0.004).astype(np.int64),
    })
