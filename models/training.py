"""Train the three models: `train_model(name)`, `train_all()` (used by `inbox train` and `inbox demo`)."""
from __future__ import annotations

from dataclasses import fields, replace

MODEL_NAMES = ("lead_scoring", "send_time", "content_preference")


def make_spec(name: str, fast: bool = False, overrides: dict | None = None):
    """The model's spec with its default (or fast) config, `overrides` applied (validated by name)."""
    if name == "lead_scoring":
        from models.lead_scoring import LeadScoringConfig as Config, LeadScoringSpec as Spec
    elif name == "send_time":
        from models.send_time_training import SendTimeConfig as Config, SendTimeSpec as Spec
    elif name == "content_preference":
        from models.content_preference_training import ContentPreferenceConfig as Config, ContentPreferenceSpec as Spec
    else:
        raise ValueError(f"model: unknown model {name!r}; expected one of {', '.join(MODEL_NAMES)} or 'all'")
    config = Config.fast() if fast else Config()
    if overrides:
        known = {f.name: f for f in fields(Config)}
        typed = {}
        for key, value in overrides.items():
            if key not in known:
                raise ValueError(f"--set {key}: unknown setting for {name}; known: {', '.join(sorted(known))}")
            current = getattr(config, key)
            try:
                if isinstance(current, bool):  # bool("False") is True: parse the word
                    word = str(value).strip().lower()
                    if word not in ("true", "false", "1", "0", "yes", "no"):
                        raise ValueError(word)
                    typed[key] = word in ("true", "1", "yes")
                else:
                    typed[key] = type(current)(value) if not isinstance(current, tuple) else tuple(
                        type(current[0])(v) for v in str(value).split(","))
            except (TypeError, ValueError):
                raise ValueError(f"--set {key}={value!r}: expected a {type(current).__name__}") from None
        config = replace(config, **typed)
    return Spec(config)


def train_model(name: str, settings=None, progress=True, fast: bool = False, seed: int = 7,
                overrides: dict | None = None, max_rows: int | None = None):
    """Train one model; `max_rows` caps its training set (default `models.harness.DEFAULT_MAX_ROWS`)."""
    from inbox.settings import load_settings
    from models.harness import DEFAULT_MAX_ROWS, TrainingContext, run_training

    settings = settings or load_settings()
    say = _printer(progress)
    ctx = TrainingContext(settings, seed=seed, progress=say, fast=fast,
                          max_rows=DEFAULT_MAX_ROWS if max_rows is None else max_rows)
    return run_training(make_spec(name, fast, overrides), ctx)


def train_all(settings=None, progress=True, fast: bool = False, seed: int = 7,
              max_rows: int | None = None) -> list[dict]:
    """Train, register and (maybe) promote all three models; one plain record per model."""
    from inbox.settings import load_settings
    from models.harness import DEFAULT_MAX_ROWS, TrainingContext, run_training

    settings = settings or load_settings()
    ctx = TrainingContext(settings, seed=seed, progress=_printer(progress), fast=fast,
                          max_rows=DEFAULT_MAX_ROWS if max_rows is None else max_rows)  # shares the contact list
    results = [run_training(make_spec(name, fast), ctx).as_dict() for name in MODEL_NAMES]
    if progress:
        print_summary(results)
    return results


def _printer(progress):
    if callable(progress):
        return progress
    if not progress:
        return lambda msg: None
    from rich.console import Console

    console = Console(stderr=True)
    return lambda msg: console.log(msg)


def print_summary(results: list[dict]) -> None:
    """Per model: best baseline, ours, the paired p against it, oracle, ceiling, share of lift, calibration ratio,
    target met, champion; then one line per model (what was registered, the target, the promotion reason)."""
    from rich.console import Console
    from rich.table import Table

    num = lambda v, f=".4f": "-" if v is None else format(v, f)  # noqa: E731
    table = Table(title="inbox train (test period; p: paired test of ours <= baseline; calib.: mean predicted / "
                        "observed as served, lead with the test window's send plan)")
    for col in ("model", "metric", "baseline", "ours", "p", "oracle", "ceiling", "share", "calib.", "target",
                "champion"):
        table.add_column(col, justify="left" if col in ("model", "metric", "baseline", "champion") else "right")
    for r in results:
        champion = f"v{r['version']} promoted" if r["promoted"] else f"kept v{r['champion_version']}"
        table.add_row(r["model"], r["metric"], f"{r['baseline_name']} {r['baseline']:.4f}", f"{r['ours']:.4f}",
                      num(r.get("p_vs_baseline"), ".3g"), f"{r['oracle']:.4f}", num(r.get("ceiling")),
                      num(r.get("share_of_lift"), ".3f"), num(r.get("calibration_ratio"), ".2f"),
                      "[green]met[/]" if r["target_met"] else "[red]missed[/]", champion)
    console = Console(width=max(Console().width, 150))
    console.print(table)
    for r in results:
        console.print(f"[bold]{r['model']}[/] ({r['seconds']:.0f} s): registered {r.get('model_choice', 'ours')}; "
                      f"target {r['target']}; {r['promotion_reason']}")
    console.print("ceilings and shares of lift (they need the simulator's truth): benchmarks/bench_model_ceilings.py, "
                  "benchmarks/bench_model_quality.py")
