"""Per-row "why" from LightGBM feature contributions (`pred_contrib=True`, TreeSHAP).

Lundberg et al., "From local explanations to global understanding with
explainable AI for trees", Nature Machine Intelligence 2020. For each row the
three largest positive and three most negative contributions (log-odds) are
turned into short phrases such as "opened 6 emails in the last 30 days" or
"seniority is executive". Vectorized: strings are built only for the picked
cells, one numpy/pandas formatting pass per feature.

A reason must tell this contact apart from the others. A yes/no flag in its
ordinary state ("bounced: no", "consent: yes") holds for most contacts, so its
contribution is never offered as a reason; only the exceptional state is
("bounced: yes", "consent: no").
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

# Feature-name patterns -> phrase template ({v} is the formatted value).
# First match wins; names are matched after stripping a Feast "view__" prefix.
PHRASES: tuple[tuple[str, str], ...] = (
    (r"^(industry|company_size|seniority|country|signup_source|domain_kind|timezone|topic|format)$",
     "{name} is {v}"),
    (r"^email_(valid|is_valid)$", "email address valid: {v}"),
    (r"(^|_)consent$", "consent: {v}"),
    (r"^(n_)?(sends|opens|clicks|conversions|unsubscribes|bounces|complaints)_(\d+)d$",
     "{v} {2} in the last {3} days"),
    (r"^(sends|opens|clicks|conversions|unsubscribes|bounces|complaints)_(total|all|lifetime)$",
     "{v} {1} in total"),
    (r"^(open|click|conversion|unsubscribe|bounce)_rate_(\d+)d$", "{1} rate {v} over the last {2} days"),
    (r"^(open|click|conversion|unsubscribe|bounce)_rate(_decayed|_ewm)?$", "{1} rate {v}"),
    (r"^days_since_(last_)?(\w+)$", "{v} days since the last {2}"),
    (r"^(tenure|account_age|age)_days$", "on the list for {v} days"),
    (r"^(unsubscribed|bounced|complained)$", "{name}: {v}"),
    (r"^engagement_score$", "engagement score {v}"),
    (r"^sends_since_last_open$", "{v} sends since the last open"),
    (r"^revenue_(\d+)d$", "revenue {v} in the last {1} days"),
)


# the ordinary state of a yes/no feature; any boolean not listed is ordinarily False
ORDINARY_STATE = {"consent": True, "email_valid": True}

NO_EVENT = re.compile(r"^days_since_(last_)?(\w+)$")


def _clean(name: str) -> str:
    return name.split("__", 1)[-1] if "__" in name else name


def _template(name: str) -> tuple[str, tuple[str, ...]]:
    base = _clean(name)
    for pattern, template in PHRASES:
        m = re.search(pattern, base)
        if m:
            return template, tuple(g or "" for g in m.groups())
    return "{name}: {v}", ()


def _format_values(values: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(values):
        return values.map({True: "yes", False: "no"}).astype(object)
    if pd.api.types.is_numeric_dtype(values):
        v = values.astype(float)
        whole = np.isfinite(v) & (np.abs(v - np.round(v)) < 1e-9)
        big = np.isfinite(v) & (np.abs(v) >= 10)
        out = np.where(whole | big, v.round().astype("Int64").astype(str), v.map(lambda x: f"{x:.2g}"))
        return pd.Series(np.where(v.isna(), "unknown", out), index=values.index, dtype=object)
    return values.astype(object).where(values.notna(), "unknown").astype(str)


def phrase(name: str, values: pd.Series) -> pd.Series:
    """Readable phrase for one feature at many values."""
    template, groups = _template(name)
    readable = _clean(name).replace("_", " ")
    v = _format_values(values)
    if base_missing := NO_EVENT.search(_clean(name)):
        v = v.where(values.notna(), None)
        missing = values.isna().to_numpy()
    else:
        missing = np.zeros(len(values), dtype=bool)
    head, _, tail = template.partition("{v}")
    fill = {str(i + 1): g.replace("_", " ") for i, g in enumerate(groups)}
    fill["name"] = readable
    head = re.sub(r"\{(\w+)\}", lambda m: fill.get(m.group(1), m.group(0)), head)
    tail = re.sub(r"\{(\w+)\}", lambda m: fill.get(m.group(1), m.group(0)), tail)
    out = head + v.fillna("") + tail
    if missing.any():
        out[missing] = f"no {base_missing.group(2)} yet"
    return out


def top_reasons(
    contributions: np.ndarray, features: pd.DataFrame, k: int = 3, min_abs: float = 1e-6
) -> tuple[list[list[str]], list[list[str]]]:
    """Top-k positive and top-k negative reasons per row.

    `contributions` is the (n, n_features + 1) output of `Booster.predict(...,
    pred_contrib=True)` (last column = bias, ignored); `features` holds the raw
    (display) values with the same column order.
    """
    contrib = np.array(contributions, dtype=float)[:, : features.shape[1]]
    n, f = contrib.shape
    for j, name in enumerate(features.columns):  # a flag in its ordinary state is not a reason
        col = features.iloc[:, j]
        if pd.api.types.is_bool_dtype(col):
            contrib[col.to_numpy(dtype=bool) == ORDINARY_STATE.get(_clean(name), False), j] = 0.0
    k = min(k, f)
    pos_idx = np.argsort(-contrib, axis=1, kind="stable")[:, :k]
    neg_idx = np.argsort(contrib, axis=1, kind="stable")[:, :k]
    picks = np.concatenate([pos_idx, neg_idx], axis=1)  # (n, 2k)
    values = np.take_along_axis(contrib, picks, axis=1)
    keep = np.concatenate([values[:, :k] > min_abs, values[:, k:] < -min_abs], axis=1)
    flat_feat = picks.ravel()
    flat_row = np.repeat(np.arange(n), 2 * k)
    flat_keep = keep.ravel()
    out = np.full(n * 2 * k, "", dtype=object)
    for j in np.unique(flat_feat[flat_keep]):
        cells = np.flatnonzero((flat_feat == j) & flat_keep)
        col = features.iloc[flat_row[cells], j].reset_index(drop=True)
        out[cells] = phrase(features.columns[j], col).to_numpy()
    text = out.reshape(n, 2 * k)
    positive = [[s for s in r if s] for r in text[:, :k]]
    negative = [[s for s in r if s] for r in text[:, k:]]
    return positive, negative
