"""Labels from the event log, vectorized (DuckDB-free: sorted searches in numpy)."""
from __future__ import annotations

import numpy as np
import pandas as pd


def _us(ts) -> np.ndarray:
    return pd.DatetimeIndex(pd.to_datetime(pd.Series(ts), utc=True)).as_unit("us").asi8


def any_event_in_window(entity: pd.DataFrame, events: pd.DataFrame, event_type: str, horizon) -> np.ndarray:
    """Per entity row (contact_id, event_timestamp): did the contact have `event_type` in [t, t + horizon)?

    One sorted composite key (contact, time) for events; two `searchsorted` calls count
    the events inside each row's window.
    """
    ev = events.loc[events["type"] == event_type]
    span = pd.Timedelta(horizon).value // 1000
    c_ev = ev["contact_id"].to_numpy(np.int64)
    t_ev = _us(ev["occurred_at"])
    c = entity["contact_id"].to_numpy(np.int64)
    t = _us(entity["event_timestamp"])
    if len(c_ev) == 0 or len(c) == 0:
        return np.zeros(len(c), dtype=bool)
    base = min(t_ev.min(), t.min())
    width = int(max(t_ev.max(), (t + span).max()) - base) + 1
    contacts = np.unique(np.concatenate([c_ev, c]))
    key_ev = np.sort(np.searchsorted(contacts, c_ev) * width + (t_ev - base))
    key = np.searchsorted(contacts, c) * width + (t - base)
    return np.searchsorted(key_ev, key + span, side="left") > np.searchsorted(key_ev, key, side="left")


def send_outcome(sends: pd.DataFrame, events: pd.DataFrame, event_type: str, within=None) -> np.ndarray:
    """Per send row: did the send get an `event_type` event (within `within` of sent_at, if given)?"""
    ev = events.loc[events["type"] == event_type, ["send_id", "occurred_at"]]
    first = ev.groupby("send_id", sort=False)["occurred_at"].min()
    t = sends["send_id"].map(first)
    hit = t.notna().to_numpy()
    if within is not None:
        delay = (pd.to_datetime(t, utc=True) - pd.to_datetime(sends["sent_at"], utc=True)).to_numpy()
        hit &= delay < np.timedelta64(pd.Timedelta(within).value, "ns")
    return hit
