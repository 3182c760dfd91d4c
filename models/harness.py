"""The shared training harness: one MLflow run per training, register, promote.

A model module provides a `ModelSpec` (what data, how to fit, how to score a
predictor on the test rows, how to log it). `run_training(spec, context)`
does the rest in the same order for every model:

1. MLflow run in experiment `inbox/<name>` with tags (git commit, data range,
   feature service, feature source, world seed) and split params;
2. `spec.prepare` builds the point-in-time training set and its time split
   from a stable contact sample sized to `ctx.max_rows` (`models.sample`;
   rate and sizes logged as `sample.*` params), logged as MLflow input
   datasets;
3. `spec.fit` returns the *native predictor* (the same class the loader
   returns), `spec.evaluate` measures it, the baselines and the oracle on the
   test rows and returns metrics and figures;
4. `spec.log_model` logs it with signature, input example and explicit pip
   requirements; the version is registered with alias `challenger`;
5. the current champion is loaded and scored on the same test rows; `champion`
   moves only on a paired win (`spec.paired`: CI of the difference above
   zero) and only if the challenger is not significantly worse than the best
   baseline (`models.registry.decide`). When the best baseline beats ours
   (CI of the difference below zero) and the spec can serve it
   (`spec.baseline_predictor` returns a predictor for it), the baseline is registered instead (tag
   `model_choice`): choosing the model is part of training. Every paired test (challenger vs each
   baseline, vs the champion) is logged: metrics `paired_vs_<name>_{diff,
   ci_low, ci_high, z, p, p_noninferior}` and `paired_tests.json`.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Callable, Protocol

import numpy as np
import pandas as pd


DEFAULT_MAX_ROWS = 1_000_000  # rows of one training set (all split blocks): ~the whole 50k-contact default world


@dataclass
class TrainingContext:
    """What every model needs: paths, bounded reads of the event log, the oracle world, knobs.

    Training sets are built from a stable contact sample (`models.sample`) whose
    rate keeps each set under `max_rows` rows; `log` reads only those contacts'
    rows and only the columns training uses, so memory follows `max_rows`, not
    the size of the list.
    """

    settings: Any
    seed: int = 7
    progress: Callable[[str], None] = lambda msg: None
    fast: bool = False  # small configs (tests)
    overrides: dict = field(default_factory=dict)  # per-model config overrides
    max_rows: int = DEFAULT_MAX_ROWS
    _log: Any = field(default=None, init=False, repr=False)

    def __post_init__(self):
        if isinstance(self.max_rows, bool) or not isinstance(self.max_rows, (int, np.integer)) or self.max_rows < 1:
            raise ValueError(f"max_rows: expected a positive integer, got {self.max_rows!r}")

    @cached_property
    def contacts(self) -> pd.DataFrame:
        """Every contact's contact_id, created_at, consent (the sampling universe), by contact_id."""
        from models.sampled_log import contact_list

        return contact_list(self.settings.events_dir)

    @cached_property
    def data_range_report(self):
        """The history to train on (`models.sampled_log.data_range_report`): range and what was left out."""
        from models.sampled_log import data_range_report

        report = data_range_report(self.settings.events_dir)
        if report.ignored_from is not None:
            self.progress(f"data range {report.first.date()}..{report.end.date()}: {report.describe()}")
        return report

    @property
    def data_range(self) -> tuple[pd.Timestamp, pd.Timestamp]:
        """(first send day, end of the last day with events) in UTC of the history to train on."""
        return self.data_range_report.first, self.data_range_report.end

    def sample(self, rows_per_contact: np.ndarray) -> "ContactSample":
        """The largest stable contact sample whose rows fit `max_rows` (`rows_per_contact` aligned with
        `contacts`)."""
        from models.sample import rate_for_cap

        sample = rate_for_cap(self.contacts["contact_id"].to_numpy(np.int64), rows_per_contact, self.max_rows)
        self.progress(f"contact sample: rate {sample.rate:.4f}, {len(sample.ids):,} of {sample.contacts_total:,} "
                      f"contacts, {sample.rows:,} of {sample.rows_full:,} rows (max {self.max_rows:,})")
        return sample

    def sends_per_contact(self, split) -> np.ndarray:
        """Per contact (aligned with `contacts`): its sends inside `split`'s blocks."""
        from models.sampled_log import sends_per_contact

        return sends_per_contact(self.settings.events_dir, self.contacts["contact_id"].to_numpy(np.int64), split)

    def log(self, sample: "ContactSample", event_types: tuple[str, ...]) -> "SampledLog":
        """The sampled contacts' contacts / sends / events (of `event_types`); the last one read is kept."""
        from models.sampled_log import read_sampled_log

        key = (sample.rate, len(sample.ids), tuple(event_types))
        if self._log is None or self._log[0] != key:
            self._log = None  # release the previous sample before reading the next
            self._log = (key, read_sampled_log(self.settings.events_dir, sample, tuple(event_types)))
        return self._log[1]

    def sends_of(self, contact_ids: np.ndarray) -> pd.DataFrame:
        """Every send (send_id, contact_id, content_id, sent_at) of `contact_ids`, by send_id (oracle inputs)."""
        from models.sampled_log import read_sends_of

        return read_sends_of(self.settings.events_dir, contact_ids)

    @cached_property
    def events(self) -> dict[str, pd.DataFrame]:
        """The whole event log in memory: benchmarks and notebooks on small worlds (training reads `log`)."""
        from simulation.eventlog import read_event_log

        return read_event_log(self.settings.events_dir)

    @cached_property
    def world(self):
        """The whole simulator ground truth (benchmarks; evaluations use `world_for`)."""
        from simulation.world import World

        return World.load(self.settings.world_dir)

    def world_for(self, contact_ids: np.ndarray):
        """The simulator's ground truth for `contact_ids` only (oracle only; never a feature)."""
        from simulation.world import World

        return World.load(self.settings.world_dir, contact_ids=contact_ids)

    def world_seed(self) -> str:
        from pathlib import Path

        from simulation.world import WorldConfig

        path = Path(self.settings.world_dir) / "config.json"
        if not path.exists():
            return "unknown"
        return str(WorldConfig.from_json(path.read_text()).seed)


