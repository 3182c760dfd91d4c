"""`inbox send`'s pipeline against the real service: consent, suppression,
rendering, SMTP headers, sends in the event log, demo responses via webhooks."""
from __future__ import annotations

import mailbox

import numpy as np
import pandas as pd
import pytest

from sending.campaign import parse_campaign
from sending.render import first_name, personalize, render_email

pytestmark = [pytest.mark.server, pytest.mark.slow]


def test_render_fills_tokens_blocks_and_both_parts():
    msg = render_email(sender="news@x.example", email="anna.schmidt@example.com", send_id=5,
                       variant={"subject": "{first_name}, <new> for you"},
                       blocks=[{"content_id": 3, "name": "Guide & tips", "topic": "case_study", "format": "plain"}],
                       headers={"X-Inbox-Decision-Id": "d-9"})
    assert msg["Subject"] == "Anna, <new> for you" and msg["X-Inbox-Decision-Id"] == "d-9"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert "Hi Anna" in text and "Guide & tips" in text and "/c/5/3" in text
    assert "Guide &amp; tips" in html and "&lt;new&gt;" in html  # HTML part is escaped
    assert first_name("j.doe+x@example.com") == "J" and personalize("{unknown} hi", {}) == "{unknown} hi"


def test_campaign_file_errors_name_the_field():
    with pytest.raises(ValueError, match="variants"):
        parse_campaign({"campaign_id": "c", "variants": []})
    with pytest.raises(ValueError, match="batch_size"):
        parse_campaign({"campaign_id": "c", "variants": [1], "batch_size": 5000})
    with pytest.raises(ValueError, match="window.start"):
        parse_campaign({"campaign_id": "c", "variants": [1], "window": {"start": "2026-01-01T00:00:00"}})


def _suppressed_and_no_consent(settings):
    from simulation.eventlog import read_table, table_path

    contacts = read_table("contacts", table_path(settings.events_dir, "contacts"))
    events = read_table("events", table_path(settings.events_dir, "events"))
    suppressed = set(events.loc[events["type"].isin(["unsubscribe", "bounce", "complaint"]), "contact_id"])
    no_consent = contacts.loc[~contacts["consent"], "contact_id"]
    eligible = contacts.loc[contacts["consent"] & ~contacts["contact_id"].isin(suppressed), "contact_id"]
    consented_suppressed = contacts.loc[contacts["consent"] & contacts["contact_id"].isin(suppressed), "contact_id"]
    return contacts, int(no_consent.iloc[0]), int(consented_suppressed.iloc[0]), eligible.head(4).tolist()


def test_send_honors_consent_and_suppression_and_records_sends(service, serving_world, tmp_path):
    from sending.pipeline import run_campaign
    from simulation.eventlog import read_table, table_path

    contacts, no_consent, suppressed, eligible = _suppressed_and_no_consent(serving_world)
    config = parse_campaign({"campaign_id": "send-test", "variants": [0, 1],
                             "audience": {"contact_ids": [no_consent, suppressed, *eligible]}})
    mbox = tmp_path / "sink.mbox"
    result = run_campaign(config, service.url, serving_world, demo=False, mbox_path=mbox)
    assert (result.sent, result.suppressed, result.no_consent) == (len(eligible), 1, 1)
    assert result.live == 0  # every recipient has a published row for the served champions
    messages = list(mailbox.mbox(mbox))
    emails = dict(zip(contacts["contact_id"], contacts["email"]))
    assert sorted(m["To"] for m in messages) == sorted(emails[c] for c in eligible)
    sends = read_table("sends", table_path(serving_world.events_dir, "sends"))
    mine = sends[sends["campaign_id"] == "send-test"]
    assert sorted(mine["contact_id"]) == sorted(eligible)
    by_send = mine.set_index("send_id")
    for m in messages:
        send = by_send.loc[int(m["X-Inbox-Send-Id"])]
        assert m["X-Inbox-Decision-Id"] == send["decision_id"]
        assert send["decision_id"] in m["X-SMTPAPI"] and send["decision_id"] in m["X-Mailgun-Variables"]
        assert {"text/plain", "text/html"} <= {part.get_content_type() for part in m.walk()}
    assert mine["propensity"].between(0, 1, inclusive="right").all()


def test_demo_round_posts_provider_events_and_suppresses_next_time(service, serving_world):
    from serving.eventsink import flush
    from sending.pipeline import run_campaign
    from simulation.eventlog import read_table, table_path

    config = parse_campaign({"campaign_id": "demo-test", "variants": [0, 1, 2], "audience": {"limit": 150,
                                                                                           "seed": 3}})
    result = run_campaign(config, service.url, serving_world, demo=True, seed=4)
    assert result.sent == 150 and result.events_posted > 150  # at least a delivery or bounce per send
    assert result.webhook_calls > 1
    assert 0 < result.oracle_reward < 1 and 0 < result.oracle_uniform < 1
    flush(serving_world.events_dir)
    events = read_table("events", table_path(serving_world.events_dir, "events"))
    sends = read_table("sends", table_path(serving_world.events_dir, "sends"))
    mine = sends.loc[sends["campaign_id"] == "demo-test", "send_id"]
    logged = events[events["send_id"].isin(mine)]
    assert set(logged["type"]) >= {"delivered"}
    assert np.isin(logged["send_id"], mine).all()
    # whoever bounced, unsubscribed or complained in this round is never mailed again
    gone = set(logged.loc[logged["type"].isin(["unsubscribe", "bounce", "complaint"]), "contact_id"])
    if gone:
        again = parse_campaign({"campaign_id": "demo-test", "variants": [0, 1, 2],
                                "audience": {"contact_ids": sorted(gone)}})
        assert run_campaign(again, service.url, serving_world, demo=False).sent == 0
    assert pd.Series(result.variants).sum() == 150
