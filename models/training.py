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
                typed[key] = type(current)(value) if not isinstance(current, tuple) else tuple(
                    type(current[0])(v) for v in str(value).split(","))
            except (TypeError, ValueError):
                raise ValueError(f"--set {key}={value!r}: expected a {type(current).__name__}") from None
        config = replace(config, **typed)
    return Spec(config)


def train_model(name: str, settings=None, progress=True, fast: bool = False, seed: int = 7,
                overrides: dict | None = None):
    from inbox.settings import load_settings
    from models.harness import TrainingContext, run_training

    settings = settings or load_settings()
    say = _printer(progress)
    ctx = TrainingContext(settings, seed=seed, progress=say, fast=fast)
    return run_training(make_spec(name, fast, overrides), ctx)


def train_all(settings=None, progress=True, fast: bool = False, seed: int = 7) -> list[dict]:
    """Train, register and (maybe) promote all three models; one plain record per model."""
    from inbox.settings import load_settings
    from models.harness import TrainingContext, run_training

    settings = settings or load_settings()
    ctx = TrainingContext(settings, seed=seed, progress=_printer(progress), fast=fast)  # shares the event log
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
    from rich.console import Console
    from rich.table import Table

    table = Table(title="inbox train: test period, against baselines and the simulator's oracle")
    for col, justify in (("model", "left"), ("metric", "left"), ("baseline", "left"), ("baseline value", "right"),
                         ("ours", "right"), ("oracle", "right"), ("target met", "center"), ("version", "right"),
                         ("champion", "left"), ("seconds", "right")):
        table.add_column(col, justify=justify)
    for r in results:
        champion = "promoted" if r["promoted"] else f"kept v{r['champion_version']}"
        table.add_row(r["model"], r["metric"], r["baseline_name"], f"{r['baseline']:.4f}", f"{r['ours']:.4f}",
                      f"{r['oracle']:.4f}", "[green]yes[/]" if r["target_met"] else "[red]no[/]", str(r["version"]),
                      champion, f"{r['seconds']:.0f}")
    console = Console()
    console.print(table)
    for r in results:
        console.print(f"  {r['model']}: target {r['target']}")
