"""Metric declarations: what to compute from which columns.

A metric is one of
- ``binary``: a 0/1 column per recipient (open, click, unsubscribe, complaint);
- ``continuous``: a numeric column per recipient (revenue), optionally winsorized;
- ``ratio``: sum(numerator) / sum(denominator) over recipients (click-to-open),
  analysed with the delta method (Deng, Knoblich and Lu 2018, "Applying the
  Delta Method in Metric Analytics", KDD).

Guardrail metrics (unsubscribe, complaint) are tested one-sided for harm.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

KINDS = ("binary", "continuous", "ratio")

_RATIO = re.compile(r"^ratio\(\s*([^,()\s]+)\s*,\s*([^,()\s]+)\s*\)$")


@dataclass(frozen=True)
class MetricSpec:
    """One metric. ``column`` is the per-recipient column (the numerator for a ratio)."""

    name: str
    kind: str
    column: str
    denominator: str | None = None
    higher_is_better: bool = True
    guardrail: bool = False
    winsorize: float | None = None  # upper percentile (0-1) of the non-zero values

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"metric {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")
        if (self.kind == "ratio") != (self.denominator is not None):
            raise ValueError(f"metric {self.name!r}: a denominator is required for (and only for) ratio metrics")
        if self.winsorize is not None:
            if self.kind != "continuous":
                raise ValueError(f"metric {self.name!r}: winsorizing applies to continuous metrics only")
            if not 0.0 < self.winsorize < 1.0:
                raise ValueError(f"metric {self.name!r}: winsorize percentile must be in (0, 1), got {self.winsorize}")

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.column,) if self.denominator is None else (self.column, self.denominator)

    @classmethod
    def binary(cls, column: str, **kw) -> "MetricSpec":
        return cls(name=kw.pop("name", column), kind="binary", column=column, **kw)

    @classmethod
    def continuous(cls, column: str, **kw) -> "MetricSpec":
        return cls(name=kw.pop("name", column), kind="continuous", column=column, **kw)

    @classmethod
    def ratio(cls, name: str, numerator: str, denominator: str, **kw) -> "MetricSpec":
        return cls(name=name, kind="ratio", column=numerator, denominator=denominator, **kw)

    @classmethod
    def guardrail_metric(cls, column: str, kind: str = "binary", **kw) -> "MetricSpec":
        """A metric where an increase is harm (unsubscribe, complaint) unless told otherwise."""
        kw.setdefault("higher_is_better", False)
        return cls(name=kw.pop("name", column), kind=kind, column=column, guardrail=True, **kw)


def parse_metric(text: str, *, guardrail: bool = False, winsorize: float | None = None) -> MetricSpec:
    """Parse ``COL:binary``, ``COL:continuous`` or ``NAME:ratio(NUM,DEN)``.

    A trailing ``:lower`` marks a metric where lower is better (``:higher`` the default).
    Guardrails default to lower-is-better (an increase in unsubscribes is harm).
    """
    parts = text.strip().split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise ValueError(
            f"metric {text!r}: expected COL:binary, COL:continuous or NAME:ratio(NUM,DEN) "
            "(optionally followed by :lower or :higher)"
        )
    name, kind = parts[0].strip(), parts[1].strip()
    higher_is_better = not guardrail
    if len(parts) == 3:
        direction = parts[2].strip()
        if direction not in ("lower", "higher"):
            raise ValueError(f"metric {text!r}: direction must be 'lower' or 'higher', got {direction!r}")
        higher_is_better = direction == "higher"
    common = dict(higher_is_better=higher_is_better, guardrail=guardrail)
    match = _RATIO.match(kind)
    if match:
        return MetricSpec.ratio(name, match.group(1), match.group(2), **common)
    if kind == "binary":
        return MetricSpec.binary(name, **common)
    if kind == "continuous":
        return MetricSpec.continuous(name, winsorize=winsorize, **common)
    raise ValueError(f"metric {text!r}: kind must be binary, continuous or ratio(NUM,DEN), got {kind!r}")
