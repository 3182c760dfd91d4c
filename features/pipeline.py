"""Event log -> point-in-time feature snapshots (DuckDB over Parquet).

One row per contact per snapshot day. A snapshot at day D has
`event_timestamp` = D 00:00 UTC and is computed only from events that
happened strictly before it (days < D in UTC). Output tables (Parquet, in
`out_dir`), one per Feast feature view:

- `contact_engagement.parquet`  counts, smoothed rates, recency, decay, fatigue
- `contact_send_time.parquet`   local-time open profile (24 weekday + 24 weekend bins)
- `contact_topics.parquet`      per-topic smoothed click affinity
- `contact_profile.parquet`     attributes + email quality (event_timestamp = created_at)
- `content_features.parquet`    per content item per snapshot: traits + smoothed CTR

How it scales: events are reduced to one sparse row per (contact, day with
activity); running (cumulative) sums per contact are taken once; each
snapshot then reads its value at D, D-7, D-30 and D-90 through ASOF joins, so
a window count is `cum(D) - cum(D-w)`. The exponentially decayed score uses the
same trick: sum(w * 2^((t - t0)/h)) is cumulative, and the score at D is that
sum times 2^(-(D - t0)/h).

Smoothing (empirical-Bayes shrinkage, e.g. Efron & Morris 1975): a rate with
k successes in n trials becomes (k + a p) / (n + a), where p is the
population rate over the same trailing window at the same snapshot (so the
prior never sees the future either) and `a` is the prior strength in
pseudo-trials.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Iterable

import pyarrow.parquet as pq

from features.email_quality import email_quality

WINDOWS = (7, 30, 90)
COUNT_MEASURES = ("sends", "opens", "clicks", "conversions")
TABLE_FILES = {
    "contact_engagement": "contact_engagement.parquet",
    "contact_send_time": "contact_send_time.parquet",
    "contact_topics": "contact_topics.parquet",
    "contact_profile": "contact_profile.parquet",
    "content_features": "content_features.parquet",
}


@dataclass(frozen=True)
class PipelineConfig:
    half_life_days: float = 14.0
    cadence_days: int = 1
    prior_strength: float = 10.0          # pseudo-sends for open/click/conversion rates
    profile_prior_strength: float = 5.0   # pseudo-opens for the hour profile
    engagement_weights: dict = field(default_factory=lambda: {"open": 1.0, "click": 3.0, "conversion": 10.0})
    memory_limit: str = "3GB"
    threads: int = 2

    def __post_init__(self):
        if self.half_life_days <= 0:
            raise ValueError(f"half_life_days must be > 0, got {self.half_life_days}")
        if self.cadence_days < 1:
            raise ValueError(f"cadence_days must be >= 1, got {self.cadence_days}")
        if self.prior_strength < 0 or self.profile_prior_strength < 0:
            raise ValueError("prior strengths must be >= 0")


def topic_slug(topic: str) -> str:
    """A topic name as a feature-name suffix: lower case, [a-z0-9_]."""
    return re.sub(r"[^a-z0-9]+", "_", str(topic).lower()).strip("_") or "unknown"


def _check_inputs(events_dir: Path) -> None:
    """Cheap boundary validation from the Parquet footers (the full check is in simulation.eventlog)."""
    from simulation.eventlog import SchemaError, table_path
    from simulation.schema import TABLES

    for name, schema in TABLES.items():
        path = table_path(events_dir, name)
        if not path.exists():
            raise FileNotFoundError(f"{name}: no such file {path} (run `inbox simulate` or bring your own event log)")
        got = pq.read_schema(path)
        for col in schema.columns:
            if col.name not in got.names:
                raise SchemaError(name, col.name, "missing column")
            t = got.field(col.name).type
            if str(col.type).startswith("timestamp") and getattr(t, "tz", None) is None:
                raise SchemaError(name, col.name, f"expected a UTC timestamp, got {t}")


def snapshot_days(first: date, last: date, cadence_days: int) -> list[date]:
    """Snapshot days from the day after `first` through the day after `last`, every `cadence_days`."""
    days, d = [], first + timedelta(days=1)
    while d <= last + timedelta(days=1):
        days.append(d)
        d += timedelta(days=cadence_days)
    return days


def _connect(cfg: PipelineConfig, tmp_dir: Path):
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET memory_limit='{cfg.memory_limit}'")
    con.execute(f"SET threads={int(cfg.threads)}")
    con.execute(f"SET temp_directory='{tmp_dir}'")
    con.execute("SET preserve_insertion_order=false")
    con.execute("SET TimeZone='UTC'")
    return con


def build_features(
    events_dir,
    out_dir,
    as_of_dates: Iterable[date | datetime | str] | None = None,
    half_life_days: float = 14.0,
    config: PipelineConfig | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Build every feature table from the event log in `events_dir` into `out_dir`.

    `as_of_dates`: snapshot days (UTC midnight); default every `cadence_days` from the
    day after the first send to the day after the last event. Returns a summary dict
    {table: rows, "snapshots": n, "seconds": s, "topics": [...]}.
    """
    cfg = config or PipelineConfig(half_life_days=half_life_days)
    events_dir, out_dir = Path(events_dir), Path(out_dir)
    _check_inputs(events_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp_dir = out_dir / ".duckdb_tmp"
    tmp_dir.mkdir(exist_ok=True)
    say = progress or (lambda msg: None)
    t_start = time.perf_counter()
    con = _connect(cfg, tmp_dir)
    try:
        for name in ("contacts", "content", "sends", "events"):
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{events_dir / (name + '.parquet')}')")
        topics = [r[0] for r in con.execute("SELECT DISTINCT topic FROM content ORDER BY 1").fetchall()]
        slugs = sorted({topic_slug(t) for t in topics})
        first, last = con.execute(
            "SELECT least((SELECT min(sent_at) FROM sends), (SELECT min(occurred_at) FROM events))::DATE,"
            " greatest((SELECT max(sent_at) FROM sends), (SELECT max(occurred_at) FROM events))::DATE"
        ).fetchone()
        if first is None:
            raise ValueError(f"sends: the event log in {events_dir} has no sends; nothing to build features from")
        days = _snapshot_list(as_of_dates, first, last, cfg.cadence_days)
        span_half_lives = ((max(days) - first).days + 1) / cfg.half_life_days
        if span_half_lives > 900:
            raise ValueError(
                f"half_life_days={cfg.half_life_days} is too short for {span_half_lives * cfg.half_life_days:.0f} "
                "days of history (decay underflows); use a longer half-life"
            )
        con.execute("CREATE TEMP TABLE snaps AS SELECT unnest(?::DATE[]) AS snap", [days])
        con.execute(f"SET VARIABLE t0 = DATE '{first.isoformat()}'")

        say("reducing events to daily activity")
        _daily_tables(con, cfg, topics)
        say("engagement features")
        n_eng = _write_engagement(con, cfg, out_dir)
        say("send-time profiles")
        n_st = _write_send_time(con, cfg, out_dir)
        say("topic affinities")
        n_top = _write_topics(con, cfg, topics, out_dir)
        say("content features")
        n_content = _write_content(con, cfg, out_dir)
        say("profiles and email quality")
        n_prof = _write_profile(con, out_dir)
    finally:
        con.close()
        for p in tmp_dir.glob("*"):
            p.unlink(missing_ok=True)
        tmp_dir.rmdir()
    return {
        "contact_engagement": n_eng,
        "contact_send_time": n_st,
        "contact_topics": n_top,
        "contact_profile": n_prof,
        "content_features": n_content,
        "snapshots": len(days),
        "first_snapshot": min(days).isoformat(),
        "last_snapshot": max(days).isoformat(),
        "topics": slugs,
        "seconds": round(time.perf_counter() - t_start, 2),
    }


def _snapshot_list(as_of_dates, first: date, last: date, cadence: int) -> list[date]:
    if as_of_dates is None:
        return snapshot_days(first, last, cadence)
    out = []
    for d in as_of_dates:
        if isinstance(d, str):
            d = date.fromisoformat(d[:10])
        elif isinstance(d, datetime):
            if d.tzinfo is None:
                raise ValueError(f"as_of_dates: naive datetime {d}; use timezone-aware UTC")
            d = d.astimezone(timezone.utc)
            if (d.hour, d.minute, d.second, d.microsecond) != (0, 0, 0, 0):
                raise ValueError(f"as_of_dates: {d} is not midnight UTC (snapshots are daily)")
            d = d.date()
        elif not isinstance(d, date):
            raise ValueError(f"as_of_dates: expected dates, got {type(d).__name__}")
        out.append(d)
    if not out:
        raise ValueError("as_of_dates is empty")
    return sorted(set(out))


def _daily_tables(con, cfg: PipelineConfig, topics: list[str]) -> None:
    """Sparse per-(contact, day) activity and its running sums per contact."""
    w = cfg.engagement_weights
    h = float(cfg.half_life_days)
    # first open / first click per send: "opens" and "clicks" count distinct sends
    con.execute(
        """
        CREATE TEMP TABLE firsts AS
        SELECT send_id,
               min(occurred_at) FILTER (WHERE type = 'open')  AS first_open,
               min(occurred_at) FILTER (WHERE type = 'click') AS first_click
        FROM events WHERE type IN ('open', 'click') GROUP BY send_id
        """
    )
    # decayed weight of an event at time t: w * 2^((t - t0)/h), t0 = first day (see module doc)
    decay = "pow(2.0, epoch({ts} - CAST(getvariable('t0') AS TIMESTAMPTZ)) / 86400.0 / " + f"{h})"
    topic_cols_send = ", ".join(
        f"count(*) FILTER (WHERE topic = '{t}')::INTEGER AS sends_t_{topic_slug(t)}" for t in topics
    )
    topic_cols_click = ", ".join(
        f"count(*) FILTER (WHERE topic = '{t}')::INTEGER AS clicks_t_{topic_slug(t)}" for t in topics
    )
    con.execute(
        f"""
        CREATE TEMP TABLE daily AS
        WITH s AS (
            SELECT s.contact_id, s.sent_at::DATE AS day, count(*)::INTEGER AS sends, max(s.sent_at) AS last_send_at,
                   {topic_cols_send}
            FROM sends s JOIN content c USING (content_id) GROUP BY ALL
        ), o AS (
            SELECT s.contact_id, f.first_open::DATE AS day, count(*)::INTEGER AS opens,
                   max(f.first_open) AS last_open_at,
                   sum({w.get('open', 0.0)} * {decay.format(ts='f.first_open')}) AS eng_decay
            FROM firsts f JOIN sends s USING (send_id) WHERE f.first_open IS NOT NULL GROUP BY ALL
        ), k AS (
            SELECT s.contact_id, f.first_click::DATE AS day, count(*)::INTEGER AS clicks,
                   max(f.first_click) AS last_click_at,
                   sum({w.get('click', 0.0)} * {decay.format(ts='f.first_click')}) AS eng_decay,
                   {topic_cols_click}
            FROM firsts f JOIN sends s USING (send_id) JOIN content c ON c.content_id = s.content_id
            WHERE f.first_click IS NOT NULL GROUP BY ALL
        ), e AS (
            SELECT contact_id, occurred_at::DATE AS day,
                   count(*) FILTER (WHERE type = 'conversion')::INTEGER AS conversions,
                   coalesce(sum(value) FILTER (WHERE type = 'conversion'), 0) AS revenue,
                   count(*) FILTER (WHERE type = 'unsubscribe')::INTEGER AS unsubscribes,
                   count(*) FILTER (WHERE type = 'bounce')::INTEGER AS bounces,
                   count(*) FILTER (WHERE type = 'complaint')::INTEGER AS complaints,
                   coalesce(sum({w.get('conversion', 0.0)} * {decay.format(ts='occurred_at')})
                            FILTER (WHERE type = 'conversion'), 0) AS eng_decay
            FROM events WHERE type IN ('conversion', 'unsubscribe', 'bounce', 'complaint') GROUP BY ALL
        ), u AS (
            SELECT * FROM s UNION ALL BY NAME SELECT * FROM o UNION ALL BY NAME SELECT * FROM k
            UNION ALL BY NAME SELECT * FROM e
        )
        SELECT contact_id, day,
               coalesce(sum(sends), 0)::INTEGER AS sends, coalesce(sum(opens), 0)::INTEGER AS opens,
               coalesce(sum(clicks), 0)::INTEGER AS clicks, coalesce(sum(conversions), 0)::INTEGER AS conversions,
               coalesce(sum(revenue), 0) AS revenue, coalesce(sum(unsubscribes), 0)::INTEGER AS unsubscribes,
               coalesce(sum(bounces), 0)::INTEGER AS bounces, coalesce(sum(complaints), 0)::INTEGER AS complaints,
               coalesce(sum(eng_decay), 0) AS eng_decay,
               max(last_send_at) AS last_send_at, max(last_open_at) AS last_open_at,
               max(last_click_at) AS last_click_at,
               {", ".join(f"coalesce(sum(sends_t_{topic_slug(t)}), 0)::INTEGER AS sends_t_{topic_slug(t)}" for t in topics)},
               {", ".join(f"coalesce(sum(clicks_t_{topic_slug(t)}), 0)::INTEGER AS clicks_t_{topic_slug(t)}" for t in topics)}
        FROM u GROUP BY contact_id, day
        """
    )
    sums = ["sends", "opens", "clicks", "conversions", "revenue", "unsubscribes", "bounces", "complaints", "eng_decay"]
    sums += [f"sends_t_{topic_slug(t)}" for t in topics] + [f"clicks_t_{topic_slug(t)}" for t in topics]
    win = "OVER (PARTITION BY contact_id ORDER BY day ROWS UNBOUNDED PRECEDING)"
    con.execute(
        f"""
        CREATE TEMP TABLE cum AS
        WITH c AS (
            SELECT contact_id, day, (day + 1) AS valid_from, opens AS day_opens,
                   {", ".join(f"sum({m}) {win} AS c_{m}" for m in sums)},
                   max(last_send_at) {win} AS last_send_at, max(last_open_at) {win} AS last_open_at,
                   max(last_click_at) {win} AS last_click_at
            FROM daily
        )
        SELECT * EXCLUDE (day_opens),
               max(CASE WHEN day_opens > 0 THEN c_sends END) {win} AS c_sends_at_last_open
        FROM c
        """
    )
    # population totals per day, for point-in-time priors
    con.execute(
        f"""
        CREATE TEMP TABLE pop AS
        SELECT sn.snap,
               {", ".join(f"coalesce(sum(d.{m}) FILTER (WHERE d.day >= sn.snap - {wd}), 0) AS p_{m}_{wd}d"
                          for wd in WINDOWS for m in ("sends", "opens", "clicks", "conversions"))},
               {", ".join(f"coalesce(sum(d.sends_t_{topic_slug(t)}) FILTER (WHERE d.day >= sn.snap - 90), 0) AS p_sends_t_{topic_slug(t)}"
                          for t in topics)},
               {", ".join(f"coalesce(sum(d.clicks_t_{topic_slug(t)}) FILTER (WHERE d.day >= sn.snap - 90), 0) AS p_clicks_t_{topic_slug(t)}"
                          for t in topics)}
        FROM snaps sn LEFT JOIN (SELECT day, {", ".join(f"sum({m}) AS {m}" for m in sums)} FROM daily GROUP BY day) d
          ON d.day < sn.snap
        GROUP BY sn.snap
        """
    )
    con.execute(
        """
        CREATE TEMP TABLE grid AS
        SELECT c.contact_id, sn.snap, sn.snap - 7 AS snap_7, sn.snap - 30 AS snap_30, sn.snap - 90 AS snap_90
        FROM contacts c JOIN snaps sn ON c.created_at < CAST(sn.snap AS TIMESTAMPTZ)
        """
    )


def _rate(k: str, n: str, p: str, a: float) -> str:
    """Shrunk rate (k + a p) / (n + a); p falls back to 0 when the population has no trials."""
    if a == 0:
        return f"CASE WHEN {n} > 0 THEN {k} / {n} ELSE coalesce({p}, 0.0) END"
    return f"({k} + {a} * coalesce({p}, 0.0)) / ({n} + {a})"


def _copy(con, query: str, path: Path) -> int:
    tmp = path.with_name(f".{path.name}.tmp")
    con.execute(f"COPY ({query}) TO '{tmp}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 262144)")
    tmp.replace(path)
    return pq.ParquetFile(path).metadata.num_rows


def _write_engagement(con, cfg: PipelineConfig, out_dir: Path) -> int:
    a = cfg.prior_strength
    h = float(cfg.half_life_days)

    def at(alias: str, m: str) -> str:
        return f"coalesce({alias}.c_{m}, 0)"

    cols = []
    for wd, alias in ((7, "b7"), (30, "b30"), (90, "b90")):
        for m in COUNT_MEASURES:
            cols.append(f"({at('a', m)} - {at(alias, m)})::BIGINT AS {m}_{wd}d")
    cols.append(f"({at('a', 'revenue')} - {at('b90', 'revenue')})::DOUBLE AS revenue_90d")
    for wd, alias in ((30, "b30"), (90, "b90")):
        n = f"({at('a', 'sends')} - {at(alias, 'sends')})"
        for m, name in (("opens", "open_rate"), ("clicks", "click_rate")):
            k = f"({at('a', m)} - {at(alias, m)})"
            cols.append(f"{_rate(k, n, f'p.p_{m}_{wd}d / nullif(p.p_sends_{wd}d, 0)', a)} AS {name}_{wd}d")
    n90 = f"({at('a', 'sends')} - {at('b90', 'sends')})"
    k90 = f"({at('a', 'conversions')} - {at('b90', 'conversions')})"
    cols.append(f"{_rate(k90, n90, 'p.p_conversions_90d / nullif(p.p_sends_90d, 0)', a)} AS conversion_rate_90d")
    snap_ts = "CAST(g.snap AS TIMESTAMPTZ)"
    cols += [
        f"epoch({snap_ts} - a.last_open_at) / 86400.0 AS days_since_last_open",
        f"epoch({snap_ts} - a.last_click_at) / 86400.0 AS days_since_last_click",
        f"epoch({snap_ts} - a.last_send_at) / 86400.0 AS days_since_last_send",
        f"{at('a', 'eng_decay')} * pow(2.0, -(g.snap - getvariable('t0')) / {h}) AS engagement_score",
        f"({at('a', 'sends')} - coalesce(a.c_sends_at_last_open, 0))::BIGINT AS sends_since_last_open",
        f"{at('a', 'sends')}::BIGINT AS sends_total",
        f"{at('a', 'opens')}::BIGINT AS opens_total",
        f"{at('a', 'clicks')}::BIGINT AS clicks_total",
        f"{at('a', 'conversions')}::BIGINT AS conversions_total",
        f"({at('a', 'unsubscribes')} > 0) AS unsubscribed",
        f"({at('a', 'bounces')} > 0) AS bounced",
        f"({at('a', 'complaints')} > 0) AS complained",
        f"epoch({snap_ts} - ct.created_at) / 86400.0 AS tenure_days",
    ]
    query = f"""
        SELECT g.contact_id, {snap_ts} AS event_timestamp, {", ".join(cols)}
        FROM grid g
        JOIN contacts ct ON ct.contact_id = g.contact_id
        JOIN pop p ON p.snap = g.snap
        ASOF LEFT JOIN cum a ON g.contact_id = a.contact_id AND g.snap >= a.valid_from
        ASOF LEFT JOIN (SELECT contact_id, valid_from, c_sends, c_opens, c_clicks, c_conversions FROM cum) b7
            ON g.contact_id = b7.contact_id AND g.snap_7 >= b7.valid_from
        ASOF LEFT JOIN (SELECT contact_id, valid_from, c_sends, c_opens, c_clicks, c_conversions FROM cum) b30
            ON g.contact_id = b30.contact_id AND g.snap_30 >= b30.valid_from
        ASOF LEFT JOIN (SELECT contact_id, valid_from, c_sends, c_opens, c_clicks, c_conversions, c_revenue FROM cum) b90
            ON g.contact_id = b90.contact_id AND g.snap_90 >= b90.valid_from
    """
    return _copy(con, query, out_dir / TABLE_FILES["contact_engagement"])


def _write_send_time(con, cfg: PipelineConfig, out_dir: Path) -> int:
    """Local-time open profile: smoothed shares of first opens per local hour, weekday vs weekend."""
    a = cfg.profile_prior_strength
    bins = [(kind, hr) for kind in ("wd", "we") for hr in range(24)]
    # first opens by the contact's local hour and weekday (ISO dow 6, 7 = weekend)
    con.execute(
        f"""
        CREATE TEMP TABLE open_hours_daily AS
        WITH lo AS (
            SELECT s.contact_id, f.first_open::DATE AS day, timezone(ct.timezone, f.first_open) AS local_ts
            FROM firsts f JOIN sends s USING (send_id) JOIN contacts ct ON ct.contact_id = s.contact_id
            WHERE f.first_open IS NOT NULL
        )
        SELECT contact_id, day,
               {", ".join(f"count(*) FILTER (WHERE hour(local_ts) = {hr} AND isodow(local_ts) {'<= 5' if kind == 'wd' else '>= 6'})::INTEGER AS n_{kind}_{hr:02d}" for kind, hr in bins)}
        FROM lo GROUP BY contact_id, day
        """
    )
    con.execute(
        f"""
        CREATE TEMP TABLE open_hours AS
        SELECT contact_id, day + 1 AS valid_from,
               {", ".join(f"sum(n_{kind}_{hr:02d}) OVER w AS c_{kind}_{hr:02d}" for kind, hr in bins)}
        FROM open_hours_daily WINDOW w AS (PARTITION BY contact_id ORDER BY day ROWS UNBOUNDED PRECEDING)
        """
    )
    # population prior: shares of all first opens before the snapshot
    con.execute(
        f"""
        CREATE TEMP TABLE pop_hours AS
        WITH per_day AS (
            SELECT day, {", ".join(f"sum(n_{kind}_{hr:02d}) AS n_{kind}_{hr:02d}" for kind, hr in bins)}
            FROM open_hours_daily GROUP BY day
        )
        SELECT sn.snap, {", ".join(f"coalesce(sum(d.n_{kind}_{hr:02d}), 0) AS q_{kind}_{hr:02d}" for kind, hr in bins)}
        FROM snaps sn LEFT JOIN per_day d ON d.day < sn.snap GROUP BY sn.snap
        """
    )
    cols = []
    for kind in ("wd", "we"):
        n = " + ".join(f"coalesce(o.c_{kind}_{hr:02d}, 0)" for hr in range(24))
        qn = " + ".join(f"q.q_{kind}_{hr:02d}" for hr in range(24))
        cols.append(f"({n})::BIGINT AS opens_{'weekday' if kind == 'wd' else 'weekend'}")
        for hr in range(24):
            prior = f"CASE WHEN ({qn}) > 0 THEN q.q_{kind}_{hr:02d} / ({qn}) ELSE {1 / 24} END"
            cols.append(
                f"(coalesce(o.c_{kind}_{hr:02d}, 0) + {a} * ({prior})) / (({n}) + {a}) AS open_share_{kind}_h{hr:02d}"
            )
    query = f"""
        WITH base AS (
            SELECT g.contact_id, CAST(g.snap AS TIMESTAMPTZ) AS event_timestamp, {", ".join(cols)}
            FROM grid g JOIN pop_hours q ON q.snap = g.snap
            ASOF LEFT JOIN open_hours o ON g.contact_id = o.contact_id AND g.snap >= o.valid_from
        )
        SELECT *,
            (list_position([{", ".join(f"open_share_wd_h{hr:02d}" for hr in range(24))}],
                           greatest({", ".join(f"open_share_wd_h{hr:02d}" for hr in range(24))})) - 1)::BIGINT
                AS best_hour_weekday,
            (list_position([{", ".join(f"open_share_we_h{hr:02d}" for hr in range(24))}],
                           greatest({", ".join(f"open_share_we_h{hr:02d}" for hr in range(24))})) - 1)::BIGINT
                AS best_hour_weekend
        FROM base
    """
    return _copy(con, query, out_dir / TABLE_FILES["contact_send_time"])


def _write_topics(con, cfg: PipelineConfig, topics: list[str], out_dir: Path) -> int:
    a = cfg.prior_strength
    cols = []
    for t in topics:
        s = topic_slug(t)
        k = f"(coalesce(a.c_clicks_t_{s}, 0) - coalesce(b.c_clicks_t_{s}, 0))"
        n = f"(coalesce(a.c_sends_t_{s}, 0) - coalesce(b.c_sends_t_{s}, 0))"
        cols.append(f"{_rate(k, n, f'p.p_clicks_t_{s} / nullif(p.p_sends_t_{s}, 0)', a)} AS click_affinity_{s}")
    tcols = ", ".join(f"c_sends_t_{topic_slug(t)}, c_clicks_t_{topic_slug(t)}" for t in topics)
    query = f"""
        SELECT g.contact_id, CAST(g.snap AS TIMESTAMPTZ) AS event_timestamp, {", ".join(cols)}
        FROM grid g JOIN pop p ON p.snap = g.snap
        ASOF LEFT JOIN (SELECT contact_id, valid_from, {tcols} FROM cum) a
            ON g.contact_id = a.contact_id AND g.snap >= a.valid_from
        ASOF LEFT JOIN (SELECT contact_id, valid_from, {tcols} FROM cum) b
            ON g.contact_id = b.contact_id AND g.snap_90 >= b.valid_from
    """
    return _copy(con, query, out_dir / TABLE_FILES["contact_topics"])


def _write_content(con, cfg: PipelineConfig, out_dir: Path) -> int:
    """Per content item and snapshot: traits and smoothed lifetime open/click rates."""
    a = cfg.prior_strength
    con.execute(
        """
        CREATE TEMP TABLE content_cum AS
        WITH d AS (
            SELECT s.content_id, s.sent_at::DATE AS day, count(*) AS sends, 0 AS opens, 0 AS clicks
            FROM sends s GROUP BY ALL
            UNION ALL
            SELECT s.content_id, f.first_open::DATE, 0, 1, 0 FROM firsts f JOIN sends s USING (send_id)
            WHERE f.first_open IS NOT NULL
            UNION ALL
            SELECT s.content_id, f.first_click::DATE, 0, 0, 1 FROM firsts f JOIN sends s USING (send_id)
            WHERE f.first_click IS NOT NULL
        ), g AS (SELECT content_id, day, sum(sends) AS sends, sum(opens) AS opens, sum(clicks) AS clicks
                 FROM d GROUP BY ALL)
        SELECT content_id, day + 1 AS valid_from,
               sum(sends) OVER w AS c_sends, sum(opens) OVER w AS c_opens, sum(clicks) OVER w AS c_clicks
        FROM g WINDOW w AS (PARTITION BY content_id ORDER BY day ROWS UNBOUNDED PRECEDING)
        """
    )
    query = f"""
        WITH grid_c AS (
            SELECT c.*, sn.snap FROM content c JOIN snaps sn ON c.created_at < CAST(sn.snap AS TIMESTAMPTZ)
        ), popc AS (
            SELECT snap, sum(coalesce(x.c_sends, 0)) AS ps, sum(coalesce(x.c_opens, 0)) AS po,
                   sum(coalesce(x.c_clicks, 0)) AS pk
            FROM grid_c g ASOF LEFT JOIN content_cum x ON g.content_id = x.content_id AND g.snap >= x.valid_from
            GROUP BY snap
        )
        SELECT g.content_id, CAST(g.snap AS TIMESTAMPTZ) AS event_timestamp,
               g.topic AS content_topic, g.format AS content_format,
               g.subject_length::BIGINT AS subject_length, g.has_personalization, g.has_urgency, g.has_emoji,
               epoch(CAST(g.snap AS TIMESTAMPTZ) - g.created_at) / 86400.0 AS content_age_days,
               coalesce(x.c_sends, 0)::BIGINT AS content_sends_total,
               {_rate('coalesce(x.c_opens, 0)', 'coalesce(x.c_sends, 0)', 'pc.po / nullif(pc.ps, 0)', a)} AS content_open_rate,
               {_rate('coalesce(x.c_clicks, 0)', 'coalesce(x.c_sends, 0)', 'pc.pk / nullif(pc.ps, 0)', a)} AS content_click_rate
        FROM grid_c g JOIN popc pc ON pc.snap = g.snap
        ASOF LEFT JOIN content_cum x ON g.content_id = x.content_id AND g.snap >= x.valid_from
    """
    return _copy(con, query, out_dir / TABLE_FILES["content_features"])


def _write_profile(con, out_dir: Path) -> int:
    """Static attributes, valid from the contact's creation; email quality checked per distinct address."""
    import pyarrow as pa

    prof = con.execute(
        """SELECT contact_id, created_at AS event_timestamp, email, industry, company_size, seniority,
                  country, timezone, signup_source, consent FROM contacts"""
    ).df()
    quality = email_quality(prof.pop("email"))
    prof = prof.join(quality)
    table = pa.Table.from_pandas(prof, preserve_index=False)
    path = out_dir / TABLE_FILES["contact_profile"]
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp, compression="zstd")
    tmp.replace(path)
    return table.num_rows
