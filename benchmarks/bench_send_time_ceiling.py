"""Information ceiling of send-time choice: the Bayes-optimal chooser on the observable history.

    python benchmarks/bench_send_time_ceiling.py [--data-dir DATA] [--tracking-uri URI] [--contacts N]

The harness (`models.send_time_training`) scores a policy by the true open
probability of the slot it picks, as a share of the oracle's uplift over a
random allowed slot. The oracle knows each contact's latent peak hours; a
model sees only the history. This script builds the best possible chooser on
that history: it is GIVEN the simulator's generative form and its true prior
(`simulation.world._traits`, `simulation.response.ResponseModel.hour_effect`):

* weekday peak ~ N(seniority + industry mean, 1.3) or, for the 22% evening
  readers, N(19.5, 1.0); weekend peak ~ N(20, 1.2) with probability 0.7
  (evening readers) / 0.2 (others), else N(10.5, 1.5); width ~ U(1, 2.2) h,
  shared by weekday and weekend; hour effect 2.6 (bump - mean bump)
  - 0.6 night - 0.2 weekend;
* base engagement ~ N(segment mean, 0.6), integrated out (or, in the looser
  "e known" row, given exactly);
* every past delivered send's exact local time and whether its open was seen
  before the snapshot (open delay CDF included), and the send's true non-hour
  log-odds offset (content appeal, subject, topic affinity, fatigue). Giving
  the offsets is MORE than a model can observe, so the rows are upper bounds.

It computes each test contact's exact posterior over (evening flag, width,
engagement, weekday peak, weekend peak) on a grid and picks, per window, the
allowed slot with the highest posterior-expected open probability. By
Bayes-optimality no policy that sees only this history can do better in
expectation: its uplift share is the ceiling for any model on this world.

Same test contacts, windows, quiet hours and metric as the harness (its own
`_eval_set`, `_reference`, `_policy_value`, `baseline_grids`). "ours" is the
champion of the tracking store, if one exists.
"""
from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np
import pandas as pd

warnings.filterwarnings("ignore")

PEAKS = (np.arange(96) + 0.5) * 0.25          # peak-hour grid (h)
WIDTHS = 1.0 + (np.arange(6) + 0.5) * 0.2      # U(1, 2.2) by midpoints
E_NODES = np.linspace(-3.0, 3.0, 9)            # engagement nodes in prior sd units


def harness_prepared(ctx, spec):
    """The harness's split, training rows (no features) and evaluation snapshot (with features)."""
    from models.datasets import feature_frames
    from models.prepared import Prepared
    from models.send_time_training import LABEL, _mailable

    rows, split = spec.send_rows(ctx)
    (snap,) = feature_frames([spec._snapshot_plan(split, ctx)["eval"]], spec.services, ctx.settings)
    return Prepared(rows, split, "events", LABEL, extra={"snapshots": {"eval": _mailable(snap)}})


def observed_history(ctx, contact_ids: np.ndarray, at: pd.Timestamp) -> pd.DataFrame:
    """Delivered sends to `contact_ids` before `at`: local time, open seen before `at`, true offsets."""
    from simulation.response import OPEN_DELAY, _lognormal_cdf

    sends, events = ctx.events["sends"], ctx.events["events"]
    mine = sends[sends["contact_id"].isin(contact_ids)].sort_values(["contact_id", "sent_at"])
    t_all = mine["sent_at"].astype("datetime64[us, UTC]").astype("int64").to_numpy()
    c_all = mine["contact_id"].to_numpy(np.int64)
    # sends in the previous 7 days (the simulator's fatigue input)
    key = c_all * (1 << 42) + (t_all - t_all.min())
    week = 7 * 86_400_000_000
    recent = np.arange(len(key)) - np.searchsorted(key, key - week, side="left")
    mine = mine.assign(recent=recent)
    at_us = at.value // 1000
    ev = events[events["contact_id"].isin(contact_ids) & (events["occurred_at"] < at)]
    delivered = set(ev.loc[ev["type"] == "delivered", "send_id"].to_numpy())
    opened = set(ev.loc[ev["type"] == "open", "send_id"].to_numpy())
    mine = mine[(t_all < at_us) & mine["send_id"].isin(delivered).to_numpy()]
    world = ctx.world
    model = world.response
    ci = model._rows(mine["contact_id"].to_numpy(np.int64), model._contact_ids, "contact_ids")
    ki = model._rows(mine["content_id"].to_numpy(np.int64), model._content_ids, "content_ids")
    t = mine["sent_at"].astype("datetime64[us, UTC]").astype("int64").to_numpy()
    hour, weekday = model.local_time(ci, t)
    p_open = model.conditional(ci, ki, t, mine["recent"].to_numpy(np.int64))["open"]
    e = world.traits.base_engagement[ci]
    offset = np.log(p_open / (1 - p_open)) - e - model.hour_effect(ci, hour, weekday)
    return pd.DataFrame({
        "contact_id": mine["contact_id"].to_numpy(np.int64), "hour": hour, "weekend": weekday >= 5,
        "opened": mine["send_id"].isin(opened).to_numpy(), "offset": offset,
        "seen": _lognormal_cdf((at_us - t) / 1e6, *OPEN_DELAY),
    })


