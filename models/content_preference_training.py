"""Training and evaluation of the content-preference model (see `models.two_tower`).

Rows are past sends (contact, content, send time): contact features from the
`content_preference` service and content features, both as of the send;
label = the send was clicked. Time split over send time (3-day purge).

Evaluation on the test period: for each contact with at least two distinct
content items sent and at least one click, the items are ranked; relevance =
clicked. NDCG@3 and recall@3 for the model, for the baselines (global
popularity = training-period click rate of the item; the contact's smoothed
click rate on the item's topic; a logistic regression on exactly the
interactions of the simulator's click model, `models.structural_logit`) and
for the oracle (the simulator's true click probability of each send). AUC over all
test sends. The model and each baseline are compared by a paired bootstrap
over contacts of their per-contact NDCG@3 (`models.paired`).
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from models import metrics as M
from models.content_preference import ContentRanker, TowerEncoder
from models.harness import Evaluation, TrainingContext
from models.prepared import Prepared, sample_send_rows
from models.split import TimeSplit

LABEL = "clicked"
CONTENT_COLUMNS = ("content_topic", "content_format", "subject_length", "has_personalization", "has_urgency",
                   "has_emoji", "content_age_days", "content_sends_total", "content_open_rate", "content_click_rate")
CONTACT_EXCLUDE = ("timezone", "country") + CONTENT_COLUMNS


@dataclass(frozen=True)
class ContentPreferenceConfig:
    warmup_days: int = 14
    valid_fraction: float = 0.15
    test_fraction: float = 0.2
    horizon_days: int = 3
    max_train_rows: int = 600_000
    epochs: int = 6  # at most; training stops after `patience` epochs without a better validation loss
    patience: int = 1
    batch_size: int = 8192
    learning_rate: float = 3e-3
    weight_decay: float = 1e-5
    embedding_dim: int = 8
    hidden: int = 128
    out_dim: int = 32
    k: int = 3
    threads: int = 1  # torch on a shared 2-core box: 1 thread is ~10x faster than 2 contended ones

    @classmethod
    def fast(cls) -> "ContentPreferenceConfig":
        return cls(warmup_days=7, max_train_rows=60_000, epochs=2, hidden=32, out_dim=16, threads=1,
                   batch_size=4096, learning_rate=1e-2)


class ContentPreferenceSpec:
    name = "content_preference"
    feature_service = "content_preference"
    services = ContentRanker.services
    primary_metric = "ndcg_at_3"
    higher_is_better = True

    def __init__(self, config: ContentPreferenceConfig | None = None):
        self.config = config or ContentPreferenceConfig()

    def params(self) -> dict:
        return {f"cfg.{k}": v for k, v in asdict(self.config).items()}

    # --- data -----------------------------------------------------------------
    def prepare(self, ctx: TrainingContext) -> Prepared:
        from models.datasets import feature_frame
        from models.labels import send_outcome

        cfg = self.config
        first, end = ctx.data_range
        split = TimeSplit.from_fractions(first + pd.Timedelta(days=cfg.warmup_days), end,
                                         pd.Timedelta(days=cfg.horizon_days), valid=cfg.valid_fraction,
                                         test=cfg.test_fraction)
        log = ctx.log(ctx.sample(ctx.sends_per_contact(split)), ("click",))
        rows, block = sample_send_rows(log.sends[["send_id", "contact_id", "content_id", "sent_at"]],
                                       split, cfg.max_train_rows, ctx.seed)
        entity = rows.rename(columns={"sent_at": "event_timestamp"})
        frame = feature_frame(entity[["contact_id", "content_id", "event_timestamp"]], self.services, ctx.settings)
        missing = [c for c in CONTENT_COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"feature service content_preference: missing content feature(s) {missing}")
        frame["send_id"] = rows["send_id"].to_numpy()
        frame[LABEL] = send_outcome(rows, log.events, "click").astype(np.int8)
        frame["block"] = block
        source = frame.attrs.get("feature_source", "unknown")
        return Prepared(frame, split, source, LABEL, extra={"dataset_name": "content_preference"},
                        sampling=log.sample.params())

    @staticmethod
    def _contact_part(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.drop(columns=[c for c in CONTENT_COLUMNS if c in frame.columns])

    @staticmethod
    def _content_part(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[["content_id", *CONTENT_COLUMNS]]

    # --- fitting --------------------------------------------------------------
    def fit(self, prepared: Prepared, ctx: TrainingContext) -> ContentRanker:
        import torch

        from models.two_tower import TowerLayout, TwoTower, TwoTowerConfig

        cfg = self.config
        torch.manual_seed(ctx.seed)
        torch.set_num_threads(cfg.threads)
        train, valid = prepared.train, prepared.valid
        contact_enc = TowerEncoder.fit(self._contact_part(train).drop(columns=[LABEL, "block", "send_id"]),
                                       exclude=CONTACT_EXCLUDE)
        content_enc = TowerEncoder.fit(self._content_part(train))
        ranker = ContentRanker(None, contact_enc, content_enc)
        Xt = torch.from_numpy(ranker.pair_matrix(self._contact_part(train), self._content_part(train)))
        yt = torch.from_numpy(train[LABEL].to_numpy(np.float32))
        Xv = torch.from_numpy(ranker.pair_matrix(self._contact_part(valid), self._content_part(valid)))
        yv = torch.from_numpy(valid[LABEL].to_numpy(np.float32))
        tt_cfg = TwoTowerConfig(
            TowerLayout(contact_enc.n_cat, contact_enc.n_num, contact_enc.cardinalities),
            TowerLayout(content_enc.n_cat, content_enc.n_num, content_enc.cardinalities),
            cfg.embedding_dim, cfg.hidden, cfg.out_dim)
        model = TwoTower(tt_cfg)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        loss_fn = torch.nn.BCEWithLogitsLoss()
        gen = torch.Generator().manual_seed(ctx.seed)
        best, best_state, history = float("inf"), None, []
        for epoch in range(cfg.epochs):
            model.train()
            perm = torch.randperm(len(Xt), generator=gen)
            for lo in range(0, len(Xt), cfg.batch_size):
                b = perm[lo : lo + cfg.batch_size]
                opt.zero_grad()
                loss = loss_fn(model.logits(Xt[b]), yt[b])
                loss.backward()
                opt.step()
            model.eval()
            with torch.no_grad():
                vloss = float(loss_fn(model.logits(Xv), yv))
            history.append(vloss)
            if vloss < best:
                best = vloss
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            elif len(history) - 1 - int(np.argmin(history)) >= cfg.patience:
                break  # the clicks are rare: more epochs only fit noise (and cost training time)
        model.load_state_dict(best_state)
        model.eval()
        prepared.extra["valid_loss_by_epoch"] = history
        ranker.module = model
        return ranker

    # --- evaluation -----------------------------------------------------------
    def _test_groups(self, prepared: Prepared) -> pd.DataFrame:
        """Test rows deduplicated per (contact, content): first send, clicked if any send was.

        The contact side is frozen at the contact's first test send, so all of a
        contact's candidates are ranked from one contact state (as at decision time).
        """
        if "test_groups" in prepared.extra:
            return prepared.extra["test_groups"]
        test = prepared.test.sort_values("event_timestamp", kind="stable")
        clicked = test.groupby(["contact_id", "content_id"])[LABEL].transform("max")
        out = test.assign(**{LABEL: clicked}).drop_duplicates(["contact_id", "content_id"]).reset_index(drop=True)
        contact_cols = [c for c in self._contact_part(out).columns
                        if c not in ("contact_id", "content_id", "send_id", "event_timestamp", LABEL, "block")]
        out[contact_cols] = out.groupby("contact_id", sort=False)[contact_cols].transform("first")
        prepared.extra["test_groups"] = out
        return out

    def score_predictor(self, predictor: ContentRanker, prepared: Prepared, ctx: TrainingContext) -> float:
        g = self._test_groups(prepared)
        p = predictor.predict_pairs(self._contact_part(g), self._content_part(g))
        return M.ranking_metrics(g["contact_id"], g[LABEL], p, k=self.config.k)[f"ndcg@{self.config.k}"]

    def _oracle(self, rows: pd.DataFrame, ctx: TrainingContext) -> np.ndarray:
        from simulation.response import recent_send_counts

        sends = ctx.sends_of(rows["contact_id"].to_numpy(np.int64))  # fatigue counts need all their sends
        t_all = pd.DatetimeIndex(sends["sent_at"]).as_unit("us").asi8
        recent = pd.Series(recent_send_counts(sends["contact_id"].to_numpy(np.int64), t_all),
                           index=sends["send_id"].to_numpy())
        return ctx.world_for(rows["contact_id"].to_numpy(np.int64)).response.probabilities(
            rows["contact_id"].to_numpy(np.int64), rows["content_id"].to_numpy(np.int64),
            pd.DatetimeIndex(rows["event_timestamp"]).as_unit("us").tz_convert(None).to_numpy(),
            recent_sends=recent.reindex(rows["send_id"]).fillna(0).to_numpy(np.int64))["click"]

    def _baselines(self, prepared: Prepared, rows: pd.DataFrame) -> dict[str, np.ndarray]:
        from features.pipeline import topic_slug

        train = prepared.train
        pop = train.groupby("content_id")[LABEL].mean()
        popularity = rows["content_id"].map(pop).fillna(train[LABEL].mean()).to_numpy(float)
        slugs = rows["content_topic"].astype(str).map(topic_slug)
        topic_rate = np.full(len(rows), np.nan)
        for s in slugs.unique():
            col = f"click_affinity_{s}"
            if col in rows.columns:
                m = (slugs == s).to_numpy()
                topic_rate[m] = pd.to_numeric(rows.loc[m, col], errors="coerce").to_numpy(float)
        topic_rate = np.where(np.isfinite(topic_rate), topic_rate, np.nanmean(topic_rate))
        return {"global popularity": popularity, "contact's topic click rate": topic_rate,
                "structural logistic regression": self.structural(prepared).predict_pairs(
                    self._contact_part(rows), self._content_part(rows))}

    def structural(self, prepared: Prepared) -> ContentRanker:
        """The structural logistic regression fitted on the training rows (once per training), as a ranker."""
        from models import structural_logit

        if "structural" not in prepared.extra:
            train = prepared.train
            prepared.extra["structural"] = structural_logit.fit(self._contact_part(train), self._content_part(train),
                                                                train[LABEL].to_numpy(), threads=self.config.threads)
        return prepared.extra["structural"]

    def baseline_predictor(self, prepared: Prepared, ctx: TrainingContext, predictor: ContentRanker,
                           baseline: str) -> ContentRanker | None:
        """The structural logistic regression, when it is the baseline that beats ours (it is served in the
        two-tower's form); popularity and the topic rate are not served (None)."""
        return self.structural(prepared) if baseline == "structural_logit" else None

    def test_scores(self, predictor: ContentRanker, prepared: Prepared, ctx: TrainingContext) -> np.ndarray:
        """Scores of the deduplicated test (contact, content) pairs (what the paired tests compare)."""
        g = self._test_groups(prepared)
        return predictor.predict_pairs(self._contact_part(g), self._content_part(g))

    def paired(self, ours, reference, prepared: Prepared, ctx: TrainingContext, margin: float = 0.0):
        """Paired bootstrap over contacts of NDCG@k (`models.paired.bootstrap_mean`)."""
        from models.paired import bootstrap_mean

        g, k = self._test_groups(prepared), self.config.k
        a, b = (M.per_group_ranking(g["contact_id"], g[LABEL], s, k=k)[f"ndcg@{k}"].to_numpy() for s in (ours, reference))
        return bootstrap_mean(a, b, f"ndcg@{k}", seed=ctx.seed, margin=margin)

    def evaluate(self, predictor: ContentRanker, prepared: Prepared, ctx: TrainingContext) -> Evaluation:
        from models import plots

        k = self.config.k
        g = self._test_groups(prepared)
        scores = {"ours": self.test_scores(predictor, prepared, ctx),
                  **self._baselines(prepared, g), "oracle": self._oracle(g, ctx)}
        ranking = {name: M.ranking_metrics(g["contact_id"], g[LABEL], s, k=k) for name, s in scores.items()}
        test = prepared.test
        p_test = predictor.predict_pairs(self._contact_part(test), self._content_part(test))
        metrics = {"test_auc": M.auc(test[LABEL], p_test),
                   "test_auc_oracle": M.auc(test[LABEL], self._oracle(test, ctx)),
                   "test_log_loss": M.log_loss(test[LABEL], p_test),
                   "ranking_contacts": float(ranking["ours"]["groups"]),
                   "unseen_content_share_test": float((~g["content_id"].isin(prepared.train["content_id"])).mean())}
        slug = {"ours": "", "global popularity": "_baseline_popularity",
                "contact's topic click rate": "_baseline_topic_rate",
                "structural logistic regression": "_baseline_structural_logit", "oracle": "_oracle"}
        for name, r in ranking.items():
            metrics[f"ndcg_at_{k}{slug[name]}"] = r[f"ndcg@{k}"]
            metrics[f"recall_at_{k}{slug[name]}"] = r[f"recall@{k}"]
            if name not in ("ours", "oracle"):
                metrics[f"test_auc{slug[name]}"] = M.auc(g[LABEL], scores[name])
        rng = np.random.default_rng(ctx.seed)  # a random order's NDCG (the zero of the share of lift), 5 draws
        metrics[f"ndcg_at_{k}_random"] = float(np.mean([M.ranking_metrics(g["contact_id"], g[LABEL], rng.random(len(g)),
                                                                           k=k)[f"ndcg@{k}"] for _ in range(5)]))
        for i, v in enumerate(prepared.extra.get("valid_loss_by_epoch", [])):
            metrics[f"valid_loss_epoch_{i}"] = v
        ours, oracle = ranking["ours"][f"ndcg@{k}"], ranking["oracle"][f"ndcg@{k}"]
        base = {n: r[f"ndcg@{k}"] for n, r in ranking.items() if n not in ("ours", "oracle")}
        best_base = max(base, key=base.get)
        paired = {slug[n][len("_baseline_"):]: self.paired(scores["ours"], scores[n], prepared, ctx) for n in base}
        structural = "structural logistic regression"  # registered instead of ours when it wins: against the others
        for n in base:
            if n != structural:
                metrics.update(self.paired(scores[structural], scores[n], prepared, ctx).as_metrics(
                    f"paired_structural_logit_vs_{slug[n][len('_baseline_'):]}"))
        met = bool(all(t.wins for t in paired.values()))
        figures = {f"ndcg_at_{k}.png": plots.bars(f"NDCG@{k} on the test period",
                                                  {n: r[f"ndcg@{k}"] for n, r in ranking.items()}, f"NDCG@{k}")}
        return Evaluation(
            metric=f"NDCG@{k}", ours=ours, baseline_name=best_base, baseline=base[best_base], oracle=oracle,
            target=(f"NDCG@{k} above every baseline by a paired bootstrap over contacts (p < 0.05: "
                    + ", ".join(f"{n} p={t.p_superior:.3g}" for n, t in paired.items())
                    + "); share of the history-aware ceiling's lift >= 0.70: benchmarks/bench_model_quality.py"),
            target_met=met, metrics=metrics, figures=figures, paired=paired,
            best_baseline=slug[best_base][len("_baseline_"):],
            random=metrics[f"ndcg_at_{k}_random"],
        )

    # --- logging --------------------------------------------------------------
    def log_model(self, predictor: ContentRanker, prepared: Prepared):
        import mlflow
        from mlflow.models import ModelSignature
        from mlflow.types import Schema, TensorSpec

        from models.tracking import pinned

        head = prepared.test.head(8)
        example = predictor.pair_matrix(self._contact_part(head), self._content_part(head))
        signature = ModelSignature(inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, example.shape[1]))]),
                                   outputs=Schema([TensorSpec(np.dtype(np.float32), (-1,))]))
        with tempfile.TemporaryDirectory() as tmp:
            meta = predictor.write_metadata(Path(tmp))
            return mlflow.pytorch.log_model(
                predictor.module, name="model", serialization_format="pt2", input_example=example,
                signature=signature, pip_requirements=list(pinned("torch", "numpy")), extra_files=[str(meta)],
            )

