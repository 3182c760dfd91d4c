"""Older revisions of one package for same-run baselines (`--baseline REV` of the benchmarks)."""
from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def export_package(rev: str, dest: Path, package: str) -> Path:
    """`git archive` the `package` directory of `rev` into dest (the working tree is untouched)."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, package], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest
