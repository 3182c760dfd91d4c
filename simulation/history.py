"""Simulate campaign history over a world: the four event-log tables.

Campaign plan (deterministic for the world's seed): each day carries a
campaign with probability `campaign_rate_weekday` / `campaign_rate_weekend`.
A campaign goes to a random share of contacts (`audience_share`), offers 2-4
content items from the library (those already created), and picks one
uniformly per send. A share of campaigns (`logged_campaign_share`) is logged as
a uniform-random allocator: every send carries a `decision_id` and
`propensity = 1 / n_variants`, so off-policy evaluation has data.

Send times are mixed, so send-time effects are learnable: a "blast" campaign
goes out at one UTC hour (local hours then differ by zone) with a spread of up
to 40 minutes; a "local" campaign sends each contact at its own random local
hour (mostly 06:00-22:30, some at any hour) on the campaign's local date.

Responses come from `ResponseModel.sample_arrays` with `recent_sends` = the
contact's sends in the previous 7 days. A contact is never mailed after it
unsubscribed, complained or hard-bounced (exact event times), without consent,
or before it signed up. Events after the end of the history are cut off, as
in a real export.

Vectorized: numpy per campaign (a loop over campaigns, never over sends).
"""
from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from simulation.localtime import US_PER_DAY, US_PER_HOUR
from simulation.response import TYPE_CODE
from simulation.schema import EVENT_TYPES
from simulation.world import World

SLOTS = 10  # ring of recent campaign send times per contact (>= 7 days of campaigns, one campaign a day at most)
WEEK_US = 7 * US_PER_DAY
NEVER = np.iinfo(np.int64).max
SUPPRESSING = np.array([TYPE_CODE["unsubscribe"], TYPE_CODE["bounce"], TYPE_CODE["complaint"]], dtype=np.int8)


def plan_campaigns(world: World) -> pd.DataFrame:
    """One row per campaign: day, id, kind (blast/local), blast hour, audience share, variants, logged."""
    cfg = world.config
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 0xCA3]))
    days = pd.date_range(cfg.start_ts, periods=cfg.n_days, freq="D")
    rate = np.where(days.dayofweek >= 5, cfg.campaign_rate_weekend, cfg.campaign_rate_weekday)
    chosen = np.flatnonzero(rng.random(cfg.n_days) < rate)
    content_created = world.content["created_at"].to_numpy("datetime64[us]").astype(np.int64)
    content_ids = world.content["content_id"].to_numpy(np.int64)
    rows = []
    for i, d in enumerate(chosen):
        day = days[d]
        # local dates run up to a day ahead of UTC: offer only items that existed the day before
        available = content_ids[content_created < day.value // 1000 - US_PER_DAY]
        if len(available) == 0:
            continue
        k = min(int(rng.integers(cfg.variants_per_campaign[0], cfg.variants_per_campaign[1] + 1)), len(available))
        rows.append(dict(
            campaign_id=f"c{day:%Y%m%d}-{i:03d}",
            day=day,
            kind="blast" if rng.random() < cfg.blast_campaign_share else "local",
            blast_hour_utc=float(rng.uniform(11.0, 19.0)),
            audience_share=float(rng.uniform(*cfg.audience_share)),
            variants=tuple(int(x) for x in np.sort(rng.choice(available, size=k, replace=False))),
            logged=bool(rng.random() < cfg.logged_campaign_share),
        ))
    return pd.DataFrame(rows)


def _progress(enabled: bool, total: int):
    if not enabled:
        return nullcontext(None)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("[bold]simulating campaigns"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[sends]:,} sends"), TimeElapsedColumn(), transient=False)


def simulate_history(world: World, progress: bool = True, as_arrow: bool = False) -> dict:
    """The four event-log tables (contacts, content, sends, events) for `world`; deterministic.

    Sends and events are pandas DataFrames, or with `as_arrow` Arrow tables (what the
    event-log writer takes: no Python object per row, a fraction of the memory at 10^6
    contacts). Both hold the same data.
    """
    cfg = world.config
    model = world.response
    campaigns = plan_campaigns(world)
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 0x5E4D]))
    contacts = world.contacts
    n = len(contacts)
    contact_ids = contacts["contact_id"].to_numpy(np.int64)
    created = contacts["created_at"].to_numpy("datetime64[us]").astype(np.int64)
    suppressed_at = np.where(contacts["consent"].to_numpy(bool), NEVER, np.iinfo(np.int64).min)
    tz_codes = model.tz_codes
    recent_ring = np.full((SLOTS, n), np.iinfo(np.int64).min // 2, dtype=np.int64)
    start_us, end_us = cfg.start_ts.value // 1000, cfg.end_ts.value // 1000
    content_rows = {int(c): r for r, c in enumerate(world.content["content_id"].to_numpy(np.int64))}

    # per-campaign pieces, one list per column (so `_assemble` can free each column's pieces as it goes)
    parts_sends: dict[str, list] = {"camp": [], "rows": [], "ki": [], "t": []}
    parts_events: dict[str, list] = {"srow": [], "code": [], "when": [], "value": []}
    n_sends = 0
    with _progress(progress, len(campaigns)) as bar:
        task = bar.add_task("campaigns", total=len(campaigns), sends=0) if bar else None
        for ci_, camp in enumerate(campaigns.itertuples(index=False)):
            day_us = camp.day.value // 1000
            rows = np.flatnonzero(rng.random(n) < camp.audience_share)
            m = len(rows)
            if camp.kind == "blast":
                t = day_us + int(camp.blast_hour_utc * US_PER_HOUR) + rng.integers(0, 40 * 60_000_000, m)
            else:
                daytime = rng.random(m) < 0.85
                hour = np.where(daytime, rng.uniform(6.0, 22.5, m), rng.uniform(0.0, 24.0, m))
                t = model.clock.to_utc(tz_codes[rows], day_us + (hour * US_PER_HOUR).astype(np.int64))
            ok = (t > created[rows]) & (t < suppressed_at[rows]) & (t >= start_us) & (t < end_us)
            rows, t = rows[ok], t[ok]
            m = len(rows)
            variants = np.array([content_rows[v] for v in camp.variants])
            ki = variants[rng.integers(0, len(variants), m)]
            slots = recent_ring[:, rows]
            recent = ((slots >= (t - WEEK_US)) & (slots < t)).sum(axis=0)
            recent_ring[ci_ % SLOTS, rows] = t

            row, code, when, value = model.sample_arrays(rows, ki, t, recent, rng)
            stop = np.isin(code, SUPPRESSING)
            np.minimum.at(suppressed_at, rows[row[stop]], when[stop])

            for parts, values in ((parts_sends, (np.full(m, ci_, dtype=np.int32), rows, ki, t)),
                                  (parts_events, (row + n_sends, code, when, value))):
                for name, v in zip(parts, values):
                    parts[name].append(v)
            n_sends += m
            if bar:
                bar.update(task, advance=1, sends=n_sends)

    del recent_ring
    sends, events = _assemble(world, campaigns, parts_sends, parts_events, contact_ids, end_us)
    if not as_arrow:
        sends, events = sends.to_pandas(), events.to_pandas()
    return {"contacts": contacts, "content": world.content, "sends": sends, "events": events}


def _column(parts: dict[str, list], name: str, order: np.ndarray | None = None, dtype=np.int64) -> np.ndarray:
    """One column from its per-campaign pieces (removed from `parts` and freed), optionally reordered."""
    pieces = parts.pop(name)
    x = np.concatenate(pieces) if pieces else np.zeros(0, dtype)
    pieces.clear()
    return x if order is None else x[order]


def _utc(us: np.ndarray) -> pa.Array:
    """µs since the epoch as an Arrow UTC timestamp array (zero-copy)."""
    return pa.array(np.asarray(us, dtype=np.int64), type=pa.int64()).view(pa.timestamp("us", tz="UTC"))


def _assemble(world, campaigns, parts_sends, parts_events, contact_ids, end_us) -> tuple[pa.Table, pa.Table]:
    """Sends ordered by time and events by time, with fresh ids, as Arrow tables.

    Built column by column from the per-campaign pieces (each column's pieces are freed
    once it is built); strings are built by Arrow kernels (campaign names and event
    types taken from small dictionaries, decision ids formatted in Arrow).
    """
    t = _column(parts_sends, "t")
    order = np.argsort(t, kind="stable")
    t = t[order]
    new_send_id = np.empty(len(order), dtype=np.int64)
    new_send_id[order] = np.arange(len(order))
    camp = _column(parts_sends, "camp", order, np.int32)
    send_contact = contact_ids[_column(parts_sends, "rows", order)]
    content = world.content["content_id"].to_numpy(np.int64)[_column(parts_sends, "ki", order)]
    del order

    n_variants = np.array([len(v) for v in campaigns["variants"]]) if len(campaigns) else np.zeros(0, int)
    logged = campaigns["logged"].to_numpy(bool) if len(campaigns) else np.zeros(0, bool)
    names = pa.array(campaigns["campaign_id"].tolist() if len(campaigns) else [], type=pa.string())
    send_logged = logged[camp]
    positions = pa.array(np.arange(len(t), dtype=np.int64), mask=~send_logged)
    sends = pa.table({
        "send_id": np.arange(len(t), dtype=np.int64),
        "contact_id": send_contact,
        "campaign_id": pc.take(names, pa.array(camp)),
        "content_id": content,
        "sent_at": _utc(t),
        "decision_id": pc.binary_join_element_wise("d", pc.cast(positions, pa.string()), ""),
        "propensity": pa.array(1.0 / np.maximum(n_variants[camp], 1), mask=~send_logged),
    })
    del camp, content, positions, send_logged, t

    when = _column(parts_events, "when")
    keep = when < end_us
    when = when[keep]
    eorder = np.argsort(when)
    send_id = new_send_id[_column(parts_events, "srow")[keep][eorder]]
    del new_send_id
    code = _column(parts_events, "code", dtype=np.int8)[keep][eorder]
    value = _column(parts_events, "value", dtype=np.float64)[keep][eorder]
    events = pa.table({
        "event_id": np.arange(len(eorder), dtype=np.int64),
        "send_id": send_id,
        "contact_id": send_contact[send_id],
        "type": pc.take(pa.array(EVENT_TYPES, type=pa.string()), pa.array(code)),
        "occurred_at": _utc(when[eorder]),
        "value": pa.array(value, from_pandas=True),  # NaN (no value) -> null
    })
    return sends, events
