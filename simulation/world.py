"""The synthetic world: contacts, content and the latent traits behind them.

`generate_world(WorldConfig(...))` draws, deterministically for a seed:

* contacts with public attributes (the `contacts` event-log table);
* content items (the `content` table) with topic, format and subject traits;
* latent per-contact traits (`Traits`), never shown to models. Each trait is a
  segment effect of public attributes (`simulation.catalog`) plus
  idiosyncratic noise that only a contact's history reveals;
* latent per-content appeal (`ContentTraits`), learnable only from history;
* `World.response`: the `ResponseModel` oracle (see `simulation.response`).

`World.save(dir)` / `World.load(dir)` keep the ground truth on disk
(`config.json`, `contacts.parquet`, `content.parquet`, `traits.npz`), each file
written atomically.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, fields
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from simulation import catalog as cat
from simulation.eventlog import _umask, read_table, validate, write_table


@dataclass(frozen=True)
class WorldConfig:
    """Size and seed of a world and of its history. Validated on creation."""

    n_contacts: int = 50_000
    n_days: int = 120
    seed: int = 7
    start: str = "2026-05-01"  # first day of the history (UTC midnight)
    n_content: int = 48
    new_contact_share: float = 0.15  # contacts who sign up during the history
    consent_share: float = 0.97
    campaign_rate_weekday: float = 0.6  # chance a weekday carries a campaign
    campaign_rate_weekend: float = 0.3
    audience_share: tuple[float, float] = (0.35, 0.8)  # per-campaign share of eligible contacts
    variants_per_campaign: tuple[int, int] = (2, 4)
    logged_campaign_share: float = 0.35  # campaigns logged as a uniform-random allocator
    blast_campaign_share: float = 0.5  # campaigns sent at one UTC time (else per-contact local hour)

    def __post_init__(self):
        def need(ok: bool, name: str, why: str):
            if not ok:
                raise ValueError(f"WorldConfig.{name}: {why} (got {getattr(self, name)!r})")

        for name in ("n_contacts", "n_days", "n_content"):
            v = getattr(self, name)
            need(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0, name,
                 "must be a positive integer")
        need(isinstance(self.seed, (int, np.integer)) and self.seed >= 0, "seed", "must be a non-negative integer")
        try:
            ts = pd.Timestamp(self.start)
        except (ValueError, TypeError):
            ts = None
        need(ts is not None and ts.tzinfo is None and ts == ts.normalize(), "start",
             "must be a date like '2026-05-01'")
        for name in ("new_contact_share", "consent_share", "campaign_rate_weekday", "campaign_rate_weekend",
                     "logged_campaign_share", "blast_campaign_share"):
            v = getattr(self, name)
            need(isinstance(v, (int, float)) and 0.0 <= v <= 1.0, name, "must be in [0, 1]")
        lo, hi = self.audience_share
        need(0.0 < lo <= hi <= 1.0, "audience_share", "must be (lo, hi) with 0 < lo <= hi <= 1")
        lo, hi = self.variants_per_campaign
        need(1 <= lo <= hi <= self.n_content, "variants_per_campaign",
             "must be (lo, hi) with 1 <= lo <= hi <= n_content")

    @property
    def start_ts(self) -> pd.Timestamp:
        return pd.Timestamp(self.start, tz="UTC")

    @property
    def end_ts(self) -> pd.Timestamp:
        """End of the history (exclusive): start + n_days."""
        return self.start_ts + pd.Timedelta(days=self.n_days)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> "WorldConfig":
        raw = json.loads(text)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"WorldConfig: unknown field(s) {unknown}")
        for k in ("audience_share", "variants_per_campaign"):
            if k in raw:
                raw[k] = tuple(raw[k])
        return cls(**raw)


@dataclass(frozen=True, eq=False)
class Traits:
    """Latent per-contact ground truth, arrays indexed like `World.contacts` rows."""

    base_engagement: np.ndarray  # open log-odds at an average slot, fresh contact, neutral content
    conversion_propensity: np.ndarray  # conversion-given-click log-odds before topic effects
    peak_hour_weekday: np.ndarray  # preferred local hour (0-24, float) Monday-Friday
    peak_hour_weekend: np.ndarray  # preferred local hour Saturday-Sunday
    hour_width: np.ndarray  # width (hours, sd) of the preferred-hour bump
    topic_affinity: np.ndarray  # n_contacts x len(topics), log-odds added to clicks
    fatigue_sensitivity: np.ndarray  # > 0; scales the penalty per recent send
    bounce_probability: np.ndarray  # per-send hard-bounce chance (invalid addresses ~1)
    value_log_mean: np.ndarray  # log-mean revenue of a conversion
    domain_kind: np.ndarray  # str: corporate, free_mail, role, disposable, typo
    topics: tuple[str, ...] = cat.TOPICS

    def __len__(self) -> int:
        return len(self.base_engagement)

    def to_frame(self) -> pd.DataFrame:
        """Flat table (one row per contact), affinity columns `affinity_<topic>`."""
        cols = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("topic_affinity", "topics")}
        for j, t in enumerate(self.topics):
            cols[f"affinity_{t}"] = self.topic_affinity[:, j]
        return pd.DataFrame(cols)


@dataclass(frozen=True, eq=False)
class ContentTraits:
    """Latent per-content appeal, indexed like `World.content` rows (log-odds)."""

    open_appeal: np.ndarray
    click_appeal: np.ndarray


@dataclass(eq=False)
class World:
    config: WorldConfig
    contacts: pd.DataFrame
    content: pd.DataFrame
    traits: Traits
    content_traits: ContentTraits

    @cached_property
    def response(self):
        from simulation.response import ResponseModel

        return ResponseModel(self)

    # --- persistence -------------------------------------------------------------
    def save(self, directory: str | os.PathLike) -> Path:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        write_table("contacts", self.contacts, d / "contacts.parquet")
        write_table("content", self.content, d / "content.parquet")
        arrays = {f.name: getattr(self.traits, f.name) for f in fields(self.traits) if f.name != "topics"}
        arrays["domain_kind"] = arrays["domain_kind"].astype(str)
        arrays["topics"] = np.array(self.traits.topics)
        arrays["content_open_appeal"] = self.content_traits.open_appeal
        arrays["content_click_appeal"] = self.content_traits.click_appeal
        _atomic_write(d / "traits.npz", lambda f: np.savez_compressed(f, **arrays))
        _atomic_write(d / "config.json", lambda f: f.write(self.config.to_json().encode()))
        return d

    @classmethod
    def load(cls, directory: str | os.PathLike, contact_ids=None) -> "World":
        """The saved world; with `contact_ids`, only those contacts (ordered by id) and their traits, so an
        oracle over a sample of a large list does not read every contact (the content catalog is whole)."""
        d = Path(directory)
        cfg_path = d / "config.json"
        if not cfg_path.exists():
            raise FileNotFoundError(f"no saved world in {d} (missing config.json)")
        config = WorldConfig.from_json(cfg_path.read_text())
        content = read_table("content", d / "content.parquet")
        if contact_ids is None:
            contacts, rows = read_table("contacts", d / "contacts.parquet"), slice(None)
        else:
            contacts, rows = _some_contacts(d / "contacts.parquet", contact_ids)
        with np.load(d / "traits.npz", allow_pickle=False) as z:
            traits = Traits(
                **{f.name: z[f.name][rows] for f in fields(Traits) if f.name != "topics"},
                topics=tuple(str(t) for t in z["topics"]),
            )
            ct = ContentTraits(open_appeal=z["content_open_appeal"], click_appeal=z["content_click_appeal"])
        if len(traits) != len(contacts):
            raise ValueError(f"{d}: traits cover {len(traits)} contacts, contacts.parquet has {len(contacts)}")
        return cls(config, contacts, content, traits, ct)


def _some_contacts(path: Path, contact_ids) -> tuple[pd.DataFrame, np.ndarray]:
    """The rows of `contact_ids` (sorted, unique) in a saved contacts file, and their row numbers there
    (traits are stored by row). Unknown ids are an error naming the first."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as pads
    import pyarrow.parquet as pq

    wanted = np.unique(np.asarray(contact_ids, dtype=np.int64))
    every = pq.read_table(path, columns=["contact_id"]).column(0).to_numpy()
    order = np.argsort(every, kind="stable")
    at = np.minimum(np.searchsorted(every, wanted, sorter=order), max(len(every) - 1, 0))
    rows = order[at] if len(every) else np.zeros(0, dtype=np.int64)
    unknown = every[rows] != wanted if len(every) else np.ones(len(wanted), dtype=bool)
    if unknown.any():
        raise ValueError(f"contact_ids: {int(unknown.sum())} contact(s) not in the world {path.parent} "
                         f"(first: {wanted[unknown][0]})")
    table = pads.dataset(str(path), format="parquet").to_table(
        filter=pc.field("contact_id").isin(pa.array(wanted, pa.int64())))
    contacts = validate("contacts", table).to_pandas().sort_values("contact_id", kind="stable")
    return contacts.reset_index(drop=True), rows


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --- generation -------------------------------------------------------------------
def generate_world(config: WorldConfig | None = None) -> World:
    """Draw a world; the same config always gives the same world."""
    config = config or WorldConfig()
    ss = np.random.SeedSequence([config.seed, 0x1A1B0])
    rng_contacts, rng_traits, rng_content = (np.random.default_rng(s) for s in ss.spawn(3))
    contacts, codes = _contacts(config, rng_contacts)
    traits = _traits(codes, rng_traits)
    content, content_traits = _content(config, rng_content)
    return World(config, contacts, content, traits, content_traits)


