"""Hand-made event logs in the event-log schema, small enough to check by hand."""
from __future__ import annotations

import numpy as np
import pandas as pd

from simulation.eventlog import write_event_log

UTC = "UTC"


def ts(s: str) -> pd.Timestamp:
    return pd.Timestamp(s, tz=UTC)


def tiny_event_log(events_dir) -> dict:
    """Two contacts, two content items, a handful of sends and events in May 2026."""
    contacts = pd.DataFrame(
        {
            "contact_id": [1, 2, 3],
            "email": ["ann@acme.com", "bob@gmial.com", "info@mailinator.com"],
            "created_at": [ts("2026-04-01"), ts("2026-04-15"), ts("2026-05-20")],
            "industry": ["saas", "retail", "saas"],
            "company_size": ["11-50", "1-10", "1000+"],
            "seniority": ["manager", "ic", "executive"],
            "country": ["US", "DE", "US"],
            "timezone": ["America/New_York", "Europe/Berlin", "UTC"],
            "signup_source": ["form", "webinar", "import"],
            "consent": [True, True, False],
        }
    )
    content = pd.DataFrame(
        {
            "content_id": [10, 11],
            "name": ["launch", "howto"],
            "topic": ["product", "education"],
            "format": ["newsletter", "plain"],
            "subject": ["New: {first_name}, meet X", "How to do Y"],
            "subject_length": np.array([25, 11], dtype=np.int32),
            "has_personalization": [True, False],
            "has_urgency": [False, False],
            "has_emoji": [False, False],
            "created_at": [ts("2026-04-01"), ts("2026-04-01")],
        }
    )
    # contact 1: sends on May 1, 5, 10, 20, 28; contact 2: sends May 3 and May 25; contact 3: none
    sends = pd.DataFrame(
        {
            "send_id": [100, 101, 104, 102, 103, 200, 201],
            "contact_id": [1, 1, 1, 1, 1, 2, 2],
            "campaign_id": ["c1", "c2", "c5", "c3", "c4", "c1", "c4"],
            "content_id": [10, 11, 10, 10, 11, 10, 11],
            "sent_at": [ts("2026-05-01 14:00"), ts("2026-05-05 14:00"), ts("2026-05-10 12:00"),
                        ts("2026-05-20 09:00"), ts("2026-05-28 09:00"), ts("2026-05-03 08:00"),
                        ts("2026-05-25 08:00")],
            "decision_id": [None] * 7,
            "propensity": [None] * 7,
        }
    )
    # opens/clicks count distinct sends (the second open of send 100 is not a new open)
    events = pd.DataFrame(
        {
            "event_id": np.arange(1, 13),
            "send_id": [100, 100, 100, 101, 101, 102, 102, 103, 200, 200, 201, 104],
            "contact_id": [1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 1],
            "type": ["open", "open", "click", "open", "conversion", "open", "click", "open",
                     "open", "click", "unsubscribe", "delivered"],
            "occurred_at": [ts("2026-05-01 15:00"), ts("2026-05-02 10:00"), ts("2026-05-01 15:10"),
                            ts("2026-05-05 16:00"), ts("2026-05-07 12:00"), ts("2026-05-20 10:00"),
                            ts("2026-05-20 10:05"), ts("2026-05-31 22:00"), ts("2026-05-03 09:00"),
                            ts("2026-05-03 09:05"), ts("2026-05-26 08:00"), ts("2026-05-10 12:01")],
            "value": [None, None, None, None, 120.0, None, None, None, None, None, None, None],
        }
    )
    tables = {"contacts": contacts, "content": content, "sends": sends, "events": events}
    write_event_log(events_dir, tables)
    return tables
