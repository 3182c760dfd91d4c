"""Batch scoring of every contact with a champion model (`inbox score`)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd


def score_all(name: str, settings=None, window_start=None, window_end=None, quiet_hours=(21, 7),
              k: int | None = 3, reasons: bool = True, chunk: int = 20_000) -> pd.DataFrame:
    """Score every contact of the offline store (newest snapshot) with `models:/<name>@champion`."""
    from inbox.settings import load_settings
    from models.datasets import latest_contact_features, latest_content_features
    from models.loading import load_champion

    settings = settings or load_settings()
    model = load_champion(name, tracking_uri=settings.tracking_uri)
    frame = latest_contact_features(model.services, settings)
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
            parts.append(model.score(part, reasons=reasons))
        elif name == "send_time":
            parts.append(model.best_slots(part, tz.iloc[lo : lo + chunk].fillna("UTC").to_numpy(),
                                          window_start, window_end, quiet_hours=quiet_hours))
        else:
            parts.append(model.rank(part, content, k=k))
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    out.attrs["model_version"] = str(model.version)
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


