"""Model benchmarks: training time per model, lead scoring on 1M rows, batch scoring throughput.

    python benchmarks/bench_models.py [--data-dir DATA] [--skip-train]

DATA must hold a simulated world, its event log and built features (default:
the installation's data dir, e.g. after `inbox demo --until features`). Models
are trained into a temporary MLflow store (sqlite) unless --skip-train, which
scores the champions of the configured store. Prints tables; the LightGBM
reference (200 trees x 40 features, numpy) and the MLflow pyfunc wrapper are
measured in the same run as the native predictors.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

warnings.filterwarnings("ignore")


def timed(fn, repeat: int = 3):
    best = float("inf")
    out = None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def table(title: str, rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title)
    for col in rows[0]:
        t.add_column(col, justify="left" if col in ("model", "what", "path") else "right")
    for r in rows:
        t.add_row(*[f"{v:,.0f}" if isinstance(v, (int, float)) and abs(v) >= 100 else
                    (f"{v:.4g}" if isinstance(v, float) else str(v)) for v in r.values()])
    Console(width=140).print(t)


def bench_training(settings) -> list[dict]:
    from models.training import MODEL_NAMES, train_model

    rows = []
    for name in MODEL_NAMES:
        r = train_model(name, settings=settings, progress=False)
        import mlflow

        fit = mlflow.get_run(r.run_id).data.metrics.get("fit_seconds", float("nan"))
        rows.append({"model": name, "total seconds": r.seconds, "fit seconds": fit, "metric": r.metric,
                     "ours": r.ours, "baseline": r.baseline, "oracle": r.oracle,
                     "target met": "yes" if r.target_met else "no"})
    return rows


def bench_lead_1m(settings) -> dict:
    import lightgbm as lgb

    from models.harness import TrainingContext
    from models.lead_scoring import LABEL, LeadScoringSpec
    from models.encoding import FeatureEncoder

    spec = LeadScoringSpec()
    prepared = spec.prepare(TrainingContext(settings))
    train = prepared.train
    enc = FeatureEncoder.fit(train.drop(columns=[LABEL, "block"]))
    X, y = enc.transform(train), train[LABEL].to_numpy()
    idx = np.random.default_rng(0).integers(0, len(X), 1_000_000)
    X1, y1 = X[idx], y[idx]
    params = spec._lgb_params(7) | {"num_threads": 2}
    t = time.perf_counter()
    booster = lgb.train(params, lgb.Dataset(X1, y1, categorical_feature=enc.categorical_indices), 200)
    seconds = time.perf_counter() - t
    return {"what": "lead scoring LightGBM, 1M rows (resampled training set)", "rows": len(X1),
            "features": X1.shape[1], "trees": booster.num_trees(), "seconds": seconds}


def bench_scoring(settings, tracking_uri: str) -> list[dict]:
    import lightgbm as lgb
    import mlflow

    from models.datasets import latest_contact_features, latest_content_features
    from models.loading import load_champion, model_dir

    rows = []
    n_ref = 200_000
    rng = np.random.default_rng(0)
    Xr = rng.random((n_ref, 40))
    ref = lgb.train({"objective": "binary", "verbose": -1, "num_leaves": 31, "num_threads": 2},
                    lgb.Dataset(Xr[:50_000], (Xr[:50_000, 0] + rng.random(50_000) > 1).astype(int)), 200)
    s, _ = timed(lambda: ref.predict(Xr, num_threads=2))
    rows.append({"what": "reference: LightGBM 200 trees x 40 features, numpy", "rows": n_ref, "seconds": s,
                 "rows/s": n_ref / s})

    lead = load_champion("lead_scoring", tracking_uri)
    frame = latest_contact_features(lead.services, settings)
    X = lead.matrix(frame)
    reps = max(1, 200_000 // len(X))
    Xb = np.vstack([X] * reps)
    s, _ = timed(lambda: lead.raw_probability(Xb))
    rows.append({"what": f"lead_scoring booster ({lead.booster.num_trees()} trees x {X.shape[1]} features), numpy",
                 "rows": len(Xb), "seconds": s, "rows/s": len(Xb) / s})
    pyf = mlflow.pyfunc.load_model(str(model_dir("lead_scoring", lead.version, tracking_uri)))
    df = pd.DataFrame(Xb, columns=lead.encoder.columns)
    s, _ = timed(lambda: pyf.predict(df), repeat=1)
    rows.append({"what": "lead_scoring MLflow pyfunc wrapper, DataFrame", "rows": len(df), "seconds": s,
                 "rows/s": len(df) / s})
    s, _ = timed(lambda: lead.score(frame, reasons=False), repeat=1)
    rows.append({"what": "lead_scoring .score() incl. encoding + calibration", "rows": len(frame), "seconds": s,
                 "rows/s": len(frame) / s})
    s, _ = timed(lambda: lead.score(frame, reasons=True), repeat=1)
    rows.append({"what": "lead_scoring .score() with top-3 reasons (pred_contrib)", "rows": len(frame),
                 "seconds": s, "rows/s": len(frame) / s})
    one = X[:1]
    n1 = 2000
    t = time.perf_counter()
    for _ in range(n1):
        lead.booster.predict(one, num_threads=1)
    us_native = (time.perf_counter() - t) / n1 * 1e6
    one_df = df.head(1)
    t = time.perf_counter()
    for _ in range(200):
        pyf.predict(one_df)
    us_pyfunc = (time.perf_counter() - t) / 200 * 1e6
    rows.append({"what": "one row latency: booster numpy / pyfunc DataFrame (us)", "rows": 1,
                 "seconds": us_native / 1e6, "rows/s": f"{us_native:.0f} us / {us_pyfunc:.0f} us"})

    try:
        send = load_champion("send_time", tracking_uri)
    except LookupError as exc:  # a store with only some models trained
        rows.append({"what": f"send_time skipped: {exc}"[:90], "rows": 0, "seconds": 0.0, "rows/s": "-"})
        send = None
    if send is None:
        return rows + _content_scoring(settings, tracking_uri)
    sframe = latest_contact_features(send.services, settings).head(20_000)
    start = pd.Timestamp.now(tz="UTC").ceil("h")
    s, out = timed(lambda: send.best_slots(sframe, sframe["timezone"].fillna("UTC"), start,
                                           start + pd.Timedelta(hours=24)), repeat=1)
    rows.append({"what": "send_time .best_slots() 24 h window (contacts)", "rows": len(sframe), "seconds": s,
                 "rows/s": len(sframe) / s})
    return rows + _content_scoring(settings, tracking_uri)


def _content_scoring(settings, tracking_uri: str) -> list[dict]:
    from models.datasets import latest_contact_features, latest_content_features
    from models.loading import load_champion

    rows = []
    ranker = load_champion("content_preference", tracking_uri)
    cframe = latest_contact_features(ranker.services, settings).head(20_000)
    catalog = latest_content_features(settings)
    s, out = timed(lambda: ranker.rank(cframe, catalog, k=3), repeat=1)
    rows.append({"what": f"content_preference .rank() x {len(catalog)} candidates (contacts)", "rows": len(cframe),
                 "seconds": s, "rows/s": len(cframe) / s})
    rows.append({"what": "content_preference pairs scored", "rows": len(cframe) * len(catalog), "seconds": s,
                 "rows/s": len(cframe) * len(catalog) / s})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="data dir with world/, events/, features/ (default: INBOX_DATA_DIR)")
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--skip-1m", action="store_true", help="skip the 1M-row lead-scoring training")
    args = parser.parse_args()
    if args.data_dir:
        os.environ["INBOX_DATA_DIR"] = str(Path(args.data_dir).resolve())
    tmp = None
    if not args.skip_train:
        tmp = tempfile.mkdtemp(prefix="bench_models_")
        os.environ["INBOX_ARTIFACT_ROOT"] = tmp
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlflow.db"
    from inbox.settings import load_settings

    settings = load_settings()
    print(f"data: {settings.data_dir}  tracking: {settings.tracking_uri}  cpus: {os.cpu_count()}")
    if not args.skip_train:
        table("training on the default world (train + evaluate + log + register)", bench_training(settings))
    if not args.skip_1m:
        table("lead scoring training on 1M rows", [bench_lead_1m(settings)])
    table("batch scoring throughput (champions, native predictors vs pyfunc)", bench_scoring(settings,
                                                                                            settings.tracking_uri))


if __name__ == "__main__":
    main()
