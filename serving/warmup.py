"""One pass through every model before the service reports ready, so the first
real request does not pay lazy imports and first-call allocations (and so
`gc.freeze()` afterwards freezes them too). It also installs the verified
block-wise feature encoding and the slot-grid cache (`serving.accelerate`), then starts the contact
table's build (`serving.contact_table`: in a low-priority thread by default, requests are served live
until it is ready). Logs no decision."""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from serving.accelerate import accelerate_models, memoize_slot_grid
from serving.predict import (
    ContactFeatures, candidate_matrix, content_order, content_rankings, default_window, lead_score_arrays, lead_scores,
    send_slots,
)

logger = logging.getLogger("inbox.serving")
UNKNOWN_CONTACT = 10**15  # exercises the no-features path


def warm_up(state, sample_size: int = 200, contact_table: str = "background") -> dict:
    ids = np.append(np.asarray(state.timezones.index[:sample_size], dtype=np.int64), UNKNOWN_CONTACT)
    start, end = default_window()
    feats = ContactFeatures.read_live(state, ids, request_time=start)
    installed = accelerate_models(state.models, feats.merged, state.catalog)
    memoize_slot_grid()
    tz = state.timezones_of(feats.contact_ids)
    dst_change = (pd.Timestamp("2026-03-07T00:00Z"), pd.Timestamp("2026-03-10T00:00Z"), (21, 7))
    fast = state.fast_slots.verify(feats, tz, [(start, end, (21, 7)), (start, end, None), dst_change])
    logger.info("vectorized send slots: %s", fast)
    logger.info("block feature encoding: %s", installed)
    content_order(state, feats, None, 3)  # caches the catalog's matrix; checks the towers on it
    towers = state.content_towers
    if towers is not None:  # and on one contact (the padded small-batch path)
        model = state.models["content_preference"]
        key, _, B = candidate_matrix(state, None)
        towers.check(model.contact_encoder.transform(feats.input_for(model.contact_encoder))[:1], key, B)
    logger.info("content towers: %s", towers is not None and towers.verified(None))
    lead_scores(state, feats, reasons=True)
    lead_score_arrays(state, feats)
    send_slots(state, feats, start, end)
    content_rankings(state, feats, None, 3)
    one = ContactFeatures.read_live(state, ids[:1], request_time=start)  # first-call paths of a 1-contact batch
    lead_score_arrays(state, one)
    send_slots(state, one, start, end)
    content_order(state, one, None, 3)
    if contact_table not in ("foreground", "background", "off"):
        raise ValueError(f"contact_table: expected 'foreground', 'background' or 'off', got {contact_table!r}")
    if contact_table != "off":  # "background": requests are served live until it is ready
        state.build_contact_table(background=contact_table == "background")
    return installed
