"""Who gets a campaign: consent, bounces, address hygiene, and a stable draw.

Precedence of the reasons a contact is skipped (each counted once, first match):
1. the consent ledger (`privacy.consent`): suppressed, opted_out, topic_opt_out
   (the campaign's `topic`, chosen in the preference centre), no_consent;
2. bounces: hard_bounce (any `bounce` event: a permanent failure) or
   soft_bounces (at least `audience.soft_bounce_limit` `soft_bounce` events since
   the contact's last delivery, open or click; fewer never suppress);
3. address hygiene (`features.email_quality`) as the campaign's `hygiene.skip`
   lists: invalid and disposable by default, role accounts and typos on request.

`audience.limit` keeps the contacts with the smallest seeded SplitMix64 number
(`models.sample.contact_unit`), so a contact leaving the list between two runs
shifts the draw by one contact instead of redrawing it; contacts already queued
in this campaign run keep their place and are not queued again (resume).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

CONSENT_REASONS = ("suppressed", "opted_out", "topic_opt_out", "no_consent")
BOUNCE_REASONS = ("hard_bounce", "soft_bounces")
HYGIENE_COLUMNS = {"invalid": "email_valid", "disposable": "email_disposable", "role": "email_role_account",
                   "typo": "email_typo_suspected"}
GOOD_SIGNS = ("delivered", "open", "click")


@dataclass
class Audience:
    people: pd.DataFrame                      # contact_id, email: to enqueue now
    skipped: dict[str, int] = field(default_factory=dict)
    already_queued: int = 0


def bounce_reasons(events_path, contact_ids: np.ndarray, soft_limit: int) -> np.ndarray:
    """Row-aligned: "hard_bounce", "soft_bounces" or None (DuckDB over the events table: `events_path` is
    its base path, `table_path(events_dir, "events")`, read with its segments, or a list of files)."""
    import duckdb

    from simulation.eventlog import files_of

    out = np.full(len(contact_ids), None, dtype=object)
    files = files_of("events", events_path)
    if not files or len(contact_ids) == 0:
        return out
    con = duckdb.connect()
    try:
        rows = con.execute(f"""
            WITH ev AS (SELECT contact_id, CAST(type AS VARCHAR) AS type, occurred_at FROM read_parquet(?)
                        WHERE CAST(type AS VARCHAR) IN ('bounce', 'soft_bounce', {", ".join(f"'{t}'" for t in
                                                                                           GOOD_SIGNS)})),
                 hard AS (SELECT DISTINCT contact_id FROM ev WHERE type = 'bounce'),
                 softies AS (SELECT DISTINCT contact_id FROM ev WHERE type = 'soft_bounce'),
                 ok AS (SELECT contact_id, max(occurred_at) AS last_ok FROM ev
                        WHERE type <> 'bounce' AND type <> 'soft_bounce'
                          AND contact_id IN (SELECT contact_id FROM softies) GROUP BY contact_id),
                 soft AS (SELECT e.contact_id FROM ev e LEFT JOIN ok USING (contact_id)
                          WHERE e.type = 'soft_bounce' AND (ok.last_ok IS NULL OR e.occurred_at > ok.last_ok)
                          GROUP BY e.contact_id HAVING count(*) >= ?)
            SELECT contact_id, 'hard_bounce' FROM hard
            UNION ALL SELECT contact_id, 'soft_bounces' FROM soft WHERE contact_id NOT IN (SELECT contact_id FROM hard)
        """, [[str(f) for f in files], int(soft_limit)]).fetchall()
    finally:
        con.close()
    if rows:
        ids, why = zip(*rows)
        lookup = pd.Series(why, index=np.asarray(ids, dtype=np.int64))
        hit = np.isin(contact_ids, lookup.index.to_numpy())
        out[hit] = lookup.reindex(contact_ids[hit]).to_numpy()
    return out


def consent_reasons(settings, contact_ids: np.ndarray, topic: str | None) -> np.ndarray:
    from privacy.consent import ConsentLedger, ledger_path
    from privacy.seed import seed_consent

    if not ledger_path(settings).exists():  # a world made before the ledger existed
        seed_consent(settings)
    with ConsentLedger.open(settings, read_only=True) as ledger:
        return ledger.reasons(contact_ids, topic)


def draw_order(contact_ids: np.ndarray, seed: int) -> np.ndarray:
    """A seeded, stable number per contact (smaller = drawn first)."""
    from models.sample import contact_unit

    with np.errstate(over="ignore"):
        return contact_unit(contact_ids.astype(np.int64) + np.int64(seed) * np.int64(1 << 40))


def select_audience(settings, config, queued: np.ndarray) -> Audience:
    """The contacts to enqueue for `config` now (minus `queued`, already in this run), with skip counts."""
    import pyarrow.dataset as pads

    from features.email_quality import email_quality
    from simulation.eventlog import table_files, table_path

    spec = config.audience
    files = table_files(settings.events_dir, "contacts")
    if not files:
        raise FileNotFoundError(f"contacts: no such file {table_path(settings.events_dir, 'contacts')}")
    contacts = pads.dataset([str(f) for f in files], format="parquet").to_table(
        columns=["contact_id", "email"]).to_pandas()
    if spec.contact_ids is not None:
        contacts = contacts[contacts["contact_id"].isin(spec.contact_ids)]
    ids = contacts["contact_id"].to_numpy(np.int64)
    reason = consent_reasons(settings, ids, config.topic)
    open_ = pd.isna(reason)
    reason[open_] = bounce_reasons(table_path(settings.events_dir, "events"), ids[open_],
                                   spec.soft_bounce_limit)
    open_ = pd.isna(reason)
    if config.hygiene.skip and open_.any():
        quality = email_quality(contacts["email"][open_])
        why = np.full(int(open_.sum()), None, dtype=object)
        for name in reversed(HYGIENE_COLUMNS):  # first listed reason wins
            if name in config.hygiene.skip:
                flag = quality[HYGIENE_COLUMNS[name]].to_numpy(bool)
                why[~flag if name == "invalid" else flag] = name
        reason[open_] = why
    eligible = pd.isna(reason)
    already = np.isin(ids, queued)
    chosen = eligible | already
    if spec.limit is not None and chosen.sum() > spec.limit:
        order = draw_order(ids, spec.seed)
        cut = np.sort(order[chosen])[spec.limit - 1]
        chosen &= order <= cut
    skipped = pd.Series(reason[~already]).value_counts().to_dict()
    people = contacts[chosen & ~already][["contact_id", "email"]].sort_values("contact_id").reset_index(drop=True)
    return Audience(people, {str(k): int(v) for k, v in skipped.items()}, int((chosen & already).sum()))
