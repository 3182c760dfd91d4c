"""From a per-recipient table (DataFrame, CSV or Parquet) to sufficient statistics.

Validates at the boundary (columns, control, variant count, binary values) and
then reduces every metric to per-variant sums in one vectorized pass.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from experiments.abtest.metrics import MetricSpec
from experiments.abtest.sufficient import MetricStats, metric_stats_by_group


@dataclass(frozen=True)
class VariantTable:
    """Per-metric sufficient statistics, arrays aligned with ``variants`` (control first)."""

    variants: tuple[str, ...]
    control: str
    stats: dict[str, MetricStats]
    winsor_caps: dict[str, float] = field(default_factory=dict)
    covariate: str | None = None

    @property
    def counts(self) -> np.ndarray:
        first = next(iter(self.stats.values()))
        return np.asarray(first.n, dtype=float)


def read_table(path: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    """Read only the needed columns of a CSV or Parquet file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"data file not found: {path}")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        available = pq.read_schema(path).names
        require_columns(available, columns or [], source=str(path))
        return pd.read_parquet(path, columns=columns)
    if suffix in (".csv", ".gz", ".txt"):
        header = pd.read_csv(path, nrows=0).columns
        require_columns(list(header), columns or [], source=str(path))
        return pd.read_csv(path, usecols=columns, engine="pyarrow")
    raise ValueError(f"data file {path}: unsupported format {suffix!r} (use .csv or .parquet)")


def require_columns(available, needed, source: str) -> None:
    missing = [c for c in dict.fromkeys(needed) if c not in set(available)]
    if missing:
        raise ValueError(f"{source}: missing column(s) {missing}; available: {list(available)}")


def needed_columns(variant: str, metrics: list[MetricSpec], covariate: str | None) -> list[str]:
    cols = [variant] + [c for m in metrics for c in m.columns]
    if covariate:
        cols.append(covariate)
    return list(dict.fromkeys(cols))


def summarize(
    df: pd.DataFrame,
    variant: str,
    control: str,
    metrics: list[MetricSpec],
    covariate: str | None = None,
    extra_variants: tuple[str, ...] = (),
) -> VariantTable:
    """Validate the table and compute the sufficient statistics of every metric.

    ``extra_variants`` (planned in the split but absent from the data) are kept with n = 0.
    """
    if not metrics:
        raise ValueError("at least one metric is required")
    names = [m.name for m in metrics]
    if len(set(names)) != len(names):
        raise ValueError(f"metric names must be unique, got {names}")
    require_columns(df.columns, needed_columns(variant, metrics, covariate), source="data")
    codes, uniques = pd.factorize(df[variant])
    if (codes < 0).any():
        raise ValueError(f"variant column {variant!r} has {int((codes < 0).sum())} missing values")
    observed = [str(u) for u in uniques]
    if len(set(observed)) != len(observed):
        raise ValueError(f"variant column {variant!r}: labels {list(uniques)} are not distinct as text")
    control = str(control)
    if control not in observed:
        raise ValueError(f"control {control!r} not found in column {variant!r}; variants present: {observed}")
    others = sorted(set(observed) - {control}) + sorted(set(map(str, extra_variants)) - set(observed))
    variants = (control, *others)
    if len(variants) < 2:
        raise ValueError(f"need at least two variants in column {variant!r}, found only {observed}")
    remap = np.array([variants.index(v) for v in observed], dtype=np.int64)
    codes = remap[codes]
    k = len(variants)

    x = numeric_column(df, covariate, "covariate") if covariate else None
    stats, caps = {}, {}
    for metric in metrics:
        value = metric_values(df, metric)
        if metric.winsorize is not None:
            caps[metric.name] = winsor_cap(value, metric.winsorize)
            value = np.minimum(value, caps[metric.name])
        den = numeric_column(df, metric.denominator, f"metric {metric.name!r} denominator") if metric.denominator else None
        use_x = x if metric.kind != "ratio" else None
        stats[metric.name] = metric_stats_by_group(codes, k, value, den, use_x)
    return VariantTable(variants=variants, control=control, stats=stats, winsor_caps=caps, covariate=covariate)


def winsor_cap(values: np.ndarray, percentile: float) -> float:
    """The cap: the given percentile of the non-zero values (revenue is mostly zero)."""
    nonzero = values[values != 0]
    if nonzero.size == 0:
        return float("inf")
    return float(np.quantile(nonzero, percentile))


def numeric_column(df: pd.DataFrame, column: str, role: str) -> np.ndarray:
    series = df[column]
    if series.dtype == bool:
        series = series.astype(np.int8)
    if not pd.api.types.is_numeric_dtype(series):
        raise ValueError(f"{role} column {column!r} must be numeric, got dtype {series.dtype}")
    values = series.to_numpy(dtype=float, na_value=np.nan)
    missing = np.isnan(values)
    if missing.any():
        raise ValueError(f"{role} column {column!r} has {int(missing.sum())} missing values; fill them first")
    return values


def metric_values(df: pd.DataFrame, metric: MetricSpec) -> np.ndarray:
    values = numeric_column(df, metric.column, f"metric {metric.name!r}")
    if metric.kind == "binary":
        bad = (values != 0) & (values != 1)
        if bad.any():
            examples = np.unique(values[bad])[:5].tolist()
            raise ValueError(
                f"metric {metric.name!r} is declared binary but column {metric.column!r} has "
                f"{int(bad.sum())} values that are not 0/1 (e.g. {examples})"
            )
    return values
