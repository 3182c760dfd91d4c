"""Send-hour counts: sufficient statistics of a contact's open rate by local SEND hour.

Per contact and snapshot: how many of the contact's sends went out at local hour
HH on a weekday (`sent_wd_hHH`) or a weekend day (`sent_we_hHH`), and how many of
those sends were opened (`sent_opened_wd_hHH`, `sent_opened_we_hHH`; one per
send), from the start of history up to the snapshot. A send counts from its day,
its open from the day of the open (both strictly before the snapshot day). The
estimator (smoothing, priors, posteriors) lives in the send-time model.

The counts are cumulative and do not depend on the rest of the population, so
they are written sparsely: one row at the contact's first snapshot (counts so
far, often zeros) and then one row on each snapshot whose counts differ from
the previous one. With a feature view that never expires, the newest row at or
before any time is exactly the dense daily snapshot, for point-in-time joins
and for materialization alike.
"""
from __future__ import annotations

import numpy as np

HOUR_BINS = 48  # 0-23 weekday local hour, 24-47 weekend local hour (features.snapshots.local_hour_bins)


def send_hour_columns() -> list[str]:
    """The 96 count columns in storage order: sent_{wd,we}_hHH then sent_opened_{wd,we}_hHH."""
    return [f"{measure}_{kind}_h{h:02d}" for measure in ("sent", "sent_opened") for kind in ("wd", "we")
            for h in range(24)]


def sparse_send_hour_counts(send_c: np.ndarray, send_j: np.ndarray, send_bin: np.ndarray,
                            open_c: np.ndarray, open_j: np.ndarray, open_bin: np.ndarray,
                            first_snap: np.ndarray, n_snaps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative counts at the snapshots where they change, for contacts 0..len(first_snap)-1.

    `*_c`: contact positions; `*_j`: index of the first snapshot that sees the fact;
    `*_bin`: local hour bin (0-47) of the send; `first_snap[c]`: the contact's first
    snapshot index (n_snaps if it has none). Facts before a contact's first snapshot
    are counted in its first row. Returns (contact positions, snapshot indices,
    counts (2 * HOUR_BINS, rows) int32: sends by bin, then opened sends by bin),
    rows sorted by (contact, snapshot).
    """
    nc = len(first_snap)
    alive = np.flatnonzero(first_snap < n_snaps)

    def keys(c, j):
        j = np.maximum(j, first_snap[c])
        ok = j < n_snaps
        return (c[ok] * n_snaps + j[ok]), ok

    skey, sok = keys(np.asarray(send_c, np.int64), np.asarray(send_j, np.int64))
    okey, ook = keys(np.asarray(open_c, np.int64), np.asarray(open_j, np.int64))
    start = alive * n_snaps + first_snap[alive]
    rows = np.unique(np.concatenate([start, skey, okey]))
    n = len(rows)
    cell = np.concatenate([np.searchsorted(rows, skey) * (2 * HOUR_BINS) + send_bin[sok],
                           np.searchsorted(rows, okey) * (2 * HOUR_BINS) + HOUR_BINS + open_bin[ook]])
    counts = np.bincount(cell, minlength=n * 2 * HOUR_BINS).reshape(n, 2 * HOUR_BINS)
    np.cumsum(counts, axis=0, out=counts)
    contact = rows // n_snaps
    # running sums restart at each contact: subtract the total before its first row
    prev = np.searchsorted(contact, np.arange(nc)) - 1                   # last row before each contact
    before = np.where((prev >= 0)[:, None], counts[np.maximum(prev, 0)], 0)  # (nc, 96)
    counts -= before[contact]
    return contact, rows - contact * n_snaps, np.ascontiguousarray(counts.T, dtype=np.int32)
