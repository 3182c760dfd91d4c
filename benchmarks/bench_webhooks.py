"""Benchmark: what signature checks and send matching cost per webhook call (ms), in process.

Each provider's call goes through the real webhook app (`serving.webhook_app`, Starlette's test
client, no network): verification, parsing, matching to `sends.parquet`, the SQLite journal and
the allocator. The baseline in the same run records the same events with no signature check and
no send matching (`WebhookJournal.append` of the parsed rows plus the allocator's rewards: what an
unsigned webhook cost before). `--sends` sizes the sends table the events are matched against
(sends are appended in send-id order, as the pipeline does, so Parquet statistics skip most of it).

    .venv/bin/python benchmarks/bench_webhooks.py [--sends 5000000] [--calls 200] [--batch 1000]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa


def sends_table(events_dir: Path, n: int, decided: pd.DataFrame) -> None:
    """n sends; the first len(decided) carry real decisions."""
    from simulation.eventlog import table_path, write_table

    ids = np.arange(1, n + 1, dtype=np.int64)
    decision = np.full(n, None, dtype=object)
    decision[: len(decided)] = decided["decision_id"].to_numpy()
    propensity = np.full(n, np.nan)
    propensity[: len(decided)] = decided["propensity"].to_numpy()
    write_table("sends", pa.table({
        "send_id": ids, "contact_id": ids, "campaign_id": pa.array(["bench"] * n),
        "content_id": np.full(n, 10, dtype=np.int64),
        "sent_at": pa.array(np.full(n, pd.Timestamp.now(tz="UTC").value // 1000), pa.timestamp("us", tz="UTC")),
        "decision_id": pa.array(decision, pa.string()), "propensity": propensity}), table_path(events_dir, "sends"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sends", type=int, default=5_000_000)
    ap.add_argument("--calls", type=int, default=200, help="single-event calls per provider (Mailgun, SES)")
    ap.add_argument("--batch", type=int, default=1000, help="events per SendGrid call")
    args = ap.parse_args()

    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    from experiments.bandit import Allocator
    from inbox.settings import Settings
    from serving.demo_webhook_keys import mailgun_signature, sendgrid_public_key, sign_sns, sns_certificate
    from serving.eventsink import EventJournal
    from serving.webhook_app import create_webhook_app
    from serving.webhook_receiver import WebhookReceiver
    from serving.webhook_settings import keys_file, write_keys_file
    from serving.webhook_signatures import sign_sendgrid
    from serving.webhooks import parse_sendgrid, to_event_rows
    from sending.outbox import Outbox

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    topic, cert_url = "arn:aws:sns:us-east-1:123456789012:bench", "https://sns.us-east-1.amazonaws.com/bench.pem"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(Path(tmp) / "data", f"sqlite:///{tmp}/mlflow.db", Path(tmp) / "mlruns")
        alloc = Allocator.open(settings.bandit_dir)
        alloc.register_campaign("bench", pd.DataFrame({"content_id": [10, 11], "subject_length": [30, 42]}), ["x1"])
        n_dec = args.batch * 3 + 2 * args.calls
        decided = alloc.choose("bench", np.arange(1, n_dec + 1), pd.DataFrame({"x1": np.zeros(n_dec)}))
        t0 = time.perf_counter()
        sends_table(settings.events_dir, args.sends, decided)
        print(f"sends.parquet: {args.sends:,} rows written in {time.perf_counter() - t0:.1f} s")

        sg_key, sns_key = ec.generate_private_key(ec.SECP256R1()), rsa.generate_private_key(65537, 2048)
        cert = sns_certificate(sns_key)
        write_keys_file(keys_file(settings), {"sendgrid_public_key": sendgrid_public_key(sg_key),
                                              "mailgun_signing_key": "bench-key", "sns_topic_arns": [topic]})
        journal = EventJournal(settings.events_dir)
        receiver = WebhookReceiver(settings, journal, fetch=lambda url: cert)
        client = TestClient(create_webhook_app(lambda: (receiver, alloc)))
        now = int(time.time())

        def ids(i):
            return {"send_id": str(i + 1), "contact_id": str(i + 1), "decision_id": decided["decision_id"][i],
                    "campaign_id": "bench"}

        def sendgrid_batch(offset):
            return [{"event": "click", "sg_event_id": f"sg-{offset + j}", "timestamp": now, **ids(offset + j)}
                    for j in range(args.batch)]

        def timed(fn, n):
            t = time.perf_counter()
            for k in range(n):
                fn(k)
            return (time.perf_counter() - t) / n * 1000

        # baseline: parse + journal + rewards, no signature and no send matching
        def baseline(k):
            events = parse_sendgrid(sendgrid_batch(k * args.batch))
            journal.append(to_event_rows(events))
            alloc.rewards([e.decision_id for e in events], [1.0] * len(events), [e.occurred_at for e in events],
                          [str(e.event_id) for e in events])
        rows.append(("SendGrid, baseline (unsigned, unmatched)", args.batch, timed(baseline, 1)))

        def sendgrid(k):
            body = json.dumps(sendgrid_batch(args.batch * (k + 1))).encode()
            r = client.post("/sendgrid", content=body, headers=sign_sendgrid(sg_key, now, body))
            assert r.status_code == 200 and r.json()["recorded"] == args.batch, r.text
        rows.append(("SendGrid, signed, sends in sends.parquet", args.batch, timed(sendgrid, 2)))

        base = args.batch * 3
        with Outbox.open(settings) as outbox:  # the second half of the single-event sends is in the outbox
            outbox.enqueue([(base + args.calls + k + 1, "bench", "r", base + args.calls + k + 1, 10,
                             decided["decision_id"][base + args.calls + k], 0.5, 0, 0, "example.com",
                             "a@example.com", "b@example.com", b"m", 0, 0, 0) for k in range(args.calls)])

        def mailgun(offset):
            def call(k):
                payload = {"signature": mailgun_signature("bench-key"),
                           "event-data": {"event": "clicked", "id": f"mg-{offset + k}", "timestamp": now,
                                          "user-variables": ids(offset + k)}}
                r = client.post("/mailgun", json=payload)
                assert r.status_code == 200 and r.json()["recorded"] == 1, r.text
            return call
        rows.append(("Mailgun, signed, send in sends.parquet", 1, timed(mailgun(base), args.calls)))
        rows.append(("Mailgun, signed, send in the outbox", 1, timed(mailgun(base + args.calls), args.calls)))

        def ses(k):
            i = base + args.calls + k
            message = {"eventType": "Click", "mail": {"timestamp": "2026-01-01T00:00:00Z",
                                                      "tags": {key: [v] for key, v in ids(i).items()}}}
            note = {"Type": "Notification", "MessageId": f"ses-{k}", "TopicArn": topic,
                    "Message": json.dumps(message),
                    "Timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            r = client.post("/ses", json=sign_sns(note, sns_key, cert_url))
            assert r.status_code == 200 and r.json()["recorded"] == 1, r.text
        rows.append(("SES via SNS, signed, send in the outbox", 1, timed(ses, args.calls)))

        def unsigned(k):
            assert client.post("/sendgrid", json=sendgrid_batch(0)).status_code == 401
        rows.append(("SendGrid, unsigned (401)", args.batch, timed(unsigned, 5)))
        receiver.close()
        journal.close()
        alloc.close()

    print(f"\nsends table: {args.sends:,} rows")
    print(f"| call | events per call | ms per call | us per event |\n|---|---:|---:|---:|")
    for name, n, ms in rows:
        print(f"| {name} | {n:,} | {ms:.1f} | {ms * 1000 / n:.0f} |")


if __name__ == "__main__":
    main()
