"""`inbox ab ...`: analyse A/B tests and design new ones.

    inbox ab analyze DATA --variant COL --control NAME --metric COL:binary ...
    inbox ab design sample-size | mde | test-roll | factorial ...
    inbox ab effects DATA --factor COL ... --outcome COL

Only the standard library is imported here; the statistics load inside the handlers.
"""
from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    ab = subparsers.add_parser("ab", help="A/B and multivariate tests: analysis and design")
    ab_sub = ab.add_subparsers(dest="ab_command", metavar="SUBCOMMAND")
    ab.set_defaults(func=lambda args: _help(ab))
    _register_analyze(ab_sub)
    _register_design(ab_sub)
    _register_effects(ab_sub)
    _register_outcomes(ab_sub)


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _register_analyze(sub) -> None:
    p = sub.add_parser(
        "analyze", help="analyse a per-recipient table (CSV or Parquet)",
        description="Frequentist and Bayesian lift per metric and variant vs the control, SRM check, "
        "Holm/BH adjustment, optional CUPED and always-valid (mSPRT) results; logged to MLflow.",
        epilog="example: inbox ab analyze results.parquet --variant variant --control a "
        "--metric open:binary --metric revenue:continuous --metric 'cto:ratio(click,open)' "
        "--guardrail unsubscribe:binary --covariate pre_opens --split a=0.5,b=0.5 --sequential",
    )
    p.add_argument("data", help="CSV or Parquet file, one row per recipient")
    p.add_argument("--variant", required=True, help="column with the variant name")
    p.add_argument("--control", required=True, help="name of the control variant")
    p.add_argument("--metric", action="append", required=True, metavar="SPEC",
                   help="COL:binary | COL:continuous | NAME:ratio(NUM,DEN), optionally :lower (repeatable)")
    p.add_argument("--guardrail", action="append", default=[], metavar="SPEC",
                   help="metric tested one-sided for harm, e.g. unsubscribe:binary (repeatable)")
    p.add_argument("--covariate", help="pre-period column for CUPED variance reduction")
    p.add_argument("--split", help="planned split for the SRM check, e.g. a=0.5,b=0.5 (default: equal)")
    p.add_argument("--sequential", action="store_true", help="always-valid p-values and confidence sequences")
    p.add_argument("--time", metavar="COL", help="with --sequential: time column (e.g. sent_at) to replay the "
                   "test look by look (running-minimum p-values, intersected confidence sequences)")
    p.add_argument("--looks", type=int, default=20, help="number of looks for --time (default 20)")
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--alternative", choices=["two-sided", "greater", "less"], default="two-sided")
    p.add_argument("--correction", choices=["holm", "bh", "none"], default="holm")
    p.add_argument("--winsorize", type=float, metavar="P",
                   help="cap continuous metrics at this percentile (0-1) of their non-zero values")
    p.add_argument("--beta-prior", default="1,1", metavar="A,B", help="Beta prior of binary rates")
    p.add_argument("--effect-prior-sd", type=float, help="normal prior sd on the relative lift (continuous)")
    p.add_argument("--tau", type=float, default=0.05, help="mSPRT mixing sd in control standard deviations")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON instead of tables")
    p.add_argument("--no-mlflow", action="store_true", help="do not log an MLflow run")
    p.add_argument("--experiment", default="ab-tests", help="MLflow experiment, logged as inbox/<name> (default ab-tests)")
    p.add_argument("--run-name", help="MLflow run name (default: the data file name)")
    p.set_defaults(func=_analyze)


