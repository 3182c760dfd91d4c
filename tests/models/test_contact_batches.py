"""ContactBatches: the snapshot's contacts from the key column, and batches that hold what one join of every
contact holds."""
import numpy as np
import pandas as pd
import pytest


@pytest.fixture()
def settings(small_world_dir, monkeypatch):
    from inbox.settings import load_settings

    monkeypatch.setenv("INBOX_DATA_DIR", str(small_world_dir / "data"))
    return load_settings()


def _reference_ids(settings, as_of):
    """Every (contact, snapshot) pair in memory: the ids of the contacts with a row at or before `as_of`."""
    from features.pipeline import TABLE_FILES

    eng = pd.read_parquet(settings.features_dir / TABLE_FILES["contact_engagement"],
                          columns=["contact_id", "event_timestamp"])
    ts = eng["event_timestamp"].max() if as_of is None else as_of
    return ts, np.sort(eng.loc[eng["event_timestamp"] <= ts, "contact_id"].unique())


def test_snapshot_and_contacts_match_a_read_of_every_pair(settings):
    from models.contact_batches import ContactBatches

    newest, _ = _reference_ids(settings, None)
    for as_of in (None, newest - pd.Timedelta(days=40), newest - pd.Timedelta(days=40, hours=-13),
                  pd.Timestamp("2000-01-01T00:00Z")):
        ts, ids = _reference_ids(settings, as_of)
        contacts = ContactBatches(("lead_scoring",), settings, as_of=as_of)
        assert contacts.snapshot == ts
        np.testing.assert_array_equal(contacts.ids, ids)
    assert 0 < len(ContactBatches(("lead_scoring",), settings, as_of=newest - pd.Timedelta(days=40))) < len(
        ContactBatches(("lead_scoring",), settings))


def test_batches_hold_what_one_join_of_every_contact_holds(settings):
    from models.contact_batches import ContactBatches
    from models.datasets import feature_frame

    contacts = ContactBatches(("send_time", "lead_scoring"), settings, batch=700)
    batches = list(contacts)
    assert [len(b) for b in batches] == [700] * (len(contacts) // 700) + [len(contacts) % 700]
    whole = feature_frame(pd.DataFrame({"contact_id": contacts.ids, "event_timestamp": contacts.snapshot}),
                          ("send_time", "lead_scoring"), settings)
    pd.testing.assert_frame_equal(pd.concat(batches, ignore_index=True), whole, check_exact=True)


def test_bad_batch_and_naive_as_of_are_refused(settings):
    from models.contact_batches import ContactBatches

    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="batch"):
            ContactBatches(("lead_scoring",), settings, batch=bad)
    with pytest.raises(ValueError, match="as_of"):
        ContactBatches(("lead_scoring",), settings, as_of="2026-06-01")
