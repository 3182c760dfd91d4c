"""Reproducible randomness keyed by decision id.

Every decision's random draw is a pure function of its decision id (and of a
stream number), so replaying a decision with the same policy version and
context gives the same variant. Generated ids are 128 independent random bits
each (`new_decision_ids`), so the logged id is the decision's seed and nothing
about one decision's id or draw follows from another's. The generator is SplitMix64 (Steele, Lea &
Flood 2014, "Fast splittable pseudorandom number generators"), a counter-based
mixer evaluated with numpy uint64 arithmetic: a whole batch of decisions gets
its uniforms in one vectorized pass, no per-decision Generator objects.
Batches of at most `smallbatch.LIMIT` keys (the serving path decides one
contact per request) use the same mixer on Python ints, where numpy's
per-call overhead would cost more than the arithmetic; both give identical bits.
"""
from __future__ import annotations

import hashlib
import os
import re

import numpy as np

from . import smallbatch

_HEX = re.compile("[0-9a-f]{32}")
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = (np.uint64(k) for k in (30, 27, 31, 11))
_MASK64 = (1 << 64) - 1
_UNIT = 1.0 / (1 << 53)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finalizer applied elementwise to uint64 values (wrapping)."""
    z = np.atleast_1d(np.asarray(x, dtype=np.uint64)) + _GOLDEN  # arrays wrap silently (scalars would warn)
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


def splitmix64_int(x: int) -> int:
    """`splitmix64` of one value as a Python int (same bits, wrapping mod 2**64)."""
    z = (x + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


_STREAM_SALTS = splitmix64(np.arange(4, dtype=np.uint64))
_STREAM_SALTS_INT = [int(s) for s in _STREAM_SALTS]


def string_key(text: str) -> int:
    """Stable 64-bit key of a string (blake2b), independent of PYTHONHASHSEED."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def _hex_pair_keys(raw: np.ndarray) -> np.ndarray:
    """Keys of 128-bit ids given as (n, 2) uint64 halves."""
    raw = np.asarray(raw, dtype=np.uint64).reshape(-1, 2)
    return splitmix64(raw[:, 0] ^ splitmix64(raw[:, 1]))


def _pair_key_int(hi: int, lo: int) -> int:
    """`_hex_pair_keys` of one (hi, lo) pair, as a Python int."""
    return splitmix64_int(hi ^ splitmix64_int(lo))


def decision_keys(decision_ids: list[str]) -> np.ndarray:
    """uint64 key per decision id; the seed of that decision's draws.

    A 32-hex-digit id (the form `new_decision_ids` makes) is keyed by its two
    64-bit halves; any other string by blake2b. Either way a pure function of
    the id string.
    """
    return np.array([_pair_key_int(int(d[:16], 16), int(d[16:], 16)) if len(d) == 32 and _HEX.fullmatch(d)
                     else string_key(d) for d in decision_ids], dtype=np.uint64)


def uniforms(keys: np.ndarray, stream: int = 0) -> np.ndarray:
    """One U[0, 1) draw per key for the given stream (0 = action draw, 1 = ...)."""
    keys = np.asarray(keys, dtype=np.uint64)
    if keys.size <= smallbatch.LIMIT:
        salt = _STREAM_SALTS_INT[stream] if stream < len(_STREAM_SALTS_INT) else splitmix64_int(stream)
        return np.array([(splitmix64_int(k ^ salt) >> 11) * _UNIT for k in keys.reshape(-1).tolist()],
                        dtype=np.float64)
    salt = _STREAM_SALTS[stream] if stream < len(_STREAM_SALTS) else splitmix64(np.uint64(stream))[0]
    mixed = splitmix64(keys ^ salt)
    return (mixed >> _S11).astype(np.float64) * _UNIT


def new_decision_ids(n: int) -> tuple[list[str], np.ndarray]:
    """n fresh decision ids, each 128 bits from the OS CSPRNG (32 hex digits), and their keys
    (equal to `decision_keys(ids)`).

    A recipient sees their decision id (it travels in the mail headers and comes back in
    webhooks and `/reward`), so an id must not lead to anyone else's: every id is drawn
    independently (one `os.urandom` call per batch, 16 bytes per id), with no time, batch
    prefix or counter in it; knowing any number of ids tells nothing about another.
    Random ids land at random places
    in the log's unique index (the price of unguessability; time-ordered ids would be
    derivable). The draws stay replayable: a decision's key is a pure function of its
    logged id.
    """
    if n < 0:
        raise ValueError("decision batch size must be >= 0")
    raw = os.urandom(16 * n)
    text = raw.hex()
    ids = [text[32 * i : 32 * i + 32] for i in range(n)]
    if n <= smallbatch.LIMIT:
        return ids, np.array([_pair_key_int(int.from_bytes(raw[16 * i : 16 * i + 8], "big"),
                                            int.from_bytes(raw[16 * i + 8 : 16 * i + 16], "big"))
                              for i in range(n)], dtype=np.uint64)
    return ids, _hex_pair_keys(np.frombuffer(raw, dtype=">u8").reshape(n, 2))


def contact_uniforms(campaign_id: str, contact_ids: np.ndarray) -> np.ndarray:
    """U[0, 1) per (campaign, contact): stable assignment, e.g. holdout membership."""
    salt = np.uint64(string_key("holdout:" + campaign_id))
    ids = np.asarray(contact_ids).astype(np.int64).view(np.uint64)
    return (splitmix64(ids ^ salt) >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