def _register_design(sub) -> None:
    design = sub.add_parser("design", help="sample size, MDE, Test & Roll, factorial designs")
    dsub = design.add_subparsers(dest="design_command", metavar="DESIGN")
    design.set_defaults(func=lambda args: _help(design))

    def common(p):
        p.add_argument("--kind", choices=["binary", "continuous"], default="binary")
        p.add_argument("--baseline", type=float, required=True,
                       help="control rate (binary) or control mean (continuous)")
        p.add_argument("--sd", type=float, help="per-recipient standard deviation (continuous)")
        p.add_argument("--alpha", type=float, default=0.05)
        p.add_argument("--power", type=float, default=0.8)
        p.add_argument("--one-sided", action="store_true")
        p.add_argument("--variants", type=int, default=2, help="number of variants including the control")
        p.add_argument("--correction", choices=["bonferroni", "dunnett", "none"], default="bonferroni")
        p.add_argument("--json", action="store_true")

    p = dsub.add_parser("sample-size", help="recipients per variant to detect a lift",
                        epilog="example: inbox ab design sample-size --baseline 0.03 --mde 0.1 --relative --variants 3")
    common(p)
    p.add_argument("--mde", type=float, required=True, help="minimum detectable effect (absolute unless --relative)")
    p.add_argument("--relative", action="store_true", help="--mde is relative to --baseline")
    p.set_defaults(func=_sample_size)

    p = dsub.add_parser("mde", help="smallest detectable lift for a given size",
                        epilog="example: inbox ab design mde --baseline 0.03 --n-per-variant 20000")
    common(p)
    p.add_argument("--n-per-variant", type=int, required=True)
    p.set_defaults(func=_mde)

    p = dsub.add_parser("test-roll", help="profit-maximizing test size for a finite list (Feit & Berman 2019)",
                        epilog="example: inbox ab design test-roll --population 100000 --prior-mean 0.03 --prior-sd 0.01")
    p.add_argument("--population", type=int, required=True, help="recipients in the list (N)")
    p.add_argument("--prior-mean", type=float, required=True, help="prior mean response of a version (mu)")
    p.add_argument("--prior-sd", type=float, required=True, help="prior sd of a version's mean response (sigma)")
    p.add_argument("--response-sd", type=float,
                   help="per-recipient response sd (s); default sqrt(mu(1-mu)) for a binary response")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_test_roll)

    p = dsub.add_parser("factorial", help="2-level full or fractional factorial design with its alias structure",
                        epilog="example: inbox ab design factorial --factor 'subject=Save 20%%|Last chance' "
                        "--factor sender=Team,CEO --factor content=short,long --factor send_hour=9,17 --fraction 1")
    p.add_argument("--factor", action="append", required=True, metavar="NAME=LOW,HIGH",
                   help="a factor and its two levels (use | between levels that contain commas)")
    p.add_argument("--fraction", type=int, default=0, help="p of a 2^(k-p) design (standard generators)")
    p.add_argument("--generator", action="append", default=[], metavar="X=WORD",
                   help="explicit generator, e.g. D=ABC (letters follow the factor order)")
    p.add_argument("--recipients", type=int, help="also assign this many recipients (ids 0..N-1) to runs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="write the runs (or the assignment) to this CSV file")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_factorial)


def _register_effects(sub) -> None:
    p = sub.add_parser("effects", help="main effects and two-way interactions of a factorial test",
                       epilog="example: inbox ab effects results.parquet --factor subject --factor sender "
                       "--outcome click --model logistic")
    p.add_argument("data", help="CSV or Parquet file, one row per recipient")
    p.add_argument("--factor", action="append", required=True, metavar="COL", help="factor column (repeatable)")
    p.add_argument("--outcome", required=True,
                   help="outcome column (with --sends: the number of successes per row)")
    p.add_argument("--sends", metavar="COL",
                   help="aggregated input: column with the recipients per row (run); --outcome counts successes")
    p.add_argument("--model", choices=["linear", "logistic"], default="linear")
    p.add_argument("--no-interactions", action="store_true")
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_effects)


def _register_outcomes(sub) -> None:
    p = sub.add_parser("campaigns", help="list the campaigns in the event log (sends, variants)")
    p.set_defaults(func=_campaigns)
    p = sub.add_parser("outcomes", help="per-recipient outcome table of one campaign from the event log",
                       epilog="example: inbox ab outcomes c20260502-000 --out ab.parquet && inbox ab analyze "
                       "ab.parquet --variant variant --control 3 --metric open:binary --covariate pre_opens")
    p.add_argument("campaign", help="campaign_id (see `inbox ab campaigns`)")
    p.add_argument("--out", required=True, help="Parquet (or .csv) file to write")
    p.add_argument("--window-hours", type=float, default=72.0, help="attribution window after each send")
    p.add_argument("--pre-days", type=float, default=28.0, help="pre-period for the CUPED covariates")
    p.set_defaults(func=_outcomes)


# --- handlers ------------------------------------------------------------------


