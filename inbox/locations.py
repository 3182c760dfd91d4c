"""Locations a data directory stores about itself, and the error for one that points elsewhere.

A data directory (`INBOX_DATA_DIR`) and an artifact root (`INBOX_ARTIFACT_ROOT`) may be copied or moved:
a backup restored on another machine, a volume mounted at another path, a benchmark world copied. What
the components record inside them must then still name the copy's own files. Feast's paths are kept
relative (`features.store`); MLflow keeps absolute artifact URIs in its tracking store, so a copy's
experiments, runs and model versions still name the original directory. The rule: a directory never
silently reads (or writes) another directory's files. Where a stored location points outside its own
directory, the boundary raises `ForeignPathError`, which names the path and the command that fixes it.
"""
from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

RELOCATE_COMMAND = "inbox relocate"


class ForeignPathError(ValueError):
    """A location stored in this data directory or artifact root points outside it.

    Attributes: `what` (the stored item), `path` (where it points), `root` (where it should be under),
    `fix` (the command that repairs it)."""

    def __init__(self, what: str, path, root, fix: str = RELOCATE_COMMAND, detail: str = ""):
        self.what, self.path, self.root, self.fix = what, str(path), str(root), fix
        super().__init__(f"{what} points to {self.path}, outside {self.root} (this directory was copied or moved "
                         f"after it was written){detail}; run `{fix}` to make it use this directory's own files")


def local_path(uri: str | None) -> Path | None:
    """The local filesystem path of a `file:` URI or a plain path; None for any other scheme (s3:, http:,
    mlflow-artifacts:, models:, ...), whose location is not a directory of this machine."""
    if not uri:
        return None
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "":
        return Path(uri)
    return None


def is_within(path, root) -> bool:
    """Whether `path` is `root` or inside it (both resolved, so symlinks and `..` do not fool it)."""
    path, root = Path(path).resolve(), Path(root).resolve()
    return path == root or root in path.parents


def outside(uri: str | None, roots) -> Path | None:
    """The local path of `uri` when it lies outside every one of `roots`; None when it is inside one
    or is not a local location."""
    path = local_path(uri)
    if path is None or any(is_within(path, root) for root in roots):
        return None
    return path


def counterpart(path, roots, min_parts: int = 1) -> Path | None:
    """This store's copy of a foreign artifact directory: the longest trailing part of `path`, of at least
    `min_parts` components, that exists under one of `roots`
    (…/mlruns/artifacts/models/m-1/artifacts -> <root>/artifacts/models/m-1/artifacts)."""
    parts = Path(path).parts
    for i in range(1, len(parts) - min_parts + 1):
        for root in roots:
            candidate = Path(root, *parts[i:])
            if candidate.exists():
                return candidate
    return None
