"""Sparse cumulative send-hour counts against a dense brute-force recount."""
from __future__ import annotations

import numpy as np
import pytest

from features.send_hours import HOUR_BINS, send_hour_columns, sparse_send_hour_counts


def dense_counts(send_c, send_j, send_bin, open_c, open_j, open_bin, first_snap, n_snaps):
    """(contacts, snapshots, 96): facts with snapshot index <= j, for every contact alive at j."""
    nc = len(first_snap)
    out = np.zeros((nc, n_snaps, 2 * HOUR_BINS), dtype=np.int64)
    for c, j, b in zip(send_c, send_j, send_bin):
        out[c, j:, b] += 1
    for c, j, b in zip(open_c, open_j, open_bin):
        out[c, j:, HOUR_BINS + b] += 1
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sparse_rows_are_the_dense_counts_where_they_change(seed):
    rng = np.random.default_rng(seed)
    nc, n_snaps, n_sends = 40, 25, 300
    first = rng.integers(0, n_snaps + 3, nc).clip(max=n_snaps)   # some contacts never alive
    first[rng.random(nc) < 0.3] = 0
    send_c = rng.integers(0, nc, n_sends)
    send_j = rng.integers(0, n_snaps + 1, n_sends)                # n_snaps = after the last snapshot
    send_bin = rng.integers(0, HOUR_BINS, n_sends)
    opened = rng.random(n_sends) < 0.4
    open_c, open_bin = send_c[opened], send_bin[opened]
    open_j = np.minimum(send_j[opened] + rng.integers(0, 3, opened.sum()), n_snaps)
    c, j, counts = sparse_send_hour_counts(send_c, send_j, send_bin, open_c, open_j, open_bin, first, n_snaps)
    assert counts.shape == (2 * HOUR_BINS, len(c)) and counts.dtype == np.int32

    dense = dense_counts(send_c, send_j, send_bin, open_c, open_j, open_bin, first, n_snaps)
    for contact in range(nc):
        if first[contact] >= n_snaps:
            assert contact not in c
            continue
        snaps = j[c == contact]
        rows = counts[:, c == contact].T
        # the first row at the contact's first snapshot (earlier facts folded into it) ...
        assert snaps[0] == first[contact]
        np.testing.assert_array_equal(rows[0], dense[contact, first[contact]])
        # ... then one row per change; the newest row at or before any snapshot is the dense value
        for s in range(first[contact], n_snaps):
            k = np.searchsorted(snaps, s, side="right") - 1
            np.testing.assert_array_equal(rows[k], dense[contact, s])
        changed = [s for s in range(first[contact] + 1, n_snaps)
                   if (dense[contact, s] != dense[contact, s - 1]).any()]
        assert list(snaps[1:]) == changed


def test_column_names():
    cols = send_hour_columns()
    assert len(cols) == 96 and len(set(cols)) == 96
    assert cols[0] == "sent_wd_h00" and cols[24] == "sent_we_h00" and cols[48] == "sent_opened_wd_h00"
    assert cols[-1] == "sent_opened_we_h23"
