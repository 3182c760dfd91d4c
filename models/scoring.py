"""Batch scoring of every contact with a champion model (`inbox score`).

Each output row says which model version scored it (`model_version`), when
(`scored_at`) and from which feature snapshot (`snapshot_date`), so a score file
can be traced back to MLflow and Feast. Contacts that must not be mailed are
left out by default: the consent ledger's refusals (no consent, opted out,
suppressed address; `privacy.consent`) and hard bounces, unsubscribes and
complaints recorded in the features. Scoring them would rank people the send
pipeline is not allowed to reach.

Scoring streams: `BatchScoring` reads the snapshot a batch of contacts at a time
(`models.contact_batches`), applies the suppression reasons and the model to the
batch, and yields its rows. `score_to_file` appends each batch to the output
Parquet file as it comes (`models.score_file`: renamed into place when complete),
so memory follows the batch, not the list; `score_all` collects the same batches
into one DataFrame (notebooks, small lists).
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from models.contact_batches import DEFAULT_BATCH

# engagement flags that stop mail, in order of precedence after the ledger's own reasons
STOP_FLAGS = ("bounced", "unsubscribed", "complained")


def _id_range(ids: np.ndarray) -> list[tuple]:
    """Parquet filters of the ids' range: a batch of consecutive contacts reads only its row groups."""
    return [("contact_id", ">=", int(ids.min())), ("contact_id", "<=", int(ids.max()))] if len(ids) else []


def suppression_reasons(settings, contact_ids: np.ndarray, snapshot: pd.Timestamp) -> np.ndarray:
    """Why each contact may not be mailed (object array, None = may be mailed), row-aligned.

    The consent ledger's reason when `<data_dir>/privacy/consent.db` exists (else the profile's
    `consent` flag gives 'no_consent'), then the snapshot's engagement flags (hard bounce,
    unsubscribe, complaint) as 'bounced' / 'unsubscribed' / 'complained'. Only the rows in the
    range of `contact_ids` are read.
    """
    from features.pipeline import TABLE_FILES
    from privacy.consent import ConsentLedger, ledger_path

    ids = np.asarray(contact_ids, dtype=np.int64)
    span = _id_range(ids)
    if ledger_path(settings).exists():
        with ConsentLedger.open(settings, read_only=True) as ledger:
            reasons = np.asarray(ledger.reasons(ids), dtype=object)
    else:
        profile = pd.read_parquet(Path(settings.features_dir) / TABLE_FILES["contact_profile"],
                                  columns=["contact_id", "consent"], filters=span or None
                                  ).drop_duplicates("contact_id", keep="last")
        consent = pd.Series(ids).map(profile.set_index("contact_id")["consent"]).fillna(False).astype(bool).to_numpy()
        reasons = np.where(consent, None, "no_consent").astype(object)
    flags = pd.read_parquet(Path(settings.features_dir) / TABLE_FILES["contact_engagement"],
                            columns=["contact_id", *STOP_FLAGS], filters=[("event_timestamp", "==", snapshot), *span])
    flags = flags.set_index("contact_id").reindex(ids)
    for flag in reversed(STOP_FLAGS):  # the first flag in STOP_FLAGS wins
        hit = flags[flag].fillna(False).astype(bool).to_numpy() & pd.isna(reasons)
        reasons[hit] = flag
    return reasons