def wrapped_normal(mean, sd) -> np.ndarray:
    """Density on PEAKS (rows per mean), normalized to sum 1."""
    mean = np.atleast_1d(np.asarray(mean, dtype=float))[:, None]
    d = np.abs(PEAKS[None, :] - mean) % 24
    d = np.minimum(d, 24 - d)
    p = np.exp(-0.5 * (d / sd) ** 2)
    return p / p.sum(axis=1, keepdims=True)


def hour_effect(hour, weekend, peak, width):
    """The simulator's hour effect (`ResponseModel.hour_effect`), broadcasting."""
    d = np.abs(hour - peak)
    d = np.minimum(d, 24.0 - d)
    bump = np.exp(-0.5 * (d / width) ** 2)
    return 2.6 * (bump - width * np.sqrt(2 * np.pi) / 24.0) - 0.6 * (hour < 5.5) - 0.2 * weekend


def log_sigmoid(x):
    return -np.logaddexp(0.0, -x)


def bayes_grid(ctx, contacts: pd.DataFrame, hist: pd.DataFrame, e_known: bool, use_offsets: bool,
               peaks_known: bool = False, chunk: int = 64) -> np.ndarray:
    """(n, 168) posterior-expected P(open | delivered) per local hour-of-week, eval content, fresh contact."""
    from simulation import catalog as cat

    world = ctx.world
    model = world.response
    n = len(contacts)
    ids = contacts["contact_id"].to_numpy(np.int64)
    ci = model._rows(ids, model._contact_ids, "contact_ids")
    wc = world.contacts
    code = lambda col, values: pd.Categorical(wc[col].to_numpy()[ci], categories=values).codes  # noqa: E731
    ind, size, sen, src = (code("industry", cat.INDUSTRIES), code("company_size", cat.COMPANY_SIZES),
                           code("seniority", cat.SENIORITIES), code("signup_source", cat.SIGNUP_SOURCES))
    dom = pd.Categorical(world.traits.domain_kind[ci], categories=cat.DOMAIN_KINDS).codes
    e_mean = (-1.35 + cat.ENG_INDUSTRY[ind] + cat.ENG_SIZE[size] + cat.ENG_SENIORITY[sen]
              + cat.ENG_SOURCE[src] + cat.ENG_DOMAIN[dom])
    if e_known:
        e_nodes, e_logw = world.traits.base_engagement[ci][:, None], np.zeros((n, 1))
    else:
        e_nodes = e_mean[:, None] + 0.6 * E_NODES[None, :]
        e_logw = np.tile(-0.5 * E_NODES**2, (n, 1))
    # non-hour log-odds of the evaluation send (first content item, no recent sends)
    content_id = int(ctx.events["content"]["content_id"].iloc[0])
    ki = model._rows(np.full(n, content_id), model._content_ids, "content_ids")
    t0 = np.full(n, pd.Timestamp("2026-06-01 12:00", tz="UTC").value // 1000)
    h0, wd0 = model.local_time(ci, t0)
    p0 = model.conditional(ci, ki, t0, np.zeros(n, dtype=np.int64))["open"]
    target_offset = np.log(p0 / (1 - p0)) - world.traits.base_engagement[ci] - model.hour_effect(ci, h0, wd0)
    if not use_offsets:
        target_offset = np.zeros(n)

    # priors on the peak grid
    mu_wd = cat.PEAK_WEEKDAY_SENIORITY[sen] + cat.PEAK_SHIFT_INDUSTRY[ind]
    prior_wd = np.stack([wrapped_normal(mu_wd, 1.3), np.tile(wrapped_normal(19.5, 1.0), (n, 1))], axis=1)  # (n,2,P)
    eve, day = wrapped_normal(20.0, 1.2)[0], wrapped_normal(10.5, 1.5)[0]
    prior_we = np.stack([0.2 * eve + 0.8 * day, 0.7 * eve + 0.3 * day])                                   # (2,P)
    log_pz = np.log([1 - cat.EVENING_READER_SHARE, cat.EVENING_READER_SHARE])
    if peaks_known:  # validation of the machinery: a prior concentrated on the true peaks must reach ~1.0
        true_wd = wrapped_normal(world.traits.peak_hour_weekday[ci], 0.05)
        prior_wd = np.stack([true_wd, true_wd], axis=1)
        prior_we = None
        true_we = wrapped_normal(world.traits.peak_hour_weekend[ci], 0.05)

    hist = hist.set_index("contact_id")
    by_contact = {c: g for c, g in hist.groupby(level=0)}
    hours = np.arange(24.0)
    out = np.empty((n, 168))
    W = WIDTHS[None, :, None, None]
    P = PEAKS[None, None, None, :]
    for lo in range(0, n, chunk):
        rows = np.arange(lo, min(lo + chunk, n))
        C = len(rows)
        groups = [by_contact.get(ids[r]) for r in rows]
        M = max([0] + [len(g) for g in groups if g is not None])
        E = e_nodes.shape[1]
        ll = {False: np.zeros((C, len(WIDTHS), E, len(PEAKS))), True: np.zeros((C, len(WIDTHS), E, len(PEAKS)))}
        pad = lambda col, fill: np.array([np.pad(g[col].to_numpy(float), (0, M - len(g)), constant_values=fill)  # noqa: E731
                                          if g is not None else np.full(M, fill) for g in groups]).reshape(C, M)
        h, we, y, off, seen = pad("hour", 0), pad("weekend", 0), pad("opened", 0), pad("offset", 0), pad("seen", 0)
        mask = np.array([np.arange(M) < (len(g) if g is not None else 0) for g in groups]).reshape(C, M)
        if not use_offsets:
            off = np.zeros_like(off)
        en = e_nodes[rows][:, None, :, None]
        for m in range(M):
            x = en + off[:, m, None, None, None] + hour_effect(h[:, m, None, None, None], we[:, m, None, None, None], P, W)
            ls = log_sigmoid(x) + np.log(np.maximum(seen[:, m], 1e-12))[:, None, None, None]
            l_open, l_miss = ls, np.log1p(-np.exp(ls))
            contrib = np.where(y[:, m, None, None, None] > 0, l_open, l_miss) * mask[:, m, None, None, None]
            for flag in (False, True):
                sel = (we[:, m] > 0) == flag
                ll[flag][sel] += contrib[sel]
        # joint over (z, w, e, p_wd, p_we): the weekend peak summed out per z, and vice versa
        base = e_logw[rows][:, None, :, None]
        m_wd, m_we = ll[False].max(axis=(1, 2, 3), keepdims=True), ll[True].max(axis=(1, 2, 3), keepdims=True)
        L_wd, L_we = np.exp(ll[False] - m_wd), np.exp(ll[True] - m_we)          # (C, W, E, P)
        grids = {}
        for weekend in (False, True):
            post = np.zeros((C, len(WIDTHS), E, len(PEAKS)))
            for z in (0, 1):
                pw = prior_wd[rows, z][:, None, None, :]
                pe = (prior_we[z][None, None, None, :] if prior_we is not None
                      else true_we[rows][:, None, None, :])
                sum_wd = (L_wd * pw).sum(axis=3, keepdims=True)                     # (C, W, E, 1)
                sum_we = (L_we * pe).sum(axis=3, keepdims=True)
                w_z = np.exp(log_pz[z] + base)
                post += w_z * ((L_wd * pw) * sum_we if not weekend else (L_we * pe) * sum_wd)
            post /= post.sum(axis=(1, 2, 3), keepdims=True)
            x = (en[..., None] + target_offset[rows, None, None, None, None]
                 + hour_effect(hours, weekend, P[..., None], W[..., None]))                 # (C, W, E, P, 24)
            grids[weekend] = np.einsum("cwep,cweph->ch", post, 1.0 / (1.0 + np.exp(-x)))
        days = np.arange(7) >= 5
        out[rows] = np.concatenate([grids[bool(d)] for d in days], axis=1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--tracking-uri", default=None)
    ap.add_argument("--contacts", type=int, default=None, help="evaluate the first N harness contacts only")
    ap.add_argument("--model-version", default=None, help="registered send_time version for 'ours' (default: champion)")
    args = ap.parse_args()
    if args.data_dir:
        os.environ["INBOX_DATA_DIR"] = args.data_dir
    if args.tracking_uri:
        os.environ["MLFLOW_TRACKING_URI"] = args.tracking_uri

    from rich.console import Console
    from rich.table import Table

    from inbox.settings import load_settings
    from models.harness import TrainingContext
    from models.send_time_training import SendTimeSpec

    settings = load_settings()
    ctx = TrainingContext(settings, seed=7)
    spec = SendTimeSpec()
    t0 = time.perf_counter()
    prepared = harness_prepared(ctx, spec)
    ev = spec._eval_set(prepared, ctx)
    if args.contacts:
        keep = np.arange(min(args.contacts, len(ev["features"])))
        ev = {"features": ev["features"].iloc[keep].reset_index(drop=True), "tz": ev["tz"][keep],
              "windows": [(s, e, sl[sl["row"] < len(keep)]) for s, e, sl in ev["windows"]]}
    rand, best = spec._reference(ev)
    oracle_uplift = float((best - rand).mean())
    share = lambda v: float((v - rand).mean() / oracle_uplift)  # noqa: E731
    rows = [("random allowed slot", rand), ("oracle (true peaks)", best)]
    for name, grid in spec.baseline_grids(prepared, ev).items():
        rows.append((f"baseline: {name}", spec._policy_value(grid, ev)))
    try:
        from models.loading import load_champion, load_version

        planner = (load_version("send_time", args.model_version, settings.tracking_uri) if args.model_version
                   else load_champion("send_time", settings.tracking_uri))
        grid, _ = spec._decision_grid(planner, ev)
        rows.append((f"ours (send_time v{planner.version})", spec._policy_value(grid, ev)))
    except Exception as exc:  # no champion in this store: the table says so
        print(f"ours: skipped ({type(exc).__name__}: {str(exc)[:120]})")
    at = prepared.split.test_start.ceil("D")
    hist = observed_history(ctx, ev["features"]["contact_id"].to_numpy(np.int64), at)
    print(f"{len(ev['features'])} contacts, {len(hist)} delivered past sends "
          f"({len(hist) / len(ev['features']):.1f} per contact, {hist['opened'].mean():.3f} opened), "
          f"snapshot {at:%Y-%m-%d}")
    for label, e_known, offsets, known in (
            ("ceiling: Bayes chooser, true prior, e integrated out", False, True, False),
            ("ceiling: same, e known (looser bound)", True, True, False),
            ("Bayes chooser without per-send offsets", False, False, False),
            ("check: same chooser told the true peaks (must be ~1)", True, True, True)):
        t = time.perf_counter()
        grid = bayes_grid(ctx, ev["features"], hist, e_known=e_known, use_offsets=offsets, peaks_known=known)
        rows.append((label, spec._policy_value(grid, ev)))
        print(f"{label}: {time.perf_counter() - t:.1f} s")
    table = Table(title=f"Send time: share of the oracle's uplift over a random slot "
                        f"({len(ev['features'])} contacts x {len(ev['windows'])} windows)")
    for col in ("policy", "mean true P(open 24 h)", "uplift over random", "share of oracle uplift"):
        table.add_column(col, justify="left" if col == "policy" else "right")
    for name, v in rows:
        table.add_row(name, f"{v.mean():.4f}", f"{(v - rand).mean():.4f}", f"{share(v):.3f}")
    Console(width=140).print(table)
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
