"""Training and evaluation of the send-time model (see `models.send_time`).

Rows are past sends: contact features as of the send (point-in-time, service
`send_time`), the send's local hour-of-week, label = first open within 24 h.
Time split over send time (24 h purge). Evaluation on the test period, against
the simulator's true P(open within 24 h):

* for sampled mailable contacts and several 24-hour UTC windows, every
  allowed slot (local quiet hours removed) is scored by the oracle;
* uplift of a policy = mean true probability at its chosen slot minus the mean
  over all allowed slots (a random slot); the oracle picks the true best;
* ours vs baselines: population best hour-of-week, contact's most frequent
  past open hour. Primary metric: uplift ratio = ours / oracle uplift.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from models import metrics as M
from models.encoding import FeatureEncoder
from models.harness import Evaluation, TrainingContext
from models.prepared import Prepared, sample_send_rows
from models.sampled_log import SampledLog
from models.peak_posterior import PeakPrior, fit_peak_prior
from models.send_time import (CONTACT_EXCLUDE, MONOTONE, SLOT_COLUMNS, SendTimePlanner, profile_arrays, segment_key,
                              slot_features, with_posterior)
from models.slots import HOURS_PER_WEEK, allowed_slot_table, choose_slots, local_hour_of_week
from models.split import TimeSplit

LABEL = "opened_24h"


@dataclass(frozen=True)
class SendTimeConfig:
    warmup_days: int = 14
    valid_fraction: float = 0.15
    test_fraction: float = 0.15
    max_train_rows: int = 400_000
    num_boost_round: int = 400
    early_stopping_rounds: int = 40
    learning_rate: float = 0.08
    num_leaves: int = 63
    min_data_in_leaf: int = 200
    min_contact_opens: int = 1
    min_segment_contacts: int = 30
    grid_contacts: int = 6000  # contacts whose grids are averaged into segment / population grids
    prior_contacts: int = 15000  # contacts whose send-hour counts fit the empirical-Bayes peak prior
    prior_iterations: int = 40
    prior_shrinkage: float = 30.0  # pseudo-contacts pulling a segment's peak prior to the population's
    eval_contacts: int = 5000
    eval_windows: tuple[int, ...] = (0, 2, 5)  # window start offsets (days) from the test start
    quiet_hours: tuple[int, int] = (21, 7)
    threads: int = 2

    @classmethod
    def fast(cls) -> "SendTimeConfig":
        return cls(warmup_days=7, max_train_rows=60_000, num_boost_round=80, early_stopping_rounds=15,
                   min_data_in_leaf=50, num_leaves=31, grid_contacts=1500, eval_contacts=1000,
                   min_segment_contacts=10, threads=1, prior_contacts=2000, prior_iterations=15)


class SendTimeSpec:
    name = "send_time"
    feature_service = "send_time"
    services = SendTimePlanner.services
    primary_metric = "uplift_ratio"
    higher_is_better = True

    def __init__(self, config: SendTimeConfig | None = None):
        self.config = config or SendTimeConfig()

    def params(self) -> dict:
        return {f"cfg.{k}": v for k, v in asdict(self.config).items()}

    # --- data -----------------------------------------------------------------
    def time_split(self, ctx: TrainingContext) -> TimeSplit:
        cfg = self.config
        first, end = ctx.data_range
        return TimeSplit.from_fractions(first + pd.Timedelta(days=cfg.warmup_days), end, pd.Timedelta(hours=24),
                                        valid=cfg.valid_fraction, test=cfg.test_fraction)

    def sampled_log(self, ctx: TrainingContext) -> SampledLog:
        """Sends and opens of the contact sample whose sends inside the split fit `ctx.max_rows`."""
        return ctx.log(ctx.sample(ctx.sends_per_contact(self.time_split(ctx))), ("open",))

    def send_rows(self, ctx: TrainingContext, log: SampledLog | None = None) -> tuple[pd.DataFrame, TimeSplit]:
        """The time split and its sampled sends (no features): send_id, contact_id, sent_at, label,
        local hour-of-week `slot_how` and `block`."""
        from models.labels import send_outcome

        cfg = self.config
        split = self.time_split(ctx)
        log = log if log is not None else self.sampled_log(ctx)
        rows, block = sample_send_rows(log.sends[["send_id", "contact_id", "sent_at"]], split,
                                       cfg.max_train_rows, ctx.seed, max_eval_rows=cfg.max_train_rows // 2)
        rows[LABEL] = send_outcome(rows, log.events, "open", within=pd.Timedelta(hours=24)).astype(np.int8)
        tz = log.contacts.set_index("contact_id")["timezone"]
        rows["slot_how"] = local_hour_of_week(rows["sent_at"], tz.reindex(rows["contact_id"]).to_numpy())
        rows["block"] = block
        return rows, split

    def prepare(self, ctx: TrainingContext) -> Prepared:
        """The training rows and the contact snapshots (prior, grids, evaluation), read in one pass."""
        from models.datasets import feature_frames

        log = self.sampled_log(ctx)
        rows, split = self.send_rows(ctx, log)
        entity = rows.rename(columns={"sent_at": "event_timestamp"})[["contact_id", "event_timestamp"]]
        plan = self._snapshot_plan(split, ctx)
        frame, *snaps = feature_frames([entity, *plan.values()], self.services, ctx.settings)
        for col in (LABEL, "slot_how", "block"):
            frame[col] = rows[col].to_numpy()
        snapshots = {name: _mailable(snap) for name, snap in zip(plan, snaps)}
        return Prepared(frame, split, frame.attrs.get("feature_source", "unknown"), LABEL,
                        extra={"dataset_name": "send_time", "snapshots": snapshots}, sampling=log.sample.params())

    # --- fitting --------------------------------------------------------------
    def _pairs(self, encoder: FeatureEncoder, frame: pd.DataFrame, prior: PeakPrior | None) -> np.ndarray:
        X = encoder.transform(frame)
        rows = np.arange(len(frame))
        profile = with_posterior(profile_arrays(frame), prior)
        return np.hstack([X, slot_features(profile, rows, frame["slot_how"].to_numpy())])

    def fit_prior(self, prepared: Prepared, ctx: TrainingContext) -> PeakPrior:
        """Empirical-Bayes peak prior from the send-hour counts of contacts as of the validation start."""
        cfg = self.config
        profile = profile_arrays(prepared.extra["snapshots"]["prior"])
        has = profile["sent"].sum(axis=1) > 0
        return fit_peak_prior(profile["sent"][has], profile["opened"][has], profile["segment"][has],
                              iterations=cfg.prior_iterations, shrinkage=cfg.prior_shrinkage)

    def fit(self, prepared: Prepared, ctx: TrainingContext) -> SendTimePlanner:
        import lightgbm as lgb

        cfg = self.config
        train, valid = prepared.train, prepared.valid
        encoder = FeatureEncoder.fit(train.drop(columns=[LABEL, "block", "slot_how"]), exclude=CONTACT_EXCLUDE)
        names = encoder.columns + SLOT_COLUMNS
        t0 = time.perf_counter()
        prior = self.fit_prior(prepared, ctx)
        ctx.progress(f"send_time: peak prior fitted in {time.perf_counter() - t0:.0f} s "
                     f"(template amplitude {prior.amplitude}, width {prior.width} h)")
        planner = SendTimePlanner(None, encoder, [], np.zeros((0, HOURS_PER_WEEK)), np.zeros(HOURS_PER_WEEK),
                                  cfg.min_contact_opens, num_threads=cfg.threads, peak_prior=prior)
        X_train, X_valid = self._pairs(encoder, train, prior), self._pairs(encoder, valid, prior)
        # boosting starts from the posterior's log-odds (init_score) and learns corrections on top
        dtrain = lgb.Dataset(X_train, train[LABEL].to_numpy(), feature_name=names, init_score=planner.offset(X_train),
                             categorical_feature=encoder.categorical_indices, free_raw_data=False)
        dvalid = lgb.Dataset(X_valid, valid[LABEL].to_numpy(), init_score=planner.offset(X_valid), reference=dtrain)
        params = {
            "objective": "binary", "learning_rate": cfg.learning_rate, "num_leaves": cfg.num_leaves,
            "min_data_in_leaf": cfg.min_data_in_leaf, "feature_fraction": 0.9, "bagging_fraction": 0.8,
            "bagging_freq": 1, "lambda_l2": 1.0, "num_threads": cfg.threads, "seed": ctx.seed,
            "deterministic": True, "force_row_wise": True, "verbose": -1, "metric": "binary_logloss",
            "monotone_constraints": [MONOTONE.get(c, 0) for c in names],
        }
        planner.booster = lgb.train(params, dtrain, num_boost_round=cfg.num_boost_round, valid_sets=[dvalid],
                                    callbacks=[lgb.early_stopping(cfg.early_stopping_rounds, verbose=False)])
        self._fallback_grids(planner, prepared, ctx)
        return planner

    def _fallback_grids(self, planner: SendTimePlanner, prepared: Prepared, ctx: TrainingContext) -> None:
        """Segment and population grids: mean predicted grids of contacts as of the validation start."""
        cfg = self.config
        snap = prepared.extra["snapshots"]["grid"]
        grid = planner.contact_grid(snap)
        keys = segment_key(snap)
        frame = pd.DataFrame(grid).assign(key=keys)
        counts = frame.groupby("key").size()
        means = frame.groupby("key").mean()
        keep = counts[counts >= cfg.min_segment_contacts].index
        planner.segment_keys = list(keep)
        planner.segment_index = {k: i for i, k in enumerate(planner.segment_keys)}
        planner.segment_grids = means.loc[keep].to_numpy(dtype=float).reshape(-1, HOURS_PER_WEEK)
        planner.population_grid = grid.mean(axis=0)

    def _snapshot_plan(self, split: TimeSplit, ctx: TrainingContext) -> dict[str, pd.DataFrame]:
        """Entity frames of the contact snapshots: up to n random consenting contacts alive at a time
        (`prior`, `grid`: the validation start; `eval`: the first test midnight)."""
        cfg = self.config
        plan = {"prior": (split.valid_start, cfg.prior_contacts, ctx.seed + 3),
                "grid": (split.valid_start, cfg.grid_contacts, ctx.seed + 1),
                "eval": (split.test_start.ceil("D"), cfg.eval_contacts, ctx.seed + 2)}
        contacts, out = ctx.contacts, {}
        for name, (at, n, seed) in plan.items():
            alive = contacts[(contacts["created_at"] < at) & contacts["consent"]]
            rng = np.random.default_rng(seed)
            ids = np.sort(rng.choice(alive["contact_id"].to_numpy(), min(n, len(alive)), replace=False))
            out[name] = pd.DataFrame({"contact_id": ids, "event_timestamp": at})
        return out

    # --- evaluation -----------------------------------------------------------
    def _windows(self, prepared: Prepared) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
        t0 = prepared.split.test_start.ceil("D")
        return [(t0 + pd.Timedelta(days=d), t0 + pd.Timedelta(days=d + 1)) for d in self.config.eval_windows]

    def _eval_set(self, prepared: Prepared, ctx: TrainingContext) -> dict:
        """Contacts, their allowed slots per window and the oracle's true probabilities (cached)."""
        if "eval_set" in prepared.extra:
            return prepared.extra["eval_set"]
        from models.sampled_log import read_columns

        cfg = self.config
        snap = prepared.extra["snapshots"]["eval"]
        tz = snap["timezone"].to_numpy(dtype=object)
        content_id = int(read_columns(ctx.settings.events_dir, "content", ["content_id"])["content_id"].iloc[0])
        response = ctx.world_for(snap["contact_id"].to_numpy(np.int64)).response
        windows = []
        for start, end in self._windows(prepared):
            slots = allowed_slot_table(tz, start, end, cfg.quiet_hours)
            true = response.probabilities(
                snap["contact_id"].to_numpy(np.int64)[slots["row"].to_numpy()], content_id,
                slots["send_at"])["open_24h"]
            windows.append((start, end, slots.assign(true=true)))
        out = {"features": snap, "tz": tz, "windows": windows}
        prepared.extra["eval_set"] = out
        return out

    def _policy_values(self, grid: np.ndarray, ev: dict) -> np.ndarray:
        """True P(open 24 h) at the slot a score grid chooses, [window, contact]."""
        values = []
        for start, end, slots in ev["windows"]:
            chosen = choose_slots(grid, ev["tz"], start, end, self.config.quiet_hours)
            key = pd.DataFrame({"row": np.arange(len(grid)), "send_at": chosen["send_at"]})
            hit = key.merge(slots, on=["row", "send_at"], how="left")
            values.append(hit["true"].to_numpy(float))
        return np.vstack(values)

    def _policy_value(self, grid: np.ndarray, ev: dict) -> np.ndarray:
        """Mean true P(open 24 h) at the slots a score grid chooses, per window (array)."""
        return np.nanmean(self._policy_values(grid, ev), axis=1)

    def test_scores(self, predictor: SendTimePlanner, prepared: Prepared, ctx: TrainingContext) -> np.ndarray:
        """The decision grid [contact, hour of week] over the evaluation contacts (what the paired tests compare)."""
        return self._decision_grid(predictor, self._eval_set(prepared, ctx))[0]

    def paired(self, ours, reference, prepared: Prepared, ctx: TrainingContext, margin: float = 0.0):
        """Paired bootstrap over contacts of the uplift share: each contact's true P(open 24 h) at the chosen
        slots (mean over the windows), divided by the oracle's mean uplift over random."""
        from models.paired import bootstrap_mean

        ev = self._eval_set(prepared, ctx)
        rand, best = self._reference(ev)
        scale = float((best - rand).mean())
        a, b = (np.nanmean(self._policy_values(g, ev), axis=0) for g in (ours, reference))
        keep = np.isfinite(a) & np.isfinite(b)
        shift = float(rand.mean())
        return bootstrap_mean((a[keep] - shift) / scale, (b[keep] - shift) / scale, "uplift_ratio", seed=ctx.seed,
                              margin=margin)

    def _reference(self, ev: dict) -> tuple[np.ndarray, np.ndarray]:
        rand, best = [], []
        for _, _, slots in ev["windows"]:
            per_row = slots.groupby("row")["true"]
            rand.append(float(per_row.mean().mean()))
            best.append(float(per_row.max().mean()))
        return np.array(rand), np.array(best)

    def _decision_grid(self, planner: SendTimePlanner, ev: dict) -> tuple[np.ndarray, np.ndarray]:
        hows = np.unique(np.concatenate([w[2]["how"].to_numpy() for w in ev["windows"]]))
        grid, level = planner.grid(ev["features"], hows=hows)
        return np.where(np.isfinite(grid), grid, -np.inf), level

    def score_predictor(self, predictor: SendTimePlanner, prepared: Prepared, ctx: TrainingContext) -> float:
        ev = self._eval_set(prepared, ctx)
        grid, _ = self._decision_grid(predictor, ev)
        rand, best = self._reference(ev)
        return float((self._policy_value(grid, ev) - rand).mean() / (best - rand).mean())

    def baseline_grids(self, prepared: Prepared, ev: dict) -> dict[str, np.ndarray]:
        train = prepared.train
        rate = train.groupby("slot_how")[LABEL].mean().reindex(range(HOURS_PER_WEEK)).fillna(0).to_numpy()
        n = len(ev["features"])
        population = np.tile(rate, (n, 1))
        prof = profile_arrays(ev["features"])
        how = np.arange(HOURS_PER_WEEK)
        hour, weekend = how % 24, (how // 24) >= 5
        best = np.where(weekend[None, :], prof["best_we"][:, None], prof["best_wd"][:, None])
        dist = np.abs((hour[None, :] - best + 12) % 24 - 12)
        frequent = -dist - 1e-3 * hour[None, :]  # closest to the most frequent open hour, earlier on ties
        return {"population best hour": population, "contact's most frequent open hour": frequent}

    def evaluate(self, predictor: SendTimePlanner, prepared: Prepared, ctx: TrainingContext) -> Evaluation:
        from models import plots

        ev = self._eval_set(prepared, ctx)
        rand, best = self._reference(ev)
        grid, level = self._decision_grid(predictor, ev)
        ours = self._policy_value(grid, ev)
        base = {name: self._policy_value(g, ev) for name, g in self.baseline_grids(prepared, ev).items()}
        oracle_uplift = float((best - rand).mean())
        ratio = lambda v: float((v - rand).mean() / oracle_uplift)  # noqa: E731
        ours_ratio = ratio(ours)
        base_ratio = {k: ratio(v) for k, v in base.items()}
        test = prepared.test
        p_test = predictor.predict_matrix(self._pairs(predictor.encoder, test, predictor.peak_prior))
        metrics = {
            "uplift_ratio": ours_ratio, "oracle_uplift_ratio": 1.0,
            "mean_true_open24_ours": float(ours.mean()), "mean_true_open24_random": float(rand.mean()),
            "mean_true_open24_oracle": float(best.mean()),
            "uplift_ours": float((ours - rand).mean()), "uplift_oracle": oracle_uplift,
            "test_auc_open24": M.auc(test[LABEL].to_numpy(), p_test),
            "test_log_loss_open24": M.log_loss(test[LABEL].to_numpy(), p_test),
            "share_level_contact": float(np.mean(level == "contact")),
            "share_level_segment": float(np.mean(level == "segment")),
            "share_level_population": float(np.mean(level == "population")),
            "eval_contacts": float(len(ev["features"])),
        }
        slug = {"population best hour": "population_best_hour", "contact's most frequent open hour": "frequent_open_hour"}
        for k, v in base_ratio.items():
            metrics[f"uplift_ratio_baseline_{slug[k]}"] = v
        best_base_name = max(base_ratio, key=base_ratio.get)
        grids = self.baseline_grids(prepared, ev)
        paired = {slug[k]: self.paired(grid, grids[k], prepared, ctx) for k in base}
        met = bool(all(t.wins for t in paired.values()))
        sample = ev["features"].head(3)
        heat = {"population (mean predicted grid)": predictor.population_grid}
        full = predictor.contact_grid(sample)
        for i in range(len(sample)):
            heat[f"contact {int(sample['contact_id'].iloc[i])}"] = full[i]
        figures = {
            "hour_of_week_heatmap.png": plots.hour_of_week_heatmap(heat),
            "uplift_vs_random.png": plots.bars(
                "Uplift over a random allowed slot (true P(open 24 h))",
                {"ours": float((ours - rand).mean()), **{k: float((v - rand).mean()) for k, v in base.items()},
                 "oracle": oracle_uplift}, "probability points"),
        }
        return Evaluation(
            metric="uplift/oracle", ours=ours_ratio, baseline_name=best_base_name,
            baseline=base_ratio[best_base_name], oracle=1.0,
            target=("above both baselines by a paired bootstrap over contacts (p < 0.05: "
                    + ", ".join(f"{n} p={t.p_superior:.3g}" for n, t in paired.items())
                    + "); share of the Bayes ceiling's uplift >= 0.95: benchmarks/bench_model_quality.py"),
            target_met=met, metrics=metrics, figures=figures, paired=paired, best_baseline=slug[best_base_name],
            random=0.0,
        )

    # --- logging --------------------------------------------------------------
    def log_model(self, predictor: SendTimePlanner, prepared: Prepared):
        import mlflow
        from mlflow.models import infer_signature

        from models.tracking import pinned

        X = self._pairs(predictor.encoder, prepared.test.head(5), predictor.peak_prior)
        example = pd.DataFrame(X, columns=predictor.columns)
        signature = infer_signature(example, predictor.predict_matrix(X))
        with tempfile.TemporaryDirectory() as tmp:
            meta = predictor.write_metadata(Path(tmp))
            return mlflow.lightgbm.log_model(
                predictor.booster, name="model", signature=signature, input_example=example,
                pip_requirements=list(pinned("lightgbm", "numpy", "pandas")), extra_files=[str(meta)],
            )


def _mailable(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of contacts neither unsubscribed, bounced nor complained (as of the snapshot)."""
    mailable = ~(frame.get("unsubscribed", False) | frame.get("bounced", False) | frame.get("complained", False))
    return frame[np.asarray(mailable, dtype=bool)].reset_index(drop=True)
