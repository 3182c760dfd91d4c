"""The closing table of `inbox demo`: one readable line or a few per step, no file paths.

Each step returns what its package returns (a summary dict, a list of model
results); this module turns that into words a reviewer reads at a glance:
counts with thousands separators, rates as percentages, one line per model.
"""
from __future__ import annotations

from pathlib import PurePath

SKIP_KEYS = {"paths", "rounds", "topics", "seconds", "seconds_simulate", "run_id"}


def describe(step: str, result: object) -> str:
    """Text for the `result` column of the summary table."""
    if step == "train" and isinstance(result, list):
        return "\n".join(_model_line(r) for r in result)
    if step == "experiments" and isinstance(result, dict):
        return _experiments(result)
    if isinstance(result, dict):
        return "\n".join(_lines(result))
    return "" if result is None else str(result)


def _model_line(r: dict) -> str:
    verdict = "promoted to champion" if r.get("promoted") else "kept as challenger"
    metric = r.get("metric", "metric")
    base = f", {r['baseline_name']} {_num(r['baseline'])}" if r.get("baseline_name") else ""
    oracle = f", oracle {_num(r['oracle'])}" if r.get("oracle") is not None else ""
    choice = r.get("model_choice", "ours")
    served = "" if choice == "ours" else f"; registered the {choice.replace(': ', ' ')} (it won)"
    return f"{r.get('model')} v{r.get('version')}: {metric} {_num(r.get('ours'))}{base}{oracle}{served}; {verdict}"


def _experiments(result: dict) -> str:
    lines = []
    ab = result.get("ab") or {}
    if ab:
        wins = ", ".join(f"{m} {v} {lift:+.1%}" for m, v, lift in ab.get("significant", [])) or "no significant lift"
        srm = "; SRM mismatch!" if ab.get("srm_mismatch") else ""
        lines.append(f"A/B: campaign {ab['campaign']}, {ab['recipients']:,} recipients, {ab['variants']} variants: "
                     f"{wins}{srm}")
    bandit = result.get("bandit") or {}
    if bandit:
        uniform = f" vs uniform {bandit['uniform_regret']:,.1f}" if bandit.get("uniform_regret") is not None else ""
        lines.append(f"bandit: {bandit['decisions']:,} decisions, best {bandit['best_policy']} regret "
                     f"{bandit['best_regret']:,.1f}{uniform}")
    return "\n".join(lines)


def _lines(result: dict, prefix: str = "") -> list[str]:
    flat, nested = [], []
    for key, value in result.items():
        if key in SKIP_KEYS or _is_path(value) or isinstance(value, (list, tuple)):
            continue
        if isinstance(value, dict):
            nested.append((key, value))
        else:
            flat.append(f"{_words(key)} {_value(key, value)}")
    lines = [prefix + ", ".join(flat)] if flat else []
    for key, value in nested:
        lines += _lines(value, prefix=f"{_words(key)}: ")
    return lines


def _words(key: str) -> str:
    return str(key).replace("_", " ")


def _value(key: str, value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and str(key).endswith("_rate"):
        return f"{value:.1%}"
    return _num(value)


def _num(value: object) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


def _is_path(value: object) -> bool:
    return isinstance(value, PurePath) or (isinstance(value, str) and ("/" in value or "\\" in value))
