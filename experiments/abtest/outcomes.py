"""Per-recipient outcome table of one campaign, built from the event log.

One row per send of the campaign: the variant (content id), 0/1 columns for each
event type within an attribution window after the send (the same window for
every recipient, so late sends are not disadvantaged), conversion revenue, click
and open counts (for ratio metrics such as click-to-open), and pre-period
engagement of the contact before the campaign started (the CUPED covariate).
One DuckDB query over the Parquet files (`simulation.eventlog.table_files`).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from experiments.abtest.table import require_columns

EVENT_FLAGS = ("delivered", "open", "click", "conversion", "unsubscribe", "bounce", "complaint")


def campaign_outcomes(
    events_dir: str | Path, campaign_id: str, *, window_hours: float = 72.0, pre_days: float = 28.0
) -> pd.DataFrame:
    """Outcomes of ``campaign_id``: send_id, contact_id, variant, sent_at, allocated (an adaptive
    allocator chose the variant: a plain A/B analysis is then biased), event flags, opens, clicks,
    revenue, pre_opens, pre_clicks."""
    import duckdb

    sends, events = _files(events_dir, "sends"), _files(events_dir, "events")
    if window_hours <= 0 or pre_days < 0:
        raise ValueError(f"window_hours must be > 0 and pre_days >= 0, got {window_hours}, {pre_days}")
    flags = ",\n".join(
        f"CAST(coalesce(bool_or(e.type = '{t}'), false) AS TINYINT) AS {t}" for t in EVENT_FLAGS
    )
    query = f"""
    WITH s AS (
        SELECT send_id, contact_id, content_id, sent_at, decision_id IS NOT NULL AS allocated
        FROM read_parquet(?) WHERE campaign_id = ?
    ),
    start AS (SELECT min(sent_at) AS t0 FROM s),
    pre AS (
        SELECT e.contact_id,
               count(*) FILTER (WHERE e.type = 'open') AS pre_opens,
               count(*) FILTER (WHERE e.type = 'click') AS pre_clicks
        FROM read_parquet(?) e, start
        WHERE e.occurred_at < start.t0
          AND e.occurred_at >= start.t0 - to_microseconds(CAST(? * 86400e6 AS BIGINT))
          AND e.contact_id IN (SELECT contact_id FROM s)
        GROUP BY e.contact_id
    ),
    outcome AS (
        SELECT s.send_id, s.contact_id, s.content_id, s.sent_at, s.allocated,
               {flags},
               count(*) FILTER (WHERE e.type = 'open') AS opens,
               count(*) FILTER (WHERE e.type = 'click') AS clicks,
               coalesce(sum(e.value) FILTER (WHERE e.type = 'conversion'), 0.0) AS revenue
        FROM s LEFT JOIN read_parquet(?) e
          ON e.send_id = s.send_id
         AND e.occurred_at <= s.sent_at + to_microseconds(CAST(? * 3600e6 AS BIGINT))
        GROUP BY s.send_id, s.contact_id, s.content_id, s.sent_at, s.allocated
    )
    SELECT o.*, CAST(o.content_id AS VARCHAR) AS variant,
           coalesce(p.pre_opens, 0) AS pre_opens, coalesce(p.pre_clicks, 0) AS pre_clicks
    FROM outcome o LEFT JOIN pre p USING (contact_id)
    ORDER BY o.send_id
    """
    with duckdb.connect() as con:
        df = con.execute(query, [sends, campaign_id, events, pre_days, events, window_hours]).df()
        if df.empty:
            known = con.execute("SELECT DISTINCT campaign_id FROM read_parquet(?) ORDER BY 1 LIMIT 8", [sends]).fetchall()
            raise ValueError(f"campaign {campaign_id!r} has no sends in {Path(events_dir) / 'sends.parquet'}; "
                             f"e.g. {[k[0] for k in known]}")
    require_columns(df.columns, ["variant", *EVENT_FLAGS], source="outcomes")
    df["sent_at"] = pd.to_datetime(df["sent_at"], utc=True)
    for col in ("opens", "clicks", "pre_opens", "pre_clicks"):
        df[col] = df[col].astype("int64")
    return df


def campaign_summary(events_dir: str | Path) -> pd.DataFrame:
    """Campaigns in the event log with their number of sends and variants (to pick one to analyse)."""
    import duckdb

    sends = _files(events_dir, "sends")
    with duckdb.connect() as con:
        return con.execute(
            """SELECT campaign_id, count(*) AS sends, count(DISTINCT content_id) AS variants,
                      min(sent_at) AS first_send, bool_or(decision_id IS NOT NULL) AS allocated
               FROM read_parquet(?) GROUP BY 1 ORDER BY first_send""", [sends]).df()


def _files(events_dir, table: str) -> list[str]:
    """The table's files (`simulation.eventlog.table_files`), for DuckDB's read_parquet."""
    from simulation.eventlog import table_files, table_path

    files = table_files(events_dir, table)
    if not files:
        raise FileNotFoundError(f"event log table not found: {table_path(events_dir, table)}")
    return [str(f) for f in files]
