"""Model quality against baselines and ceilings, one table per world seed (issue 14's checks).

    # 1. per world: train and evaluate the three models as `inbox train` does (no MLflow), save the results
    INBOX_DATA_DIR=DATA python benchmarks/bench_model_quality.py run --out results/seed7.json
    # 2. per world: the ceilings (benchmarks/bench_model_ceilings.py --json results/ceilings7.json)
    # 3. one table per seed: each model's metric, each baseline, the ceiling with its CI, share of lift,
    #    paired p-values, calibration ratio, target met or not
    python benchmarks/bench_model_quality.py report results/seed*.json --ceilings results/ceilings*.json \
        [--plot quality.png]   # the same numbers as one figure: a panel per model, seeds side by side

Every number of one row comes from the same test rows: the specs' own `evaluate`
(paired tests from `models.paired`: DeLong for the lead AUC, bootstraps over
contacts for send time and content). The targets are issue 14's:

* lead: share of AUC lift >= 0.90 of the ceiling, AUC >= the best baseline and
  non-inferior to it (DeLong, margin 0.003, one-sided p < 0.05), calibration
  ratio in [0.8, 1.25], ECE <= 0.2 x base rate;
* send time: uplift share >= 0.95 of the Bayes ceiling, above every baseline
  (paired bootstrap p < 0.05);
* content: NDCG@3 share of lift >= 0.70 of the history-aware ceiling, above
  every baseline (paired bootstrap p < 0.05).
"""
from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")

METRIC = {"lead_scoring": "test_auc", "send_time": "uplift_ratio", "content_preference": "ndcg_at_3"}
SHARE_TARGET = {"lead_scoring": 0.90, "send_time": 0.95, "content_preference": 0.70}


def run(out: Path, models: list[str], seed: int) -> None:
    from inbox.settings import load_settings
    from models.harness import TrainingContext, choose_predictor
    from models.training import make_spec

    ctx = TrainingContext(load_settings(), seed=seed, progress=lambda m: print(m, flush=True))
    result = {"world_seed": ctx.world_seed(), "models": {}}
    if out.exists():
        result = json.loads(out.read_text())
    for name in models:
        t0 = time.perf_counter()
        spec = make_spec(name)
        prepared = spec.prepare(ctx)
        predictor = spec.fit(prepared, ctx)
        ev = spec.evaluate(predictor, prepared, ctx)
        _, choice, _ = choose_predictor(spec, ev, predictor, prepared, ctx)  # what training would register
        rec = {"metric": METRIC[name], "ours": ev.ours, "oracle": ev.oracle, "random": ev.random,
               "calibration_ratio": ev.calibration_ratio, "baseline_name": ev.baseline_name,
               "baselines": {k.split("_baseline_", 1)[1]: v for k, v in ev.metrics.items()
                             if k.startswith(METRIC[name] + "_baseline_")},
               "paired": {k: t.as_dict() for k, t in ev.paired.items()}, "best_baseline": ev.best_baseline,
               "metrics": {k: v for k, v in ev.metrics.items() if isinstance(v, (int, float))},
               "tables": {k: t.to_dict(orient="records") for k, t in ev.tables.items()},
               "choice": choice, "seconds": time.perf_counter() - t0}
        result["models"][name] = rec
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=1, default=float))
        tmp.replace(out)
        print(f"{name}: ours {ev.ours:.4f}, {ev.baseline_name} {ev.baseline:.4f} ({rec['seconds']:.0f} s)", flush=True)
        del prepared, predictor, ev


def _met(name: str, rec: dict, share: float | None) -> tuple[bool | None, str]:
    paired = rec["paired"]
    if name == "lead_scoring":
        t = paired[rec["best_baseline"]]
        m = rec["metrics"]
        parts = {"share": None if share is None else share >= SHARE_TARGET[name],
                 ">= baseline": t["diff"] >= 0, "non-inferior": t["p_noninferior"] < 0.05,
                 "ratio": 0.8 <= rec["calibration_ratio"] <= 1.25,
                 "ECE": m["test_ece"] <= 0.2 * m["test_base_rate"]}
    else:
        parts = {"share": None if share is None else share >= SHARE_TARGET[name],
                 **{f"> {k}": t["ci_low"] > 0 and t["p_superior"] < 0.05 for k, t in paired.items()}}
    missed = [k for k, v in parts.items() if v is False]
    unknown = [k for k, v in parts.items() if v is None]
    if missed:
        return False, "missed: " + ", ".join(missed)
    return (None, "unknown: " + ", ".join(unknown)) if unknown else (True, "met")


