"""The outbox as a store for `privacy.erase`: a contact's messages (address and rendered body) removed
or exported. Registered through `STORES` (privacy.erase imports this module when present).

Erasing deletes the rows in one transaction and compacts the file (`privacy.files.sqlite_delete`), so no
copy of the address or body stays in free pages or the write-ahead log. The send ids stay reserved: the
counter never goes back, so an erased contact's ids are never handed to anyone else.
"""
from __future__ import annotations

from privacy.erase import Store, Subject
from privacy.files import ids_json, sqlite_delete
from sending.outbox import outbox_path

BY_CONTACT = "contact_id IN (SELECT value FROM json_each(?))"


def erase_outbox(settings, subject: Subject) -> int:
    path = outbox_path(settings)
    if not path.exists():
        return 0
    counts = sqlite_delete(path, [(f"DELETE FROM messages WHERE {BY_CONTACT}", (ids_json(subject.ids),))])
    return sum(counts.values())


def export_outbox(settings, subject: Subject) -> list[dict]:
    import sqlite3

    path = outbox_path(settings)
    if not path.exists():
        return []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        cur = db.execute(f"SELECT send_id, campaign_id, run, contact_id, content_id, decision_id, propensity, rcpt, "
                         f"status, attempts, last_code, send_at_us, sent_at_us, message FROM messages "
                         f"WHERE {BY_CONTACT} ORDER BY send_id", (ids_json(subject.ids),))
        names = [d[0] for d in cur.description]
        return [{n: (v.decode("utf-8", "replace") if isinstance(v, bytes) else v) for n, v in zip(names, row)}
                for row in cur]
    finally:
        db.close()


STORES = [Store("outbox", erase_outbox, export_outbox)]