def _choice(rng, n: int, p) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    return np.searchsorted(np.cumsum(p / p.sum()), rng.random(n), side="right").clip(0, len(p) - 1)


def _rows_choice(rng, probs: np.ndarray) -> np.ndarray:
    """One categorical draw per row of a (n x k) probability matrix."""
    cum = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)
    return (rng.random((len(probs), 1)) > cum).sum(axis=1).clip(0, probs.shape[1] - 1)


def _contacts(config: WorldConfig, rng) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    n = config.n_contacts
    industry = _choice(rng, n, cat.INDUSTRY_SHARE)
    size = _choice(rng, n, cat.SIZE_SHARE)
    seniority = _choice(rng, n, cat.SENIORITY_SHARE)
    source = _choice(rng, n, cat.SOURCE_SHARE)
    tz = _choice(rng, n, [w for _, _, w in cat.TIMEZONES])
    domain = _rows_choice(rng, cat.DOMAIN_MIX_SOURCE[source])
    countries = np.array([c for c, _, _ in cat.TIMEZONES], dtype=object)
    zones = np.array([z for _, z, _ in cat.TIMEZONES], dtype=object)

    start = config.start_ts.value // 1000  # µs
    day_us = 86_400 * 1_000_000
    new = rng.random(n) < config.new_contact_share
    before = start - (rng.random(n) * 730 * day_us).astype(np.int64)
    during = start + (rng.random(n) * config.n_days * day_us).astype(np.int64)
    created = np.where(new, during, before)

    email = _emails(rng, domain, countries[tz])
    contacts = pd.DataFrame({
        "contact_id": np.arange(n, dtype=np.int64),
        "email": email,
        "created_at": pd.to_datetime(created, unit="us", utc=True),
        "industry": np.array(cat.INDUSTRIES, dtype=object)[industry],
        "company_size": np.array(cat.COMPANY_SIZES, dtype=object)[size],
        "seniority": np.array(cat.SENIORITIES, dtype=object)[seniority],
        "country": countries[tz],
        "timezone": zones[tz],
        "signup_source": np.array(cat.SIGNUP_SOURCES, dtype=object)[source],
        "consent": rng.random(n) < config.consent_share,
    })
    codes = dict(industry=industry, size=size, seniority=seniority, source=source, domain=domain)
    return contacts, codes