def _served(name: str, rec: dict, c: dict | None) -> list[str] | None:
    """A row for what training registers instead of ours when a baseline beats it (`choose_predictor`): its
    metric, its paired tests against the other baselines (when the spec logs them) and its share of lift."""
    choice = rec.get("choice", "ours")
    if choice == "ours":
        return None
    best, m = rec["best_baseline"], rec["metrics"]
    value = rec["baselines"][best]
    share = None if c is None or rec["random"] is None else (value - rec["random"]) / (c["value"] - rec["random"])
    others = {k: (m[f"paired_{best}_vs_{k}_p"], m[f"paired_{best}_vs_{k}_ci_low"]) for k in rec["baselines"]
              if f"paired_{best}_vs_{k}_p" in m}
    parts = {"share": None if share is None else share >= SHARE_TARGET[name],
             **{f"> {k}": ci_low > 0 and p < 0.05 for k, (p, ci_low) in others.items()}}
    missed = [k for k, v in parts.items() if v is False]
    why = ("missed: " + ", ".join(missed)) if missed else "unknown: share" if share is None else "met: " + ", ".join(parts)
    colour = "red" if missed else "green" if share is not None else "white"
    return [f"  served: {choice}", rec["metric"], f"{value:.4f}", "",
            "\n".join(f"{k}: {p:.3g}" for k, (p, _) in others.items()), "", "",
            "-" if share is None else f"{share:.3f}", "", f"[{colour}]{why} (as served)[/]"]


def _calibration(rec: dict) -> str:
    """The served calibration ratio; for lead scoring with the send plan, the no-plan ratio and ECE beside it."""
    if rec["calibration_ratio"] is None:
        return "-"
    m = rec["metrics"]
    if "test_calibration_ratio_no_plan" not in m:
        return f"{rec['calibration_ratio']:.2f}"
    plan = "with the plan" if m.get("test_served_with_plan") else "no plan (no line)"
    return (f"{rec['calibration_ratio']:.2f} {plan}, ECE {m['test_ece_over_base_rate']:.2f} x base\n"
            f"(no plan {m['test_calibration_ratio_no_plan']:.2f}, ECE {m['test_ece_over_base_rate_no_plan']:.2f} x base)")


def _panel_rows(res: dict, name: str, c: dict | None) -> dict:
    """One model of one seed as the figure draws it: random, baselines, ours, served and the ceiling."""
    rec = res["models"][name]
    choice = rec.get("choice", "ours")
    served = None if choice == "ours" else rec["baselines"][rec["best_baseline"]]
    return {"seed": str(res["world_seed"]), "metric": rec["metric"], "random": rec["random"], "ours": rec["ours"],
            "baselines": rec["baselines"], "served": served,
            "ceiling": None if c is None else (c["value"], *c["ci"])}