@dataclass
class Evaluation:
    """Outcome of `spec.evaluate`: the summary row plus everything to log."""

    metric: str
    ours: float
    baseline_name: str
    baseline: float
    oracle: float
    target: str
    target_met: bool
    metrics: dict[str, float] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    paired: dict[str, Any] = field(default_factory=dict)  # baseline slug -> PairedTest (ours - baseline)
    best_baseline: str | None = None  # slug of the best baseline (key of `paired`)
    ceiling: float | None = None  # information ceiling of the metric (None: not measured in training)
    random: float | None = None  # the metric of a random scorer (share of lift = (ours - random)/(ceiling - random))
    calibration_ratio: float | None = None  # mean predicted / observed rate (probability models)

    @property
    def share_of_lift(self) -> float | None:
        if self.ceiling is None or self.random is None or self.ceiling == self.random:
            return None
        return float((self.ours - self.random) / (self.ceiling - self.random))


@dataclass
class TrainResult:
    """One line of `inbox train`: plain record (the demo prints these)."""

    model: str
    metric: str
    baseline_name: str
    baseline: float
    ours: float
    oracle: float
    target: str
    target_met: bool
    version: str
    promoted: bool
    champion_version: str | None
    promotion_reason: str
    run_id: str
    feature_source: str
    seconds: float
    ceiling: float | None = None
    share_of_lift: float | None = None
    calibration_ratio: float | None = None
    p_vs_baseline: float | None = None  # one-sided p (H0: ours <= best baseline) of the paired test
    model_choice: str = "ours"  # what was registered: "ours" or "baseline: <name>"

    def as_dict(self) -> dict:
        return asdict(self)


class ModelSpec(Protocol):
    name: str
    feature_service: str
    primary_metric: str
    higher_is_better: bool

    def prepare(self, ctx: TrainingContext) -> Any: ...
    def fit(self, prepared: Any, ctx: TrainingContext) -> Any: ...
    def evaluate(self, predictor: Any, prepared: Any, ctx: TrainingContext) -> Evaluation: ...
    def score_predictor(self, predictor: Any, prepared: Any, ctx: TrainingContext) -> float: ...
    def test_scores(self, predictor: Any, prepared: Any, ctx: TrainingContext) -> Any: ...
    def paired(self, ours: Any, reference: Any, prepared: Any, ctx: TrainingContext, margin: float = 0.0) -> Any: ...
    def log_model(self, predictor: Any, prepared: Any) -> Any: ...
    def params(self) -> dict: ...


def _log_inputs(prepared) -> None:
    import mlflow

    from models.input_datasets import FrameDataset

    for context, (frame, name, target) in prepared.datasets().items():
        mlflow.log_input(FrameDataset(frame, name, targets=target), context=context)


