"""The simulator's world restricted to the contacts an evaluation scores (the oracle, bounded).

`World.load` reads every contact row (addresses and all) and every latent
trait, so its memory grows with the list; the oracle only needs the contacts
being evaluated. `load_world` reads the saved world's files (`World.save`'s
layout) for those contacts alone and builds the same `World`, whose
`response` model gives the same probabilities for them
(`tests/models/test_model_sampling.py` checks it against `World.load`).
"""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq


def load_world(world_dir, contact_ids):
    """`World` of `world_dir` with only the contacts in `contact_ids` (and the whole content catalog)."""
    from simulation.eventlog import read_table, validate
    from simulation.world import ContentTraits, Traits, World, WorldConfig

    d = Path(world_dir)
    if not (d / "config.json").exists():
        raise FileNotFoundError(f"no saved world in {d} (missing config.json)")
    config = WorldConfig.from_json((d / "config.json").read_text())
    wanted = np.unique(np.asarray(contact_ids, dtype=np.int64))
    every = pq.read_table(d / "contacts.parquet", columns=["contact_id"]).column(0).to_numpy()
    order = np.argsort(every, kind="stable")
    at = np.minimum(np.searchsorted(every, wanted, sorter=order), len(every) - 1)
    rows = order[at]  # row of each wanted contact in the saved world (traits are stored by row)
    unknown = every[rows] != wanted if len(every) else np.ones(len(wanted), dtype=bool)
    if unknown.any():
        raise ValueError(f"contact_ids: {int(unknown.sum())} contact(s) not in the world {d} "
                         f"(first: {wanted[unknown][0]})")
    table = pads.dataset(str(d / "contacts.parquet"), format="parquet").to_table(
        filter=pc.field("contact_id").isin(pa.array(wanted, pa.int64())))
    contacts = validate("contacts", table).to_pandas().sort_values("contact_id", kind="stable")
    contacts = contacts.reset_index(drop=True)  # by contact id, like `wanted` and `rows`
    with np.load(d / "traits.npz", allow_pickle=False) as z:
        per_contact = {f.name: z[f.name][rows] for f in fields(Traits) if f.name != "topics"}
        traits = Traits(**per_contact, topics=tuple(str(t) for t in z["topics"]))
        content_traits = ContentTraits(open_appeal=z["content_open_appeal"], click_appeal=z["content_click_appeal"])
    content = read_table("content", d / "content.parquet")
    return World(config, contacts, content, traits, content_traits)
