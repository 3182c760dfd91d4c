"""Experiments: the contextual-bandit allocator (`bandit`) and A/B test analysis and design (`abtest`)."""
from __future__ import annotations

import importlib


def lazy_exports(package: str, exports: dict[str, str]):
    """A module-level `__getattr__` (PEP 562) for `package`: each name of `exports` (name -> module) is
    imported from its module on first use, so importing the package itself stays cheap."""

    def __getattr__(name: str):
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