def _emails(rng, domain_kind: np.ndarray, country: np.ndarray) -> np.ndarray:
    n = len(domain_kind)
    first = np.array(cat.FIRST_NAMES, dtype=object)[rng.integers(len(cat.FIRST_NAMES), size=n)]
    last = np.array(cat.LAST_NAMES, dtype=object)[rng.integers(len(cat.LAST_NAMES), size=n)]
    style = rng.integers(4, size=n)
    digits = pd.Series(rng.integers(1, 999, size=n)).astype(str).to_numpy(dtype=object)
    initial = pd.Series(first).str[0].to_numpy(dtype=object)
    local = np.select(
        [style == 0, style == 1, style == 2],
        [first + "." + last, initial + last, first + "_" + last + digits],
        default=first + digits,
    )
    stems = np.array(cat.COMPANY_STEMS, dtype=object)[rng.integers(len(cat.COMPANY_STEMS), size=n)]
    suffix = np.array(cat.COMPANY_SUFFIXES, dtype=object)[rng.integers(len(cat.COMPANY_SUFFIXES), size=n)]
    tld = pd.Series(country).map(cat.COUNTRY_TLD).fillna("com").to_numpy(dtype=object)
    sep = np.where(suffix == "", "", "-")
    company = stems + sep + suffix + "." + tld
    kind = np.array(cat.DOMAIN_KINDS, dtype=object)[domain_kind]
    pick = lambda pool: np.array(pool, dtype=object)[rng.integers(len(pool), size=n)]  # noqa: E731
    dom = np.select(
        [kind == "corporate", kind == "free_mail", kind == "role", kind == "disposable"],
        [company, pick(cat.FREE_MAIL_DOMAINS), company, pick(cat.DISPOSABLE_DOMAINS)],
        default=pick(cat.TYPO_DOMAINS),
    )
    local = np.where(kind == "role", pick(cat.ROLE_LOCAL_PARTS), local)
    return (local + "@" + dom).astype(object)


