"""One pass through every model before the service reports ready, so the first
real request does not pay lazy imports and first-call allocations (and so
`gc.freeze()` afterwards freezes them too). Logs no decision."""
from __future__ import annotations

import numpy as np

from serving.predict import ContactFeatures, content_rankings, default_window, lead_scores, send_slots


def warm_up(state) -> None:
    ids = np.asarray(state.timezones.index[:2] if len(state.timezones) else [0], dtype=np.int64)
    start, end = default_window()
    feats = ContactFeatures.read(state, ids, request_time=start)
    lead_scores(state, feats, reasons=True)
    send_slots(state, feats, start, end)
    content_rankings(state, feats, None, 3)
