"""Information ceilings of the three models on one world: the best any model can do from what it observes.

Each ceiling is given the simulator's generative form, its true priors and
every latent trait except the ones a model cannot observe, so it is an upper
bound for an observable model. Each passes two checks printed beside it: told
the truth it reaches the oracle; given no history it is the prior-only row.

* lead scoring (test AUC; `LeadInformation`): the oracle knows the true
  traits, the sends that really went out in the label window, and the clicks
  observed before the snapshot whose conversion is still pending. The ceiling
  knows the plan instead of the sends: the window's mean sends per eligible
  contact, drawn from the window's send pool (200 draws shared by every
  contact, with the fatigue of that send rate), averaged over 5 seeds of the
  draws with a t-interval; the idiosyncratic conversion term z ~ N(0, 0.7) is
  inferred by exact Bayes (Gauss-Hermite nodes) from the observed click
  outcomes, or integrated over its prior (the no-history row).
* content preference (NDCG@3 over the harness's test groups; `content_ceiling`):
  each (contact, topic) affinity is inferred by exact Bayes on a grid from the
  contact's observed past sends of that topic (no open / open / click), and each
  item's latent open and click appeal (N(0, 0.2) and N(0, 0.3) log-odds, "learnable
  only from history") by exact Bayes from every contact's observed sends of that
  item (an item never sent before the test keeps its prior); every other trait
  exact, and the affinities exact when inferring the appeals (more than any
  model knows, so still a bound). Candidates are scored by the posterior-expected
  true P(click) at the contact's first test send time. CI: bootstrap over
  contacts. The rows also show the earlier ceiling that was given each item's
  true appeal: not a bound on what history can tell, since no history tells the
  appeal of an item that was never sent.
* send time (uplift share; `send_time_ceiling`): the Bayes chooser of
  `bench_send_time_ceiling.py`, CI by bootstrap over contacts.

Run (several minutes per world on 2 shared cores)::

    INBOX_DATA_DIR=... .venv/bin/python benchmarks/bench_model_ceilings.py [--cache DIR] \
        [--only lead|content|send_time] [--json ceilings.json]
"""
from __future__ import annotations

import argparse
import pickle
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


def _stage_terms(rm, ci, ki, t_us, recent):
    """(P(delivered, open, click) and the conversion-given-click logit without the contact's propensity)."""
    p = rm.conditional(ci, ki, t_us, recent)
    reach = (1.0 - p["bounce"]) * p["open"] * p["click"]
    conv = np.clip(p["conversion"], 1e-12, 1 - 1e-12)
    return reach, np.log(conv) - np.log1p(-conv) - rm.traits.conversion_propensity[ci]


def _log_miss(n_contacts, at, reach, conv_rest, window, weight, propensity):
    """Per contact: sum over its sends of weight x log(1 - P(conversion in the window)), `propensity` per contact."""
    p = reach / (1.0 + np.exp(-(conv_rest + propensity[at]))) * window
    out = np.zeros(n_contacts)
    np.add.at(out, at, weight * np.log1p(-np.clip(p, 0.0, 1.0 - 1e-12)))
    return out


