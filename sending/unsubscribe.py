"""One-click unsubscribe (RFC 8058) and the preference centre, served by the service under /u/.

    POST /u/<token>               one-click: opts the contact out of all mail, at once
    GET  /u/<token>               the preference page: a plain HTML form, topic by topic
    POST /u/<token>/preferences   the form's answer: topic choices, or out of (back into) all mail

The token (`sending.tokens`) is the only credential: signed with the
installation key, so it cannot be guessed; an invalid one gets 404 and changes
nothing. Choices go to the consent ledger (`privacy.consent`, sources
`one_click` / `preference_centre`), which the audience and `/decide` read;
the one-click POST also journals an `unsubscribe` event for the send (features
count them). Per RFC 8058 the POST needs no cookie, no redirect and no second
step; a mail client posts `List-Unsubscribe=One-Click`, any body is accepted.
Mounted in `serving.service` with `@bentoml.asgi_app(app, path="/u")`.
"""
from __future__ import annotations

import html
from datetime import datetime, timezone
from functools import lru_cache

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title></head>
<body style="font-family: sans-serif; max-width: 36em">
{body}
</body></html>"""
NOT_FOUND = PAGE.format(title="Link not valid", body="<p>This link is not valid.</p>")


@lru_cache(maxsize=1)
def _settings():
    from inbox.settings import load_settings

    return load_settings()


def _topics() -> tuple[str, ...]:
    from simulation.catalog import TOPICS

    return TOPICS


def _contact(token: str) -> tuple[int, int] | None:
    from sending.tokens import InvalidToken, read_token

    try:
        return read_token(_settings(), token)
    except InvalidToken:
        return None


def record_choices(settings, contact_id: int, send_id: int, events: list[tuple[str, str | None]], source: str,
                   ref: str | None = None) -> int:
    """Append (kind, topic) consent events for the contact; a one-click also journals an unsubscribe event."""
    from privacy.consent import ConsentLedger

    now = datetime.now(timezone.utc)
    rows = [{"contact_id": contact_id, "kind": kind, "topic": topic, "source": source, "occurred_at": now,
             **({"ref": ref} if ref and i == 0 else {})} for i, (kind, topic) in enumerate(events)]
    with ConsentLedger.open(settings) as ledger:
        added = ledger.record(rows) if rows else 0
    if source == "one_click":
        _journal_unsubscribe(settings, contact_id, send_id, now)
    return added


def _journal_unsubscribe(settings, contact_id: int, send_id: int, now: datetime) -> None:
    import pandas as pd

    from serving.eventsink import EventJournal
    from serving.webhooks import stable_event_id

    journal = EventJournal(settings.events_dir)
    try:
        journal.append(pd.DataFrame({"event_id": [stable_event_id("one_click", str(send_id))], "send_id": [send_id],
                                     "contact_id": [contact_id], "type": ["unsubscribe"],
                                     "occurred_at": [pd.Timestamp(now)], "value": [float("nan")]}))
    finally:
        journal.close()


def _state(settings, contact_id: int) -> tuple[bool, dict[str, bool]]:
    from privacy.consent import ConsentLedger

    with ConsentLedger.open(settings, read_only=True) as ledger:
        subscribed = ledger.reasons([contact_id])[0] not in ("opted_out", "no_consent")
        return subscribed, ledger.topics(contact_id)


async def one_click_or_page(request: Request):
    token = request.path_params["token"]
    who = _contact(token)
    if who is None:
        return HTMLResponse(NOT_FOUND, status_code=404)
    contact_id, send_id = who
    settings = _settings()
    if request.method == "POST":
        await request.body()  # RFC 8058 body "List-Unsubscribe=One-Click"; the POST itself is the request
        await run_in_threadpool(record_choices, settings, contact_id, send_id, [("opt_out", None)], "one_click",
                                f"one_click:{send_id}")
        return HTMLResponse(PAGE.format(title="Unsubscribed", body="<p>You are unsubscribed from all mail.</p>"))
    subscribed, chosen = await run_in_threadpool(_state, settings, contact_id)
    boxes = "\n".join(
        f'<label><input type="checkbox" name="topic" value="{t}"{" checked" if chosen.get(t, True) else ""}> '
        f'{html.escape(t.replace("_", " ").title())}</label><br>' for t in _topics())
    body = f"""<h1>Your email preferences</h1>
<form method="post" action="{html.escape(token)}/preferences">
<fieldset><legend>Topics you want to hear about</legend>
{boxes}
</fieldset>
<p><label><input type="radio" name="all" value="subscribe"{" checked" if subscribed else ""}> Send me the topics above</label><br>
<label><input type="radio" name="all" value="unsubscribe"{"" if subscribed else " checked"}> Unsubscribe me from all mail</label></p>
<button type="submit">Save</button>
</form>"""
    return HTMLResponse(PAGE.format(title="Email preferences", body=body))


async def save_preferences(request: Request):
    who = _contact(request.path_params["token"])
    if who is None:
        return HTMLResponse(NOT_FOUND, status_code=404)
    contact_id, send_id = who
    form = await request.form()
    wanted = set(form.getlist("topic"))
    choice = form.get("all", "subscribe")
    if choice not in ("subscribe", "unsubscribe") or not wanted <= set(_topics()):
        return HTMLResponse(PAGE.format(title="Not saved", body="<p>all / topic: unexpected value.</p>"),
                            status_code=400)
    settings = _settings()
    subscribed, chosen = await run_in_threadpool(_state, settings, contact_id)
    events = [("opt_in" if t in wanted else "opt_out", t) for t in _topics()
              if chosen.get(t, True) != (t in wanted)]  # only what changed
    if choice == "unsubscribe" and subscribed:
        events.append(("opt_out", None))
    elif choice == "subscribe" and not subscribed:
        events.append(("opt_in", None))
    await run_in_threadpool(record_choices, settings, contact_id, send_id, events, "preference_centre")
    return HTMLResponse(PAGE.format(title="Saved", body="<p>Your preferences are saved.</p>"))


app = Starlette(routes=[Route("/{token}", one_click_or_page, methods=["GET", "POST"]),
                        Route("/{token}/preferences", save_preferences, methods=["POST"])])
