"""Outbox rows for the delivery tests, rendered by the real renderer from synthetic decisions
(what `/decide` returns), so these tests need no service."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd

from sending.campaign import parse_campaign

CONTENT = pd.DataFrame({"content_id": [0, 1], "name": ["Spring guide", "Case & study"],
                        "topic": ["education", "case_study"], "format": ["plain", "newsletter"],
                        "subject": ["{first_name}, spring is here", "How Acme grew"]})


def settings_in(tmp_path):
    from inbox.settings import Settings

    return Settings(data_dir=tmp_path / "data", tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
                    artifact_root=tmp_path / "mlruns")


def campaign(**extra):
    return parse_campaign({"campaign_id": "spring.launch:v2", "variants": [0, 1], "from": "news@shop.example",
                           "postal_address": "Shop Ltd, 1 Main St, Springfield", **extra})


def enqueue(settings, config, outbox, send_ats: list[datetime], now: datetime | None = None,
            contact0: int = 100) -> list[int]:
    """Queue one message per send time (contacts contact0, contact0 + 1, ...); returns the send ids."""
    from sending.pipeline import Renderer

    now = now or datetime.now(timezone.utc)
    renderer = Renderer(config, settings, CONTENT, config.run_key())
    first = outbox.reserve_send_ids(len(send_ats))
    rows = []
    for i, at in enumerate(send_ats):
        d = {"contact_id": contact0 + i, "variant": i % 2, "decision_id": f"{i:032x}", "propensity": 0.5,
             "send_at": at.isoformat(), "content_order": [1, 0], "fallback": False, "source": "published"}
        rows.append(renderer.row(first + i, f"anna.schmidt{contact0 - 100 + i}@example.com", d, now))
    outbox.enqueue(rows)
    return list(range(first, first + len(send_ats)))


def spread(start: datetime, n: int, every: timedelta) -> list[datetime]:
    return [start + i * every for i in range(n)]
