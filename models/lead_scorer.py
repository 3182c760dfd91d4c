"""Lead-scoring predictor: calibrated probability, 0-100 score, tier, reasons.

* probability: a logistic regression's logit plus LightGBM trees boosted on
  its residual (the trees start from the linear logit: `init_score`), mapped
  through the calibrator fitted on the validation period
  (`models.calibration`); a model without the linear part is the trees alone;
* planned sends (optional): the sender's expected sends per contact over the
  score's horizon; the probabilities are prior-shifted to the base rate the
  stored send-volume line predicts for that plan (`models.drift.SendVolumePrior`,
  Saerens et al. 2002), because the conversion rate follows the send volume
  and the calibrator only knows its own period's. None = no shift;
* score: the (unshifted) probability's percentile among the validation-period
  contacts (0 = lowest, 100 = highest), so a score keeps its meaning across
  retrains and plans (the shift is monotone: it never reorders contacts);
* tier by score band: A >= 90 (top 10 %), B 70-89, C 40-69, D < 40;
* reasons: top 3 positive / negative TreeSHAP contributions in words
  (`models.reasons`), the linear part's exact contributions added to them.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from models.calibration import Calibrator
from models.drift import SendVolumePrior
from models.encoding import FeatureEncoder
from models.linear import LinearLogit

TIERS = (("A", 90.0), ("B", 70.0), ("C", 40.0), ("D", 0.0))


def tier_of(score: np.ndarray) -> np.ndarray:
    score = np.asarray(score, dtype=float)
    labels = np.array([t for t, _ in TIERS], dtype=object)
    bounds = np.array([b for _, b in TIERS])
    idx = (score[:, None] < bounds[None, :]).sum(axis=1)  # how many bands are above the score
    return labels[np.minimum(idx, len(TIERS) - 1)]


class LeadScorer:
    """Native lead-scoring model (linear logit + LightGBM Booster on numpy, calibration)."""

    name = "lead_scoring"
    feature_service = "lead_scoring"
    services = ("lead_scoring",)  # feature services whose columns the model reads (merged by name)

    def __init__(self, booster, encoder: FeatureEncoder, calibrator: Calibrator, score_knots, version=None,
                 num_threads: int = 0, linear: LinearLogit | None = None,
                 send_volume: SendVolumePrior | None = None):
        self.booster = booster
        self.linear = linear
        self.send_volume = send_volume  # rate vs planned sends (None: this version cannot take a plan)
        self.encoder = encoder
        self.calibrator = calibrator
        self.score_knots = np.asarray(score_knots, dtype=float)  # probabilities at percentiles 0..100
        self.version = version
        self.num_threads = num_threads

    # --- predictions --------------------------------------------------------
    def matrix(self, features_df: pd.DataFrame) -> np.ndarray:
        return self.encoder.transform(features_df)

    def raw_logit(self, X: np.ndarray) -> np.ndarray:
        trees = self.booster.predict(X, raw_score=True, num_threads=self.num_threads)
        return trees if self.linear is None else trees + self.linear.logit(X)

    def raw_probability(self, X: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.raw_logit(X)))

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Per-feature log-odds contributions, bias last: TreeSHAP of the trees + the linear part's."""
        contrib = self.booster.predict(X, pred_contrib=True, num_threads=self.num_threads)
        return contrib if self.linear is None else contrib + self.linear.contributions(X)

    def probability_from_matrix(self, X: np.ndarray) -> np.ndarray:
        return self.calibrator.transform(self.raw_probability(X))

    def probability(self, features_df: pd.DataFrame) -> np.ndarray:
        return self.probability_from_matrix(self.matrix(features_df))

    def planned_probability(self, p: np.ndarray, planned_sends: float | None) -> np.ndarray:
        """Calibrated probabilities `p` shifted to the plan's base rate; `p` itself when `planned_sends` is None."""
        if planned_sends is None:
            return np.asarray(p, dtype=float)
        if self.send_volume is None:
            raise ValueError(f"planned_sends: lead model version {self.version} has no stored send-volume relation "
                             "(retrain it to score with a send plan)")
        return self.send_volume.shift(p, planned_sends)

    def score_from_probability(self, p: np.ndarray) -> np.ndarray:
        """Percentile of `p` among the reference (validation) contacts, mid-rank on ties."""
        knots = self.score_knots
        n = len(knots)
        p = np.asarray(p, dtype=float)
        lo = np.searchsorted(knots, p, side="left")
        hi = np.searchsorted(knots, p, side="right")
        j = np.clip(lo, 1, n - 1)
        gap = np.maximum(knots[j] - knots[j - 1], 1e-300)
        between = j - 1 + np.clip((p - knots[j - 1]) / gap, 0.0, 1.0)
        idx = np.where(hi > lo, (lo + hi - 1) / 2.0, between)
        return np.clip(np.round(idx * 100.0 / (n - 1)), 0, 100).astype(np.int64)

    def predict_arrays(self, features) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(probability, score, tier) per row without reasons: what `inbox publish` stores and `score` returns."""
        p = self.probability(features)
        score = self.score_from_probability(p)
        return p, score, tier_of(score)

    def score(self, features_df: pd.DataFrame, reasons: bool = True, k: int = 3,
              planned_sends: float | None = None) -> pd.DataFrame:
        """DataFrame[contact_id, probability, score, tier, reasons_positive, reasons_negative].

        `planned_sends`: expected sends per contact over the model's horizon (the sender's campaign
        calendar); the probabilities are shifted to it, score and tier are not (percentiles of the ranking).
        """
        if "contact_id" not in features_df.columns:
            raise ValueError("features_df: missing column 'contact_id'")
        if planned_sends is not None:
            self.planned_probability(np.zeros(0), planned_sends)  # a bad plan or no stored line: raise before any work
        X = self.matrix(features_df)
        p = self.probability_from_matrix(X)
        score = self.score_from_probability(p)
        out = pd.DataFrame(
            {
                "contact_id": features_df["contact_id"].to_numpy(np.int64),
                "probability": self.planned_probability(p, planned_sends),
                "score": score,
                "tier": tier_of(score),
            }
        )
        if reasons:
            from models.reasons import top_reasons

            contrib = self.contributions(X)
            display = features_df[self.encoder.columns].reset_index(drop=True)
            pos, neg = top_reasons(contrib, display, k=k)
            out["reasons_positive"] = pos
            out["reasons_negative"] = neg
        return out

    # --- persistence --------------------------------------------------------
    def metadata(self) -> dict:
        return {
            "kind": "lead_scoring",
            "feature_service": self.feature_service,
            "encoder": self.encoder.to_dict(),
            "calibrator": self.calibrator.to_dict(),
            "linear": None if self.linear is None else self.linear.to_dict(),
            "send_volume": None if self.send_volume is None else self.send_volume.to_dict(),
            "score_knots": self.score_knots.tolist(),
            "tiers": [list(t) for t in TIERS],
        }

    def write_metadata(self, directory: Path) -> Path:
        from models.tracking import write_predictor_metadata

        return write_predictor_metadata(directory, self.metadata())

    @classmethod
    def load(cls, model_dir: Path, version=None) -> "LeadScorer":
        from models.tracking import read_lightgbm_artifacts

        booster, meta = read_lightgbm_artifacts(model_dir)
        linear, volume = meta.get("linear"), meta.get("send_volume")  # absent in older versions
        return cls(booster, FeatureEncoder.from_dict(meta["encoder"]), Calibrator.from_dict(meta["calibrator"]),
                   meta["score_knots"], version=version,
                   linear=None if linear is None else LinearLogit.from_dict(linear),
                   send_volume=None if volume is None else SendVolumePrior.from_dict(volume))
