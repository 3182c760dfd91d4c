"""The outbox's handed-over messages become rows of the event log (`sends`, and `bounce` events).

Each message handed to SMTP (sent, unknown or bounced with a 5xx) gets its
`sends` row with the decision id and propensity (the contract in DESIGN.md);
a 5xx also gets a `bounce` event (hard: it suppresses the contact). The decisions
of mailed messages (`sent`, `unknown`) are then marked sent with the allocator
(`mark`, e.g. `sending.sent_marks.SentMarker`). Appends and marks are
idempotent (new keys only, `serving.eventsink`), and the outbox marks rows
recorded only after both, so a crash in between appends nothing twice.
`sent_at` is when the message left: the SMTP hand-over, or the scheduled time
when a provider holds it until then.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from sending.outbox import MAILED_STATES


def record_sends(settings, outbox, mark: Callable[[list[str]], object] | None = None) -> int:
    """Append the unrecorded sends (and 5xx bounces) to the event log, then `mark(decision ids)` of the
    mailed ones; returns sends appended."""
    from serving.eventsink import append_events, append_sends
    from serving.webhooks import stable_event_id

    df = outbox.unrecorded()
    if df.empty:
        return 0
    sent_us = np.maximum(df["sent_at_us"].fillna(df["send_at_us"]).to_numpy(np.int64),
                         df["send_at_us"].to_numpy(np.int64))
    sent_at = pd.to_datetime(sent_us, unit="us", utc=True)
    sends = pd.DataFrame({
        "send_id": df["send_id"].astype(np.int64), "contact_id": df["contact_id"].astype(np.int64),
        "campaign_id": df["campaign_id"].astype(object), "content_id": df["content_id"].astype(np.int64),
        "sent_at": sent_at, "decision_id": df["decision_id"].astype(object),
        "propensity": df["propensity"].astype("float64")})
    added = append_sends(settings.events_dir, sends)
    bounced = df["status"].to_numpy() == "bounced"
    if bounced.any():
        ids = df.loc[bounced, "send_id"].astype(np.int64)
        append_events(settings.events_dir, pd.DataFrame({
            "event_id": [stable_event_id("smtp", f"{i}:bounce") for i in ids],
            "send_id": ids.to_numpy(), "contact_id": df.loc[bounced, "contact_id"].astype(np.int64).to_numpy(),
            "type": "bounce", "occurred_at": sent_at[bounced], "value": np.nan}))
    if mark is not None:
        mailed = df["status"].isin(MAILED_STATES).to_numpy() & df["decision_id"].notna().to_numpy()
        mark(df.loc[mailed, "decision_id"].astype(str).tolist())
    outbox.mark_recorded(df["send_id"].tolist())
    return added