def plot(panels: dict[str, list[dict]], path: Path) -> None:
    """One panel per model on the share-of-lift scale (0 = random, 1 = the ceiling), seeds side by side: each
    baseline, ours, what training serves when a baseline won, the ceiling's 95% CI and the target share.
    Seeds without a ceiling are left out (no scale)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.2 * len(panels), 4.6), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    markers = "v^<>sPX*"
    for ax, (name, rows) in zip(axes, panels.items()):
        rows = [r for r in rows if r["ceiling"] is not None and r["random"] is not None]
        names = sorted({b for r in rows for b in r["baselines"]})
        shown = set()

        def once(label):
            if label in shown:
                return None
            shown.add(label)
            return label

        for i, r in enumerate(rows):
            v, lo, hi = r["ceiling"]
            share = lambda x: (x - r["random"]) / (v - r["random"])  # noqa: E731
            ax.errorbar(i + 0.3, 1.0, yerr=[[1 - share(lo)], [share(hi) - 1]], fmt="_", color="black", ms=14,
                        capsize=5, label=once("ceiling, 95% CI"))
            for j, b in enumerate(names):
                if b in r["baselines"]:
                    ax.plot(i - 0.15, share(r["baselines"][b]), markers[j % len(markers)], color=f"C{j + 2}", ms=7,
                            label=once(b))
            ax.plot(i, share(r["ours"]), "o", color="tab:blue", ms=9, label=once("ours"))
            if r["served"] is not None:
                ax.plot(i + 0.15, share(r["served"]), "D", mfc="none", mec="tab:orange", mew=2, ms=10,
                        label=once("served (a baseline won)"))
        ax.axhline(SHARE_TARGET[name], color="tab:red", ls="--", lw=1, label=f"target {SHARE_TARGET[name]:.2f}")
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xticks(range(len(rows)), [f"seed {r['seed']}" for r in rows])
        ax.set_xlim(-0.6, len(rows) - 0.4)
        ax.set_title(f"{name} ({rows[0]['metric'] if rows else '-'})")
        ax.set_ylabel("share of lift: (metric - random) / (ceiling - random)")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
    fig.suptitle("test period, same rows for every scorer")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def report(results: list[Path], ceilings: list[Path], plot_path: Path | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    ceiling_of = {}
    for path in ceilings:
        c = json.loads(path.read_text())
        ceiling_of.setdefault(str(c["world_seed"]), {}).update(c)  # later files override earlier ones
    console = Console(width=200)
    panels: dict[str, list[dict]] = {}
    for path in results:
        res = json.loads(path.read_text())
        seed = str(res["world_seed"])
        for name in res["models"]:
            panels.setdefault(name, []).append(_panel_rows(res, name, ceiling_of.get(seed, {}).get(name)))
        table = Table(title=f"world seed {seed}: test period, same rows for every scorer")
        for col in ("model", "metric", "ours", "baselines", "paired p (ours <= baseline)", "oracle",
                    "ceiling [95% CI]", "share of lift", "calibration ratio", "target"):
            table.add_column(col, justify="left" if col in ("model", "metric", "baselines", "target",
                                                            "paired p (ours <= baseline)") else "right")
        for name, rec in res["models"].items():
            c = ceiling_of.get(seed, {}).get(name)
            share = None
            if c is not None and rec["random"] is not None:
                share = (rec["ours"] - rec["random"]) / (c["value"] - rec["random"])
            met, why = _met(name, rec, share)
            ps = "\n".join(f"{k}: {t['p_superior']:.3g} (ni {t['p_noninferior']:.3g})" if name == "lead_scoring"
                           else f"{k}: {t['p_superior']:.3g}" for k, t in rec["paired"].items())
            table.add_row(
                name, rec["metric"], f"{rec['ours']:.4f}",
                "\n".join(f"{k} {v:.4f}" for k, v in rec["baselines"].items()), ps, f"{rec['oracle']:.4f}",
                "-" if c is None else f"{c['value']:.4f} [{c['ci'][0]:.4f}, {c['ci'][1]:.4f}]",
                "-" if share is None else f"{share:.3f}",
                _calibration(rec),
                ("[green]" if met else "[red]" if met is False else "") + why + ("[/]" if met is not None else ""))
            served = _served(name, rec, c)
            if served is not None:
                table.add_row(*served)
        console.print(table)
        lead = res["models"].get("lead_scoring")
        if lead and "calibration_under_drift.json" in lead["tables"]:
            t = Table(title=f"world seed {seed}: lead calibration under drift (test base rate "
                            f"{lead['metrics']['test_base_rate']:.4f}, validation {lead['metrics']['valid_base_rate']:.4f}, "
                            f"train {lead['metrics']['train_base_rate']:.4f})")
            for col in ("method", "mean predicted", "calibration ratio", "ECE / base rate", "AUC", "note"):
                t.add_column(col, justify="left" if col in ("method", "note") else "right")
            for r in lead["tables"]["calibration_under_drift.json"]:
                ok = 0.8 <= r["calibration_ratio"] <= 1.25 and r["ece_over_base_rate"] <= 0.2
                t.add_row(r["method"], f"{r['mean_predicted']:.4f}",
                          ("[green]" if ok else "") + f"{r['calibration_ratio']:.2f}" + ("[/]" if ok else ""),
                          f"{r['ece_over_base_rate']:.3f}", f"{r['auc']:.4f}", r["note"])
            console.print(t)
    if plot_path is not None:
        plot(panels, plot_path)
        console.print(f"figure: {plot_path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--models", default="lead_scoring,send_time,content_preference")
    r.add_argument("--seed", type=int, default=7, help="training seed (the world's seed is its own)")
    p = sub.add_parser("report")
    p.add_argument("results", type=Path, nargs="+")
    p.add_argument("--ceilings", type=Path, nargs="*", default=[])
    p.add_argument("--plot", type=Path, default=None, help="also draw the tables as one figure (PNG)")
    args = ap.parse_args()
    if args.cmd == "run":
        args.out.parent.mkdir(parents=True, exist_ok=True)
        run(args.out, args.models.split(","), args.seed)
    else:
        report(args.results, args.ceilings, args.plot)


if __name__ == "__main__":
    main()
