"""Versioned policy snapshots: one .npz per version, written atomically.

`v000007.npz` holds every campaign's posterior (A, b, n) and learning cutoff
(the newest decision time already folded in). A snapshot that did not pass
the promotion gate is written as `v000007.candidate.npz`: training resumes
from it, serving does not load it. Writes go to a temp file first and are
renamed into place (os.replace), so a reader never sees half a snapshot.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .linear import LinearPosterior

_NAME = re.compile(r"^v(\d{6})(\.candidate)?\.npz$")


@dataclass
class CampaignState:
    posterior: LinearPosterior
    cutoff_us: int = 0   # decisions with decided_at <= cutoff_us are folded in


@dataclass
class Snapshot:
    version: int
    campaigns: dict[str, CampaignState] = field(default_factory=dict)
    live: bool = True
    meta: dict = field(default_factory=dict)


class SnapshotStore:
    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def versions(self, live_only: bool = False) -> list[tuple[int, bool]]:
        out = []
        for name in os.listdir(self.directory):
            m = _NAME.match(name)
            if m and not (live_only and m.group(2)):
                out.append((int(m.group(1)), not m.group(2)))
        return sorted(out)

    def newest(self, live_only: bool = False) -> int:
        """Newest version number (0 when there is none)."""
        versions = self.versions(live_only)
        return versions[-1][0] if versions else 0

    def path(self, version: int, live: bool) -> Path:
        return self.directory / f"v{version:06d}{'' if live else '.candidate'}.npz"

    def write(self, snapshot: Snapshot) -> Path:
        target = self.path(snapshot.version, snapshot.live)
        fd, tmp = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                write_npz(snapshot, fh)
            os.replace(tmp, target)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return target

    def promote(self, version: int) -> None:
        """Make a candidate snapshot live (atomic rename)."""
        candidate = self.path(version, live=False)
        if candidate.exists():
            os.replace(candidate, self.path(version, live=True))

    def read(self, version: int) -> Snapshot:
        live_path, cand_path = self.path(version, True), self.path(version, False)
        return read_npz(live_path if live_path.exists() else cand_path)


def write_npz(snapshot: Snapshot, fh) -> None:
    """Every campaign's posterior (A, b) as arrays, the rest as JSON `meta`, into the binary file `fh`."""
    arrays: dict[str, np.ndarray] = {}
    meta = {"version": snapshot.version, "live": snapshot.live, "campaigns": {}, **snapshot.meta}
    for i, (cid, state) in enumerate(snapshot.campaigns.items()):
        arrays[f"A{i}"] = state.posterior.A
        arrays[f"b{i}"] = state.posterior.b
        meta["campaigns"][cid] = {"index": i, "n": state.posterior.n, "ridge": state.posterior.ridge,
                                  "cutoff_us": state.cutoff_us}
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(fh, **arrays)


def read_npz(source) -> Snapshot:
    """The snapshot `write_npz` wrote (a path or a binary file object); `live` as stored in it."""
    with np.load(source) as data:
        meta = json.loads(str(data["meta"]))
        campaigns = {}
        for cid, info in meta.pop("campaigns").items():
            i = info["index"]
            post = LinearPosterior(A=data[f"A{i}"].copy(), b=data[f"b{i}"].copy(), n=info["n"], ridge=info["ridge"])
            campaigns[cid] = CampaignState(post, info["cutoff_us"])
    return Snapshot(version=meta.pop("version"), campaigns=campaigns, live=meta.pop("live"), meta=meta)
