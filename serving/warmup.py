"""One pass through every request step before the service reports ready, so the first real
request does not pay lazy imports and first-call allocations (and so `gc.freeze()` afterwards
freezes them too): a batch of stored contacts, one contact, and one unknown contact (the
no-features, live path). Reads a bounded sample, never the whole list. Logs no decision."""
from __future__ import annotations

import numpy as np

from models.slots import window_hours
from serving.predict import (
    ContactBatch, content_order, content_rankings, default_window, lead_score_arrays, lead_scores, send_slots,
)

UNKNOWN_CONTACT = 10**15  # exercises the no-features path


def warm_up(state, sample_size: int = 64) -> None:
    ids = np.append(state.reader.some_contact_ids(state.contact_services, sample_size), UNKNOWN_CONTACT)
    start, end = default_window()
    for batch_ids in (ids, ids[:1], ids[-1:]):
        batch = ContactBatch.read(state, batch_ids, request_time=start, hours=window_hours(start, end))
        lead_score_arrays(batch)
        send_slots(state, batch, start, end)
        content_order(state, batch, None, 3)
        content_rankings(state, batch, None, 3)
    lead_scores(state, ContactBatch.read(state, ids[:2]), reasons=True)
