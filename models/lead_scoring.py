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
a model refit without it: cross-fitting). Baseline: logistic regression on the
same rows and features.
Oracle: the simulator's probability of a conversion caused by the sends that
really happened in the label window (`ResponseModel.conversion_within`).
"""
from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from models import metrics as M
from models.calibration import Calibrator
from models.encoding import FeatureEncoder
from models.harness import Evaluation, TrainingContext
from models.lead_scorer import LeadScorer
from models.prepared import Prepared
from models.split import TimeSplit

LABEL = "converted"


@dataclass(frozen=True)
class LeadScoringConfig:
    horizon_days: int = 30
    snapshot_every_days: int = 4
    warmup_days: int = 14  # first snapshot this long after the first send (features need history)
    num_boost_round: int = 500
    early_stopping_rounds: int = 50
    learning_rate: float = 0.05
    num_leaves: int = 7  # the signal is nearly additive: shallow trees generalize across the time shift
    max_depth: int = 3  # and keep TreeSHAP reasons (cost ~ depth^2) fast
    min_data_in_leaf: int = 200
    feature_fraction: float = 0.8
    lambda_l2: float = 1.0
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

    def _train(self, X, y, cats, names, seed: int, rounds: int, valid=None):
        import lightgbm as lgb

        data = lgb.Dataset(X, y, feature_name=names, categorical_feature=cats, free_raw_data=False)
        if valid is None:
            return lgb.train(self._lgb_params(seed), data, num_boost_round=rounds)
        dvalid = lgb.Dataset(valid[0], valid[1], reference=data)
        return lgb.train(self._lgb_params(seed), data, num_boost_round=rounds, valid_sets=[dvalid],
                         callbacks=[lgb.early_stopping(self.config.early_stopping_rounds, verbose=False)])

    def fit(self, prepared: Prepared, ctx: TrainingContext) -> LeadScorer:
        cfg = self.config
        train, valid = prepared.train, prepared.valid
        encoder = FeatureEncoder.fit(train.drop(columns=[LABEL, "block"]), exclude=("timezone",))
        Xt, Xv = encoder.transform(train), encoder.transform(valid)
        yt, yv = train[LABEL].to_numpy(), valid[LABEL].to_numpy()
        fit = lambda X, y, rounds, valid=None: self._train(  # noqa: E731
            X, y, encoder.categorical_indices, encoder.columns, ctx.seed, rounds, valid)
        booster = fit(Xt, yt, cfg.num_boost_round, valid=(Xv, yv))
        if cfg.refit_with_validation and cfg.calibration_folds >= 2:
            rounds = booster.best_iteration or booster.current_iteration()
            fold = validation_folds(valid["contact_id"].to_numpy(np.int64), cfg.calibration_folds, ctx.seed)
            raw_valid = np.empty(len(valid))
            for k in range(cfg.calibration_folds):
                out = fold == k
                part = fit(np.vstack([Xt, Xv[~out]]), np.concatenate([yt, yv[~out]]), rounds)
                raw_valid[out] = part.predict(Xv[out], num_threads=cfg.threads)
            booster = fit(np.vstack([Xt, Xv]), np.concatenate([yt, yv]), rounds)
        else:
            raw_valid = booster.predict(Xv, num_threads=cfg.threads)
        calibrator = Calibrator(cfg.calibration).fit(raw_valid, yv)
        knots = np.quantile(calibrator.transform(raw_valid), np.linspace(0, 1, 101))
        prepared.extra["encoder"] = encoder
        prepared.extra["raw_valid"] = raw_valid
        return LeadScorer(booster, encoder, calibrator, knots, num_threads=cfg.threads)

    def baseline(self, prepared: Prepared, encoder: FeatureEncoder):
        """Logistic regression: median-imputed, standardized numbers + one-hot categories."""
        from sklearn.compose import ColumnTransformer
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        cats = encoder.categorical_indices
        nums = [i for i in range(len(encoder.columns)) if i not in cats]
        pre = ColumnTransformer([
            ("num", make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler()), nums),
            ("cat", make_pipeline(SimpleImputer(strategy="constant", fill_value=-1.0),
                                  OneHotEncoder(handle_unknown="ignore")), cats),
        ])
        from threadpoolctl import threadpool_limits

        model = make_pipeline(pre, LogisticRegression(max_iter=300, C=1.0))
        rows = self._fitting_rows(prepared)
        with threadpool_limits(limits=self.config.threads):  # BLAS spinning threads on a shared box
            model.fit(encoder.transform(rows), rows[LABEL].to_numpy())
        return model

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

    def evaluate(self, predictor: LeadScorer, prepared: Prepared, ctx: TrainingContext) -> Evaluation:
        from models import plots

        test = prepared.test
        y = test[LABEL].to_numpy()
        X = predictor.matrix(test)
        raw = predictor.raw_probability(X)
        p = predictor.calibrator.transform(raw)
        base = self.baseline(prepared, predictor.encoder).predict_proba(X)[:, 1]
        oracle = self.oracle(prepared, ctx)
        auc, auc_base, auc_oracle = M.auc(y, p), M.auc(y, base), M.auc(y, oracle)
        ece = M.expected_calibration_error(y, p)
        metrics = {
            "test_auc": auc, "test_auc_baseline_logreg": auc_base, "test_auc_oracle": auc_oracle,
            "test_auc_ratio_to_oracle": auc / auc_oracle,
            "test_ece": ece, "test_ece_uncalibrated": M.expected_calibration_error(y, raw),
            "test_ece_baseline_logreg": M.expected_calibration_error(y, base),
            "test_ece_oracle": M.expected_calibration_error(y, oracle),
            "test_average_precision": M.average_precision(y, p),
            "test_average_precision_oracle": M.average_precision(y, oracle),
            "test_log_loss": M.log_loss(y, p), "test_base_rate": float(y.mean()),
            "best_iteration": float(predictor.booster.best_iteration or predictor.booster.current_iteration()),
        }
        score = predictor.score_from_probability(p)
        from models.lead_scorer import tier_of

        tiers = pd.DataFrame({"tier": tier_of(score), "y": y, "p": p}).groupby("tier").agg(
            contacts=("y", "size"), conversion_rate=("y", "mean"), mean_probability=("p", "mean")).reset_index()
        for row in tiers.itertuples():
            metrics[f"tier_{row.tier}_conversion_rate"] = row.conversion_rate
        curves = {"LightGBM (calibrated)": p, "logistic regression": base, "oracle": oracle}
        gains = predictor.booster.feature_importance("gain")
        figures = {
            "roc.png": plots.roc(y, curves),
            "precision_recall.png": plots.precision_recall(y, curves),
            "calibration.png": plots.calibration(y, {"LightGBM calibrated": p, "LightGBM raw": raw,
                                                     "logistic regression": base}),
            "gain_lift.png": plots.gain_and_lift(y, curves),
            "feature_importance.png": plots.importance(predictor.encoder.columns, gains),
        }
        met = bool(auc >= 0.97 * auc_oracle and ece <= 0.02)
        return Evaluation(
            metric="AUC", ours=auc, baseline_name="logistic regression", baseline=auc_base,
            oracle=auc_oracle, target=f"AUC >= 0.97 x oracle ({0.97 * auc_oracle:.4f}) and ECE <= 0.02 (ECE {ece:.4f})",
            target_met=met, metrics=metrics, figures=figures, tables={"tiers.json": tiers},
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