def run_training(spec: ModelSpec, ctx: TrainingContext) -> TrainResult:
    import mlflow

    from inbox.tracking import describe_run
    from models import registry, tracking
    from models.loading import load_version

    t0 = time.perf_counter()
    tracking.configure(ctx.settings, spec.name)
    first, last = ctx.data_range
    with mlflow.start_run(run_name=f"{spec.name}-{pd.Timestamp.now(tz='UTC'):%Y%m%dT%H%M%S}") as run:
        mlflow.set_tags(
            {
                "git_commit": tracking.git_commit(),
                "model": spec.name,
                "feature_service": spec.feature_service,
                "data_range": f"{first.isoformat()}/{last.isoformat()}",
                "data_range_note": ctx.data_range_report.describe(),
                "world_seed": ctx.world_seed(),
            }
        )
        mlflow.log_params(spec.params())
        describe_run(f"{spec.name} trained on {first.date()}..{last.date()} (feature service {spec.feature_service}, "
                     f"world seed {ctx.world_seed()}): time split train / validation / test, the champion moves only "
                     "on a paired win on the same test rows and never when a baseline is significantly better")
        ctx.progress(f"{spec.name}: building the training set")
        prepared = spec.prepare(ctx)
        mlflow.log_params(prepared.split.describe())
        mlflow.set_tag("feature_source", prepared.feature_source)
        mlflow.log_params({f"rows_{k}": v for k, v in prepared.row_counts().items()})
        mlflow.log_params(prepared.sampling)
        _log_inputs(prepared)
        ctx.progress(f"{spec.name}: fitting")
        t_fit = time.perf_counter()
        predictor = spec.fit(prepared, ctx)
        mlflow.log_metric("fit_seconds", time.perf_counter() - t_fit)
        ctx.progress(f"{spec.name}: evaluating against baselines and the oracle")
        ev = spec.evaluate(predictor, prepared, ctx)
        mlflow.log_metrics({k: float(v) for k, v in ev.metrics.items() if np.isfinite(v)})
        mlflow.log_metrics({"target_met": float(ev.target_met)})
        log_paired_tests(ev.paired)
        mlflow.set_tag("target", ev.target)
        for filename, fig in ev.figures.items():
            tracking.log_figure(fig, filename)
        for filename, table in ev.tables.items():
            mlflow.log_table(table, f"tables/{filename}")
        predictor, choice, vs_baseline = choose_predictor(spec, ev, predictor, prepared, ctx)
        mlflow.set_tag("model_choice", choice)
        ctx.progress(f"{spec.name}: logging and registering the model")
        info = spec.log_model(predictor, prepared)
        version = registry.register(info.model_uri, spec.name, run.info.run_id,
                                    tags={"feature_service": spec.feature_service},
                                    model_id=getattr(info, "model_id", None))
        ours_scores = spec.test_scores(predictor, prepared, ctx)
        decision = registry.decide(
            spec.name,
            spec.primary_metric,
            version,
            ev.ours,
            lambda v: spec.paired(ours_scores, spec.test_scores(load_version(spec.name, v), prepared, ctx),
                                  prepared, ctx),
            vs_baseline,
            baseline_name=ev.baseline_name,
            baseline_servable=choice != "ours",  # ours worse and still "ours": the baseline cannot be served
        )
        registry.log_decision(decision)
        tracking.log_comparison(decision)
        seconds = time.perf_counter() - t0
        mlflow.log_metric("train_seconds", seconds)
    return TrainResult(
        model=spec.name,
        metric=ev.metric,
        baseline_name=ev.baseline_name,
        baseline=ev.baseline,
        ours=ev.ours,
        oracle=ev.oracle,
        target=ev.target,
        target_met=ev.target_met,
        version=version,
        promoted=decision.promoted,
        champion_version=decision.champion_version,
        promotion_reason=decision.reason,
        run_id=run.info.run_id,
        feature_source=prepared.feature_source,
        seconds=round(seconds, 2),
        ceiling=ev.ceiling,
        share_of_lift=ev.share_of_lift,
        calibration_ratio=ev.calibration_ratio,
        p_vs_baseline=None if ev.best_baseline not in ev.paired else ev.paired[ev.best_baseline].p_superior,
        model_choice=choice,
    )


def choose_predictor(spec: ModelSpec, ev: Evaluation, predictor, prepared, ctx: TrainingContext):
    """(what to register, "ours" or "baseline: <name>", ours' paired test against the best baseline or None).

    Model choice is part of training: when the best baseline beats ours on the same rows (CI of the
    difference below zero) and the spec can serve it (`spec.baseline_predictor` returns a predictor), the
    baseline is what gets registered and served."""
    vs_baseline = ev.paired.get(ev.best_baseline)
    if vs_baseline is None or not vs_baseline.significantly_worse or not hasattr(spec, "baseline_predictor"):
        return predictor, "ours", vs_baseline
    servable = spec.baseline_predictor(prepared, ctx, predictor, ev.best_baseline)
    if servable is None:
        return predictor, "ours", vs_baseline
    ctx.progress(f"{spec.name}: the baseline {ev.baseline_name} beats ours on the same rows; registering it")
    return servable, f"baseline: {ev.baseline_name}", None


def log_paired_tests(paired: dict) -> None:
    """Each paired test (ours - baseline) as metrics `paired_vs_<slug>_*` and all of them in `paired_tests.json`."""
    import json

    import mlflow

    for slug, t in paired.items():
        mlflow.log_metrics({k: v for k, v in t.as_metrics(f"paired_vs_{slug}").items() if np.isfinite(v)})
    if paired:
        mlflow.log_text(json.dumps({k: t.as_dict() for k, t in paired.items()}, indent=2), "paired_tests.json")
