"""A webhook-journal flush that lands between two stores of an erasure must not bring the subject back.

The flush folds pending journal rows into the `events` table under the event-log lock; if the
`events` table were erased before the journal, a flush in between would write the subject's pending
rows back, and erasing the journal afterwards would not remove them from `events`."""
from __future__ import annotations

import numpy as np
import pandas as pd


def _events(ids, contacts, hour):
    return pd.DataFrame({"event_id": np.asarray(ids, np.int64), "send_id": np.asarray(ids, np.int64) + 100,
                         "contact_id": np.asarray(contacts, np.int64), "type": "open",
                         "occurred_at": pd.Timestamp("2026-06-01", tz="UTC") + pd.Timedelta(hours=hour),
                         "value": np.nan})


def test_a_flush_between_stores_does_not_write_the_subject_back(tmp_path, monkeypatch):
    from inbox.settings import load_settings
    from privacy import erase as E
    from serving.eventsink import EventJournal, flush
    from simulation.eventlog import read_table, table_path, write_event_log

    monkeypatch.setenv("INBOX_DATA_DIR", str(tmp_path / "data"))
    settings = load_settings()
    subject = 7
    write_event_log(settings.events_dir, {"events": _events([1, 2, 3], [5, subject, 6], 0)})
    journal = EventJournal(settings.events_dir)
    journal.append(_events([9_000_000_001, 9_000_000_002], [subject, 5], 1))  # pending, not flushed yet
    journal.close()

    names = ("webhook journal", "event log events")
    order = [s for s in E.stores() if s.name in names]
    assert {s.name for s in order} == set(names)
    for store in order:  # each store as erase() runs it, with a flush landing right after each one
        store.erase(settings, E.Subject((subject,)))
        flush(settings.events_dir)

    events = read_table("events", table_path(settings.events_dir, "events"))
    assert subject not in set(events["contact_id"]) and len(events) == 3  # 5, 6 and the flushed row of 5
    assert [s.export(settings, E.Subject((subject,))) for s in order] == [[], []]
