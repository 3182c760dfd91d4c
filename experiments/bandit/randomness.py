"""Reproducible randomness keyed by decision id.

Every decision's random draw is a pure function of its decision id (and of a
stream number), so replaying a decision with the same policy version and
context gives the same variant. The generator is SplitMix64 (Steele, Lea &
Flood 2014, "Fast splittable pseudorandom number generators"), a counter-based
mixer evaluated with numpy uint64 arithmetic: a whole batch of decisions gets
its uniforms in one vectorized pass, no per-decision Generator objects.
"""
from __future__ import annotations

import hashlib
import os
import re

import numpy as np

_HEX = re.compile("[0-9a-f]{32}")
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finalizer applied elementwise to uint64 values (wrapping)."""
    z = np.atleast_1d(np.asarray(x, dtype=np.uint64)) + _GOLDEN  # arrays wrap silently (scalars would warn)
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


_STREAM_SALTS = splitmix64(np.arange(4, dtype=np.uint64))


def string_key(text: str) -> int:
    """Stable 64-bit key of a string (blake2b), independent of PYTHONHASHSEED."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def _hex_pair_keys(raw: np.ndarray) -> np.ndarray:
    """Keys of 128-bit ids given as (n, 2) uint64 halves."""
    raw = np.asarray(raw, dtype=np.uint64).reshape(-1, 2)
    return splitmix64(raw[:, 0] ^ splitmix64(raw[:, 1]))


def decision_keys(decision_ids: list[str]) -> np.ndarray:
    """uint64 key per decision id; the seed of that decision's draws.

    A 32-hex-digit id (the form `new_decision_ids` makes) is keyed by its two
    64-bit halves; any other string by blake2b. Either way a pure function of
    the id string.
    """
    out = np.empty(len(decision_ids), dtype=np.uint64)
    for i, d in enumerate(decision_ids):
        if len(d) == 32 and _HEX.fullmatch(d):
            out[i] = _hex_pair_keys(np.array([int(d[:16], 16), int(d[16:], 16)], dtype=np.uint64))[0]
        else:
            out[i] = string_key(d)
    return out


def uniforms(keys: np.ndarray, stream: int = 0) -> np.ndarray:
    """One U[0, 1) draw per key for the given stream (0 = action draw, 1 = ...)."""
    salt = _STREAM_SALTS[stream] if stream < len(_STREAM_SALTS) else splitmix64(np.uint64(stream))[0]
    mixed = splitmix64(np.asarray(keys, dtype=np.uint64) ^ salt)
    return (mixed >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def new_decision_ids(n: int, now_us: int) -> tuple[list[str], np.ndarray]:
    """n fresh 128-bit hex decision ids and their keys (equal to `decision_keys(ids)`).

    Layout (hex digits): 13 time (epoch microseconds) | 11 random (OS entropy,
    per batch) | 8 row counter. Ids of a batch are increasing, so the log's
    unique index is appended to rather than written at random places.
    """
    if n >= 1 << 32:
        raise ValueError("decision batch too large")
    rand = int.from_bytes(os.urandom(8), "little") & ((1 << 44) - 1)
    prefix = f"{now_us & ((1 << 52) - 1):013x}{rand:011x}"
    ids = [prefix + format(i, "08x") for i in range(n)]
    hi = np.full(n, ((now_us & ((1 << 52) - 1)) << 12) | (rand >> 32), dtype=np.uint64)
    lo = np.uint64((rand & 0xFFFFFFFF) << 32) | np.arange(n, dtype=np.uint64)
    return ids, _hex_pair_keys(np.stack([hi, lo], axis=1))


def contact_uniforms(campaign_id: str, contact_ids: np.ndarray) -> np.ndarray:
    """U[0, 1) per (campaign, contact): stable assignment, e.g. holdout membership."""
    salt = np.uint64(string_key("holdout:" + campaign_id))
    ids = np.asarray(contact_ids).astype(np.int64).view(np.uint64)
    return (splitmix64(ids ^ salt) >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
