"""Provider webhook payloads in their documented formats (shapes copied from the
SendGrid Event Webhook, Mailgun webhook and Amazon SES/SNS documentation), with
our identifiers added the way the send pipeline sets them."""
from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime, timezone

CAMPAIGN = "spring"


def sendgrid_events(send_id=11, contact_id=7, decision_id="d-1", campaign_id="spring", when=1513299569):
    """`when`: Unix time of the first event (the docs' sample time by default)."""
    custom = {"send_id": str(send_id), "contact_id": str(contact_id), "decision_id": decision_id,
              "campaign_id": campaign_id}
    return [
        {"email": "example@test.com", "timestamp": when, "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
         "event": "processed", "category": "cat facts", "sg_event_id": "rbtnWrG1DVDGGGFHFyun0A==",
         "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.000000000000", **custom},
        {"email": "example@test.com", "timestamp": when, "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
         "event": "delivered", "category": "cat facts", "sg_event_id": "rWVYmVk90MjZJ9iohOBa3w==",
         "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.000000000000",
         "response": "250 OK", **custom},
        {"email": "example@test.com", "timestamp": when + 31, "event": "open", "category": "cat facts",
         "sg_event_id": "FOTFFO0ecsBE-zxFXfs6WA==", "useragent": "Mozilla/4.0", "ip": "255.255.255.255",
         "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.000000000000", **custom},
        {"email": "example@test.com", "timestamp": when + 131, "event": "click", "category": "cat facts",
         "sg_event_id": "kCAi1KttyQdEKHhdC-nuEA==", "url": "https://sendgrid.com", "url_offset": {"index": 0,
         "type": "html"}, "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.000000000000",
         **custom},
    ]


def mailgun_event(event="clicked", event_id="CPgfbmQMTCKtHW6uIWtuVe", send_id=12, contact_id=8,
                  decision_id="d-2", campaign_id="spring", signature=None, timestamp=1529006854.329574):
    """`signature`: a Mailgun signature object (default: the docs' sample, signed in 2018 with "key-secret")."""
    if signature is None:
        token = "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0"
        ts = "1529006854"
        sig = hmac.new(b"key-secret", (ts + token).encode(), hashlib.sha256).hexdigest()
        signature = {"timestamp": ts, "token": token, "signature": sig}
    return {
        "signature": signature,
        "event-data": {
            "event": event, "timestamp": timestamp, "id": event_id, "recipient": "alice@example.com",
            "tags": ["my_tag_1"], "log-level": "info",
            "geolocation": {"country": "US", "region": "CA", "city": "San Francisco"},
            "user-variables": {"send_id": send_id, "contact_id": contact_id, "decision_id": decision_id,
                               "campaign_id": campaign_id},
            "message": {"headers": {"message-id": "20130503182626.18666.16540@example.com"}},
            "url": "https://example.com/offer",
        },
    }


def ses_notification(event_type="Click", message_id="ses-msg-1", send_id=13, contact_id=9, decision_id="d-3",
                     campaign_id="spring", via="tags", bounce_type="Permanent", when=None):
    """`when`: an aware datetime for the event and its SNS publication (the docs' sample times by default)."""
    stamp = when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z") if when else None
    mail = {
        "timestamp": "2017-08-09T22:00:19.000Z", "source": "sender@example.com",
        "sourceArn": "arn:aws:ses:us-east-1:123456789012:identity/sender@example.com",
        "sendingAccountId": "123456789012", "messageId": "EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000",
        "destination": ["recipient@example.com"], "headersTruncated": False,
        "headers": [{"name": "From", "value": "sender@example.com"}],
        "commonHeaders": {"from": ["sender@example.com"], "subject": "Message sent from Amazon SES"},
        "tags": {"ses:configuration-set": ["ConfigSet"]},
    }
    ids = {"send_id": str(send_id), "contact_id": str(contact_id), "decision_id": decision_id,
           "campaign_id": campaign_id}
    if via == "tags":
        mail["tags"].update({k: [v] for k, v in ids.items()})
    else:
        names = {"send_id": "X-Inbox-Send-Id", "contact_id": "X-Inbox-Contact-Id",
                 "decision_id": "X-Inbox-Decision-Id", "campaign_id": "X-Inbox-Campaign-Id"}
        mail["headers"] += [{"name": names[k], "value": v} for k, v in ids.items()]
    message = {"eventType": event_type, "mail": mail}
    if event_type == "Click":
        message["click"] = {"ipAddress": "192.0.2.1", "link": "http://docs.aws.amazon.com/ses/latest/",
                            "timestamp": stamp or "2017-08-09T23:51:25.570Z", "userAgent": "Mozilla/5.0"}
    elif event_type == "Bounce":
        message["bounce"] = {"bounceType": bounce_type, "bounceSubType": "General",
                             "bouncedRecipients": [{"emailAddress": "recipient@example.com"}],
                             "timestamp": "2017-08-05T00:41:02.669Z", "feedbackId": "01000157c44f053b-61b59c11"}
    elif event_type == "Delivery":
        message["delivery"] = {"timestamp": "2016-10-19T23:21:04.133Z", "processingTimeMillis": 11893,
                               "recipients": ["recipient@example.com"], "smtpResponse": "250 2.6.0 Message received"}
    return {
        "Type": "Notification", "MessageId": message_id,
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:ses-events", "Subject": "Amazon SES Email Event Notification",
        "Message": json.dumps(message), "Timestamp": stamp or "2017-08-09T23:51:25.700Z", "SignatureVersion": "1",
        "Signature": "EXAMPLEw6JRN...", "SigningCertURL": "https://sns.us-east-1.amazonaws.com/x.pem",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
    }


def record_sends(settings, decisions: list[dict], first_send_id: int, campaign_id: str = CAMPAIGN) -> list[dict]:
    """Write `sends` rows for /decide answers (as the send pipeline does before mailing); their id fields."""
    import pandas as pd

    from serving.eventsink import append_sends

    sends = pd.DataFrame({
        "send_id": [first_send_id + i for i in range(len(decisions))],
        "contact_id": [d["contact_id"] for d in decisions], "campaign_id": campaign_id,
        "content_id": [d["variant"] for d in decisions], "sent_at": pd.Timestamp.now(tz="UTC"),
        "decision_id": [d["decision_id"] for d in decisions], "propensity": [d["propensity"] for d in decisions]})
    append_sends(settings.events_dir, sends)
    return [{"send_id": int(s.send_id), "contact_id": int(s.contact_id), "decision_id": s.decision_id,
             "campaign_id": campaign_id} for s in sends.itertuples()]


def signed_sendgrid_post(client, signers, events: list[dict]):
    """POST events to /webhooks/sendgrid signed with the demo's SendGrid key (`demo_signers`)."""
    body = json.dumps(events).encode()
    return client.post("/webhooks/sendgrid", content=body,
                       headers={"Content-Type": "application/json", **signers.sendgrid_headers(body)})