def _pair(text: str, name: str) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"{name} must be two numbers A,B, got {text!r}") from None
    return a, b


def _analyze(args) -> int:
    from pathlib import Path

    from rich.console import Console

    from experiments.abtest.analysis import analyze, metric_specs
    from experiments.abtest.settings import AnalysisSettings
    from experiments.abtest.srm import parse_split
    from experiments.abtest.table import needed_columns, read_table

    console = Console(stderr=args.json)
    if not console.is_terminal:  # piped or logged: do not squeeze the tables into 80 columns
        console.width = max(console.width, 160)
    settings = AnalysisSettings(
        alpha=args.alpha, alternative=args.alternative, correction=args.correction,
        beta_prior=_pair(args.beta_prior, "--beta-prior"), effect_prior_sd=args.effect_prior_sd,
        sequential=args.sequential, sequential_tau=args.tau,
    )
    specs = metric_specs(args.metric, args.guardrail, args.winsorize)
    split = parse_split(args.split) if args.split else None
    if args.time and not args.sequential:
        raise ValueError("--time replays a sequential test: add --sequential")
    columns = needed_columns(args.variant, specs, args.covariate) + ([args.time] if args.time else [])
    with _step(console, f"reading {args.data}"):
        df = read_table(args.data, list(dict.fromkeys(columns)))
    with _step(console, f"analysing {len(df):,} recipients"):
        result = analyze(df, args.variant, args.control, specs, settings, covariate=args.covariate, split=split)
    if args.time:
        with _step(console, f"replaying {args.looks} looks per metric"):
            histories = _histories(df, args, specs, settings)
    else:
        histories = []
    run_id = None
    if not args.no_mlflow:
        from experiments.abtest.tracking import log_analysis

        with _step(console, "logging the MLflow run (plots, table)"):
            run_id = log_analysis(result, experiment=args.experiment, run_name=args.run_name or Path(args.data).name,
                                  params={"data": str(Path(args.data).resolve()), "variant_column": args.variant},
                                  histories=histories)
    if args.json:
        from experiments.abtest.results import json_safe

        payload = result.to_dict()
        payload["mlflow_run_id"] = run_id
        if histories:
            payload["sequential_history"] = json_safe(
                [row for h in histories for row in h.assign(time=h["time"].astype(str)).to_dict(orient="records")])
        print(json.dumps(payload, indent=2, allow_nan=False))
        return 0
    from experiments.abtest.report import print_analysis, sequential_table

    print_analysis(result, console)
    if histories:
        console.print(sequential_table(histories, settings.alpha))
    if run_id:
        console.print(f"MLflow run: [bold]{run_id}[/bold] (experiment inbox/{args.experiment})")
    return 0


def _step(console, text: str):
    """A spinner on a terminal; otherwise one progress line on stderr (logs and pipes see each step)."""
    import contextlib
    import sys

    if console.is_terminal:
        return console.status(text)
    print(f"{text} ...", file=sys.stderr, flush=True)
    return contextlib.nullcontext()


def _histories(df, args, specs, settings) -> list:
    from experiments.abtest.monitoring import sequential_history

    return [sequential_history(df, args.variant, args.control, spec, args.time, args.looks, settings)
            for spec in specs]


def _design_kwargs(args) -> dict:
    return dict(baseline=args.baseline, sd=args.sd, alpha=args.alpha, power=args.power,
                alternative="one-sided" if args.one_sided else "two-sided", variants=args.variants,
                correction=args.correction)


def _print_plan(plan, as_json: bool, title: str) -> int:
    if as_json:
        print(json.dumps(plan.to_dict(), indent=2))
        return 0
    from rich.console import Console

    from experiments.abtest.report import key_value_table

    Console().print(key_value_table(title, plan.to_dict()))
    return 0


def _sample_size(args) -> int:
    from experiments.abtest.sizing import sample_size

    plan = sample_size(args.kind, args.mde, relative=args.relative, **_design_kwargs(args))
    return _print_plan(plan, args.json, "Sample size")


def _mde(args) -> int:
    from experiments.abtest.sizing import minimum_detectable_effect

    plan = minimum_detectable_effect(args.kind, args.n_per_variant, **_design_kwargs(args))
    return _print_plan(plan, args.json, "Minimum detectable effect")


