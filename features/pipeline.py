"""Event log -> point-in-time feature snapshots (DuckDB over Parquet).

One row per contact per snapshot day. A snapshot at day D has
`event_timestamp` = D 00:00 UTC and is computed only from events that
happened strictly before it (days < D in UTC). Output tables (Parquet, in
`out_dir`; all moved into place together when every one is written), one per
Feast feature view:

- `contact_engagement.parquet`  counts, smoothed rates, recency, decay, fatigue
- `contact_send_time.parquet`   local-time open profile (24 weekday + 24 weekend bins)
- `contact_send_hours.parquet`  SPARSE: cumulative sends and opened sends by local SEND hour
                                (sent_{wd,we}_hHH, sent_opened_{wd,we}_hHH, sends_weekday/weekend),
                                one row per contact on the snapshots where they change
                                (see `features.send_hours`; its Feast view never expires)
- `contact_topics.parquet`      per-topic smoothed click affinity
- `contact_profile.parquet`     attributes + email quality (event_timestamp = created_at)
- `content_features.parquet`    per content item per snapshot: traits + smoothed CTR

How it scales: DuckDB reduces the event log to per-fact numpy arrays (sends,
first opens, first clicks, other events); the snapshot engine
(`features.snapshots`) then works through contacts in chunks, taking running
(cumulative) sums over days once per chunk, so a window count is
`cum(D) - cum(D-w)`. The exponentially decayed score uses the same trick:
sum(w * 2^((t - t0)/h)) is cumulative, and the score at D is that sum times
2^(-(D - t0)/h). Each chunk's tables are built against declared schemas
(`features.table_schemas`) and streamed to Parquet (`features.parquet_sink`),
contact-major. Memory grows with the number of events, not with contacts x days.

Smoothing (empirical-Bayes shrinkage, e.g. Efron & Morris 1975): a rate with
k successes in n trials becomes (k + a p) / (n + a), where p is the
population rate over the same trailing window at the same snapshot (so the
prior never sees the future either) and `a` is the prior strength in
pseudo-trials.
"""
from __future__ import annotations

import os
import re
import shutil
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Iterable

import pyarrow.parquet as pq

from features.email_quality import email_quality
from features.parquet_sink import ParquetSink
from features.snapshots import BLOCK, EventArrays, PopulationPriors, SnapshotEngine, population_priors
from simulation.eventlog import SchemaError, sql_file_list, table_files

