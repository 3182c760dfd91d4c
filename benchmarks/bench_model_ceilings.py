"""Information ceilings of lead scoring and content preference on one world.

How much of the gap between our models and the oracle can a model close from
what it observes? The oracle of each model knows things no model can:

* lead scoring: the label is "converts within 30 days"; the oracle
  (`ResponseModel.conversion_within`) uses the true traits AND the sends that
  really went out in the label window (how many, which content, at which hour).
  Rows below replace, one at a time, what the oracle knows by what a model
  could know: the expected future sends (count and mix, drawn from the
  window's send pool), then the idiosyncratic conversion term z ~ N(0, 0.7) of
  `conversion_propensity` (unknown: integrated over its prior; or inferred by
  exact Bayes from the contact's observed clicks and conversions), keeping every
  other latent trait exact (so these are upper bounds for an observable model).
  "LightGBM + latent traits" is the model-class ceiling: our LightGBM with the
  true traits as extra features.
* content preference: NDCG@3 over the contact's test sends, relevance =
  clicked. The oracle ranks by the true P(click) of each send at its actual
  send time (hour-of-day effect, fatigue), which a content ranker (content is
  chosen before the send time) does not know. Rows: the oracle at one send
  time per contact without fatigue; the same with the topic affinity replaced
  by its expectation given the public profile (industry, seniority), i.e.
  without per-contact click history; the true item affinity alone.

Run (about 10 minutes on 2 shared cores for the default world)::

    INBOX_DATA_DIR=... .venv/bin/python benchmarks/bench_model_ceilings.py [--cache DIR] [--only lead|content]
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import pickle
import time
from pathlib import Path

import numpy as np
import pandas as pd


def _prepared(name: str, ctx, cache: Path | None):
    from models.prepared import Prepared
    from models.training import make_spec

    spec = make_spec(name)
    if cache is not None and (cache / f"{name}.parquet").exists():
        frame = pd.read_parquet(cache / f"{name}.parquet")
        split, source = pickle.loads((cache / f"{name}.split.pkl").read_bytes())
        return spec, Prepared(frame, split, source, "converted" if name == "lead_scoring" else "clicked", extra={})
    prepared = spec.prepare(ctx)
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        prepared.frame.to_parquet(cache / f"{name}.parquet")
        (cache / f"{name}.split.pkl").write_bytes(pickle.dumps((prepared.split, prepared.feature_source)))
    return spec, prepared


def _idiosyncratic_conversion(world) -> np.ndarray:
    """z: the part of conversion_propensity that no public attribute explains (`simulation.world._traits`)."""
    from simulation import catalog as cat

    c, tr = world.contacts, world.traits
    code = lambda col, vals: pd.Categorical(c[col], categories=vals).codes  # noqa: E731
    ind, size, sen = code("industry", cat.INDUSTRIES), code("company_size", cat.COMPANY_SIZES), code("seniority", cat.SENIORITIES)
    src = code("signup_source", cat.SIGNUP_SOURCES)
    dom = pd.Categorical(tr.domain_kind, categories=cat.DOMAIN_KINDS).codes
    eng_noise = tr.base_engagement - (-1.35 + cat.ENG_INDUSTRY[ind] + cat.ENG_SIZE[size] + cat.ENG_SENIORITY[sen]
                                      + cat.ENG_SOURCE[src] + cat.ENG_DOMAIN[dom])
    return tr.conversion_propensity - (-3.0 + cat.CONV_INDUSTRY[ind] + cat.CONV_SIZE[size] + cat.CONV_SENIORITY[sen]
                                       + cat.CONV_SOURCE[src] + cat.CONV_DOMAIN[dom] + 0.4 * eng_noise)


def lead_ceilings(ctx, cache) -> list[tuple[str, float, str]]:
    from models import metrics as M
    from simulation.response import CONVERSION_DELAY, TOPIC_CONVERSION, _lognormal_cdf, send_to_conversion_cdf, to_utc_us

    spec, prep = _prepared("lead_scoring", ctx, cache)
    world, rm, tr = ctx.world, ctx.world.response, ctx.world.traits
    test = prep.test
    y = test["converted"].to_numpy()
    ids = test["contact_id"].to_numpy(np.int64)
    t0 = test["event_timestamp"].iloc[0]
    t1 = t0 + prep.split.horizon
    rows = []
    t = time.perf_counter()
    ours = spec.fit(prep, ctx)
    rows.append(("ours: LightGBM on the feature service", M.auc(y, ours.probability(test)),
                 f"fit {time.perf_counter() - t:.0f} s"))
    oracle = spec.oracle(prep, ctx)
    rows.append(("oracle: true traits + ACTUAL future sends", M.auc(y, oracle), "the metric's reference"))

    # what a model could know at t0: eligibility, past clicks; the future sends only in expectation
    sends, ev = ctx.events["sends"], ctx.events["events"]
    fut = sends[(sends["sent_at"] >= t0) & (sends["sent_at"] < t1)]
    stopped = ev.loc[ev["type"].isin(["unsubscribe", "complaint", "bounce"]) & (ev["occurred_at"] < t0), "contact_id"]
    eligible = (world.contacts.set_index("contact_id")["consent"].reindex(ids).to_numpy(bool)
                & ~np.isin(ids, stopped.unique()))
    n_future = fut.groupby("contact_id").size().reindex(ids).fillna(0).to_numpy()
    n_bar = n_future[eligible].mean()
    draws = 30
    pool = fut.sample(n=len(ids) * draws, replace=True, random_state=1)
    pool_c, pool_k = np.repeat(ids, draws), pool["content_id"].to_numpy(np.int64)
    pool_t = pool["sent_at"].to_numpy("datetime64[us]")
    in_window = send_to_conversion_cdf((to_utc_us(pd.Timestamp(t1))[0] - to_utc_us(pool["sent_at"])) / 1e6)
    # the contacts' clicks before t0: a click whose conversion has not arrived yet may convert in the window
    clicks = ev[(ev["type"] == "click") & (ev["occurred_at"] < t0) & ev["contact_id"].isin(ids)]
    conv_at = ev[ev["type"] == "conversion"].groupby("send_id")["occurred_at"].min()
    converted = (clicks["send_id"].map(conv_at) < t0).to_numpy(bool)
    k_click = clicks["send_id"].map(sends.set_index("send_id")["content_id"]).to_numpy(np.int64)
    topic = pd.Categorical(world.content.set_index("content_id").loc[k_click, "topic"], categories=tr.topics).codes
    c_click = clicks["contact_id"].to_numpy(np.int64)
    F0 = _lognormal_cdf((t0 - clicks["occurred_at"]).dt.total_seconds().to_numpy(), *CONVERSION_DELAY)
    F1 = _lognormal_cdf((t1 - clicks["occurred_at"]).dt.total_seconds().to_numpy(), *CONVERSION_DELAY)
    uniq, pos = np.unique(ids, return_inverse=True)
    at = np.searchsorted(uniq, c_click)

    def no_future(conversion_propensity):
        """P(conversion in window) without the future: observed pending clicks + expected future sends."""
        model = copy.copy(rm)
        model.traits = dataclasses.replace(tr, conversion_propensity=conversion_propensity)
        p = model.probabilities(pool_c, pool_k, pool_t, recent_sends=np.ones(len(pool_c), np.int64))["conversion"]
        log_miss = np.log1p(-p * in_window).reshape(len(ids), draws).mean(axis=1)
        p_future = np.where(eligible, 1 - np.exp(n_bar * log_miss), 0.0)
        pc = 1 / (1 + np.exp(-(conversion_propensity[c_click] + TOPIC_CONVERSION[topic]
                               + 0.3 * tr.topic_affinity[c_click, topic])))
        pending = np.where(converted, 0.0, pc * (F1 - F0) / np.maximum(1 - pc * F0, 1e-12))
        log_pending = np.zeros(len(uniq))
        np.add.at(log_pending, at, np.log1p(-np.clip(pending, 0, 1 - 1e-12)))
        log_lik = np.zeros(len(uniq))  # likelihood of the observed click outcomes (for the z posterior)
        np.add.at(log_lik, at, np.where(converted, np.log(pc), np.log1p(-np.clip(pc * F0, 0, 1 - 1e-12))))
        return 1 - np.exp(log_pending[pos]) * (1 - p_future), log_lik

    z = _idiosyncratic_conversion(world)
    exact, _ = no_future(tr.conversion_propensity)
    rows.append(("true traits, EXPECTED future sends (count + mix)", M.auc(y, exact),
                 f"mean future sends {n_bar:.1f}/eligible contact"))
    nodes, weights = np.polynomial.hermite_e.hermegauss(11)
    weights = weights / weights.sum()
    grid = [no_future(tr.conversion_propensity - z + 0.7 * x) for x in nodes]
    prior = sum(w * p for w, (p, _) in zip(weights, grid))
    rows.append(("  ... and z ~ N(0, 0.7) unknown (prior)", M.auc(y, prior), "other traits exact"))
    log_post = np.log(weights)[:, None] + np.stack([ll for _, ll in grid])
    post = np.exp(log_post - log_post.max(axis=0))
    post /= post.sum(axis=0)
    bayes = sum(post[i][pos] * p for i, (p, _) in enumerate(grid))
    rows.append(("  ... and z by exact Bayes from observed clicks/conversions", M.auc(y, bayes),
                 "upper bound for observables"))

    # model-class ceiling: the same LightGBM with the latent traits as features
    frame = prep.frame.copy()
    ci = frame["contact_id"].to_numpy(np.int64)
    latent = {"t_engagement": tr.base_engagement[ci], "t_conversion": tr.conversion_propensity[ci],
              "t_fatigue": tr.fatigue_sensitivity[ci], "t_bounce": tr.bounce_probability[ci],
              **{f"t_affinity_{name}": tr.topic_affinity[ci, j] for j, name in enumerate(tr.topics)}}
    traited = dataclasses.replace(prep, frame=frame.assign(**latent), extra={})
    with_traits = spec.fit(traited, ctx)
    rows.append(("LightGBM + latent traits as features", M.auc(y, with_traits.probability(traited.test)),
                 "model-class ceiling"))
    target = 0.97 * M.auc(y, oracle)
    rows.append(("target: 0.97 x oracle", target, ""))
    return rows


def content_ceilings(ctx, cache) -> list[tuple[str, float, str]]:
    import lightgbm as lgb

    from models import metrics as M
    from models.encoding import FeatureEncoder
    from simulation import catalog as cat

    spec, prep = _prepared("content_preference", ctx, cache)
    world, rm, tr = ctx.world, ctx.world.response, ctx.world.traits
    g = spec._test_groups(prep)
    ndcg = lambda s: M.ranking_metrics(g["contact_id"], g["clicked"], s, k=3)["ndcg@3"]  # noqa: E731
    rows = []
    t = time.perf_counter()
    ours = spec.fit(prep, ctx)
    rows.append(("ours: two-tower", ndcg(ours.predict_pairs(spec._contact_part(g), spec._content_part(g))),
                 f"fit {time.perf_counter() - t:.0f} s"))
    for name, s in spec._baselines(prep, g).items():
        rows.append((f"baseline: {name}", ndcg(s), ""))
    rows.append(("random order", ndcg(np.random.default_rng(0).random(len(g))), ""))
    oracle = ndcg(spec._oracle(g, ctx))
    rows.append(("oracle: true P(click) at each ACTUAL send time + fatigue", oracle, "the metric's reference"))
    ids, kid = g["contact_id"].to_numpy(np.int64), g["content_id"].to_numpy(np.int64)
    one_time = pd.DatetimeIndex(g.groupby("contact_id")["event_timestamp"].transform("first")).as_unit("us")
    one_time = one_time.tz_convert(None).to_numpy()
    no_fatigue = np.zeros(len(g), np.int64)
    rows.append(("true P(click), one send time per contact, no fatigue",
                 ndcg(rm.probabilities(ids, kid, one_time, recent_sends=no_fatigue)["click"]), "content-only oracle"))
    c = world.contacts
    ind = pd.Categorical(c["industry"], categories=cat.INDUSTRIES).codes
    sen = pd.Categorical(c["seniority"], categories=cat.SENIORITIES).codes
    public = cat.TOPIC_INDUSTRY[ind] + cat.TOPIC_SENIORITY[sen]
    model = copy.copy(rm)
    model.traits = dataclasses.replace(tr, topic_affinity=public)
    rows.append(("  ... affinity = E(affinity | industry, seniority)",
                 ndcg(model.probabilities(ids, kid, one_time, recent_sends=no_fatigue)["click"]),
                 "no per-contact click history"))
    topic = pd.Categorical(world.content.set_index("content_id").loc[kid, "topic"], categories=tr.topics).codes
    rows.append(("true topic affinity of the item alone", ndcg(tr.topic_affinity[ids, topic]), ""))

    # sanity check: LightGBM (pointwise) on the same features
    f = prep.frame
    cols = [x for x in f.columns if x not in ("clicked", "block", "send_id", "timezone", "country")]
    enc = FeatureEncoder.fit(f[cols])
    tr_, va = (f["block"] == "train").to_numpy(), (f["block"] == "valid").to_numpy()
    dt = lgb.Dataset(enc.transform(f[tr_]), f["clicked"][tr_].to_numpy(), categorical_feature=enc.categorical_indices,
                     feature_name=enc.columns)
    dv = lgb.Dataset(enc.transform(f[va]), f["clicked"][va].to_numpy(), reference=dt)
    params = {"objective": "binary", "learning_rate": 0.05, "num_leaves": 31, "min_data_in_leaf": 200,
              "feature_fraction": 0.8, "num_threads": 2, "seed": 7, "verbose": -1}
    booster = lgb.train(params, dt, 1000, valid_sets=[dv], callbacks=[lgb.early_stopping(30, verbose=False)])
    rows.append(("LightGBM (pointwise) on the same features", ndcg(booster.predict(enc.transform(g))), "sanity check"))
    rows.append(("target: 0.9 x oracle", 0.9 * oracle, ""))
    return rows


def main() -> None:
    from rich.console import Console
    from rich.table import Table

    from inbox.settings import load_settings
    from models.harness import TrainingContext

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=None, help="directory to cache the prepared training frames")
    ap.add_argument("--only", choices=("lead", "content"), default=None)
    args = ap.parse_args()
    ctx = TrainingContext(load_settings(), seed=7)
    console = Console()
    for part, metric, fn in (("lead", "test AUC", lead_ceilings), ("content", "NDCG@3", content_ceilings)):
        if args.only not in (None, part):
            continue
        table = Table(title=f"{part}: information ceilings ({metric}, same test rows)")
        for col in ("what the scorer knows", metric, "note"):
            table.add_column(col, justify="right" if col == metric else "left")
        for name, value, note in fn(ctx, args.cache):
            table.add_row(name, f"{value:.4f}", note)
        console.print(table)


if __name__ == "__main__":
    main()
