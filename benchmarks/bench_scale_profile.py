"""The scale profile against the embedded one, same run, same world (issue 16's targets).

    .venv/bin/python benchmarks/bench_scale_profile.py [--contacts 3000] [--seconds 20]

Starts redis-server, PostgreSQL and an MLflow server on PostgreSQL on free loopback ports
(`inbox.services`), builds one world on the scale profile (`inbox.scale_profile.build_world`: features
materialized and predictions published to Redis, models in the tracking server) and a copy of it on
the embedded profile (SQLite online store and decision log; the same models). Then:

1. `decide` for 1 recipient at concurrency 8 (wrk): two replicas sharing PostgreSQL and Redis behind
   nginx (compose's own `deploy/nginx` template) against one replica on the embedded profile, each
   `bentoml serve` with the workers the service ships with. Throughput, p50/p99, and the decision
   count check: the decision ids of every 2xx answer (recorded by wrk's Lua `response`) against the
   rows of the decision log: none missing, none twice; rows without an answer are requests wrk
   abandoned at the end of the run (at most one per connection).
2. Spark batch scoring (`models.spark_scoring`, local[2]) against the in-process model step on the
   same rows (`--spark-rows`: the world's contacts repeated under new ids): rows/s and equality
   (scores and tiers identical, probabilities to 1e-13).

Needs wrk and nginx (Debian: apt-get install wrk nginx-light) besides redis-server and postgresql.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CAMPAIGN = "bench-scale"
PROFILE_ENV = ("INBOX_ONLINE_STORE", "INBOX_DECISION_LOG")


def mailable_contacts(settings, n: int) -> list[int]:
    from privacy.consent import ConsentLedger

    ids = np.arange(n)
    with ConsentLedger.open(settings, read_only=True) as ledger:
        return ids[ledger.can_mail(ids)].tolist()


def lua_decide(path: Path, token: str, contacts: list[int], ids_file: Path) -> Path:
    """Each request: one random mailable contact; every 2xx answer's decision ids appended to `ids_file`."""
    path.write_text(f"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {token}"
local contacts = {{{",".join(map(str, contacts))}}}
local out = nil
init = function(args)
  math.randomseed(7)
  out = io.open("{ids_file}", "a")
  out:setvbuf("line")
end
request = function()
  local c = contacts[math.random(1, #contacts)]
  return wrk.format(nil, nil, nil, '{{"campaign_id": "{CAMPAIGN}", "contact_ids": [' .. c .. ']}}')
end
response = function(status, headers, body)
  if status >= 200 and status < 300 then
    for id in string.gmatch(body, '"decision_id":"(%x+)"') do out:write(id, "\\n") end
  end
end
""")
    return path


def wrk(url: str, lua: Path, connections: int, seconds: int) -> dict:
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "5s",
                          "-s", str(lua), url], capture_output=True, text=True, check=True).stdout
    unit = {"us": 1e-3, "ms": 1.0, "s": 1e3}

    def ms(text: str) -> float:
        m = re.match(r"([\d.]+)(us|ms|s)", text)
        return float(m.group(1)) * unit[m.group(2)]

    pct = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", out, re.M))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"p50": ms(pct["50"]), "p99": ms(pct["99"]), "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "requests": int(re.search(r"(\d+) requests in", out).group(1)),
            "non2xx": int(non2xx.group(1)) if non2xx else 0}


def decide_run(url: str, settings, token: str, contacts: list[int], work: Path, name: str, seconds: int,
               connections: int = 8) -> dict:
    """Warm up, then measure; the decision-count check against the log the settings open."""
    from experiments.bandit import Allocator

    warm_ids, ids_file = work / f"{name}-warm.ids", work / f"{name}.ids"
    wrk(url + "/decide", lua_decide(work / f"{name}-warm.lua", token, contacts, warm_ids), connections, 3)
    time.sleep(1.0)  # the warm-up's abandoned requests finish before the count starts
    alloc = Allocator.open(settings.bandit_dir)
    before = set(alloc.log.decisions(CAMPAIGN)["decision_id"])
    out = wrk(url + "/decide", lua_decide(work / f"{name}.lua", token, contacts, ids_file), connections, seconds)
    time.sleep(1.0)  # requests abandoned by wrk at the deadline finish on the server
    rows = alloc.log.decisions(CAMPAIGN)
    alloc.close()
    new = rows[~rows["decision_id"].isin(before)]["decision_id"]
    answered = ids_file.read_text().split() if ids_file.exists() else []
    out.update(answered=len(answered), rows=len(new), missing=len(set(answered) - set(new)),
               duplicated_rows=int(new.duplicated().sum()), duplicated_answers=len(answered) - len(set(answered)),
               unanswered_rows=len(set(new) - set(answered)))
    return out


def spark_vs_in_process(settings, partitions: int, rows: int) -> dict:
    from models.lead_scorer import LeadScorer
    from models.spark_scoring import champion_inputs, score_with_spark, spark_session

    version, directory, features = champion_inputs(settings)
    if rows > len(features):  # the world's contacts repeated under new ids: enough rows to amortize Spark's tasks
        features = features.iloc[np.resize(np.arange(len(features)), rows)].reset_index(drop=True)
        features["contact_id"] = np.arange(rows, dtype=np.int64)
    model = LeadScorer.load(directory, version=version)
    model.num_threads = 1
    t0 = time.perf_counter()
    p, score, tier = model.predict_arrays(features)
    in_process = time.perf_counter() - t0
    t0 = time.perf_counter()
    spark = spark_session("local[2]")
    startup = time.perf_counter() - t0
    try:
        score_with_spark(spark, features.head(64), version, directory, partitions=1)  # warm the Python workers
        t0 = time.perf_counter()
        got = score_with_spark(spark, features, version, directory, partitions=partitions)
        on_spark = time.perf_counter() - t0
    finally:
        spark.stop()
    order = np.argsort(features["contact_id"].to_numpy(), kind="stable")
    equal = (np.array_equal(got["contact_id"], features["contact_id"].to_numpy()[order])
             and np.array_equal(got["score"], score[order]) and np.array_equal(got["tier"], tier[order].astype(str)))
    rel = float(np.max(np.abs(got["probability"].to_numpy() - p[order]) / np.maximum(np.abs(p[order]), 1e-300)))
    return {"rows": len(features), "in_process_s": in_process, "spark_s": on_spark, "spark_startup_s": startup,
            "equal_scores_tiers": bool(equal), "max_rel_diff_probability": rel,
            "bit_identical_probabilities": int((got["probability"].to_numpy() == p[order]).sum())}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--contacts", type=int, default=3000)
    ap.add_argument("--days", type=int, default=120)
    ap.add_argument("--seconds", type=int, default=20, help="seconds per decide measurement")
    ap.add_argument("--partitions", type=int, default=4, help="Spark partitions of the scoring input")
    ap.add_argument("--spark-rows", type=int, default=200_000,
                    help="rows scored by both engines (the world's contacts repeated under new ids)")
    ap.add_argument("--work", type=Path, default=None, help="work directory (default: a temp dir, removed)")
    args = ap.parse_args()
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            raise SystemExit(f"{tool}: not installed (apt-get install wrk nginx-light)")
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-scale-profile-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    from inbox.scale_profile import build_world, register_campaign
    from inbox.services import mlflow_server, nginx_balancer, postgres_server, redis_server, service_replicas
    from inbox.settings import load_settings
    from serving.api_keys import KeyStore
    from serving.runner import start_service

    results: dict = {}
    with redis_server(work) as redis_url, postgres_server() as pg:
        with mlflow_server(pg.create_database("mlflow"), work / "served-artifacts") as tracking:
            os.environ.update({"INBOX_DATA_DIR": str(work / "scale"), "INBOX_ARTIFACT_ROOT": str(work / "mlruns"),
                               "MLFLOW_TRACKING_URI": tracking, "INBOX_ONLINE_STORE": redis_url,
                               "INBOX_DECISION_LOG": pg.create_database("decisions")})
            scale = load_settings()
            t0 = time.perf_counter()
            build_world(scale, args.contacts, args.days, fast=False)  # the demo's training: every model promoted
            results["build_s"] = time.perf_counter() - t0
            register_campaign(scale, CAMPAIGN)
            # the embedded copy: same events, features and models; SQLite online store and decision log
            shutil.copytree(scale.data_dir, work / "embedded", ignore=shutil.ignore_patterns("feast", "bandit", "serve", "logs"))
            saved = {k: os.environ.pop(k) for k in PROFILE_ENV}
            os.environ["INBOX_DATA_DIR"] = str(work / "embedded")
            embedded = load_settings()
            from inbox.demo import in_child_process

            in_child_process("features.workflow:apply_repo", settings=embedded, progress=False)
            in_child_process("features.workflow:materialize_online", settings=embedded, progress=False)
            in_child_process("serving.publish:publish", settings=embedded, progress=False)
            register_campaign(embedded, CAMPAIGN)
            contacts = mailable_contacts(scale, args.contacts)
            token_e = KeyStore(embedded.data_dir).create(["send"], name="bench")[1]
            with start_service(embedded, timeout=600) as one:
                results["embedded"] = decide_run(one.url, embedded, token_e, contacts, work, "embedded", args.seconds)
            os.environ.update(saved)
            os.environ["INBOX_DATA_DIR"] = str(scale.data_dir)
            token_s = KeyStore(scale.data_dir).create(["send"], name="bench")[1]
            with service_replicas(scale, 2, timeout=600) as replicas:
                with nginx_balancer([f"127.0.0.1:{r.port}" for r in replicas], work) as lb:
                    results["scale"] = decide_run(lb, scale, token_s, contacts, work, "scale", args.seconds)
            results["spark"] = spark_vs_in_process(scale, args.partitions, args.spark_rows)
    print_results(results, args)
    (work / "results.json").write_text(json.dumps(results, indent=2))
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def print_results(r: dict, args) -> None:
    e, s, sp = r["embedded"], r["scale"], r["spark"]
    print(f"\nload average during the run: {os.getloadavg()[0]:.1f} (2 cores)")
    print(f"\nworld: {args.contacts} contacts, {args.days} days (built on the scale profile in {r['build_s']:.0f} s)")
    print("\ndecide, 1 recipient, concurrency 8, wrk", f"{args.seconds} s")
    print("| profile | req/s | p50 ms | p99 ms | non-2xx | 2xx decisions | log rows | missing | duplicated | rows without answer |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, x in (("embedded: 1 replica, SQLite", e), ("scale: 2 replicas + nginx, PostgreSQL + Redis", s)):
        print(f"| {name} | {x['rps']:,.0f} | {x['p50']:.2f} | {x['p99']:.2f} | {x['non2xx']} | {x['answered']:,} | "
              f"{x['rows']:,} | {x['missing']} | {x['duplicated_rows'] + x['duplicated_answers']} | {x['unanswered_rows']} |")
    print(f"\nscale / embedded throughput: {s['rps'] / max(e['rps'], 1e-9):.2f}x; "
          f"scale p99 {s['p99']:.2f} ms (target <= 15 ms: {'met' if s['p99'] <= 15 else 'NOT met'})")
    print("\nbatch lead scoring, same rows")
    print("| engine | rows | seconds | rows/s |")
    print("|---|---:|---:|---:|")
    print(f"| in-process (LeadScorer.predict_arrays, 1 thread) | {sp['rows']:,} | {sp['in_process_s']:.3f} | "
          f"{sp['rows'] / sp['in_process_s']:,.0f} |")
    print(f"| Spark local[2], spark_udf, {args.partitions} partitions | {sp['rows']:,} | {sp['spark_s']:.2f} | "
          f"{sp['rows'] / sp['spark_s']:,.0f} |")
    print(f"Spark session start {sp['spark_startup_s']:.1f} s (not counted); scores and tiers equal: "
          f"{sp['equal_scores_tiers']}; probabilities bit-identical {sp['bit_identical_probabilities']:,}/{sp['rows']:,}, "
          f"max relative difference {sp['max_rel_diff_probability']:.1e}")


if __name__ == "__main__":
    raise SystemExit(main())
