"""An engine over one contact range's facts with the whole list's priors equals the engine over every contact."""
import copy

import numpy as np
import pandas as pd
import pytest

from features.pipeline import PipelineConfig, snapshot_engine, snapshot_priors
from features.snapshots import FACT_FAMILIES, split_contacts
from tests.features.fact_fixtures import facts_in, random_facts

BOUNDS = [(0, 128), (128, 192), (192, 256), (256, 300)]   # 128..192 has no facts; the last is not a block multiple


def _facts():
    return random_facts(300, seed=5, silent=(128, 192), busy=(127, 192, 255, 256, 299))


def test_split_keeps_each_contacts_facts_in_order():
    ev, _ = _facts()
    whole = copy.deepcopy(ev)
    pieces = split_contacts(ev, BOUNDS)
    assert ev.n_facts() == 0  # the driver's copy is released as it is cut
    assert [p.n_facts() for p in pieces] == [facts_in(whole, lo, hi) for lo, hi in BOUNDS]
    assert pieces[1].n_facts() == 0 and sum(p.n_facts() for p in pieces) == whole.n_facts()
    for (lo, hi), piece in zip(BOUNDS, pieces):
        np.testing.assert_array_equal(piece.contact_ids, whole.contact_ids[lo:hi])
        for fields in FACT_FAMILIES.values():
            c = getattr(whole, fields[0])
            mine = (c >= lo) & (c < hi)   # boolean selection keeps the original order
            np.testing.assert_array_equal(getattr(piece, fields[0]), c[mine] - lo)
            for name in fields[1:]:
                np.testing.assert_array_equal(getattr(piece, name), getattr(whole, name)[mine])


def test_split_rejects_ranges_that_do_not_cover_the_contacts():
    for bad in ([(0, 100)], [(0, 100), (120, 300)], [(10, 300)], []):
        with pytest.raises(ValueError, match="bounds"):
            split_contacts(random_facts(300)[0], bad)


@pytest.mark.parametrize("step", [64, 1000])
def test_range_engines_equal_the_whole_list_engine(step):
    cfg = PipelineConfig()
    ev, days = _facts()
    whole = snapshot_engine(copy.deepcopy(ev), days, cfg)
    priors = snapshot_priors(ev, days)
    for (lo, hi), piece in zip(BOUNDS, split_contacts(ev, BOUNDS)):
        part = snapshot_engine(piece, days, cfg, priors)
        assert part.ev.contact_ids.shape == (hi - lo,)
        for a in range(lo, hi, step):
            b = min(a + step, hi)
            want, got = whole.chunk(a, b), part.chunk(a - lo, b - lo)
            assert want.keys() == got.keys()
            for name in want:
                assert want[name].schema.equals(got[name].schema), name
                assert want[name].num_rows > 0 or name == "contact_send_hours"
                pd.testing.assert_frame_equal(want[name].to_pandas(), got[name].to_pandas(), check_exact=True, obj=name)


def test_priors_for_other_days_are_refused():
    ev, days = _facts()
    with pytest.raises(ValueError, match="priors"):
        snapshot_engine(copy.deepcopy(ev), days[:-1], PipelineConfig(), snapshot_priors(ev, days))