class LeadInformation:
    """What is known about each test contact at the snapshot t0, and the simulator's truth.

    * pending clicks: clicks observed before t0 whose conversion has not been observed by t0; each converts
      in the window with P = pc (F(t1 - click) - F(t0 - click)) / (1 - pc F(t0 - click)), pc its true
      conversion-given-click probability, F the conversion delay CDF (`simulation.response.CONVERSION_DELAY`);
    * earlier sends without an observed click (last 30 days): their unconditional chance of a conversion
      arriving in the window;
    * the window's sends: the actual ones (the oracle) or, for a model, the plan in expectation: the window's
      mean sends per eligible contact, drawn from the window's send pool (`draws` sends shared by every
      contact: common random numbers), with the fatigue of that send rate (recent sends in 7 days).
    The contact's idiosyncratic conversion term z ~ N(0, 0.7) is either known (oracle), integrated over its
    prior, or inferred by exact Bayes from the observed click outcomes (converted / not yet).
    """

    def __init__(self, ctx, prep):
        from simulation.response import CONVERSION_DELAY, _lognormal_cdf, recent_send_counts, to_utc_us

        world, rm = ctx.world, ctx.world.response
        test = prep.test
        self.y = test["converted"].to_numpy()
        self.ids = test["contact_id"].to_numpy(np.int64)
        self.t0 = test["event_timestamp"].iloc[0]
        self.t1 = self.t0 + prep.split.horizon
        self.h_days = prep.split.horizon / pd.Timedelta(days=1)
        self.rm, self.world = rm, world
        self.rows = rm._rows(self.ids, rm._contact_ids, "contact_id")
        self.pos = lambda cids: np.searchsorted(self.ids_sorted, cids)  # noqa: E731
        order = np.argsort(self.ids)
        self.ids_sorted, self.back = self.ids[order], np.argsort(order)  # test order <-> sorted ids
        sends, ev = ctx.events["sends"], ctx.events["events"]
        sends = sends[sends["contact_id"].isin(self.ids)]
        t_all = to_utc_us(sends["sent_at"])
        recent = recent_send_counts(sends["contact_id"].to_numpy(np.int64), t_all)
        t0u, t1u = to_utc_us(pd.Timestamp(self.t0))[0], to_utc_us(pd.Timestamp(self.t1))[0]
        self.t0u, self.t1u = t0u, t1u
        clicks = ev[(ev["type"] == "click") & (ev["occurred_at"] < self.t0) & ev["contact_id"].isin(self.ids)]
        clicked_send = np.isin(sends["send_id"].to_numpy(), clicks["send_id"].to_numpy())
        win = (t_all >= t0u) & (t_all < t1u)
        before = (t_all < t0u) & (t_all >= t0u - 30 * 86_400_000_000) & ~clicked_send
        self.window = {k: v[win] for k, v in (("c", sends["contact_id"].to_numpy(np.int64)),
                                              ("k", sends["content_id"].to_numpy(np.int64)), ("t", t_all),
                                              ("r", recent))}
        self.before = {k: v[before] for k, v in (("c", sends["contact_id"].to_numpy(np.int64)),
                                                 ("k", sends["content_id"].to_numpy(np.int64)), ("t", t_all),
                                                 ("r", recent))}
        conv_at = ev[ev["type"] == "conversion"].groupby("send_id")["occurred_at"].min()
        self.click_converted = (clicks["send_id"].map(conv_at) < self.t0).to_numpy(bool)
        send_content = sends.set_index("send_id")["content_id"]
        k_click = clicks["send_id"].map(send_content).to_numpy(np.int64)
        self.click_topic = pd.Categorical(world.content.set_index("content_id").loc[k_click, "topic"],
                                          categories=world.traits.topics).codes
        self.click_c = clicks["contact_id"].to_numpy(np.int64)
        self.F0 = _lognormal_cdf((self.t0 - clicks["occurred_at"]).dt.total_seconds().to_numpy(), *CONVERSION_DELAY)
        self.F1 = _lognormal_cdf((self.t1 - clicks["occurred_at"]).dt.total_seconds().to_numpy(), *CONVERSION_DELAY)
        stopped = ev.loc[ev["type"].isin(["unsubscribe", "complaint", "bounce"]) & (ev["occurred_at"] < self.t0),
                         "contact_id"]
        self.eligible = (world.contacts.set_index("contact_id")["consent"].reindex(self.ids).to_numpy(bool)
                         & ~np.isin(self.ids, stopped.unique()))
        n_future = pd.Series(self.window["c"]).value_counts().reindex(self.ids).fillna(0).to_numpy()
        self.n_bar = float(n_future[self.eligible].mean())
        self.z = _idiosyncratic_conversion(world)[self.rows]
        self.base_propensity = world.traits.conversion_propensity[self.rows] - self.z  # the public part

    # --- terms per contact (sorted-id order), for a conversion propensity per test row ------------------------
    def _sends_term(self, part: dict, propensity_sorted: np.ndarray, weight=1.0) -> np.ndarray:
        from simulation.response import send_to_conversion_cdf

        rm = self.rm
        ci = rm._rows(part["c"], rm._contact_ids, "contact_id")
        ki = rm._rows(part["k"], rm._content_ids, "content_id")
        reach, rest = _stage_terms(rm, ci, ki, part["t"], part["r"])
        window = send_to_conversion_cdf((self.t1u - part["t"]) / 1e6) - send_to_conversion_cdf((self.t0u - part["t"]) / 1e6)
        return _log_miss(len(self.ids), self.pos(part["c"]), reach, rest, window, weight, propensity_sorted)

    def pending(self, propensity_sorted: np.ndarray, with_history: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(log P(no pending click converts in the window), log-likelihood of the observed click outcomes)."""
        from simulation.response import TOPIC_CONVERSION

        at = self.pos(self.click_c)
        n = len(self.ids)
        if not with_history or len(at) == 0:
            return np.zeros(n), np.zeros(n)
        aff = self.world.traits.topic_affinity[self.rm._rows(self.click_c, self.rm._contact_ids, "c"), self.click_topic]
        pc = 1 / (1 + np.exp(-(propensity_sorted[at] + TOPIC_CONVERSION[self.click_topic] + 0.3 * aff)))
        pend = np.where(self.click_converted, 0.0, pc * (self.F1 - self.F0) / np.maximum(1 - pc * self.F0, 1e-12))
        log_pending, log_lik = np.zeros(n), np.zeros(n)
        np.add.at(log_pending, at, np.log1p(-np.clip(pend, 0, 1 - 1e-12)))
        np.add.at(log_lik, at, np.where(self.click_converted, np.log(pc), np.log1p(-np.clip(pc * self.F0, 0, 1 - 1e-12))))
        return log_pending, log_lik

    def sorted_(self, per_row: np.ndarray) -> np.ndarray:
        out = np.empty_like(per_row)
        out[self.back] = per_row
        return out

    def probability(self, log_miss_sorted: np.ndarray) -> np.ndarray:
        """P(conversion in the window) per test row (test order)."""
        return (1.0 - np.exp(log_miss_sorted))[self.back]

    def oracle(self, with_history: bool = True) -> np.ndarray:
        """True traits, the actual window sends, the observed history."""
        prop = self.sorted_(self.world.traits.conversion_propensity[self.rows])
        lp, _ = self.pending(prop, with_history)
        return self.probability(self._sends_term(self.window, prop) + self._sends_term(self.before, prop) + lp)

    def future_pool(self, draws: int, seed: int):
        """`draws` window sends (content, time) drawn from the window's pool, the same for every contact."""
        rng = np.random.default_rng(seed)
        pick = rng.integers(0, len(self.window["k"]), draws)
        return self.window["k"][pick], self.window["t"][pick]

    def expected_future(self, k_pool, t_pool, propensities_sorted: list, chunk: int = 4000) -> list:
        """Per propensity vector: sum over the plan's sends of log P(miss), n_bar sends per eligible contact
        (each pool send weighted n_bar / draws), fatigue of the plan's send rate interpolated between counts."""
        from simulation.response import send_to_conversion_cdf

        rm = self.rm
        d = len(k_pool)
        recent = 1.0 + self.n_bar * 7.0 / self.h_days
        lo, frac = int(np.floor(recent)), recent - np.floor(recent)
        window = send_to_conversion_cdf((self.t1u - t_pool) / 1e6)
        out = [np.zeros(len(self.ids)) for _ in propensities_sorted]
        rows_sorted = self.rm._rows(self.ids_sorted, rm._contact_ids, "contact_id")
        elig_sorted = self.eligible[np.argsort(self.ids)]
        for start in range(0, len(self.ids), chunk):
            sl = slice(start, min(start + chunk, len(self.ids)))
            ci = np.repeat(rows_sorted[sl], d)
            ki, tt = np.tile(rm._rows(k_pool, rm._content_ids, "k"), sl.stop - sl.start), np.tile(t_pool, sl.stop - sl.start)
            r1, rest = _stage_terms(rm, ci, ki, tt, np.full(len(ci), lo, np.int64))
            r2, _ = _stage_terms(rm, ci, ki, tt, np.full(len(ci), lo + 1, np.int64))
            reach = (1 - frac) * r1 + frac * r2
            w = np.tile(window, sl.stop - sl.start)
            at = np.repeat(np.arange(sl.stop - sl.start), d)
            for o, prop in zip(out, propensities_sorted):
                part = _log_miss(sl.stop - sl.start, at, reach, rest, w, self.n_bar / d, prop[sl])
                o[sl] = np.where(elig_sorted[sl], part, 0.0)
        return out

    def observable(self, k_pool, t_pool, nodes: int = 11, with_history: bool = True,
                   told_truth: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(z inferred by exact Bayes from the click outcomes, z integrated over its prior) predictions.
        `told_truth`: the same computation given the true z (one node) and the actual window sends."""
        x, w = np.polynomial.hermite_e.hermegauss(nodes)
        w = w / w.sum()
        base = self.sorted_(self.base_propensity)
        props = [base + 0.7 * xi for xi in x]
        if told_truth:
            props, w = [self.sorted_(self.world.traits.conversion_propensity[self.rows])], np.ones(1)
            future = [self._sends_term(self.window, props[0])]
        else:
            future = self.expected_future(k_pool, t_pool, props)
        logs, liks, prior_logs = [], [], []
        for prop, fut in zip(props, future):
            lp, ll = self.pending(prop, with_history)
            before = self._sends_term(self.before, prop)
            logs.append(fut + before + lp)
            liks.append(ll)
            prior_logs.append(fut + before)  # no click history: no pending clicks, no likelihood
        log_post = np.log(w)[:, None] + np.stack(liks)
        post = np.exp(log_post - log_post.max(axis=0))
        post /= post.sum(axis=0)
        bayes = sum(post[i] * (1 - np.exp(lg)) for i, lg in enumerate(logs))
        prior_only = sum(w[i] * (1 - np.exp(lg)) for i, lg in enumerate(prior_logs))
        return bayes[self.back], prior_only[self.back]


def lead_ceiling(ctx, prep, draws: int = 200, seeds=(1, 2, 3, 4, 5), rows: list | None = None) -> dict:
    """The corrected lead ceiling: mean AUC over `seeds` of the plan's draws, its 95% t-interval, the checks.
    `rows`: a list that receives each seed's per-row ceiling probabilities (test order)."""
    from scipy import stats

    from models import metrics as M

    info = LeadInformation(ctx, prep)
    y = info.y
    oracle = info.oracle()
    out = {"oracle": M.auc(y, oracle), "oracle_without_clicks": M.auc(y, info.oracle(with_history=False)),
           "n_bar": info.n_bar, "draws": draws, "seeds": list(seeds)}
    # check 1: told the truth (true z, the actual window sends), the ceiling's computation gives the oracle
    truth, _ = info.observable(None, None, told_truth=True)
    out["check_truth_auc"] = M.auc(y, truth)
    out["check_truth_max_abs_diff"] = float(np.abs(truth - oracle).max())
    aucs, prior_aucs, nohist = [], [], []
    for seed in seeds:
        k_pool, t_pool = info.future_pool(draws, seed)
        bayes, prior_only = info.observable(k_pool, t_pool)
        if rows is not None:
            rows.append(bayes)
        aucs.append(M.auc(y, bayes))
        prior_aucs.append(M.auc(y, prior_only))
        if seed == seeds[0]:  # check 2: no click history -> the Bayes row equals the prior-only row
            b0, _ = info.observable(k_pool, t_pool, with_history=False)
            out["check_no_history_max_abs_diff"] = float(np.abs(b0 - prior_only).max())
        print(f"  lead ceiling seed {seed}: {aucs[-1]:.4f} (prior-only {prior_aucs[-1]:.4f})", flush=True)
    q = stats.t.ppf(0.975, len(aucs) - 1)
    se = float(np.std(aucs, ddof=1) / np.sqrt(len(aucs)))
    out.update(value=float(np.mean(aucs)), ci=[float(np.mean(aucs) - q * se), float(np.mean(aucs) + q * se)],
               per_seed=aucs, prior_only=float(np.mean(prior_aucs)))
    return out


def lead_share_ci(ctx, prep, ceiling_rows: list, n_boot: int = 1000, seed: int = 0) -> dict:
    """Share of the ceiling's AUC lift of the lead model trained here (the harness's fit on the same rows), with
    a paired bootstrap over test contacts (one row each): every replicate recomputes our AUC and each draw
    seed's ceiling AUC on the same resampled rows, so the interval is the test rows' noise of the share."""
    from sklearn.metrics import roc_auc_score

    from models.training import make_spec

    spec = make_spec("lead_scoring")
    ours = spec.test_scores(spec.fit(prep, ctx), prep, ctx)
    y = prep.test["converted"].to_numpy()
    ceil = np.stack(ceiling_rows)

    def share(idx):
        a = roc_auc_score(y[idx], ours[idx])
        c = np.mean([roc_auc_score(y[idx], r[idx]) for r in ceil])
        return (a - 0.5) / (c - 0.5), a, c

    point, auc_ours, auc_ceiling = share(np.arange(len(y)))
    rng = np.random.default_rng(seed)
    reps = []
    while len(reps) < n_boot:
        idx = rng.integers(0, len(y), len(y))
        if 0 < y[idx].sum() < len(idx):
            reps.append(share(idx)[0])
    reps = np.asarray(reps)
    return {"share": point, "auc": auc_ours, "ceiling": auc_ceiling, "ci": np.quantile(reps, [0.025, 0.975]).tolist(),
            "p_below_0_90": float((reps < 0.90).mean()), "n_boot": n_boot}


AFFINITY_SD = 0.7  # topic affinity ~ N(industry + seniority mean, 0.7) (`simulation.world._traits`)


def _content_test_groups(ctx, spec) -> tuple[pd.DataFrame, pd.Timestamp]:
    """The harness's content test groups from the event log: the harness's contact sample, per (contact, content)
    of the test block, the first send and whether any of its sends was clicked
    (`ContentPreferenceSpec._test_groups` without features)."""
    from models.split import TEST, TimeSplit

    cfg = spec.config
    first, end = ctx.data_range
    split = TimeSplit.from_fractions(first + pd.Timedelta(days=cfg.warmup_days), end, pd.Timedelta(days=cfg.horizon_days),
                                     valid=cfg.valid_fraction, test=cfg.test_fraction)
    sample = ctx.sample(ctx.sends_per_contact(split))  # the harness's stable contact sample (same contacts)
    sends, ev = ctx.events["sends"], ctx.events["events"]
    sends = sends[sends["contact_id"].isin(sample.ids)]
    test = sends[split.assign(sends["sent_at"]) == TEST].sort_values("sent_at", kind="stable")
    clicked = test["send_id"].isin(ev.loc[ev["type"] == "click", "send_id"]).astype(int)
    test = test.assign(clicked=clicked.groupby([test["contact_id"], test["content_id"]]).transform("max"))
    g = test.drop_duplicates(["contact_id", "content_id"]).reset_index(drop=True)
    g["one_time"] = g.groupby("contact_id")["sent_at"].transform("first")
    return g, split.test_start


def _logit(q: np.ndarray) -> np.ndarray:
    """log(q / (1 - q)), q clipped to [1e-12, 1] on both sides of the ratio."""
    return np.log(np.clip(q, 1e-12, 1)) - np.log(np.clip(1 - q, 1e-12, 1))


def _affinity_free_logits(rm, ci, ki, t_us, recent):
    """Open and click logits without the topic-affinity terms, and P(bounce) (`ResponseModel.conditional`)."""
    p = rm.conditional(ci, ki, t_us, recent)
    aff = rm.traits.topic_affinity[ci, rm._topic[ki]]
    return _logit(p["open"]) - 0.25 * aff, _logit(p["click"]) - 0.9 * aff, p["bounce"]


OPEN_APPEAL_SD, CLICK_APPEAL_SD = 0.2, 0.3  # latent item appeal ~ N(0, sd) log-odds (`simulation.world`)


def _expected_sigmoid(base: np.ndarray, offsets: np.ndarray, weights: np.ndarray, chunk: int = 4000) -> np.ndarray:
    """sum_m weights[r, m] * sigmoid(base[r, j] + offsets[m]) for every row r and column j (an appeal integrated
    over its grid posterior), in row chunks to bound memory."""
    out = np.empty_like(base)
    for lo in range(0, len(base), chunk):
        b, w = base[lo:lo + chunk], weights[lo:lo + chunk]
        out[lo:lo + chunk] = np.einsum("rjm,rm->rj", 1 / (1 + np.exp(-(b[:, :, None] + offsets[None, None, :]))), w)
    return out


def item_appeal_posteriors(ctx, rm, test_start, z: np.ndarray, grid: int) -> tuple[np.ndarray, np.ndarray]:
    """Grid posteriors (content rows x grid, rows sum to 1) of each item's open and click appeal from every
    contact's sends of it observed by the test start (3-day purge): opens given the true open logit without the
    appeal, clicks given an open likewise (contact affinities exact: more than a model knows). An item never
    sent keeps its N(0, sd) prior. The open and click likelihoods factor, so each appeal has its own grid."""
    from simulation.response import recent_send_counts, to_utc_us

    sends, ev = ctx.events["sends"], ctx.events["events"]
    t_all = to_utc_us(sends["sent_at"])
    recent = recent_send_counts(sends["contact_id"].to_numpy(np.int64), t_all)
    past = (sends["sent_at"] < test_start - pd.Timedelta(days=3)).to_numpy()
    h = sends[past]
    ci = rm._rows(h["contact_id"].to_numpy(np.int64), rm._contact_ids, "contact_id")
    ki = rm._rows(h["content_id"].to_numpy(np.int64), rm._content_ids, "content_id")
    p = rm.conditional(ci, ki, t_all[past], recent[past])
    ct = ctx.world.content_traits
    o0, c0 = _logit(p["open"]) - ct.open_appeal[ki], _logit(p["click"]) - ct.click_appeal[ki]
    sid = h["send_id"].to_numpy()
    kinds = ev[ev["send_id"].isin(sid)].groupby("type")["send_id"].agg(set)
    bounced = np.isin(sid, list(kinds.get("bounce", set())))
    clicked = np.isin(sid, list(kinds.get("click", set())))
    opened = np.isin(sid, list(kinds.get("open", set()))) | clicked
    keep = ~bounced
    n_items = len(rm._content_ids)
    log_prior = -0.5 * z ** 2
    out = []
    for sd, base, hit, among in ((OPEN_APPEAL_SD, o0, opened, keep), (CLICK_APPEAL_SD, c0, clicked, keep & opened)):
        ll = np.zeros((n_items, grid))
        for j, zj in enumerate(z):
            q = 1 / (1 + np.exp(-(base[among] + sd * zj)))
            ll[:, j] = np.bincount(ki[among], weights=np.where(hit[among], np.log(q + 1e-300), np.log1p(-q + 1e-300)),
                                   minlength=n_items)
        lp = log_prior[None, :] + ll
        w = np.exp(lp - lp.max(axis=1, keepdims=True))
        out.append(w / w.sum(axis=1, keepdims=True))
    return out[0], out[1]


def content_ceiling(ctx, cache=None, grid: int = 41, keep_scores: bool = False) -> dict:
    """History-aware content ceiling: each (contact, topic) affinity inferred by exact Bayes (a grid over its
    N(public mean, 0.7) prior) from the contact's observed past sends of that topic (no open / open / click by
    the test start, every other trait exact), then the posterior-expected true P(click) of each candidate at
    the contact's first test send time, no fatigue; ranked per contact, NDCG@3 over the test groups."""
    from models import metrics as M
    from models.training import make_spec
    from simulation import catalog as cat
    from simulation.response import recent_send_counts, to_utc_us

    spec = make_spec("content_preference")
    g, test_start = _content_test_groups(ctx, spec)
    world, rm = ctx.world, ctx.world.response
    tr = world.traits
    ndcg = lambda s: M.ranking_metrics(g["contact_id"], g["clicked"], s, k=3)["ndcg@3"]  # noqa: E731
    who = np.unique(g["contact_id"].to_numpy(np.int64))
    rows_of = lambda ids: rm._rows(np.asarray(ids, np.int64), rm._contact_ids, "contact_id")  # noqa: E731
    c = world.contacts
    public = (cat.TOPIC_INDUSTRY[pd.Categorical(c["industry"], categories=cat.INDUSTRIES).codes]
              + cat.TOPIC_SENIORITY[pd.Categorical(c["seniority"], categories=cat.SENIORITIES).codes])
    z = np.linspace(-4, 4, grid)
    log_prior = -0.5 * z ** 2 - np.log(np.exp(-0.5 * z ** 2).sum())

    # observed history: every send before the test start (3-day purge so its open/click is observed by then)
    sends, ev = ctx.events["sends"], ctx.events["events"]
    mine = sends[sends["contact_id"].isin(who)]
    t_all = to_utc_us(mine["sent_at"])
    recent = recent_send_counts(mine["contact_id"].to_numpy(np.int64), t_all)
    past = (mine["sent_at"] < test_start - pd.Timedelta(days=3)).to_numpy()
    h = mine[past]
    ci, ki = rows_of(h["contact_id"]), rm._rows(h["content_id"].to_numpy(np.int64), rm._content_ids, "content_id")
    o0, c0, bounce = _affinity_free_logits(rm, ci, ki, t_all[past], recent[past])
    types = ev[ev["send_id"].isin(h["send_id"])].groupby("type")["send_id"].agg(set)
    sid = h["send_id"].to_numpy()
    bounced = np.isin(sid, list(types.get("bounce", set())))
    opened = np.isin(sid, list(types.get("open", set())))
    clicked = np.isin(sid, list(types.get("click", set())))
    topic = rm._topic[ki]
    key = ci * len(tr.topics) + topic  # (contact row, topic)
    ukey, inv = np.unique(key[~bounced], return_inverse=True)
    mean = public[ci[~bounced], topic[~bounced]]
    loglik = np.zeros((len(ukey), grid))
    o0, c0, opened, clicked = o0[~bounced], c0[~bounced], opened[~bounced], clicked[~bounced]
    for j, zj in enumerate(z):
        a = mean + AFFINITY_SD * zj
        po = 1 / (1 + np.exp(-(o0 + 0.25 * a)))
        pc = 1 / (1 + np.exp(-(c0 + 0.9 * a)))
        ll = np.where(clicked, np.log(po * pc + 1e-300), np.where(opened, np.log(po * (1 - pc) + 1e-300),
                                                                   np.log1p(-po)))
        loglik[:, j] = np.bincount(inv, weights=ll, minlength=len(ukey))

    # candidates: each test pair at the contact's first test send time, no fatigue
    gc, gk = rows_of(g["contact_id"]), rm._rows(g["content_id"].to_numpy(np.int64), rm._content_ids, "content_id")
    t_one = to_utc_us(g["one_time"])
    go0, gc0, gb = _affinity_free_logits(rm, gc, gk, t_one, np.zeros(len(g), np.int64))
    gtopic = rm._topic[gk]
    gmean = public[gc, gtopic]
    a_grid = gmean[:, None] + AFFINITY_SD * z[None, :]
    p_grid = (1 - gb)[:, None] / (1 + np.exp(-(go0[:, None] + 0.25 * a_grid))) / (1 + np.exp(-(gc0[:, None] + 0.9 * a_grid)))
    gkey = gc * len(tr.topics) + gtopic
    pos = np.searchsorted(ukey, gkey)
    has = (pos < len(ukey)) & (ukey[np.minimum(pos, len(ukey) - 1)] == gkey)
    ll_rows = np.where(has[:, None], loglik[np.minimum(pos, len(ukey) - 1)], 0.0)

    def posterior_mean(ll, p):
        lp = log_prior[None, :] + ll
        w = np.exp(lp - lp.max(axis=1, keepdims=True))
        return (w * p).sum(axis=1) / w.sum(axis=1)

    appeal_exact = posterior_mean(ll_rows, p_grid)  # the earlier ceiling: each item's true appeal given
    # each item's open and click appeal by exact Bayes from every contact's observed sends of it before the test
    ct = world.content_traits
    open_w, click_w = item_appeal_posteriors(ctx, rm, test_start, z, grid)
    krow = gk  # content rows of the candidates
    go0n, gc0n = go0 - ct.open_appeal[krow], gc0 - ct.click_appeal[krow]
    p_items = (1 - gb)[:, None] * _expected_sigmoid(go0n[:, None] + 0.25 * a_grid, OPEN_APPEAL_SD * z, open_w[krow]) \
        * _expected_sigmoid(gc0n[:, None] + 0.9 * a_grid, CLICK_APPEAL_SD * z, click_w[krow])
    flat = np.full_like(open_w, 1.0 / grid) * np.exp(log_prior - log_prior.max())[None, :]
    flat /= flat.sum(axis=1, keepdims=True)
    p_prior = (1 - gb)[:, None] * _expected_sigmoid(go0n[:, None] + 0.25 * a_grid, OPEN_APPEAL_SD * z, flat[krow]) \
        * _expected_sigmoid(gc0n[:, None] + 0.9 * a_grid, CLICK_APPEAL_SD * z, flat[krow])
    bayes, prior_only = posterior_mean(ll_rows, p_items), posterior_mean(np.zeros_like(ll_rows), p_prior)
    items_without_history = float(np.mean(np.isclose(open_w[krow], flat[krow]).all(axis=1)))
    true_aff = tr.topic_affinity[gc, gtopic]
    truth = (1 - gb) / (1 + np.exp(-(go0 + 0.25 * true_aff))) / (1 + np.exp(-(gc0 + 0.9 * true_aff)))
    content_only = rm.probabilities(g["contact_id"].to_numpy(np.int64), g["content_id"].to_numpy(np.int64),
                                    pd.DatetimeIndex(g["one_time"]).as_unit("us").tz_convert(None).to_numpy(),
                                    recent_sends=np.zeros(len(g), np.int64))["click"]
    rng = np.random.default_rng(0)
    random = float(np.mean([ndcg(rng.random(len(g))) for _ in range(5)]))
    # the ceiling's CI: bootstrap over contacts of the per-contact NDCG@3
    per = M.per_group_ranking(g["contact_id"], g["clicked"], bayes, k=3)["ndcg@3"].to_numpy()
    boot = np.random.default_rng(1).multinomial(len(per), np.full(len(per), 1 / len(per)), size=1000) @ per / len(per)
    rows = [
        ("random order", random, "share of lift zero"),
        ("oracle: true P(click), one send time per contact, no fatigue", ndcg(content_only), "content-only oracle"),
        ("check: ceiling computation told the true affinity", ndcg(truth),
         f"max |p - oracle| {np.abs(truth - content_only).max():.2g}"),
        ("earlier ceiling: affinity by exact Bayes, every item's true appeal", ndcg(appeal_exact),
         "not a bound: no history tells the appeal of an item never sent"),
        ("ceiling: affinity and item appeal by exact Bayes from the observed history", ndcg(bayes),
         f"95% CI [{np.quantile(boot, 0.025):.4f}, {np.quantile(boot, 0.975):.4f}] (bootstrap over contacts); "
         f"{items_without_history:.1%} of test pairs' items never sent before the test"),
        ("  ... no history: affinity and appeal integrated over their priors", ndcg(prior_only),
         f"check: history-free Bayes = prior ({len(ukey):,} contact-topic histories, {len(h):,} past sends)"),
    ]
    return {"value": ndcg(bayes), "ci": [float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))],
            "random": random, "oracle": ndcg(content_only), "check_truth": ndcg(truth),
            "check_truth_max_abs_diff": float(np.abs(truth - content_only).max()), "prior_only": ndcg(prior_only),
            "appeal_exact": ndcg(appeal_exact), "items_without_history": items_without_history,
            "scores": bayes if keep_scores else None, "groups_frame": g if keep_scores else None,
            "groups": int(g["contact_id"].nunique()), "rows": rows}