def _test_roll(args) -> int:
    from experiments.abtest.test_roll import test_and_roll

    plan = test_and_roll(args.population, args.prior_mean, args.prior_sd, args.response_sd)
    return _print_plan(plan, args.json, "Test & Roll (Feit and Berman 2019)")


def _factorial(args) -> int:
    from experiments.abtest.factorial import factorial_design

    design = factorial_design(args.factor, fraction=args.fraction, generators=args.generator or None)
    table = design.assign(range(args.recipients), seed=args.seed) if args.recipients else design.runs
    if args.out:
        _write_table(table, args.out)
    if args.json:
        print(json.dumps({
            "factors": {letter: name for letter, name in design.letters.items()},
            "levels": design.levels, "generators": list(design.generators),
            "defining_relation": list(design.defining_relation), "resolution": design.resolution,
            "runs": design.runs.to_dict(orient="records"),
            "aliases": design.alias_table().to_dict(orient="records"),
        }, indent=2, default=int))
        return 0
    from rich.console import Console

    from experiments.abtest.report import frame_table

    console = Console()
    k, p = len(design.factors), len(design.generators)
    title = f"2^{k}" if not p else f"2^({k}-{p}) fractional factorial, resolution {_roman(design.resolution)}"
    console.print(frame_table(design.runs, f"{title}: {design.n_runs} runs"))
    if p:
        console.print(f"generators: {', '.join(design.generators)};  defining relation: I = "
                      + " = ".join(design.defining_relation))
    console.print(frame_table(design.alias_table(), "alias structure (main effects and 2-factor interactions)"))
    if args.out:
        console.print(f"wrote {args.out}")
    return 0


def _effects(args) -> int:
    from experiments.abtest.factorial_effects import estimate_effects, estimate_effects_from_counts
    from experiments.abtest.table import read_table

    columns = [*args.factor, args.outcome] + ([args.sends] if args.sends else [])
    df = read_table(args.data, list(dict.fromkeys(columns)))
    common = dict(model=args.model, interactions=not args.no_interactions, alpha=args.alpha)
    if args.sends:
        out = estimate_effects_from_counts(df, args.factor, sends=args.sends, successes=args.outcome, **common)
    else:
        out = estimate_effects(df, args.factor, args.outcome, **common)
    if args.json:
        print(out.to_json(orient="records", indent=2))
        return 0
    from rich.console import Console

    from experiments.abtest.report import frame_table

    Console().print(frame_table(out, f"{args.model} model of {args.outcome}: effect = {out.attrs['effect']}"))
    return 0


def _campaigns(args) -> int:
    from rich.console import Console

    from experiments.abtest.outcomes import campaign_summary
    from experiments.abtest.report import frame_table
    from inbox.settings import load_settings

    Console().print(frame_table(campaign_summary(load_settings().events_dir), "campaigns in the event log"))
    return 0


def _outcomes(args) -> int:
    from rich.console import Console

    from experiments.abtest.outcomes import campaign_outcomes
    from inbox.settings import load_settings

    console = Console()
    with console.status(f"building outcomes of {args.campaign}"):
        df = campaign_outcomes(load_settings().events_dir, args.campaign, window_hours=args.window_hours,
                               pre_days=args.pre_days)
    _write_table(df, args.out)
    counts = df["variant"].value_counts().sort_index()
    console.print(f"wrote {len(df):,} recipients of {args.campaign} to {args.out}; variants: "
                  + ", ".join(f"{v}={n:,}" for v, n in counts.items()))
    if df["allocated"].any():
        console.print("[yellow]warning:[/yellow] an adaptive allocator chose these variants (decision ids): "
                      "a plain A/B comparison is biased; use off-policy evaluation (experiments.bandit)")
    return 0


def _write_table(df, path: str) -> None:
    """Write CSV (or Parquet for a .parquet path) atomically: temp file + os.replace."""
    import os
    import tempfile
    from pathlib import Path

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
    os.close(fd)
    try:
        if target.suffix.lower() in (".parquet", ".pq"):
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, index=False)
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise


def _roman(n: int | None) -> str:
    return {3: "III", 4: "IV", 5: "V", 6: "VI", 7: "VII", 8: "VIII"}.get(n, str(n))
