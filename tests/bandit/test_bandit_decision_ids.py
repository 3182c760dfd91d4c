"""Decision ids are unguessable (issue 13): every recipient sees theirs in the mail headers, so
no id may lead to another's. 128 bits of OS entropy per id, no shared structure in a batch."""
import numpy as np
import pandas as pd
import pytest

from experiments.bandit import UnknownDecisionError
from experiments.bandit import randomness as rnd

T0 = pd.Timestamp("2026-05-01 09:00", tz="UTC")


def test_ids_are_128_bits_of_os_entropy_by_construction(monkeypatch):
    """Every hex digit of every id is CSPRNG output: 128 >= 122 random bits per decision,
    drawn independently (no time, batch prefix or counter)."""
    drawn = []
    real = rnd.os.urandom

    def recording(k):
        drawn.append(real(k))
        return drawn[-1]

    monkeypatch.setattr(rnd.os, "urandom", recording)
    for n in (1, 16, 17, 500):
        ids, keys = rnd.new_decision_ids(n)
        assert len(drawn[-1]) == 16 * n
        assert "".join(ids) == drawn[-1].hex()  # the ids are exactly the random bytes
        assert all(len(i) == 32 for i in ids)
        assert np.array_equal(rnd.decision_keys(ids), keys)  # replayable: the key is a function of the id


def test_ids_of_one_batch_share_no_derivable_structure(allocator, make_contexts):
    batch = allocator.decide("spring", np.arange(1000), make_contexts(1000), now=T0)
    ids = batch.decision_id
    assert len(set(ids)) == 1000
    values = sorted(int(i, 16) for i in ids)
    # longest common hex prefix of neighbours in sorted order: ~5 digits by chance for 1,000 random
    # ids; P(any pair shares 9+) < 1e-5. The old layout shared 24 digits across the whole batch.
    prefix = max(32 - len(f"{a ^ b:x}") for a, b in zip(values, values[1:]))
    assert prefix <= 8
    # every hex position takes all 16 digits across the batch (no fixed field, no counter field)
    assert all(len({i[pos] for i in ids}) == 16 for pos in range(32))
    # consecutive ids differ in about half their 128 bits (binomial mean 64, sd of the mean ~0.18)
    flips = [bin(int(a, 16) ^ int(b, 16)).count("1") for a, b in zip(ids, ids[1:])]
    assert 62 < np.mean(flips) < 66


def test_a_sibling_id_derived_from_ones_own_is_unknown(allocator, make_contexts):
    """The attack of issue 13: take your id from the mail headers, step its tail to reach a
    sibling. No such decision exists; the reward is refused and audited, nothing is stored."""
    batch = allocator.decide("spring", np.arange(500), make_contexts(500), now=T0)
    mine = batch.decision_id[0]
    known = set(batch.decision_id)
    for step in (1, 2, -1, 499):
        guess = f"{mine[:24]}{(int(mine[24:], 16) + step) % 2**32:08x}"
        assert guess not in known
        with pytest.raises(UnknownDecisionError):
            allocator.reward(guess, 1.0, T0 + pd.Timedelta("1h"), event_id=f"guess{step}")
    assert len(allocator.log.rewards()) == 0
    assert len(allocator.log.audit()) == 4