def _traits(c: dict[str, np.ndarray], rng) -> Traits:
    n = len(c["industry"])
    eng_noise = rng.normal(0.0, 0.6, n)
    base_engagement = (
        -1.35 + cat.ENG_INDUSTRY[c["industry"]] + cat.ENG_SIZE[c["size"]] + cat.ENG_SENIORITY[c["seniority"]]
        + cat.ENG_SOURCE[c["source"]] + cat.ENG_DOMAIN[c["domain"]] + eng_noise
    )
    conversion_propensity = (
        -3.0 + cat.CONV_INDUSTRY[c["industry"]] + cat.CONV_SIZE[c["size"]] + cat.CONV_SENIORITY[c["seniority"]]
        + cat.CONV_SOURCE[c["source"]] + cat.CONV_DOMAIN[c["domain"]] + 0.4 * eng_noise + rng.normal(0.0, 0.7, n)
    )
    evening = rng.random(n) < cat.EVENING_READER_SHARE
    peak_wd = np.where(
        evening,
        rng.normal(19.5, 1.0, n),
        cat.PEAK_WEEKDAY_SENIORITY[c["seniority"]] + cat.PEAK_SHIFT_INDUSTRY[c["industry"]] + rng.normal(0, 1.3, n),
    )
    weekend_evening = np.where(evening, rng.random(n) < 0.7, rng.random(n) < 0.2)
    peak_we = np.where(weekend_evening, rng.normal(20.0, 1.2, n), rng.normal(10.5, 1.5, n))
    width = rng.uniform(1.0, 2.2, n)
    affinity = (
        cat.TOPIC_INDUSTRY[c["industry"]] + cat.TOPIC_SENIORITY[c["seniority"]]
        + rng.normal(0.0, 0.7, (n, len(cat.TOPICS)))
    )
    fatigue = np.exp(-0.3 + cat.FATIGUE_SOURCE[c["source"]] + cat.FATIGUE_DOMAIN[c["domain"]] + rng.normal(0, 0.5, n))
    invalid = rng.random(n) < cat.INVALID_ADDRESS_SHARE[c["domain"]]
    bounce = np.where(invalid, 0.97, 0.004)
    value_log_mean = cat.VALUE_LOG_MEAN_SIZE[c["size"]] + rng.normal(0, 0.3, n)
    return Traits(
        base_engagement=base_engagement,
        conversion_propensity=conversion_propensity,
        peak_hour_weekday=np.mod(peak_wd, 24.0),
        peak_hour_weekend=np.mod(peak_we, 24.0),
        hour_width=width,
        topic_affinity=affinity,
        fatigue_sensitivity=fatigue,
        bounce_probability=bounce,
        value_log_mean=value_log_mean,
        domain_kind=np.array(cat.DOMAIN_KINDS)[c["domain"]],
    )