def send_time_ceiling(ctx, contacts: int | None = None) -> dict:
    """The Bayes send-time chooser's uplift share (`bench_send_time_ceiling.py`), its bootstrap CI over
    contacts, and its checks: told the true peaks (~1), given no history (the prior alone)."""
    import importlib.util

    from models.send_time_training import SendTimeSpec

    path = Path(__file__).with_name("bench_send_time_ceiling.py")
    module = importlib.util.spec_from_file_location("bench_send_time_ceiling", path)
    st = importlib.util.module_from_spec(module)
    module.loader.exec_module(st)
    spec = SendTimeSpec()
    prepared = st.harness_prepared(ctx, spec)
    ev = spec._eval_set(prepared, ctx)
    if contacts:
        keep = np.arange(min(contacts, len(ev["features"])))
        ev = {"features": ev["features"].iloc[keep].reset_index(drop=True), "tz": ev["tz"][keep],
              "windows": [(a, b, sl[sl["row"] < len(keep)]) for a, b, sl in ev["windows"]]}
    rand, best = spec._reference(ev)
    scale, shift = float((best - rand).mean()), float(rand.mean())
    hist = st.observed_history(ctx, ev["features"]["contact_id"].to_numpy(np.int64), prepared.split.test_start.ceil("D"))
    per_contact = lambda grid: (np.nanmean(spec._policy_values(grid, ev), axis=0) - shift) / scale  # noqa: E731
    out = {}
    for name, kw, h in (("value", {}, hist), ("check_truth", {"e_known": True, "peaks_known": True}, hist),
                        ("no_history", {}, hist.iloc[:0])):
        args = {"e_known": False, "use_offsets": True, **kw}
        v = per_contact(st.bayes_grid(ctx, ev["features"], h, **args))
        out[name] = float(np.nanmean(v))
        if name == "value":
            v = v[np.isfinite(v)]
            boot = np.random.default_rng(1).multinomial(len(v), np.full(len(v), 1 / len(v)), size=1000) @ v / len(v)
            out["ci"] = [float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))]
        print(f"  send time {name}: {out[name]:.4f}", flush=True)
    out["contacts"] = int(len(ev["features"]))
    return out


