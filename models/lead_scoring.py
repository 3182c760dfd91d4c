"""Lead scoring: will a contact convert within `horizon_days` of a snapshot?

Rows are (contact, snapshot day) pairs; features come point-in-time from the
`lead_scoring` feature service; the label is a conversion event in
`[snapshot, snapshot + horizon)`. Split by time with purged label windows:
train on early snapshots, fit early stopping + calibration on a validation
snapshot `horizon` before the test snapshot, test on the last snapshot whose
label window is complete. The validation snapshot is the one closest to the
test period (the longest history behind its features), so after early stopping
the model is refit on train + validation with the chosen number of rounds; the
calibrator is fit on out-of-fold validation predictions (each fold predicted by
a model refit without it: cross-fitting).
The model: a logistic regression on the encoded features (`models.linear`)
plus shallow LightGBM trees boosted from its logit (`init_score`): the signal
is nearly additive and drifts over time, where a linear model extrapolates
better than trees alone; the trees add what it misses (early stopping decides
how much). The regression expands the "days since the last open / click /
send" features into decay kernels (`recency_days`): a contact who clicked
yesterday and has not converted yet is likely to convert within days (the
click-to-conversion delay), a decay no single linear term fits. Baseline: that
logistic regression on the store's features as they are (same rows and L2
strength, no kernels); our linear part alone is logged as an ablation
(`no_trees`: what the trees add).
Oracle: the simulator's probability of a conversion caused by the sends that
really happened in the label window (`ResponseModel.conversion_within`).

Drift: the conversion rate of a label window follows the sends per contact in
it (the sender's own campaign calendar), so a calibrator fitted on the most
recent labelled period (Platt) is right only when the next window gets as many
sends. The model stores the least-squares line of the past label windows' rates
on their send volumes (`models.drift.SendVolumePrior`) and scoring takes the
plan (`planned_sends`) and prior-shifts the probabilities to the rate the line
predicts (Saerens, Latinne & Decaestecker, Neural Computation 14(1), 2002). In
evaluation the plan is the population's scheduled sends per contact in the test
label window (from the send log; never a contact's own future sends). The
evaluation's `calibration_under_drift` table compares the raw model, Platt on
the latest period without a plan, Saerens' EM prior from the unlabelled test
rows, the plan's prior shift and the oracle. EM assumes p(x | y) unchanged,
which fewer sends break (the features of who converts change with the volume),
so it can miss the change, move the wrong way or overshoot; the plan's shift is
the one that follows the cause.
"""
from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from models import metrics as M
from models.calibration import Calibrator
from models.drift import SendVolumePrior
from models.encoding import FeatureEncoder
from models.harness import Evaluation, TrainingContext
from models.lead_scorer import LeadScorer
from models.linear import LinearLogit
from models.prepared import Prepared
from models.split import TimeSplit

LABEL = "converted"
NONINFERIORITY_MARGIN = 0.003  # AUC points: "not worse than the baseline by more than this" (issue 14)


@dataclass(frozen=True)
class LeadScoringConfig:
    horizon_days: int = 30
    snapshot_every_days: int = 4
    warmup_days: int = 14  # first snapshot this long after the first send (features need history)
    num_boost_round: int = 500
    early_stopping_rounds: int = 50
    learning_rate: float = 0.03
    num_leaves: int = 3  # the signal is nearly additive: the linear part carries it, shallow trees correct it
    max_depth: int = 3  # and keep TreeSHAP reasons (cost ~ depth^2) fast
    min_data_in_leaf: int = 200
    feature_fraction: float = 0.8
    lambda_l2: float = 1.0
    linear_base: bool = True  # trees boosted from a logistic regression's logit (init_score)
    linear_C: float = 0.1  # its inverse L2 strength (chosen on the validation period)
    recency_days: tuple[float, ...] = (0.5, 1.0, 3.0, 10.0)  # decay kernels of the days-since features
    calibration: str = "platt"  # keeps the ranking (no ties) and never returns exactly 0
    refit_with_validation: bool = True  # refit on train + validation after early stopping
    calibration_folds: int = 2  # cross-fitted validation predictions for the calibrator (refit only)
    threads: int = 2

    @classmethod
    def fast(cls) -> "LeadScoringConfig":
        return cls(horizon_days=14, snapshot_every_days=4, warmup_days=7, num_boost_round=60,
                   early_stopping_rounds=15, min_data_in_leaf=50, threads=1)


