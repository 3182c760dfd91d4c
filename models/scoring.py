"""Batch scoring of every contact with a champion model (`inbox score`).

Each output row says which model version scored it (`model_version`), when
(`scored_at`) and from which feature snapshot (`snapshot_date`), so a score file
can be traced back to MLflow and Feast. Contacts that must not be mailed are
left out by default: the consent ledger's refusals (no consent, opted out,
suppressed address; `privacy.consent`) and hard bounces, unsubscribes and
complaints recorded in the features. Scoring them would rank people the send
pipeline is not allowed to reach.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

# engagement flags that stop mail, in order of precedence after the ledger's own reasons
STOP_FLAGS = ("bounced", "unsubscribed", "complained")


def suppression_reasons(settings, contact_ids: np.ndarray, snapshot: pd.Timestamp) -> np.ndarray:
    """Why each contact may not be mailed (object array, None = may be mailed), row-aligned.

    The consent ledger's reason when `<data_dir>/privacy/consent.db` exists (else the profile's
    `consent` flag gives 'no_consent'), then the snapshot's engagement flags (hard bounce,
    unsubscribe, complaint) as 'bounced' / 'unsubscribed' / 'complained'.
    """
    from features.pipeline import TABLE_FILES
    from privacy.consent import ConsentLedger, ledger_path

    ids = np.asarray(contact_ids, dtype=np.int64)
    if ledger_path(settings).exists():
        with ConsentLedger.open(settings, read_only=True) as ledger:
            reasons = np.asarray(ledger.reasons(ids), dtype=object)
    else:
        profile = pd.read_parquet(Path(settings.features_dir) / TABLE_FILES["contact_profile"],
                                  columns=["contact_id", "consent"]).drop_duplicates("contact_id", keep="last")
        consent = pd.Series(ids).map(profile.set_index("contact_id")["consent"]).fillna(False).astype(bool).to_numpy()
        reasons = np.where(consent, None, "no_consent").astype(object)
    flags = pd.read_parquet(Path(settings.features_dir) / TABLE_FILES["contact_engagement"],
                            columns=["contact_id", *STOP_FLAGS], filters=[("event_timestamp", "==", snapshot)])
    flags = flags.set_index("contact_id").reindex(ids)
    for flag in reversed(STOP_FLAGS):  # the first flag in STOP_FLAGS wins
        hit = flags[flag].fillna(False).astype(bool).to_numpy() & pd.isna(reasons)
        reasons[hit] = flag
    return reasons


def score_all(name: str, settings=None, window_start=None, window_end=None, quiet_hours=(21, 7),
              k: int | None = 3, reasons: bool = True, chunk: int = 20_000, include_suppressed: bool = False,
              progress: Callable[[int, int], None] | None = None, planned_sends: float | None = None) -> pd.DataFrame:
    """Score every contact of the offline store (newest snapshot) with `models:/<name>@champion`.

    Suppressed contacts are left out unless `include_suppressed`, which adds their reason in a
    `suppressed` column (None for mailable contacts). `progress(done, total)` is called per chunk.
    Every row carries `model_version`, `scored_at` (UTC) and `snapshot_date`. `planned_sends` (lead_scoring
    only): the sender's sends per contact over the model's horizon, see `LeadScorer.score`.
    """
    from inbox.settings import load_settings
    from models.datasets import latest_contact_features, latest_content_features
    from models.loading import load_champion

    if planned_sends is not None and name != "lead_scoring":
        raise ValueError(f"planned_sends: applies to lead_scoring only, not {name}")
    settings = settings or load_settings()
    model = load_champion(name, tracking_uri=settings.tracking_uri)
    frame = latest_contact_features(model.services, settings)
    snapshot = frame["event_timestamp"].max() if len(frame) else pd.NaT
    why = suppression_reasons(settings, frame["contact_id"].to_numpy(), snapshot) if len(frame) else np.array([])
    if not include_suppressed:
        frame = frame[pd.isna(why)].reset_index(drop=True)
    parts = []
    if name == "send_time":
        if window_start is None:
            now = pd.Timestamp.now(tz="UTC").ceil("h")
            window_start, window_end = now, now + pd.Timedelta(hours=24)
        tz = frame["timezone"] if "timezone" in frame.columns else pd.Series("UTC", index=frame.index)
    content = latest_content_features(settings) if name == "content_preference" else None
    for lo in range(0, len(frame), chunk):
        part = frame.iloc[lo : lo + chunk]
        if name == "lead_scoring":
            parts.append(model.score(part, reasons=reasons, planned_sends=planned_sends))
        elif name == "send_time":
            parts.append(model.best_slots(part, tz.iloc[lo : lo + chunk].fillna("UTC").to_numpy(),
                                          window_start, window_end, quiet_hours=quiet_hours))
        else:
            parts.append(model.rank(part, content, k=k))
        if progress is not None:
            progress(min(lo + chunk, len(frame)), len(frame))
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({"contact_id": pd.Series(dtype="int64")})
    if include_suppressed:
        out["suppressed"] = out["contact_id"].map(dict(zip(frame["contact_id"].to_numpy(), why)))
    out["model_version"] = str(model.version)
    out["scored_at"] = pd.Timestamp.now(tz="UTC").floor("s")
    out["snapshot_date"] = pd.NaT if pd.isna(snapshot) else snapshot.date()
    out.attrs["model_version"] = str(model.version)
    out.attrs["suppressed"] = int(pd.notna(why).sum())
    return out


def write_parquet(frame: pd.DataFrame, path) -> Path:
    """Atomic write (temp file beside the target, then rename)."""
    path = Path(path)
    if path.suffix != ".parquet":
        raise ValueError(f"--out: expected a .parquet file name, got {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