def main() -> None:
    import json

    from rich.console import Console
    from rich.table import Table

    from inbox.settings import load_settings
    from models.harness import TrainingContext

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=None, help="directory to cache the prepared training frames")
    ap.add_argument("--only", choices=("lead", "content", "send_time"), default=None)
    ap.add_argument("--send-time-contacts", type=int, default=None, help="send time: the first N eval contacts")
    ap.add_argument("--json", type=Path, default=None, help="write the ceilings (value, CI, checks) here")
    ap.add_argument("--draws", type=int, default=200, help="lead: future sends drawn per seed (shared by contacts)")
    ap.add_argument("--seeds", type=int, default=5, help="lead: seeds of the draws")
    ap.add_argument("--share-ci", action="store_true",
                    help="lead: also train the lead model on the same rows and bootstrap its share of the lift")
    args = ap.parse_args()
    ctx = TrainingContext(load_settings(), seed=7)
    console = Console(width=160)
    out = {"world_seed": ctx.world_seed()}
    if args.only in (None, "lead"):
        _, prep = _prepared("lead_scoring", ctx, args.cache)
        rows = [] if args.share_ci else None
        c = lead_ceiling(ctx, prep, draws=args.draws, seeds=tuple(range(1, args.seeds + 1)), rows=rows)
        out["lead_scoring"] = c
        table = Table(title=f"lead: information ceiling (test AUC, world seed {out['world_seed']}, "
                            f"{c['n_bar']:.2f} planned sends per eligible contact)")
        for col in ("what the scorer knows", "test AUC", "note"):
            table.add_column(col, justify="right" if col == "test AUC" else "left")
        for name, value, note in (
                ("oracle: true traits, actual window sends, observed clicks", c["oracle"], "the reference"),
                ("  ... without the clicks observed before the snapshot", c["oracle_without_clicks"], "the former oracle"),
                ("check: ceiling computation told the truth", c["check_truth_auc"],
                 f"max |p - oracle| {c['check_truth_max_abs_diff']:.2g}"),
                (f"ceiling: planned sends ({c['draws']} shared draws, fatigue), z by exact Bayes", c["value"],
                 f"mean of {len(c['seeds'])} seeds, 95% CI [{c['ci'][0]:.4f}, {c['ci'][1]:.4f}]"),
                ("  ... z integrated over its prior (no click history)", c["prior_only"],
                 f"check: Bayes given no history = this row (max |diff| {c['check_no_history_max_abs_diff']:.2g})")):
            table.add_row(name, f"{value:.4f}", note)
        console.print(table)
        if args.share_ci:
            sc = c["share_ci"] = lead_share_ci(ctx, prep, rows)
            console.print(f"lead model: AUC {sc['auc']:.4f} vs ceiling {sc['ceiling']:.4f}, share of lift "
                          f"{sc['share']:.3f}, paired bootstrap over test contacts 95% CI [{sc['ci'][0]:.3f}, "
                          f"{sc['ci'][1]:.3f}], {sc['p_below_0_90']:.0%} of {sc['n_boot']} replicates below 0.90")
    if args.only in (None, "content"):
        c = content_ceiling(ctx, args.cache)
        out["content_preference"] = c
        table = Table(title=f"content: information ceiling (NDCG@3, world seed {out['world_seed']})")
        for col in ("what the scorer knows", "NDCG@3", "note"):
            table.add_column(col, justify="right" if col == "NDCG@3" else "left")
        for name, value, note in c["rows"]:
            table.add_row(name, f"{value:.4f}", note)
        console.print(table)
    if args.only in (None, "send_time"):
        c = send_time_ceiling(ctx, args.send_time_contacts)
        out["send_time"] = c
        console.print(f"send time (world seed {out['world_seed']}, {c['contacts']} contacts): Bayes ceiling uplift share "
                      f"{c['value']:.4f} [95% CI {c['ci'][0]:.4f}, {c['ci'][1]:.4f}]; check told the true peaks "
                      f"{c['check_truth']:.4f} (oracle 1); no history (prior alone) {c['no_history']:.4f}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1, default=float))


if __name__ == "__main__":
    main()