def snapshot_plan(first: pd.Timestamp, end: pd.Timestamp, cfg: LeadScoringConfig) -> tuple[TimeSplit, list]:
    """Snapshot days and the split: test at end - h, validation at end - 2h, training <= end - 3h."""
    h = pd.Timedelta(days=cfg.horizon_days)
    test_start, valid_start = end - h, end - 2 * h
    start = first + pd.Timedelta(days=cfg.warmup_days)
    if start + h > valid_start:
        raise ValueError(
            f"history too short for lead scoring: {first.date()}..{end.date()} needs at least "
            f"{cfg.warmup_days + 3 * cfg.horizon_days} days for warm-up + train/valid/test label windows"
        )
    train_days = list(pd.date_range(start, valid_start - h, freq=f"{cfg.snapshot_every_days}D"))
    if train_days[-1] != valid_start - h:
        train_days.append(valid_start - h)
    split = TimeSplit(start, valid_start, test_start, end, h)
    return split, train_days + [valid_start, test_start]


class LeadScoringSpec:
    name = "lead_scoring"
    feature_service = "lead_scoring"
    services = LeadScorer.services
    primary_metric = "auc"
    higher_is_better = True

    def __init__(self, config: LeadScoringConfig | None = None):
        self.config = config or LeadScoringConfig()

    def params(self) -> dict:
        return {f"cfg.{k}": v for k, v in asdict(self.config).items()}

    # --- data -----------------------------------------------------------------
    def prepare(self, ctx: TrainingContext) -> Prepared:
        from models.datasets import feature_frame
        from models.labels import any_event_in_window

        cfg = self.config
        first, end = ctx.data_range
        split, days = snapshot_plan(first, end, cfg)
        day_us = pd.DatetimeIndex(days).as_unit("us").asi8
        created = pd.DatetimeIndex(ctx.contacts["created_at"]).as_unit("us").asi8
        sample = ctx.sample(len(days) - np.searchsorted(day_us, created, side="right"))  # one row per later day
        log = ctx.log(sample, ("conversion",))
        contacts = log.contacts[["contact_id", "created_at"]]
        parts = []
        for day in days:
            alive = contacts.loc[contacts["created_at"] < day, "contact_id"].to_numpy()
            parts.append(pd.DataFrame({"contact_id": alive, "event_timestamp": day}))
        entity = pd.concat(parts, ignore_index=True)
        entity["event_timestamp"] = pd.to_datetime(entity["event_timestamp"], utc=True)
        frame = feature_frame(entity, self.services, ctx.settings)
        frame[LABEL] = any_event_in_window(frame, log.events, "conversion", split.horizon).astype(np.int8)
        frame["block"] = split.assign(frame["event_timestamp"])
        frame = frame[frame["block"] != ""].reset_index(drop=True)
        check_both_classes(frame, split)
        return Prepared(frame, split, frame.attrs.get("feature_source", "unknown"), LABEL,
                        extra={"dataset_name": "lead_scoring"}, sampling=sample.params())

    # --- fitting --------------------------------------------------------------
    def _lgb_params(self, seed: int) -> dict:
        c = self.config
        return {
            "objective": "binary", "learning_rate": c.learning_rate, "num_leaves": c.num_leaves,
            "max_depth": c.max_depth,
            "min_data_in_leaf": c.min_data_in_leaf, "feature_fraction": c.feature_fraction,
            "bagging_fraction": 0.8, "bagging_freq": 1, "lambda_l2": c.lambda_l2,
            "num_threads": c.threads, "seed": seed, "deterministic": True, "force_row_wise": True,
            "verbose": -1, "metric": "binary_logloss",
        }

    def _train(self, X, y, encoder: FeatureEncoder, seed: int, rounds: int, valid=None) -> LeadScorer:
        """Linear logit (if `linear_base`) + trees boosted from it; early stopping on `valid` when given.
        The returned scorer's calibrator is the identity (raw probabilities)."""
        import lightgbm as lgb

        cfg = self.config
        linear = self._linear(X, y, encoder) if cfg.linear_base else None
        offset = (lambda M: None if linear is None else linear.logit(M))  # noqa: E731
        data = lgb.Dataset(X, y, init_score=offset(X), feature_name=encoder.columns,
                           categorical_feature=encoder.categorical_indices, free_raw_data=False)
        if valid is None:
            booster = lgb.train(self._lgb_params(seed), data, num_boost_round=rounds)
        else:
            dvalid = lgb.Dataset(valid[0], valid[1], init_score=offset(valid[0]), reference=data)
            booster = lgb.train(self._lgb_params(seed), data, num_boost_round=rounds, valid_sets=[dvalid],
                                callbacks=[lgb.early_stopping(self.config.early_stopping_rounds, verbose=False)])
        return LeadScorer(booster, encoder, Calibrator("platt"), [0.0, 1.0], num_threads=cfg.threads, linear=linear)

    def _linear(self, X, y, encoder: FeatureEncoder) -> LinearLogit:
        """Our linear part: a logistic regression with recency kernels on the days-since columns."""
        cfg = self.config
        recency = [j for j, c in enumerate(encoder.columns) if c.startswith("days_since_")]
        return LinearLogit(C=cfg.linear_C, recency_days=[float(t) for t in cfg.recency_days]).fit(
            X, y, encoder.categorical_indices, threads=cfg.threads, recency=recency)

    def send_volume_prior(self, prepared: Prepared, ctx: TrainingContext) -> SendVolumePrior | None:
        """The rate-vs-sends line of the label windows before the test period and the validation rate (the
        calibrator's period); None when they do not vary enough in sends to fit a line."""
        volume = self._window_sends(prepared, ctx)
        past = prepared.frame[prepared.frame["block"] != "test"]
        rates = past.groupby("event_timestamp")[LABEL].mean()
        try:
            return SendVolumePrior.fit(rates.to_numpy(), volume.reindex(rates.index).to_numpy(),
                                       float(prepared.valid[LABEL].mean()), self.config.horizon_days)
        except ValueError:
            return None

    def fit(self, prepared: Prepared, ctx: TrainingContext) -> LeadScorer:
        cfg = self.config
        train, valid = prepared.train, prepared.valid
        encoder = FeatureEncoder.fit(train.drop(columns=[LABEL, "block"]), exclude=("timezone",))
        Xt, Xv = encoder.transform(train), encoder.transform(valid)
        yt, yv = train[LABEL].to_numpy(), valid[LABEL].to_numpy()
        fit = lambda X, y, rounds, valid=None: self._train(X, y, encoder, ctx.seed, rounds, valid)  # noqa: E731
        model = fit(Xt, yt, cfg.num_boost_round, valid=(Xv, yv))
        if cfg.refit_with_validation and cfg.calibration_folds >= 2:
            rounds = model.booster.best_iteration or model.booster.current_iteration()
            fold = validation_folds(valid["contact_id"].to_numpy(np.int64), cfg.calibration_folds, ctx.seed)
            raw_valid = np.empty(len(valid))
            for k in range(cfg.calibration_folds):
                out = fold == k
                part = fit(np.vstack([Xt, Xv[~out]]), np.concatenate([yt, yv[~out]]), rounds)
                raw_valid[out] = part.raw_probability(Xv[out])
            model = fit(np.vstack([Xt, Xv]), np.concatenate([yt, yv]), rounds)
        else:
            raw_valid = model.raw_probability(Xv)
        calibrator = Calibrator(cfg.calibration).fit(raw_valid, yv)
        knots = np.quantile(calibrator.transform(raw_valid), np.linspace(0, 1, 101))
        prepared.extra["encoder"] = encoder
        prepared.extra["raw_valid"] = raw_valid
        return LeadScorer(model.booster, encoder, calibrator, knots, num_threads=cfg.threads, linear=model.linear,
                          send_volume=self.send_volume_prior(prepared, ctx))

    def baseline(self, prepared: Prepared, encoder: FeatureEncoder, predictor: LeadScorer | None = None) -> LinearLogit:
        """Logistic regression (`models.linear`) on the store's features as they are (no recency kernels), the
        rows the model was fit on and the same L2 strength: what a practitioner fits first. Fitted once per
        `prepared`."""
        if "baseline_logreg" not in prepared.extra:
            rows = self._fitting_rows(prepared)
            prepared.extra["baseline_logreg"] = LinearLogit(C=self.config.linear_C).fit(
                encoder.transform(rows), rows[LABEL].to_numpy(), encoder.categorical_indices,
                threads=self.config.threads)
        return prepared.extra["baseline_logreg"]

    def baseline_predictor(self, prepared: Prepared, ctx: TrainingContext, predictor: LeadScorer,
                           baseline: str = "logreg") -> LeadScorer | None:
        """The logistic-regression baseline as a servable lead model (registered when it beats ours): the
        baseline's linear part, no trees (one single-leaf tree of value 0: the LightGBM format needs a tree),
        Platt-calibrated on the validation period, score percentiles from it, the same send-volume line."""
        import lightgbm as lgb

        if baseline != "logreg":
            return None

        linear = self.baseline(prepared, predictor.encoder, predictor)
        rows = self._fitting_rows(prepared)
        X = predictor.encoder.transform(rows)
        params = {**self._lgb_params(ctx.seed), "min_data_in_leaf": len(rows) + 1, "min_data_in_bin": 1}
        booster = lgb.train(params, lgb.Dataset(X, rows[LABEL].to_numpy(), init_score=linear.logit(X),
                                                feature_name=predictor.encoder.columns,
                                                categorical_feature=predictor.encoder.categorical_indices),
                            num_boost_round=1)
        booster.set_leaf_output(0, 0, 0.0)
        raw_valid = linear.probability(predictor.encoder.transform(prepared.valid))
        calibrator = Calibrator(self.config.calibration).fit(raw_valid, prepared.valid[LABEL].to_numpy())
        knots = np.quantile(calibrator.transform(raw_valid), np.linspace(0, 1, 101))
        return LeadScorer(booster, predictor.encoder, calibrator, knots, num_threads=self.config.threads,
                          linear=linear, send_volume=predictor.send_volume)

    def _fitting_rows(self, prepared: Prepared) -> pd.DataFrame:
        """The rows the model was fit on (train, + validation when refit): the baseline gets the same."""
        if self.config.refit_with_validation and self.config.calibration_folds >= 2:
            return pd.concat([prepared.train, prepared.valid])
        return prepared.train

    # --- evaluation -----------------------------------------------------------
    def score_predictor(self, predictor: LeadScorer, prepared: Prepared, ctx: TrainingContext) -> float:
        test = prepared.test
        return M.auc(test[LABEL].to_numpy(), predictor.probability(test))

    def oracle(self, prepared: Prepared, ctx: TrainingContext) -> np.ndarray:
        """True P(conversion in the label window) per test row, from the sends that really happened."""
        from simulation.response import recent_send_counts, to_utc_us

        test = prepared.test
        sends = ctx.sends_of(test["contact_id"].to_numpy(np.int64))[["contact_id", "content_id", "sent_at"]]
        sends["recent_sends"] = recent_send_counts(sends["contact_id"].to_numpy(np.int64), to_utc_us(sends["sent_at"]))
        out = np.zeros(len(test))
        h = prepared.split.horizon
        response = ctx.world_for(test["contact_id"].to_numpy(np.int64)).response
        for t in test["event_timestamp"].unique():
            rows = np.flatnonzero((test["event_timestamp"] == t).to_numpy())
            out[rows] = response.conversion_within(
                test["contact_id"].to_numpy(np.int64)[rows], t, t + h, sends)
        return out

    def test_scores(self, predictor: LeadScorer, prepared: Prepared, ctx: TrainingContext) -> np.ndarray:
        """Calibrated probabilities of the test rows (what the paired tests compare)."""
        return predictor.probability(prepared.test)

    def paired(self, ours, reference, prepared: Prepared, ctx: TrainingContext, margin: float = 0.0):
        """DeLong's paired test of the two scorers' test AUCs (`models.paired`)."""
        from models.paired import delong

        return delong(prepared.test[LABEL].to_numpy(), ours, reference, margin=margin)

    def window_sends(self, prepared: Prepared, ctx: TrainingContext) -> pd.Series:
        """Sends per row in each snapshot's label window `[t, t + horizon)`, by snapshot time (the sender's plan)."""
        frame = prepared.frame
        sends = ctx.sends_of(np.unique(frame["contact_id"].to_numpy(np.int64)))
        t_send = pd.DatetimeIndex(sends["sent_at"]).as_unit("us").asi8
        order = np.argsort(t_send)
        t_send, who = t_send[order], sends["contact_id"].to_numpy(np.int64)[order]
        h = pd.Timedelta(prepared.split.horizon).value // 1000
        out = {}
        for t, rows in frame.groupby("event_timestamp")["contact_id"]:
            t0 = pd.Timestamp(t).value // 1000  # ns -> us
            lo, hi = np.searchsorted(t_send, [t0, t0 + h])
            out[t] = float(np.isin(who[lo:hi], rows.to_numpy(np.int64)).sum() / len(rows))
        return pd.Series(out).sort_index()

    def _window_sends(self, prepared: Prepared, ctx: TrainingContext) -> pd.Series:
        """`window_sends`, computed once per `prepared` (the send-volume line and the plan both read it)."""
        if prepared.extra.get("window_sends") is None:
            prepared.extra["window_sends"] = self.window_sends(prepared, ctx)
        return prepared.extra["window_sends"]

    def planned_sends(self, prepared: Prepared, ctx: TrainingContext) -> float:
        """The evaluation's send plan: the sender's sends per contact in the test label window (population level,
        from the send log), what a sender knows of its own calendar when it scores."""
        volume = self._window_sends(prepared, ctx)
        return float(volume[prepared.test["event_timestamp"].iloc[0]])

    def calibration_under_drift(self, predictor: LeadScorer, prepared: Prepared, raw: np.ndarray, p: np.ndarray,
                                oracle: np.ndarray, plan: float) -> pd.DataFrame:
        """Calibration of the test probabilities under each correction of `models.drift`, one row each; `raw` and
        `p` the test rows' raw and calibrated probabilities without a plan, `plan` the sends per contact of the
        test label window."""
        from models import drift

        test = prepared.test
        y = test[LABEL].to_numpy()
        source = float(prepared.valid[LABEL].mean())  # the calibrator's period
        fitted_rate = float(self._fitting_rows(prepared)[LABEL].mean())
        candidates = {
            "raw model (fit on train + validation)": (raw, f"base rate of its fitting rows {fitted_rate:.4f}"),
            "Platt on the most recent labelled period (served without a plan)": (
                p, f"validation base rate {source:.4f}"),
            "prior shift, EM on the unlabelled test rows (Saerens 2002)": (
                drift.prior_shift(p, source, drift.em_prior(p, source)), "p(x | y) assumed unchanged"),
        }
        v = predictor.send_volume
        if v is not None:
            candidates["prior shift to the planned sends (served with the plan)"] = (
                predictor.planned_probability(p, plan),
                f"{plan:.2f} sends/contact planned, {v.sends_min:.2f}-{v.sends_max:.2f} in the {v.windows} past "
                f"windows; rate {v.rate(plan):.4f} from their line")
        candidates["oracle (true traits and actual sends)"] = (oracle, "reference")
        rows = []
        for name, (q, note) in candidates.items():
            ece = M.expected_calibration_error(y, q)
            rows.append({"method": name, "mean_predicted": float(q.mean()), "observed": float(y.mean()),
                         "calibration_ratio": float(q.mean() / y.mean()), "ece": ece,
                         "ece_over_base_rate": ece / float(y.mean()), "auc": M.auc(y, q), "note": note})
        return pd.DataFrame(rows)

    def evaluate(self, predictor: LeadScorer, prepared: Prepared, ctx: TrainingContext) -> Evaluation:
        from models import plots

        test = prepared.test
        y = test[LABEL].to_numpy()
        X = predictor.matrix(test)
        raw = predictor.raw_probability(X)
        p_no_plan = predictor.calibrator.transform(raw)
        plan = self.planned_sends(prepared, ctx)
        served_with_plan = predictor.send_volume is not None
        p = predictor.planned_probability(p_no_plan, plan if served_with_plan else None)  # what scoring serves
        base = self.baseline(prepared, predictor.encoder, predictor).probability(X)
        oracle = self.oracle(prepared, ctx)
        auc, auc_base, auc_oracle = M.auc(y, p), M.auc(y, base), M.auc(y, oracle)
        ece, rate = M.expected_calibration_error(y, p), float(y.mean())
        vs_base = self.paired(p, base, prepared, ctx, margin=NONINFERIORITY_MARGIN)
        paired = {"logreg": vs_base}
        if predictor.linear is not None:  # ablation: what the trees add to our own linear part
            paired["no_trees"] = self.paired(p, predictor.linear.probability(X), prepared, ctx)
        drift_table = self.calibration_under_drift(predictor, prepared, raw, p_no_plan, oracle, plan)
        ratio = float(p.mean() / rate)
        ece_no_plan = M.expected_calibration_error(y, p_no_plan)
        metrics = {
            "test_auc": auc, "test_auc_baseline_logreg": auc_base, "test_auc_oracle": auc_oracle,
            **({"test_auc_no_trees": paired["no_trees"].reference} if "no_trees" in paired else {}),
            "test_auc_ratio_to_oracle": auc / auc_oracle,
            "test_ece": ece, "test_ece_over_base_rate": ece / rate,
            "test_ece_uncalibrated": M.expected_calibration_error(y, raw),
            "test_ece_baseline_logreg": M.expected_calibration_error(y, base),
            "test_ece_oracle": M.expected_calibration_error(y, oracle),
            "test_calibration_ratio": ratio, "test_calibration_ratio_baseline_logreg": float(base.mean() / rate),
            "test_calibration_ratio_no_plan": float(p_no_plan.mean() / rate), "test_ece_no_plan": ece_no_plan,
            "test_ece_over_base_rate_no_plan": ece_no_plan / rate, "test_planned_sends": plan,
            "test_served_with_plan": float(served_with_plan),
            "test_calibration_ratio_oracle": float(oracle.mean() / rate),
            "test_average_precision": M.average_precision(y, p),
            "test_average_precision_baseline_logreg": M.average_precision(y, base),
            "test_average_precision_oracle": M.average_precision(y, oracle),
            "test_log_loss": M.log_loss(y, p), "test_log_loss_baseline_logreg": M.log_loss(y, base),
            "test_base_rate": rate, "valid_base_rate": float(prepared.valid[LABEL].mean()),
            "train_base_rate": float(prepared.train[LABEL].mean()),
            "best_iteration": float(predictor.booster.best_iteration or predictor.booster.current_iteration()),
        }
        for row in drift_table.itertuples():
            key = {"raw model (fit on train + validation)": "raw",
                   "prior shift, EM on the unlabelled test rows (Saerens 2002)": "prior_shift_em",
                   "prior shift to the planned sends (served with the plan)": "prior_shift_planned_sends"
                   }.get(row.method)
            if key:
                metrics[f"test_calibration_ratio_{key}"] = row.calibration_ratio
                metrics[f"test_ece_over_base_rate_{key}"] = row.ece_over_base_rate
        score = predictor.score_from_probability(p_no_plan)  # scores and tiers rank, they do not take the plan
        from models.lead_scorer import tier_of

        tiers = pd.DataFrame({"tier": tier_of(score), "y": y, "p": p}).groupby("tier").agg(
            contacts=("y", "size"), conversion_rate=("y", "mean"), mean_probability=("p", "mean")).reset_index()
        for row in tiers.itertuples():
            metrics[f"tier_{row.tier}_conversion_rate"] = row.conversion_rate
        curves = {"ours (calibrated)": p, "logistic regression": base, "oracle": oracle}
        gains = predictor.booster.feature_importance("gain")
        figures = {
            "roc.png": plots.roc(y, curves),
            "precision_recall.png": plots.precision_recall(y, curves),
            "calibration.png": plots.calibration(y, {"ours with the send plan": p, "ours without a plan": p_no_plan,
                                                     "ours raw": raw, "logistic regression": base}),
            "gain_lift.png": plots.gain_and_lift(y, curves),
            "feature_importance.png": plots.importance(predictor.encoder.columns, gains),
        }
        met_rank = bool(auc >= auc_base and vs_base.noninferior)
        met_cal = bool(0.8 <= ratio <= 1.25 and ece <= 0.2 * rate)
        served = (f"with the send plan ({plan:.2f} sends/contact in the label window; without it: ratio "
                  f"{p_no_plan.mean() / rate:.2f}, ECE {ece_no_plan:.4f})" if served_with_plan
                  else "without a plan (no send-volume line could be fitted)")
        target = (f"AUC >= logistic regression and non-inferior (margin {NONINFERIORITY_MARGIN}, DeLong p="
                  f"{vs_base.p_noninferior:.3g}): {'met' if met_rank else 'missed'}; calibration {served}: ratio "
                  f"{ratio:.2f} in [0.8, 1.25] and ECE {ece:.4f} <= 0.2 x base rate {rate:.4f}: "
                  f"{'met' if met_cal else 'missed'}; share of the ceiling's AUC lift: benchmarks/bench_model_quality.py")
        return Evaluation(
            metric="AUC", ours=auc, baseline_name="logistic regression", baseline=auc_base,
            oracle=auc_oracle, target=target, target_met=met_rank and met_cal, metrics=metrics, figures=figures,
            tables={"tiers.json": tiers, "calibration_under_drift.json": drift_table},
            paired=paired, best_baseline="logreg", random=0.5, calibration_ratio=ratio,
        )

    # --- logging --------------------------------------------------------------
    def log_model(self, predictor: LeadScorer, prepared: Prepared):
        import mlflow
        from mlflow.models import infer_signature

        from models.tracking import pinned

        example = pd.DataFrame(predictor.matrix(prepared.test.head(5)), columns=predictor.encoder.columns)
        signature = infer_signature(example, predictor.raw_probability(example.to_numpy()))
        with tempfile.TemporaryDirectory() as tmp:
            meta = predictor.write_metadata(Path(tmp))
            return mlflow.lightgbm.log_model(
                predictor.booster, name="model", signature=signature, input_example=example,
                pip_requirements=list(pinned("lightgbm", "numpy", "pandas", "scikit-learn")),
                extra_files=[str(meta)],
            )


def check_both_classes(frame: pd.DataFrame, split: TimeSplit) -> None:
    """Raise, naming the block and the split, when a block has no conversion (or only conversions)."""
    rates = frame.groupby("block")[LABEL].agg(["size", "sum"])
    for block in ("train", "valid", "test"):
        n, pos = (int(rates.loc[block, "size"]), int(rates.loc[block, "sum"])) if block in rates.index else (0, 0)
        if pos == 0 or pos == n:
            raise ValueError(f"lead scoring: the {block} block has {n:,} rows and {pos:,} conversions, no conversion "
                             f"or no non-conversion to learn or test from (split {split.describe()})")


def validation_folds(contact_ids: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold number 0..k-1 per row, by contact (a contact's rows share a fold), seeded."""
    uniq, inv = np.unique(contact_ids, return_inverse=True)
    fold_of = np.random.default_rng(seed).permutation(len(uniq)) % k
    return fold_of[inv]


def with_overrides(config: LeadScoringConfig, overrides: dict) -> LeadScoringConfig:
    return replace(config, **overrides) if overrides else config
