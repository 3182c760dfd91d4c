"""Main effects and two-way interactions of a 2-level factorial test, from its results.

Factors are coded -1/+1 (low/high); the linear model is

    y = b0 + sum_j b_j x_j + sum_{j<l} b_jl x_j x_l + e,

fitted on per-cell sufficient statistics (n, sum y, sum y^2 per combination of
levels), so a million recipients cost one bincount. The effect of a factor (high
minus low) is 2 b_j. Linear: weighted least squares on the cell means, which
gives exactly the per-recipient OLS coefficients, with the heteroskedasticity-
robust HC1 covariance (White 1980; MacKinnon and White 1985) whose "meat"
sum_i x_i x_i' e_i^2 is, per cell, x_c x_c' (SS_within + n_c (ybar_c - yhat_c)^2).
Aggregated results (sends and successes per run, as an ESP reports them) give
the same estimates. Logistic (binary outcomes): a binomial GLM on the cell counts (statsmodels); the
effect is then reported as the odds ratio high vs low, exp(2 b_j). In a
fractional design a term aliased with an earlier one is not estimable; it is
reported with the term it is aliased with instead of a number.
"""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from scipy import stats


def _coded(df: pd.DataFrame, factor: str, levels: tuple | None) -> np.ndarray:
    values = df[factor]
    present = pd.unique(values)
    if levels is None:
        if len(present) != 2:
            raise ValueError(f"factor column {factor!r} must have exactly two levels, found {len(present)}: "
                             f"{list(present)[:5]}")
        levels = tuple(sorted(present, key=str))
    low, high = levels
    unknown = set(present) - {low, high}
    if unknown:
        raise ValueError(f"factor column {factor!r} has values {sorted(map(str, unknown))} outside {levels}")
    return np.where(values.to_numpy() == high, 1, -1).astype(np.int8), (low, high)


def _validate(df: pd.DataFrame, factors: list[str], columns: list[str], model: str) -> None:
    if model not in ("linear", "logistic"):
        raise ValueError(f"model must be linear or logistic, got {model!r}")
    if len(factors) < 1:
        raise ValueError("need at least one factor")
    missing = [c for c in [*factors, *columns] if c not in df.columns]
    if missing:
        raise ValueError(f"missing column(s) {missing}; available: {list(df.columns)}")
    for column in columns:
        if df[column].isna().any():
            raise ValueError(f"column {column!r} has missing values")


def _cells(df, factors, levels) -> tuple[np.ndarray, tuple]:
    """Cell index (bit j set = factor j at its high level) of every row."""
    coded, used_levels = zip(*(_coded(df, f, (levels or {}).get(f)) for f in factors))
    bits = np.stack([(c > 0) for c in coded], axis=1).astype(np.int64)
    return bits @ (1 << np.arange(len(factors))), used_levels


def estimate_effects(
    df: pd.DataFrame, factors: list[str], outcome: str, *, model: str = "linear", interactions: bool = True,
    levels: dict[str, tuple] | None = None, alpha: float = 0.05,
) -> pd.DataFrame:
    """From one row per recipient: effect estimates per term (coef, se, effect or odds ratio,
    interval, p-value, alias)."""
    _validate(df, factors, [outcome], model)
    y = df[outcome].to_numpy(dtype=float)
    if model == "logistic" and not np.isin(y, (0.0, 1.0)).all():
        raise ValueError(f"logistic model needs a 0/1 outcome; column {outcome!r} has other values")
    cell, used_levels = _cells(df, factors, levels)
    n_cells = 1 << len(factors)
    n = np.bincount(cell, minlength=n_cells).astype(float)
    s = np.bincount(cell, weights=y, minlength=n_cells)
    ss = np.bincount(cell, weights=y * y, minlength=n_cells)
    return _fit(factors, used_levels, n, s, ss, model, interactions, alpha)


