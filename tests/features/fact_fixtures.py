"""Synthetic snapshot-engine facts (`EventArrays`) with a chosen range of contacts that have none."""
from datetime import date, timedelta

import numpy as np

from features.snapshots import US_PER_DAY, EventArrays

START = date(2026, 3, 1)


def random_facts(n_contacts: int = 300, n_days: int = 40, seed: int = 0, silent: tuple[int, int] = (0, 0),
                 busy: tuple[int, ...] = ()) -> tuple[EventArrays, list]:
    """Facts of `n_contacts` over `n_days` (daily snapshots, returned too): no fact for contacts in
    `silent` (lo, hi); each contact in `busy` gets facts of every family, on several days."""
    rng = np.random.default_rng(seed)
    day0 = (START - date(1970, 1, 1)).days
    eligible = np.setdiff1d(np.arange(n_contacts), np.arange(*silent))

    def contacts(k):
        return np.sort(np.concatenate([rng.choice(eligible, k), np.repeat(np.asarray(busy, dtype=np.int64), 3)]))

    def times(c):
        return (day0 + rng.integers(0, n_days, len(c))) * US_PER_DAY + rng.integers(0, US_PER_DAY, len(c))

    def shuffled(*cols):  # the DuckDB step gives facts in no contact order
        order = rng.permutation(len(cols[0]))
        return [np.asarray(x)[order] for x in cols]

    send_c = contacts(6 * n_contacts)
    send_t = times(send_c)
    send_c, send_t, send_topic = shuffled(send_c, send_t, rng.integers(0, 3, len(send_c)))
    open_c = contacts(2 * n_contacts)
    open_t = times(open_c)
    open_c, open_t, open_send_t = shuffled(open_c, open_t, open_t - rng.integers(0, 3 * US_PER_DAY, len(open_c)))
    click_c = contacts(n_contacts)
    click_c, click_t, click_topic = shuffled(click_c, times(click_c), rng.integers(0, 3, len(click_c)))
    other_c = contacts(n_contacts // 2)
    other_c, other_t, other_kind, other_value = shuffled(other_c, times(other_c), rng.integers(0, 4, len(other_c)),
                                                         rng.exponential(40.0, len(other_c)))
    ev = EventArrays(
        contact_ids=np.arange(n_contacts, dtype=np.int64) * 3 + 1000,
        created_us=(day0 - 30 + rng.integers(0, 30 + n_days, n_contacts)) * US_PER_DAY,
        tz_codes=rng.integers(0, 3, n_contacts), zones=["America/New_York", "Asia/Kolkata", "UTC"],
        topics=["deals", "news", "tips"],
        send_c=send_c, send_t=send_t, send_topic=send_topic, open_c=open_c, open_t=open_t, open_send_t=open_send_t,
        click_c=click_c, click_t=click_t, click_topic=click_topic,
        other_c=other_c, other_t=other_t, other_kind=other_kind, other_value=other_value,
    )
    return ev, [START + timedelta(days=k) for k in range(1, n_days + 1)]


def facts_in(ev: EventArrays, lo: int, hi: int) -> int:
    """Fact rows of contacts lo..hi-1."""
    return sum(int(((c >= lo) & (c < hi)).sum()) for c in (ev.send_c, ev.open_c, ev.click_c, ev.other_c))