class BatchScoring:
    """One pass of `inbox score` with `models:/<name>@champion` over the newest snapshot, batch by batch.

    Iterating yields each batch's scored rows (`chunk` contacts per batch; a batch with no mailable
    contact yields nothing). Suppressed contacts are left out unless `include_suppressed`, which
    adds their reason in a `suppressed` column (None for mailable contacts); `suppressed` counts
    them either way. `progress(done, total)` (contacts) is called per batch. Every row carries
    `model_version`, `scored_at` (UTC, the start of the pass) and `snapshot_date`. `planned_sends`
    (lead_scoring only): the sender's sends per contact over the model's horizon (`LeadScorer.score`).
    """

    def __init__(self, name: str, settings=None, window_start=None, window_end=None, quiet_hours=(21, 7),
                 k: int | None = 3, reasons: bool = True, chunk: int = DEFAULT_BATCH,
                 include_suppressed: bool = False, progress: Callable[[int, int], None] | None = None,
                 planned_sends: float | None = None):
        from inbox.settings import load_settings
        from models.contact_batches import ContactBatches
        from models.datasets import latest_content_features
        from models.loading import load_champion

        if planned_sends is not None and name != "lead_scoring":
            raise ValueError(f"planned_sends: applies to lead_scoring only, not {name}")
        self.planned_sends = planned_sends
        self.name, self.settings = name, settings or load_settings()
        self.model = load_champion(name, tracking_uri=self.settings.tracking_uri)
        self.contacts = ContactBatches(self.model.services, self.settings, batch=chunk)
        if name == "send_time" and window_start is None:
            now = pd.Timestamp.now(tz="UTC").ceil("h")
            window_start, window_end = now, now + pd.Timedelta(hours=24)
        self.window, self.quiet_hours, self.k, self.reasons = (window_start, window_end), quiet_hours, k, reasons
        self.content = latest_content_features(self.settings) if name == "content_preference" else None
        self.include_suppressed, self.progress = include_suppressed, progress
        self.model_version = str(self.model.version)
        self.snapshot = self.contacts.snapshot
        self.scored_at = pd.Timestamp.now(tz="UTC").floor("s")
        self.suppressed = 0

    def __iter__(self) -> Iterator[pd.DataFrame]:
        done, total = 0, len(self.contacts)
        for frame in self.contacts:
            out = self.score_batch(frame)
            done += len(frame)
            if self.progress is not None:
                self.progress(done, total)
            if out is not None:
                yield out

    def score_batch(self, frame: pd.DataFrame) -> pd.DataFrame | None:
        """The rows of one batch of contact features (None when no contact of it may be scored)."""
        ids = frame["contact_id"].to_numpy(np.int64)
        why = suppression_reasons(self.settings, ids, self.snapshot)
        self.suppressed += int(pd.notna(why).sum())
        if not self.include_suppressed:
            frame = frame[pd.isna(why)].reset_index(drop=True)
        if frame.empty:
            return None
        if self.name == "lead_scoring":
            out = self.model.score(frame, reasons=self.reasons, planned_sends=self.planned_sends)
        elif self.name == "send_time":
            tz = frame["timezone"] if "timezone" in frame.columns else pd.Series("UTC", index=frame.index)
            out = self.model.best_slots(frame, tz.fillna("UTC").to_numpy(), *self.window,
                                        quiet_hours=self.quiet_hours)
        else:
            out = self.model.rank(frame, self.content, k=self.k)
        if self.include_suppressed:
            out["suppressed"] = out["contact_id"].map(dict(zip(ids, why)))
        return self.stamp(out)

    def stamp(self, out: pd.DataFrame) -> pd.DataFrame:
        """`out` with the columns that trace its rows: model version, scoring time, snapshot date."""
        out["model_version"] = self.model_version
        out["scored_at"] = self.scored_at
        out["snapshot_date"] = pd.NaT if pd.isna(self.snapshot) else self.snapshot.date()
        return out

    def empty(self) -> pd.DataFrame:
        """The output of a pass that scored no contact."""
        return self.stamp(pd.DataFrame({"contact_id": pd.Series(dtype="int64")}))


def score_all(name: str, settings=None, **options) -> pd.DataFrame:
    """Every mailable contact scored with `models:/<name>@champion`, in one DataFrame (options: `BatchScoring`).

    `attrs` holds `model_version` and `suppressed` (contacts left out or flagged). For a large list use
    `score_to_file`, which never holds all rows.
    """
    run = BatchScoring(name, settings, **options)
    parts = list(run)
    out = pd.concat(parts, ignore_index=True) if parts else run.empty()
    out.attrs["model_version"] = run.model_version
    out.attrs["suppressed"] = run.suppressed
    return out


def score_to_file(name: str, path, settings=None, **options) -> tuple[BatchScoring, int]:
    """Score like `score_all`, appending each batch to the Parquet file `path` as it comes; the file appears
    only when every batch is in (nothing is left on failure or interrupt). (the finished pass, rows written)."""
    from models.score_file import ScoreFile, parquet_target

    path = parquet_target(path)
    run = BatchScoring(name, settings, **options)
    with ScoreFile(path) as out:
        for part in run:
            out.write(part)
        if out.frames == 0:
            out.write(run.empty())
    return run, out.rows


def write_parquet(frame: pd.DataFrame, path) -> Path:
    """Atomic write of one frame (temp file beside the target, then rename)."""
    from models.score_file import ScoreFile

    with ScoreFile(path) as out:
        out.write(frame)
    return out.path