_SUBJECTS = {
    "product": ("Introducing {x}", "New in {x}: faster reports", "Meet the new {x}", "{x} just got smarter"),
    "education": ("How to get more from {x}", "5 lessons on {x}", "A short guide to {x}", "{x} in 10 minutes"),
    "case_study": ("How Globex cut churn with {x}", "Customer story: {x} at Initech", "{x}: results in 90 days"),
    "event": ("Join our {x} webinar", "You're invited: {x} summit", "Live Q&A on {x}"),
    "promotion": ("20% off {x}", "Upgrade to {x} for less", "Your {x} discount is waiting"),
    "news": ("This month in {x}", "{x} news you missed", "The {x} digest"),
}
_THEMES = ("analytics", "automation", "pipelines", "dashboards", "forecasting", "segmentation", "reporting",
           "onboarding", "security", "integrations")
_URGENT = ("Last chance: ", "Today only: ", "Ends tonight: ")
_EMOJI = ("🚀 ", "📈 ", "🎉 ", "✨ ")


def _content(config: WorldConfig, rng) -> tuple[pd.DataFrame, ContentTraits]:
    """Content library; a loop per item is fine (tens of items)."""
    n = config.n_content
    start = config.start_ts
    rows = []
    for i in range(n):
        topic = cat.TOPICS[i % len(cat.TOPICS)] if i < len(cat.TOPICS) else cat.TOPICS[rng.integers(len(cat.TOPICS))]
        fmt = cat.FORMATS[rng.integers(len(cat.FORMATS))]
        theme = _THEMES[rng.integers(len(_THEMES))]
        templates = _SUBJECTS[topic]
        subject = templates[rng.integers(len(templates))].format(x=theme)
        subject = subject[0].upper() + subject[1:]
        personal = bool(rng.random() < 0.35)
        urgent = bool(rng.random() < (0.5 if topic in ("promotion", "event") else 0.12))
        emoji = bool(rng.random() < 0.25)
        if personal:
            subject = "{first_name}, " + subject[0].lower() + subject[1:]
        if urgent:
            subject = _URGENT[rng.integers(len(_URGENT))] + subject
        if emoji:
            subject = _EMOJI[rng.integers(len(_EMOJI))] + subject
        # 40% exist before the history, the rest appear during it
        offset_days = -rng.uniform(1, 120) if i < max(len(cat.FORMATS) + 4, int(0.4 * n)) else rng.uniform(
            0, config.n_days * 0.9)
        rows.append(dict(
            content_id=i, name=f"{topic}-{theme}-{i:03d}", topic=topic, format=fmt, subject=subject,
            subject_length=len(subject), has_personalization=personal, has_urgency=urgent, has_emoji=emoji,
            created_at=start + pd.Timedelta(days=float(offset_days)),
        ))
    content = pd.DataFrame(rows)
    content["content_id"] = content["content_id"].astype(np.int64)
    content["subject_length"] = content["subject_length"].astype(np.int32)
    content["created_at"] = pd.to_datetime(content["created_at"], utc=True).astype("datetime64[us, UTC]")
    validate("content", content)
    traits = ContentTraits(open_appeal=rng.normal(0, 0.2, n), click_appeal=rng.normal(0, 0.3, n))
    return content, traits
