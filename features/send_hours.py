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
    nc, n_cols = len(first_snap), 2 * HOUR_BINS
    facts_c = np.concatenate([send_c, open_c]).astype(np.int64)
    facts_j = np.maximum(np.concatenate([send_j, open_j]), first_snap[facts_c])
    facts_col = np.concatenate([send_bin, HOUR_BINS + np.asarray(open_bin)])
    ok = facts_j < n_snaps                        # a contact without snapshots has no rows
    facts_c, facts_col, key = facts_c[ok], facts_col[ok], facts_c[ok] * n_snaps + facts_j[ok]
    # rows: the (contact, snapshot) cells with a fact, plus each contact's first snapshot
    alive = np.flatnonzero(first_snap < n_snaps)
    marked = np.zeros(nc * n_snaps, dtype=bool)
    marked[key] = True
    start = alive * n_snaps + first_snap[alive]
    marked[start] = True
    row_of = np.cumsum(marked) - 1                # cell -> row (rows come out sorted by contact, snapshot)
    cells = np.flatnonzero(marked)
    n = len(cells)
    inc = np.bincount(facts_col * n + row_of[key], minlength=n_cols * n).reshape(n_cols, n)
    # one running sum over all rows, made to restart at each contact: its first row
    # carries minus the total of the contact before it
    totals = np.bincount(facts_col * nc + facts_c, minlength=n_cols * nc).reshape(n_cols, nc)
    inc[:, row_of[start[1:]]] -= totals[:, alive[:-1]]
    counts = inc.astype(np.int32)
    np.cumsum(counts, axis=1, out=counts)  # in place: a casting cumsum (dtype=) is ~10x slower
    contact = cells // n_snaps
    return contact, cells - contact * n_snaps, counts