def estimate_effects_from_counts(
    df: pd.DataFrame, factors: list[str], *, sends: str, successes: str, model: str = "logistic",
    interactions: bool = True, levels: dict[str, tuple] | None = None, alpha: float = 0.05,
) -> pd.DataFrame:
    """From aggregated results (one row per run or cell: ``sends`` recipients, ``successes`` of
    them clicked/opened/...): identical estimates to the per-recipient table they summarise."""
    _validate(df, factors, [sends, successes], model)
    n_rows, s_rows = df[sends].to_numpy(dtype=float), df[successes].to_numpy(dtype=float)
    if (n_rows < 0).any() or (s_rows < 0).any() or (s_rows > n_rows).any():
        raise ValueError(f"need 0 <= {successes!r} <= {sends!r} in every row")
    cell, used_levels = _cells(df, factors, levels)
    n_cells = 1 << len(factors)
    n = np.bincount(cell, weights=n_rows, minlength=n_cells)
    s = np.bincount(cell, weights=s_rows, minlength=n_cells)
    return _fit(factors, used_levels, n, s, s.copy(), model, interactions, alpha)  # 0/1: sum y^2 = sum y


def _fit(factors, used_levels, n, s, ss, model, interactions, alpha) -> pd.DataFrame:
    k = len(factors)
    n_cells = 1 << k
    keep = n > 0
    cell_x = ((np.arange(n_cells)[:, None] >> np.arange(k)) & 1) * 2 - 1
    terms = [(j,) for j in range(k)] + (list(itertools.combinations(range(k), 2)) if interactions else [])
    columns = [np.ones(n_cells)] + [np.prod(cell_x[:, list(t)], axis=1) for t in terms]
    names = ["intercept"] + [":".join(factors[j] for j in t) for t in terms]
    X_all = np.stack(columns, axis=1)[keep]
    kept, aliases = _estimable(X_all, names)
    X = X_all[:, kept]
    if model == "linear":
        coef, cov = _wls_hc1(X, n[keep], s[keep], ss[keep])
        ref = stats.t(df=max(n.sum() - X.shape[1], 1))
    else:
        coef, cov = _binomial_glm(X, n[keep], s[keep])
        ref = stats.norm()
    se = np.sqrt(np.diag(cov))
    crit = ref.ppf(1 - alpha / 2)
    scale = (lambda v: np.exp(2 * v)) if model == "logistic" else (lambda v: 2 * v)
    rows = []
    for j, idx in enumerate(kept):
        b, e = coef[j], se[j]
        rows.append({
            "term": names[idx], "coef": b, "se": e,
            "effect": scale(b) if idx else np.nan,
            "ci_low": scale(b - crit * e) if idx else np.nan, "ci_high": scale(b + crit * e) if idx else np.nan,
            "p_value": 2 * ref.sf(abs(b / e)), "aliased_with": "",
        })
    for idx, partner in aliases.items():
        rows.append({"term": names[idx], "coef": np.nan, "se": np.nan, "effect": np.nan, "ci_low": np.nan,
                     "ci_high": np.nan, "p_value": np.nan, "aliased_with": partner})
    out = pd.DataFrame(rows)
    out.attrs.update(model=model, effect="odds ratio high/low" if model == "logistic" else "high - low",
                     levels=dict(zip(factors, used_levels)))
    return out


def _estimable(X: np.ndarray, names: list[str]) -> tuple[list[int], dict[int, str]]:
    """Keep columns in order while they add rank; name what each dropped column is aliased with."""
    kept, aliases = [], {}
    for j in range(X.shape[1]):
        trial = X[:, kept + [j]]
        if np.linalg.matrix_rank(trial) == len(kept) + 1:
            kept.append(j)
            continue
        twins = [names[i] for i in kept if np.allclose(X[:, i], X[:, j]) or np.allclose(X[:, i], -X[:, j])]
        aliases[j] = " = ".join(twins) if twins else "not estimable (linear combination of kept terms)"
    return kept, aliases


def _wls_hc1(X, n, s, ss):
    ybar = s / n
    xtwx = X.T @ (X * n[:, None])
    bread = np.linalg.inv(xtwx)
    coef = bread @ (X.T @ s)
    fitted = X @ coef
    within = ss - s * ybar
    squared_residuals = within + n * (ybar - fitted) ** 2
    meat = X.T @ (X * squared_residuals[:, None])
    total, p = n.sum(), X.shape[1]
    return coef, bread @ meat @ bread * total / max(total - p, 1)


def _binomial_glm(X, n, s):
    import warnings

    import statsmodels.api as sm

    with warnings.catch_warnings():  # a saturated cell model has no residual df: not an error here
        warnings.simplefilter("ignore")
        fit = sm.GLM(np.column_stack([s, n - s]), X, family=sm.families.Binomial()).fit()
    return np.asarray(fit.params), np.asarray(fit.cov_params())
