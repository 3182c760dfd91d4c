"""One online read for every contact-side feature service, verified against three reads.

A decide needs the contact side of `lead_scoring`, `send_time` and
`content_preference`. Three `OnlineReader.read` calls cost three SQL
statements, overlapping decodes (the profile and engagement views are in two
services each) and three DataFrames, then a merge: ~7 ms for one contact,
~17 ms for 100. `combined_plan` joins the three services' read plans (views
by name with the union of their features, the on-demand views with the union
of their outputs, the columns in the merge's order) into one plan that
`OnlineReader.read` executes as one statement and one frame. The content side
of the pair service (read only with a probe item and then dropped) is not read.

It builds on `features.online`'s plan objects, so `install_combined_read`
installs it only after it returned exactly the three-read merge on a sample
(values, dtypes, column order); otherwise the three reads stay.
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

logger = logging.getLogger("inbox.serving")
COMBINED = "serving:contact_side"


def combined_plan(reader, services, exclude, join_key: str = "contact_id"):
    """The contact-side plan of `services` (first occurrence of a column wins; `exclude` columns dropped)."""
    from features.online import _Plan, _ViewRead

    reads: dict[str, _ViewRead] = {}
    odfvs: dict[str, tuple] = {}
    columns = [join_key]
    excluded = set(exclude)
    for service in services:
        plan = reader._plan(service)
        for r in plan.reads:
            if r.join_key != join_key:
                continue
            m = reads.setdefault(r.view, _ViewRead(r.view, r.table, r.join_key, [], [], dict(r.types)))
            m.features += [f for f in r.features if f not in m.features]
            m.needed += [f for f in r.needed if f not in m.needed]
        for odfv, names in plan.odfvs:
            have = odfvs.setdefault(odfv.name, (odfv, []))[1]
            have += [n for n in names if n not in have]
        columns += [c for c in plan.columns if c not in columns and c not in excluded]
    outputs = {f for r in reads.values() for f in r.features} | {n for _, names in odfvs.values() for n in names}
    missing = [c for c in columns if c != join_key and c not in outputs]
    if missing:
        raise ValueError(f"combined plan: columns without a contact-side source {missing[:5]}")
    sql = " UNION ALL ".join(
        f'SELECT {i} AS v, entity_key, layout_id, payload FROM "{r.table}" WHERE entity_key IN ({{marks}})'
        for i, r in enumerate(reads.values())
    )
    return _Plan([join_key], list(reads.values()), list(odfvs.values()), columns, sql)


def install_combined_read(reader, services, exclude, reference_read, sample_ids, request_time) -> bool:
    """Register the combined plan under `COMBINED` if it reads exactly what `reference_read` merges."""
    try:
        reader._plans[COMBINED] = combined_plan(reader, services, exclude)
        ok = True
        for ids in (np.asarray(sample_ids, dtype=np.int64), np.asarray(sample_ids[:1], dtype=np.int64)):
            got = reader.read(COMBINED, ids, request_time=request_time)
            want = reference_read(ids)
            ok = ok and list(got.columns) == list(want.columns)
            if ok:
                pd.testing.assert_frame_equal(got, want, check_exact=True)
    except Exception as exc:  # noqa: BLE001 - any difference or failure: keep the three reads
        logger.warning("combined contact-side read not installed: %s", exc)
        ok = False
    if not ok:
        reader._plans.pop(COMBINED, None)
    return ok