TABLE_FILES = {
    "contact_engagement": "contact_engagement.parquet",
    "contact_send_time": "contact_send_time.parquet",
    "contact_send_hours": "contact_send_hours.parquet",
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
    chunk_contacts: int = 0               # contacts per snapshot chunk; 0 = sized from the number of days


    def __post_init__(self):
        if self.half_life_days <= 0:
            raise ValueError(f"half_life_days must be > 0, got {self.half_life_days}")
        if self.cadence_days < 1:
            raise ValueError(f"cadence_days must be >= 1, got {self.cadence_days}")
        if self.chunk_contacts < 0:
            raise ValueError(f"chunk_contacts must be >= 0, got {self.chunk_contacts}")
        if self.prior_strength < 0 or self.profile_prior_strength < 0:
            raise ValueError("prior strengths must be >= 0")


def topic_slug(topic: str) -> str:
    """A topic name as a feature-name suffix: lower case, [a-z0-9_]."""
    return re.sub(r"[^a-z0-9]+", "_", str(topic).lower()).strip("_") or "unknown"


def _check_inputs(events_dir: Path) -> None:
    """Cheap boundary validation from the Parquet footers (the full check is in simulation.eventlog)."""
    from simulation.eventlog import table_path
    from simulation.schema import TABLES

    for name, schema in TABLES.items():
        files = table_files(events_dir, name)
        if not files:
            raise FileNotFoundError(f"{name}: no such file {table_path(events_dir, name)} "
                                    "(run `inbox simulate` or bring your own event log)")
        for got, col in ((got, col) for got in map(pq.read_schema, files) for col in schema.columns):
            if col.name not in got.names:
                raise SchemaError(name, col.name, "missing column")
            t = got.field(col.name).type
            if str(col.type).startswith("timestamp") and getattr(t, "tz", None) is None:
                raise SchemaError(name, col.name, f"expected a UTC timestamp, got {t}")


def _dayno(d: date) -> int:
    return (d - date(1970, 1, 1)).days


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
    con.execute("CREATE MACRO dayno(ts) AS (epoch_us(ts) // 86400000000)::INTEGER")
    con.execute("CREATE MACRO days_between(snap, ts) AS (snap::BIGINT * 86400000000 - epoch_us(ts)) / 86400e6")
    return con


def build_features(
    events_dir,
    out_dir,
    as_of_dates: Iterable[date | datetime | str] | None = None,
    half_life_days: float = 14.0,
    config: PipelineConfig | None = None,
    progress: Callable[[str], None] | None = None,
    contact_snapshots: Callable | None = None,
) -> dict:
    """Build every feature table from the event log in `events_dir` into `out_dir`.

    `as_of_dates`: snapshot days (UTC midnight); default every `cadence_days` from the
    day after the first send to the day after the last event. Returns a summary dict
    {table: rows, "snapshots": n, "seconds": s, "topics": [...]}. `contact_snapshots(ev, days,
    cfg, out_dir, say) -> {table: rows}` runs the snapshot engine and writes the four contact
    tables (default: in this process, chunk by chunk; `features.spark_build`: on Spark).
    """
    cfg = config or PipelineConfig(half_life_days=half_life_days)
    events_dir, out_dir = Path(events_dir), Path(out_dir)
    _check_inputs(events_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # every table is written into a staging directory and moved into place only when all are
    # in: a failed build leaves the previous tables as they were, never a mix of old and new
    stage = out_dir / f".build-{os.getpid()}"
    stage.mkdir(exist_ok=True)
    tmp_dir = stage / ".duckdb_tmp"
    tmp_dir.mkdir(exist_ok=True)
    say = progress or (lambda msg: None)
    t_start = time.perf_counter()
    con = _connect(cfg, tmp_dir)
    try:
        for name in ("contacts", "content", "sends", "events"):
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet({sql_file_list(table_files(events_dir, name))})")
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
        # day numbers (days since 1970-01-01 UTC) everywhere: integer math, no time-zone library calls
        con.execute(
            "CREATE TEMP TABLE snaps AS SELECT unnest(?::INTEGER[]) AS snap, unnest(?::TIMESTAMPTZ[]) AS snap_ts",
            [[_dayno(d) for d in days], [datetime(d.year, d.month, d.day, tzinfo=timezone.utc) for d in days]],
        )

        say("reducing events")
        ev = _event_arrays(con, topics)
        say("contact snapshots")
        counts = (contact_snapshots or _write_contact_snapshots)(ev, days, cfg, stage, say)
        del ev  # the facts: the largest thing in memory, not needed by the steps below
        say("content features")
        n_content = _write_content(con, cfg, stage)
        say("profiles and email quality")
        n_prof = _write_profile(con, stage)
        con.close()
        for file in TABLE_FILES.values():
            (stage / file).replace(out_dir / file)
    finally:
        con.close()
        shutil.rmtree(stage, ignore_errors=True)
    return {
        **counts,
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


def _event_arrays(con, topics: list[str]) -> EventArrays:
    """Per-fact numpy arrays (contact positions, µs times) for the snapshot engine."""
    import numpy as np

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
    contacts = con.execute(
        "SELECT contact_id, epoch_us(created_at) AS created_us, timezone FROM contacts ORDER BY contact_id"
    ).fetchnumpy()
    ids = np.asarray(contacts["contact_id"], dtype=np.int64)
    zones, tz_codes = np.unique(np.asarray(contacts["timezone"], dtype=object).astype(str), return_inverse=True)
    topic_case = "CASE c.topic " + " ".join(f"WHEN '{t.replace(chr(39), chr(39) * 2)}' THEN {i}" for i, t in enumerate(topics)) + " END"
    sends = con.execute(
        f"SELECT s.contact_id, epoch_us(s.sent_at) AS t, {topic_case} AS topic FROM sends s JOIN content c USING (content_id)"
    ).fetchnumpy()
    opens = con.execute(
        "SELECT s.contact_id, epoch_us(f.first_open) AS t, epoch_us(s.sent_at) AS st FROM firsts f JOIN sends s USING (send_id) "
        "WHERE f.first_open IS NOT NULL"
    ).fetchnumpy()
    clicks = con.execute(
        f"SELECT s.contact_id, epoch_us(f.first_click) AS t, {topic_case} AS topic FROM firsts f "
        "JOIN sends s USING (send_id) JOIN content c ON c.content_id = s.content_id WHERE f.first_click IS NOT NULL"
    ).fetchnumpy()
    other = con.execute(
        "SELECT contact_id, epoch_us(occurred_at) AS t, "
        "CASE type WHEN 'conversion' THEN 0 WHEN 'unsubscribe' THEN 1 WHEN 'bounce' THEN 2 ELSE 3 END AS kind, "
        "coalesce(value, 0.0) AS value FROM events WHERE type IN ('conversion', 'unsubscribe', 'bounce', 'complaint')"
    ).fetchnumpy()

    lo_id = int(ids[0]) if len(ids) else 0
    span = int(ids[-1]) - lo_id + 1 if len(ids) else 0
    # ids in a compact range (the usual case): a lookup table instead of a binary search per fact
    lookup = np.full(span, -1, dtype=np.int64) if 0 < span <= 4 * len(ids) + 1024 else None
    if lookup is not None:
        lookup[ids - lo_id] = np.arange(len(ids))

    def pos(raw, table):
        c = np.asarray(raw, dtype=np.int64)
        if lookup is not None:
            off = c - lo_id
            inside = (off >= 0) & (off < span)
            p = lookup[np.where(inside, off, 0)]
            bad = ~inside | (p < 0)
        else:
            p = np.searchsorted(ids, c)
            bad = (p >= len(ids)) | (ids[np.minimum(p, len(ids) - 1)] != c)
        if bad.any():
            raise SchemaError(table, "contact_id", f"unknown contact id {int(c[bad][0])} (not in contacts)")
        return p

    def arr(x, dtype=np.int64):
        return np.asarray(x, dtype=dtype)

    return EventArrays(
        contact_ids=ids, created_us=arr(contacts["created_us"]), tz_codes=tz_codes, zones=list(zones),
        topics=[topic_slug(t) for t in topics],
        send_c=pos(sends["contact_id"], "sends"), send_t=arr(sends["t"]), send_topic=arr(sends["topic"]),
        open_c=pos(opens["contact_id"], "events"), open_t=arr(opens["t"]), open_send_t=arr(opens["st"]),
        click_c=pos(clicks["contact_id"], "events"), click_t=arr(clicks["t"]), click_topic=arr(clicks["topic"]),
        other_c=pos(other["contact_id"], "events"), other_t=arr(other["t"]), other_kind=arr(other["kind"]),
        other_value=arr(other["value"], np.float64),
    )


CONTACT_TABLES = ("contact_engagement", "contact_send_time", "contact_topics", "contact_send_hours")


def snapshot_engine(ev: EventArrays, days: list[date], cfg: PipelineConfig, priors: PopulationPriors | None = None
                    ) -> SnapshotEngine:
    """The snapshot engine over `ev`'s contacts (it takes ownership of `ev`'s fact arrays); `priors`: the
    whole list's (`snapshot_priors`) when `ev` holds a range of the contacts (`features.spark_build`)."""
    return SnapshotEngine(ev, [_dayno(d) for d in days], cfg.half_life_days, cfg.prior_strength,
                          cfg.profile_prior_strength, cfg.engagement_weights, priors)


def snapshot_priors(ev: EventArrays, days: list[date]) -> PopulationPriors:
    """The population priors of every contact in `ev`, for engines over ranges of them."""
    return population_priors(ev, [_dayno(d) for d in days])


def chunk_contacts(engine: SnapshotEngine, cfg: PipelineConfig) -> int:
    """Contacts per engine chunk: the widest dense array is contacts x 48 bins x days (float64); keep it
    near 160 MB (a multiple of BLOCK, so chunks are plain slices of the grouped facts)."""
    return cfg.chunk_contacts or max(4, int(1e7 // (48 * (engine.nd + 1))) // BLOCK) * BLOCK


def _write_contact_snapshots(ev: EventArrays, days: list[date], cfg: PipelineConfig, out_dir: Path, say) -> dict:
    """Run the snapshot engine chunk by chunk; a background thread streams each table to Parquet."""
    engine = snapshot_engine(ev, days, cfg)
    chunk = chunk_contacts(engine, cfg)
    n = len(ev.contact_ids)
    with ParquetSink({name: out_dir / TABLE_FILES[name] for name in CONTACT_TABLES}, engine.schemas) as sink:
        for lo in range(0, max(n, 1), chunk):
            sink.put_all(engine.chunk(lo, min(lo + chunk, n)))
            say(f"contact snapshots {min(lo + chunk, n):,}/{n:,}")
        rows = sink.close()
    say(f"contact snapshots written (writer thread {sink.cpu_seconds:.1f} CPU-s)")
    return rows


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


def _write_content(con, cfg: PipelineConfig, out_dir: Path) -> int:
    """Per content item and snapshot: traits and smoothed lifetime open/click rates."""
    a = cfg.prior_strength
    con.execute(
        """
        CREATE TEMP TABLE content_cum AS
        WITH d AS (
            SELECT s.content_id, dayno(s.sent_at) AS day, count(*) AS sends, 0 AS opens, 0 AS clicks
            FROM sends s GROUP BY ALL
            UNION ALL
            SELECT s.content_id, dayno(f.first_open), 0, 1, 0 FROM firsts f JOIN sends s USING (send_id)
            WHERE f.first_open IS NOT NULL
            UNION ALL
            SELECT s.content_id, dayno(f.first_click), 0, 0, 1 FROM firsts f JOIN sends s USING (send_id)
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
            SELECT c.*, sn.snap, sn.snap_ts FROM content c JOIN snaps sn ON c.created_at < sn.snap_ts
        ), popc AS (
            SELECT snap, sum(coalesce(x.c_sends, 0)) AS ps, sum(coalesce(x.c_opens, 0)) AS po,
                   sum(coalesce(x.c_clicks, 0)) AS pk
            FROM grid_c g ASOF LEFT JOIN content_cum x ON g.content_id = x.content_id AND g.snap >= x.valid_from
            GROUP BY snap
        )
        SELECT g.content_id, g.snap_ts AS event_timestamp,
               g.topic AS content_topic, g.format AS content_format,
               g.subject_length::BIGINT AS subject_length, g.has_personalization, g.has_urgency, g.has_emoji,
               days_between(g.snap, g.created_at) AS content_age_days,
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
