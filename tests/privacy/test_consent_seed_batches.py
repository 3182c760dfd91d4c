"""Seeding the consent ledger in small batches writes exactly the ledger that one batch of the whole
list writes: first seeding, then a re-import with consent flips, changed and shared addresses, new
contacts and new unsubscribes, with suppressed addresses among them."""
from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from inbox.settings import Settings

N = 3000
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def settings_at(root) -> Settings:
    return Settings(data_dir=root / "data", tracking_uri=f"sqlite:///{root / 'mlruns' / 'mlflow.db'}",
                    artifact_root=root / "mlruns")


def contacts_table(rng, ids: np.ndarray, emails: list[str], consent: np.ndarray) -> pa.Table:
    created = [T0 + timedelta(minutes=int(m)) for m in rng.integers(0, 500_000, len(ids))]
    return pa.table({"contact_id": pa.array(ids, pa.int64()), "email": emails,
                     "created_at": pa.array(created, pa.timestamp("us", tz="UTC")),
                     "consent": pa.array(consent, pa.bool_())})


def events_table(rng, contact_ids: np.ndarray, first_event_id: int) -> pa.Table:
    n = len(contact_ids)
    types = rng.choice(["open", "click", "unsubscribe", "complaint", "bounce"], n, p=[0.5, 0.2, 0.2, 0.05, 0.05])
    occurred = [T0 + timedelta(days=30, minutes=int(m)) for m in rng.integers(0, 100_000, n)]
    return pa.table({"event_id": pa.array(np.arange(first_event_id, first_event_id + n), pa.int64()),
                     "send_id": pa.array(np.zeros(n, dtype=np.int64)), "contact_id": pa.array(contact_ids, pa.int64()),
                     "type": types.tolist(), "occurred_at": pa.array(occurred, pa.timestamp("us", tz="UTC")),
                     "value": pa.array([None] * n, pa.float64())})


def ledger_tables(settings) -> dict[str, list[tuple]]:
    """Every ledger table, with the run's clock replaced by which run wrote the row."""
    db = sqlite3.connect(settings.data_dir / "privacy" / "consent.db")
    try:
        events = db.execute("SELECT seq, contact_id, kind, topic, source, occurred_us, recorded_us, ref FROM events"
                            " ORDER BY seq").fetchall()
        runs = {t: i for i, t in enumerate(sorted({r[6] for r in events}))}  # one recording time per seeding
        out = {"events": [(*r[:5], "now" if r[5] == r[6] else r[5], runs[r[6]], r[7]) for r in events]}
        for table, sql in (("state", "SELECT contact_id, topic, kind, occurred_us FROM state ORDER BY 1, 2"),
                           ("contacts", "SELECT contact_id, email_digest FROM contacts ORDER BY 1"),
                           ("suppression", "SELECT email_digest, reason FROM suppression ORDER BY 1"),
                           ("suppressed_contacts", "SELECT contact_id FROM suppressed_contacts ORDER BY 1")):
            out[table] = db.execute(sql).fetchall()
        out["state"] = [(c, t, k, "now" if o in runs else o) for c, t, k, o in out["state"]]
        return out
    finally:
        db.close()


@pytest.mark.parametrize("batch_rows, row_group", [(333, 1000), (7, 700)])
def test_small_batches_write_the_same_ledger_as_one_batch(tmp_path, monkeypatch, batch_rows, row_group):
    from privacy.seed import seed_consent
    from privacy.suppression import suppress

    monkeypatch.setenv("INBOX_SECRET_KEY", "ab" * 32)  # both ledgers digest addresses alike
    rng = np.random.default_rng(5)
    ids = rng.permutation(10 * N)[:N].astype(np.int64)
    emails = [f"Person.{i}@Example.org" for i in range(N)]
    emails[7] = emails[8].lower()  # two contacts, one address
    consent = rng.random(N) < 0.7
    suppressed = [emails[i] for i in range(0, N, 97)]
    round1 = contacts_table(rng, ids, emails, consent), events_table(rng, rng.choice(ids, 800), 1)

    keep = rng.random(N) < 0.95  # some contacts left the list, 200 joined
    new_ids = np.setdiff1d(rng.permutation(20 * N)[:N], ids)[:200].astype(np.int64)
    emails2 = [e if i % 50 else f"moved.{i}@example.net" for i, e in enumerate(emails)]
    flip = rng.random(N) < 0.1
    ids2 = np.concatenate([ids[keep], new_ids])
    emails2 = [e for e, k in zip(emails2, keep) if k] + [f"new.{i}@example.com" for i in range(len(new_ids))]
    emails2[-1] = suppressed[3].upper()  # a suppressed address comes back under a new id
    consent2 = np.concatenate([(consent ^ flip)[keep], rng.random(len(new_ids)) < 0.5])
    round2 = (contacts_table(rng, ids2, emails2, consent2),
              pa.concat_tables([round1[1], events_table(rng, rng.choice(ids2, 300), 10_000)]))

    results = {}
    for name, rows, group in (("whole", 10**9, None), ("batched", batch_rows, row_group)):
        settings = settings_at(tmp_path / name)
        settings.events_dir.mkdir(parents=True)
        suppress(settings, suppressed, "bounce")
        counts = []
        for contacts, events in (round1, round2):
            # one row group and one batch of the whole list, or many of both, not aligned to each other
            pq.write_table(contacts, settings.events_dir / "contacts.parquet", row_group_size=group or len(contacts))
            pq.write_table(events, settings.events_dir / "events.parquet", row_group_size=group or len(events))
            counts.append(seed_consent(settings, batch_rows=rows))
        results[name] = counts, ledger_tables(settings)

    (whole_counts, whole), (batched_counts, batched) = results["whole"], results["batched"]
    assert pq.ParquetFile(tmp_path / "batched" / "data" / "events" / "contacts.parquet").metadata.num_row_groups > 2
    assert batched_counts == whole_counts
    assert whole_counts[0]["contacts"] == N and whole_counts[1]["imports"] > 0 and whole_counts[1]["opt_outs"] > 0
    for table in whole:
        assert batched[table] == whole[table], table
    second = [r for r in whole["events"] if r[6] == 1 and r[4] == "import"]
    assert {(r[2], r[5] == "now") for r in second} == {("opt_in", False), ("opt_out", True)}  # first consents, withdrawals
    assert len(whole["suppressed_contacts"]) > len(suppressed) // 2  # suppressed addresses matched by digest


def test_batch_rows_is_validated(tmp_path):
    from privacy.seed import seed_consent

    with pytest.raises(ValueError, match="batch_rows"):
        seed_consent(settings_at(tmp_path), batch_rows=0)
