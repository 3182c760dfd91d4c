"""A small world through the real pipeline with one contact given an id and an address that cannot
occur by chance, so a scan of every byte can tell whether anything of it is left."""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

# 15 random decimal digits: as text, as a little-endian int64 (Feast entity keys, numpy arrays, Parquet
# statistics) or as a big-endian int64 (SQLite's record format stores an integer of this size in 8 bytes,
# big-endian) it has no business appearing in ~100 MB of data by chance (2^-64 per offset)
SUBJECT_ID = 739_611_245_893_027
SUBJECT_EMAIL = "Erase.Subject.Q7zk@Example.net"
CAMPAIGN = "privacy-spring"


def remap_subject(settings) -> int:
    """Give one consenting contact with sends and no opt-out SUBJECT_ID and SUBJECT_EMAIL in the event
    log and the world; returns its old id."""
    from simulation.eventlog import read_table, table_path, write_table

    ev = settings.events_dir
    contacts = read_table("contacts", table_path(ev, "contacts"))
    sends = read_table("sends", table_path(ev, "sends"))
    events = read_table("events", table_path(ev, "events"))
    out = events.loc[events["type"].isin(["unsubscribe", "complaint", "bounce"]), "contact_id"]
    ok = contacts.loc[contacts["consent"] & ~contacts["contact_id"].isin(out), "contact_id"]
    old = int(sends.loc[sends["contact_id"].isin(ok), "contact_id"].value_counts().index[0])
    for name, df in (("contacts", contacts), ("sends", sends), ("events", events)):
        df.loc[df["contact_id"] == old, "contact_id"] = SUBJECT_ID
        if name == "contacts":
            df.loc[df["contact_id"] == SUBJECT_ID, "email"] = SUBJECT_EMAIL
        write_table(name, df, table_path(ev, name))
    world = read_table("contacts", Path(settings.world_dir) / "contacts.parquet")
    world.loc[world["contact_id"] == old, ["contact_id", "email"]] = [SUBJECT_ID, SUBJECT_EMAIL]
    write_table("contacts", world, Path(settings.world_dir) / "contacts.parquet")
    return old


def needles(email: str = SUBJECT_EMAIL, contact_id: int = SUBJECT_ID) -> dict[str, bytes]:
    return {"id as text": str(contact_id).encode(), "id as int64 LE": int(contact_id).to_bytes(8, "little"),
            "id as int64 BE": int(contact_id).to_bytes(8, "big"),
            "email": email.encode(), "email lower case": email.lower().encode()}


def traces(root: Path, email: str = SUBJECT_EMAIL, contact_id: int = SUBJECT_ID) -> dict[str, list[str]]:
    """Every file under root holding the subject, and what of it: raw bytes of every file, the members of
    zip containers (.npz) decompressed, and every column of Parquet files decoded (their pages are zstd)."""
    found: dict[str, list[str]] = {}
    patterns = needles(email, contact_id)
    for path in sorted(p for p in Path(root).rglob("*") if p.is_file()):
        hits = _in_bytes(path.read_bytes(), patterns)
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                for member in z.namelist():
                    hits |= {f"{h} in {member}" for h in _in_bytes(z.read(member), patterns)}
        if path.suffix == ".parquet":
            hits |= _in_parquet(path, email, contact_id)
        if hits:
            found[str(path.relative_to(root))] = sorted(hits)
    return found


def _in_bytes(data: bytes, patterns: dict[str, bytes]) -> set[str]:
    lowered = data.lower()
    return {name for name, p in patterns.items() if p in data or (name.startswith("email") and p.lower() in lowered)}


def _in_parquet(path: Path, email: str, contact_id: int) -> set[str]:
    hits = set()
    table = pq.read_table(path)
    for name, col in zip(table.column_names, table.columns):
        t = col.type
        if pa.types.is_integer(t) and pc.any(pc.equal(col, contact_id)).as_py():
            hits.add(f"id in column {name}")
        elif pa.types.is_floating(t) and pc.any(pc.equal(col, float(contact_id))).as_py():
            hits.add(f"id (float) in column {name}")
        elif pa.types.is_string(t) or pa.types.is_large_string(t):
            low = pc.utf8_lower(col.cast(pa.string()))
            if pc.any(pc.match_substring(low, email.lower())).as_py():
                hits.add(f"email in column {name}")
            if pc.any(pc.match_substring(col.cast(pa.string()), str(contact_id))).as_py():
                hits.add(f"id text in column {name}")
    return hits


def subject_rows(settings) -> dict[str, int]:
    """How many rows of the subject the event log holds, per table (for comparing with the export)."""
    from simulation.eventlog import table_path

    return {t: int(pq.read_table(table_path(settings.events_dir, t), filters=[("contact_id", "=", SUBJECT_ID)]
                                 ).num_rows) for t in ("contacts", "sends", "events")}


def journal_event(settings) -> pd.DataFrame:
    """One webhook event of the subject's newest send, as the webhook ingest journals it."""
    from simulation.eventlog import read_table, table_path

    sends = read_table("sends", table_path(settings.events_dir, "sends"))
    send = sends[sends["contact_id"] == SUBJECT_ID].iloc[-1]
    return pd.DataFrame({"event_id": np.array([9_100_000_001], np.int64), "send_id": [int(send["send_id"])],
                         "contact_id": np.array([SUBJECT_ID], np.int64), "type": ["open"],
                         "occurred_at": [pd.Timestamp.now(tz="UTC")], "value": [np.nan]})
