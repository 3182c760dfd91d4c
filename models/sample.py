"""A stable sample of contacts, sized so a training set stays under a row cap.

Every contact gets a number in [0, 1) from its id alone: the SplitMix64
finalizer (the output mix of `java.util.SplittableRandom`; Steele, Lea &
Flood, "Fast splittable pseudorandom number generators", OOPSLA 2014) of the
id as an unsigned 64-bit integer, top 53 bits divided by 2**53. It is pure
integer arithmetic, so the same id gets the same number in every run, process
and machine. A contact is in the sample at rate `r` when its number is below
`r`: a higher rate gives a superset, rate 1 everyone.

`rate_for_cap` picks the rate: given how many training rows each contact
contributes, the largest rate whose sample holds at most `max_rows` rows
(exact, not an expectation). Sampling whole contacts keeps each contact's
rows together and does not change the class balance, so no reweighting is
needed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def contact_unit(contact_ids) -> np.ndarray:
    """Per id, a float64 in [0, 1): SplitMix64(id + golden gamma), top 53 bits / 2**53."""
    z = np.asarray(contact_ids).astype(np.int64, copy=False).view(np.uint64) + _GAMMA
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def in_sample(contact_ids, rate: float) -> np.ndarray:
    """Boolean mask: is each contact in the sample at `rate`?"""
    if rate >= 1.0:
        return np.ones(len(np.asarray(contact_ids)), dtype=bool)
    return contact_unit(contact_ids) < rate


@dataclass(frozen=True)
class ContactSample:
    """The contacts of one training set: `ids` (sorted) = those with `contact_unit(id) < rate`."""

    rate: float
    ids: np.ndarray
    contacts_total: int  # contacts in the list
    rows_full: int  # training rows the whole list would give
    rows: int  # training rows of the sample
    max_rows: int

    @property
    def everyone(self) -> bool:
        return self.rate >= 1.0

    def params(self) -> dict:
        """MLflow params (`sample.*`)."""
        return {"sample.rate": round(self.rate, 6), "sample.contacts": len(self.ids),
                "sample.contacts_total": self.contacts_total, "sample.rows": self.rows,
                "sample.rows_full": self.rows_full, "sample.max_rows": self.max_rows,
                "sample.hash": "splitmix64(contact_id)"}


def rate_for_cap(contact_ids, rows_per_contact, max_rows: int) -> ContactSample:
    """The sample with the largest rate whose rows (sum of `rows_per_contact`) are at most `max_rows`."""
    if max_rows < 1:
        raise ValueError(f"max_rows: must be >= 1, got {max_rows}")
    ids = np.asarray(contact_ids, dtype=np.int64)
    weights = np.asarray(rows_per_contact, dtype=np.int64)
    if ids.shape != weights.shape:
        raise ValueError(f"rows_per_contact: {weights.shape} values for {ids.shape} contacts")
    if (weights < 0).any():
        raise ValueError("rows_per_contact: negative row count")
    total = int(weights.sum())
    if total <= max_rows:
        return ContactSample(1.0, np.sort(ids), len(ids), total, total, max_rows)
    unit = contact_unit(ids)
    order = np.argsort(unit, kind="stable")
    cum = np.cumsum(weights[order])
    k = int(np.searchsorted(cum, max_rows, side="right"))  # the first k contacts fit
    rate = float(unit[order[k]])  # contacts strictly below the (k+1)-th number
    keep = unit < rate
    return ContactSample(rate, np.sort(ids[keep]), len(ids), total, int(weights[keep].sum()), max_rows)
