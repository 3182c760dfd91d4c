import numpy as np
import pandas as pd
import pytest

from models.slots import HOURS_PER_WEEK, allowed_slot_table, candidate_slots, choose_slots, local_hour_of_week


def _grid_preferring(local_hours_by_row):
    """Scores that peak at a given local hour (every day) per row."""
    how = np.arange(HOURS_PER_WEEK)
    return np.stack([-np.abs(how % 24 - h).astype(float) for h in local_hours_by_row])


def test_best_slot_is_in_local_time_per_zone():
    grid = _grid_preferring([9, 9, 9])
    tz = ["Europe/Berlin", "America/Los_Angeles", "Asia/Kolkata"]
    out = choose_slots(grid, tz, "2026-06-03T00:00Z", "2026-06-04T12:00Z", quiet_hours=(21, 7))
    # 09:00 local in each zone (Berlin CEST +2, LA PDT -7, Kolkata +5:30)
    assert out["send_at"].tolist() == [pd.Timestamp("2026-06-03T07:00Z"), pd.Timestamp("2026-06-03T16:00Z"),
                                       pd.Timestamp("2026-06-03T03:30Z")]
    assert all("09:00" in s for s in out["local_time"])


def test_quiet_hours_are_never_chosen_even_if_best():
    grid = _grid_preferring([23, 3])  # both prefer the night
    out = choose_slots(grid, ["Europe/London", "Asia/Tokyo"], "2026-06-03T00:00Z", "2026-06-05T00:00Z",
                       quiet_hours=(21, 7))
    local = [ts.tz_convert(z).hour for ts, z in zip(out["send_at"], ["Europe/London", "Asia/Tokyo"])]
    assert local == [20, 7]  # the allowed hours nearest to the preference
    # configurable: with quiet hours 1-5 the contact preferring 23:00 gets it
    out = choose_slots(grid[:1], ["Europe/London"], "2026-06-03T00:00Z", "2026-06-05T00:00Z", quiet_hours=(1, 5))
    assert out["send_at"].iloc[0].tz_convert("Europe/London").hour == 23


def test_window_with_only_quiet_hours_gives_no_slot():
    out = choose_slots(_grid_preferring([9]), ["Europe/Berlin"], "2026-06-03T20:00Z", "2026-06-04T01:00Z")
    assert pd.isna(out["send_at"].iloc[0]) and np.isnan(out["probability"].iloc[0])


def test_dst_spring_forward_and_fall_back_new_york():
    # 2026-03-08: 02:00 EST jumps to 03:00 EDT, local 02:00 does not exist
    spring = candidate_slots("2026-03-08T05:00Z", "2026-03-08T10:00Z", "America/New_York")
    assert spring["local_hour"].tolist() == [0, 1, 3, 4, 5]
    # 2026-11-01: 01:00 happens twice (EDT then EST)
    fall = candidate_slots("2026-11-01T04:00Z", "2026-11-01T08:00Z", "America/New_York")
    assert fall["local_hour"].tolist() == [0, 1, 1, 2]
    # the same local 09:00 preference maps to different UTC hours before / after the change
    grid = _grid_preferring([9])
    before = choose_slots(grid, ["America/New_York"], "2026-03-07T00:00Z", "2026-03-08T00:00Z")
    after = choose_slots(grid, ["America/New_York"], "2026-03-09T00:00Z", "2026-03-10T00:00Z")
    assert before["send_at"].iloc[0].hour == 14 and after["send_at"].iloc[0].hour == 13


def test_half_and_quarter_hour_offsets():
    slots = candidate_slots("2026-06-03T00:00Z", "2026-06-03T03:00Z", "Asia/Kathmandu")
    assert (slots["send_at"].dt.minute == 15).all()  # +05:45
    assert slots["local_time"].str.contains(":00").all()


def test_hour_of_week_and_validation():
    how = local_hour_of_week(pd.to_datetime(["2026-06-01T07:00Z", "2026-06-07T23:30Z"], utc=True),
                             ["Europe/Berlin", "Europe/Berlin"])
    assert how.tolist() == [9, 1]  # Monday 09 local; Sunday 23:30Z = Monday 01:30 local (wraps to 1)
    with pytest.raises(ValueError, match="timezone"):
        choose_slots(_grid_preferring([9]), ["Mars/Olympus"], "2026-06-03T00:00Z", "2026-06-04T00:00Z")
    with pytest.raises(ValueError, match="naive"):
        choose_slots(_grid_preferring([9]), ["UTC"], "2026-06-03T00:00", "2026-06-04T00:00Z")
    with pytest.raises(ValueError, match="quiet_hours"):
        choose_slots(_grid_preferring([9]), ["UTC"], "2026-06-03T00:00Z", "2026-06-04T00:00Z", quiet_hours=(25, 3))


def test_allowed_slot_table_matches_choices():
    tz = ["Europe/Berlin", "America/Chicago"]
    table = allowed_slot_table(tz, "2026-06-03T00:00Z", "2026-06-04T00:00Z", (21, 7))
    assert set(table["row"]) == {0, 1}
    assert len(table[table["row"] == 0]) == 14  # 07:00 .. 20:00 local
