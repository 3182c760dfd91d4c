r"""The response model: the ground truth every model and policy is scored against.

For a send of content item k to contact i at UTC instant t, with r = sends to
i in the previous 7 days (fatigue), let h, wd be the local hour (fractional)
and weekday in i's IANA zone, `aff = topic_affinity[i, topic(k)]`,
`e = base_engagement[i]`, `fat = 0.3 * fatigue_sensitivity[i] * max(r - 1, 0)`.
Everything below is log-odds, turned into probabilities with the logistic
function sigma. The chain of one send is::

    bounce                       p_b  = bounce_probability[i]      (invalid addresses ~0.97, others 0.004)
    delivered                    1 - p_b
    open | delivered             sigma(e + hour(h, wd) - 0.2 weekend + 0.25 aff + subject(k, i)
                                       + open_appeal[k] - fat)
    click | open                 sigma(-2.6 + 0.9 aff + format(k) + format x seniority
                                       + 0.35 urgency x (promotion|event) + 0.1 personalization
                                       + 0.35 (e - e0) + click_appeal[k] - 0.5 fat)
    conversion | click           sigma(conversion_propensity[i] + topic_conv(k) + 0.3 aff)
    unsubscribe | delivered      sigma(-6.9 + 0.4 fatigue_sensitivity r - 0.3 aff - 0.25 (e - e0)
                                       + 0.5 import + 0.3 promo)
    complaint | delivered        sigma(-7.8 + 0.25 fatigue_sensitivity r + 1.0 role + 0.8 import + 0.3 promo)

* `hour(h, wd) = 2.6 * (bump - mean(bump)) - 0.6 night`, with
  `bump = exp(-d^2 / (2 w^2))`, d the circular distance (hours) from h to the
  contact's preferred hour (`peak_hour_weekday` Mon-Fri, `peak_hour_weekend`
  Sat-Sun), w = `hour_width`, night = local 00:00-05:30. Sending at a contact's
  peak roughly doubles the open rate compared with a random daytime slot.
* `subject(k, i)`: +0.15 personalization token, emoji +0.15 for free-mail
  addresses and -0.10 otherwise, -0.05 urgency, -0.015 per character over 50.
* Unconditional probabilities multiply along the chain (a click needs an open,
  a conversion needs a click); unsubscribe and complaint need delivery only.
* Delays after the send: delivered 1-60 s, bounce 5-600 s (uniform); open
  lognormal(median 1.5 h, sigma 1.4); click = open + lognormal(median 90 s,
  sigma 1.0); conversion = click + lognormal(median 24 h, sigma 1.2);
  unsubscribe lognormal(median 2 h, sigma 1.3); complaint lognormal(median
  5 h, sigma 1.2).
* Conversion value: lognormal(value_log_mean[i], 0.6), so its mean is
  `exp(value_log_mean + 0.18)`.

All methods are vectorized (numpy in, numpy out). Ids are `contact_id` /
`content_id` values, `sent_at` is numpy `datetime64` (UTC) or tz-aware pandas
timestamps; arguments broadcast against each other.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

from simulation import catalog as cat
from simulation.localtime import US_PER_HOUR, ZoneClock, hour_and_weekday
from simulation.schema import EVENT_TYPES

E0 = -1.35  # population-average base engagement (centre of the engagement terms)
HOUR_AMPLITUDE = 2.6
NIGHT_PENALTY = 0.6
FATIGUE_PER_SEND = 0.3
FORMAT_CLICK = np.array([0.0, 0.15, -0.1, -0.15])  # newsletter, plain, promo, digest
FORMAT_SENIORITY = np.array([  # rows: ic, manager, director, executive
    [0.0, -0.2, 0.1, 0.3],
    [0.0, 0.0, 0.0, 0.1],
    [0.0, 0.3, -0.1, -0.1],
    [0.0, 0.5, -0.3, -0.2],
])
TOPIC_CONVERSION = np.array([0.3, -0.3, 0.2, 0.0, 0.5, -0.5])  # product .. news
VALUE_LOG_SD = cat.VALUE_LOG_SD

# delay distributions (seconds): lognormal medians and sigmas
OPEN_DELAY = (1.5 * 3600.0, 1.4)
CLICK_DELAY = (90.0, 1.0)
CONVERSION_DELAY = (24 * 3600.0, 1.2)
UNSUBSCRIBE_DELAY = (2 * 3600.0, 1.3)
COMPLAINT_DELAY = (5 * 3600.0, 1.2)
DELIVERED_DELAY = (1.0, 60.0)  # uniform bounds
BOUNCE_DELAY = (5.0, 600.0)

TYPE_CODE = {t: i for i, t in enumerate(EVENT_TYPES)}
_TYPES = np.array(EVENT_TYPES, dtype=object)


def utc_timestamps(us: np.ndarray) -> pd.Series:
    """µs since the epoch as a `datetime64[us, UTC]` Series."""
    return pd.Series(np.asarray(us, dtype=np.int64).view("datetime64[us]"), dtype=pd.DatetimeTZDtype("us", "UTC"))


def frame(columns: dict) -> pd.DataFrame:
    """DataFrame from equal-length columns without consolidating blocks (a full copy for big tables)."""
    return pd.concat({k: v if isinstance(v, pd.Series) else pd.Series(v) for k, v in columns.items()},
                     axis=1, copy=False)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _lognormal_cdf(seconds, median_s: float, sigma: float):
    from scipy.special import ndtr

    s = np.maximum(np.asarray(seconds, dtype=float), 1e-9)
    return np.where(np.asarray(seconds) > 0, ndtr((np.log(s) - np.log(median_s)) / sigma), 0.0)


@lru_cache(maxsize=1)
def _send_to_conversion_grid() -> tuple[np.ndarray, np.ndarray]:
    """Empirical CDF of open + click + conversion delay (seconds), on a log grid."""
    rng = np.random.default_rng(20260501)
    n = 400_000
    total = sum(m * np.exp(s * rng.standard_normal(n)) for m, s in (OPEN_DELAY, CLICK_DELAY, CONVERSION_DELAY))
    grid = np.geomspace(60.0, 400 * 86400.0, 600)
    return grid, np.searchsorted(np.sort(total), grid, side="right") / n


def send_to_conversion_cdf(seconds) -> np.ndarray:
    """P(a conversion arrives within `seconds` of its send), given that it happens."""
    grid, cdf = _send_to_conversion_grid()
    s = np.asarray(seconds, dtype=float)
    return np.where(s <= 0, 0.0, np.interp(np.log(np.maximum(s, 1e-9)), np.log(grid), cdf, left=0.0, right=1.0))


def to_utc_us(sent_at) -> np.ndarray:
    """int64 µs since the epoch from numpy datetime64 (taken as UTC) or tz-aware pandas times."""
    if isinstance(sent_at, (pd.Timestamp, str)):
        ts = pd.Timestamp(sent_at)
        if ts.tzinfo is None:
            raise ValueError("sent_at: naive timestamp; pass a timezone-aware (UTC) time")
        return np.array([ts.value // 1000], dtype=np.int64)  # .value is ns whatever the unit
    if isinstance(sent_at, (pd.Series, pd.DatetimeIndex)):
        idx = pd.DatetimeIndex(sent_at)
        if idx.tz is None:
            raise ValueError("sent_at: naive timestamps; pass timezone-aware (UTC) times or numpy datetime64")
        return idx.tz_convert("UTC").as_unit("us").asi8.copy()
    arr = np.asarray(sent_at)
    if arr.dtype.kind == "M":
        return arr.astype("datetime64[us]").astype(np.int64)
    if arr.dtype == object:
        return to_utc_us(pd.Series(arr.ravel()))
    raise ValueError(f"sent_at: expected datetime64 or tz-aware timestamps, got {arr.dtype}")


class ResponseModel:
    """True response probabilities, delays and samples for any (contact, content, send time)."""

    def __init__(self, world):
        contacts, content, tr = world.contacts, world.content, world.traits
        self.traits = tr
        self._contact_ids = contacts["contact_id"].to_numpy(np.int64)
        self._content_ids = content["content_id"].to_numpy(np.int64)
        self._zones, self._tz = np.unique(contacts["timezone"].to_numpy(dtype=str), return_inverse=True)
        self.clock = ZoneClock(self._zones)
        self._seniority = pd.Categorical(contacts["seniority"], categories=cat.SENIORITIES).codes
        source = contacts["signup_source"].to_numpy()
        self._is_free = tr.domain_kind == "free_mail"
        self._unsub_base = -6.9 - 0.25 * (tr.base_engagement - E0) + 0.5 * (source == "import")
        self._complaint_base = -7.8 + 1.0 * (tr.domain_kind == "role") + 0.8 * (source == "import")
        self._value_mean = np.exp(tr.value_log_mean + VALUE_LOG_SD**2 / 2)

        topic = pd.Categorical(content["topic"], categories=tr.topics).codes
        fmt = pd.Categorical(content["format"], categories=cat.FORMATS).codes
        if (topic < 0).any() or (fmt < 0).any():
            raise ValueError("content: unknown topic or format for the response model")
        self._topic, self._format = topic, fmt
        urgent = content["has_urgency"].to_numpy(bool)
        personal = content["has_personalization"].to_numpy(bool)
        length = content["subject_length"].to_numpy(float)
        self._emoji = content["has_emoji"].to_numpy(bool)
        self._subject_open = (
            0.15 * personal - 0.05 * urgent - 0.015 * np.maximum(length - 50, 0) + world.content_traits.open_appeal
        )
        promo_or_event = np.isin(np.array(tr.topics)[topic], ("promotion", "event"))
        self._content_click = (
            -2.6 + FORMAT_CLICK[fmt] + 0.35 * (urgent & promo_or_event) + 0.1 * personal
            + world.content_traits.click_appeal
        )
        self._is_promo = fmt == cat.FORMATS.index("promo")
        self._topic_conv = TOPIC_CONVERSION[topic]

    @property
    def tz_codes(self) -> np.ndarray:
        """Per contact row, the index of its zone in `self.clock.zones`."""
        return self._tz

    # --- indexing ----------------------------------------------------------------
    @staticmethod
    def _rows(ids, known: np.ndarray, field: str) -> np.ndarray:
        ids = np.asarray(ids)
        if ids.dtype.kind not in "iu":
            raise ValueError(f"{field}: expected integer ids, got {ids.dtype}")
        ids = ids.astype(np.int64, copy=False)
        if len(known) and known[0] == 0 and known[-1] == len(known) - 1:  # ids are 0..n-1 (generated worlds)
            bad = (ids < 0) | (ids >= len(known))
            rows = ids
        else:
            order = np.argsort(known, kind="stable")
            pos = np.searchsorted(known, ids, sorter=order).clip(0, len(known) - 1)
            rows = order[pos]
            bad = known[rows] != ids
        if bad.any():
            raise ValueError(f"{field}: unknown id {ids[bad][0]} ({int(bad.sum())} unknown)")
        return rows

    def _prepare(self, contact_ids, content_ids, sent_at, recent_sends):
        t = to_utc_us(sent_at)
        c, k = np.asarray(contact_ids), np.asarray(content_ids)
        r = np.zeros(1, dtype=np.int64) if recent_sends is None else np.asarray(recent_sends)
        if r.dtype.kind not in "iu" or (r < 0).any():
            raise ValueError("recent_sends: expected non-negative integer counts")
        try:
            c, k, t, r = np.broadcast_arrays(c, k, t, r)
        except ValueError:
            raise ValueError(
                f"contact_ids, content_ids, sent_at, recent_sends: lengths differ "
                f"({c.size}, {k.size}, {t.size}, {r.size})"
            ) from None
        ci = self._rows(c.ravel(), self._contact_ids, "contact_ids")
        ki = self._rows(k.ravel(), self._content_ids, "content_ids")
        return ci, ki, t.ravel(), r.ravel()

    # --- the generative model ----------------------------------------------------
    def local_time(self, contact_rows: np.ndarray, sent_us: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fractional local hour and weekday (Mon = 0) of each send in the contact's zone."""
        return hour_and_weekday(self.clock.to_local(self._tz[contact_rows], sent_us))

    def utc_at_local(self, contact_ids, local_times) -> np.ndarray:
        """UTC instants (datetime64[us]) at which each contact's wall clock shows `local_times` (naive)."""
        c, t = np.broadcast_arrays(np.asarray(contact_ids), np.asarray(local_times, dtype="datetime64[us]"))
        rows = self._rows(c.ravel(), self._contact_ids, "contact_ids")
        local_us = t.ravel().astype(np.int64)
        return self.clock.to_utc(self._tz[rows], local_us).astype("datetime64[us]")

    def local_hour(self, contact_ids, sent_at) -> tuple[np.ndarray, np.ndarray]:
        """Fractional local hour and weekday (Mon = 0) of `sent_at` in each contact's zone."""
        c, t = np.broadcast_arrays(np.asarray(contact_ids), to_utc_us(sent_at))
        return self.local_time(self._rows(c.ravel(), self._contact_ids, "contact_ids"), t.ravel())

    def hour_effect(self, contact_rows: np.ndarray, hour: np.ndarray, weekday: np.ndarray) -> np.ndarray:
        tr = self.traits
        weekend = weekday >= 5
        peak = np.where(weekend, tr.peak_hour_weekend[contact_rows], tr.peak_hour_weekday[contact_rows])
        w = tr.hour_width[contact_rows]
        d = np.abs(hour - peak)
        d = np.minimum(d, 24.0 - d)
        bump = np.exp(-0.5 * (d / w) ** 2)
        mean_bump = w * np.sqrt(2 * np.pi) / 24.0
        night = hour < 5.5
        return HOUR_AMPLITUDE * (bump - mean_bump) - NIGHT_PENALTY * night - 0.2 * weekend

    def conditional(self, ci, ki, sent_us, recent) -> dict[str, np.ndarray]:
        """Per-stage conditional probabilities for row indices (not ids)."""
        tr = self.traits
        hour, weekday = self.local_time(ci, sent_us)
        e = tr.base_engagement[ci]
        aff = tr.topic_affinity[ci, self._topic[ki]]
        fs = tr.fatigue_sensitivity[ci]
        fat = FATIGUE_PER_SEND * fs * np.maximum(recent - 1, 0)
        emoji = np.where(self._is_free[ci], 0.15, -0.10) * self._emoji[ki]
        open_logit = e + self.hour_effect(ci, hour, weekday) + 0.25 * aff + self._subject_open[ki] + emoji - fat
        click_logit = (
            self._content_click[ki] + 0.9 * aff + FORMAT_SENIORITY[self._seniority[ci], self._format[ki]]
            + 0.35 * (e - E0) - 0.5 * fat
        )
        conv_logit = tr.conversion_propensity[ci] + self._topic_conv[ki] + 0.3 * aff
        promo = 0.3 * self._is_promo[ki]
        unsub_logit = self._unsub_base[ci] + 0.4 * fs * recent - 0.3 * aff + promo
        complaint_logit = self._complaint_base[ci] + 0.25 * fs * recent + promo
        return {
            "bounce": tr.bounce_probability[ci],
            "open": _sigmoid(open_logit),
            "click": _sigmoid(click_logit),
            "conversion": _sigmoid(conv_logit),
            "unsubscribe": _sigmoid(unsub_logit),
            "complaint": _sigmoid(complaint_logit),
        }

    def probabilities(self, contact_ids, content_ids, sent_at, recent_sends=None) -> dict[str, np.ndarray]:
        """Unconditional per-send probabilities, plus `open_24h` and `expected_value`."""
        ci, ki, t, r = self._prepare(contact_ids, content_ids, sent_at, recent_sends)
        return self._unconditional(ci, self.conditional(ci, ki, t, r))

    def _unconditional(self, ci, p) -> dict[str, np.ndarray]:
        delivered = 1.0 - p["bounce"]
        opened = delivered * p["open"]
        click = opened * p["click"]
        conversion = click * p["conversion"]
        return {
            "bounce": p["bounce"].copy(),
            "delivered": delivered,
            "open": opened,
            "click": click,
            "conversion": conversion,
            "unsubscribe": delivered * p["unsubscribe"],
            "complaint": delivered * p["complaint"],
            "open_24h": opened * _lognormal_cdf(24 * 3600.0, *OPEN_DELAY),
            "expected_value": conversion * self._value_mean[ci],
        }

    # --- sampling ----------------------------------------------------------------
    def sample(self, contact_ids, content_ids, sent_at, rng: np.random.Generator, recent_sends=None) -> pd.DataFrame:
        """Draw responses: DataFrame[row, type, occurred_at, value], `row` = position of the send in the inputs."""
        ci, ki, t, r = self._prepare(contact_ids, content_ids, sent_at, recent_sends)
        row, code, when, value = self.sample_arrays(ci, ki, t, r, rng)
        return frame({"row": row, "type": _TYPES[code], "occurred_at": utc_timestamps(when), "value": value})

    def sample_arrays(self, ci, ki, sent_us, recent, rng: np.random.Generator):
        """Vectorized draw for row indices: (send row, type code, occurred µs, value) arrays."""
        n = len(ci)
        p = self.conditional(ci, ki, sent_us, recent)
        u = rng.random((6, n))
        bounced = u[0] < p["bounce"]
        delivered = ~bounced
        opened = delivered & (u[1] < p["open"])
        clicked = opened & (u[2] < p["click"])
        converted = clicked & (u[3] < p["conversion"])
        unsub = delivered & (u[4] < p["unsubscribe"])
        complaint = delivered & (u[5] < p["complaint"])

        def lognormal(m, median_s, sigma):
            return (median_s * np.exp(sigma * rng.standard_normal(m)) * 1e6).astype(np.int64)

        open_at = np.zeros(n, dtype=np.int64)
        click_at = np.zeros(n, dtype=np.int64)
        rows, codes, times = [], [], []

        def emit(mask, name, at):
            idx = np.flatnonzero(mask)
            rows.append(idx)
            codes.append(np.full(len(idx), TYPE_CODE[name], dtype=np.int8))
            times.append(at)
            return idx

        idx = emit(delivered, "delivered", None)
        times[-1] = sent_us[idx] + (rng.uniform(*DELIVERED_DELAY, len(idx)) * 1e6).astype(np.int64)
        idx = emit(bounced, "bounce", None)
        times[-1] = sent_us[idx] + (rng.uniform(*BOUNCE_DELAY, len(idx)) * 1e6).astype(np.int64)
        idx = np.flatnonzero(opened)
        open_at[idx] = sent_us[idx] + lognormal(len(idx), *OPEN_DELAY)
        emit(opened, "open", open_at[idx])
        idx = np.flatnonzero(clicked)
        click_at[idx] = open_at[idx] + lognormal(len(idx), *CLICK_DELAY)
        emit(clicked, "click", click_at[idx])
        idx = np.flatnonzero(converted)
        conv_at = click_at[idx] + lognormal(len(idx), *CONVERSION_DELAY)
        emit(converted, "conversion", conv_at)
        conv_rows = idx
        idx = np.flatnonzero(unsub)
        emit(unsub, "unsubscribe", sent_us[idx] + lognormal(len(idx), *UNSUBSCRIBE_DELAY))
        idx = np.flatnonzero(complaint)
        emit(complaint, "complaint", sent_us[idx] + lognormal(len(idx), *COMPLAINT_DELAY))

        row = np.concatenate(rows)
        code = np.concatenate(codes)
        when = np.concatenate(times)
        value = np.full(len(row), np.nan)
        conv_mask = code == TYPE_CODE["conversion"]
        mu = self.traits.value_log_mean[ci[conv_rows]]
        value[conv_mask] = np.round(np.exp(mu + VALUE_LOG_SD * rng.standard_normal(len(conv_rows))), 2)
        return row, code, when, value

    # --- oracle for lead scoring -------------------------------------------------
    def conversion_within(self, contact_ids, start, end, sends_df: pd.DataFrame) -> np.ndarray:
        """P(at least one conversion in [start, end) caused by the sends in `sends_df`), per contact.

        `sends_df` has contact_id, content_id, sent_at (and optionally recent_sends;
        otherwise fatigue is counted from `sends_df` itself). Sends of contacts not
        in `contact_ids` are ignored; contacts without sends get 0.
        """
        for col in ("contact_id", "content_id", "sent_at"):
            if col not in sends_df.columns:
                raise ValueError(f"sends_df: missing column {col!r}")
        start_us, end_us = to_utc_us(pd.Timestamp(start))[0], to_utc_us(pd.Timestamp(end))[0]
        if end_us <= start_us:
            raise ValueError("conversion_within: end must be after start")
        wanted = np.asarray(contact_ids, dtype=np.int64)
        cid = sends_df["contact_id"].to_numpy(np.int64)
        t = to_utc_us(sends_df["sent_at"])
        if "recent_sends" in sends_df.columns:
            recent = sends_df["recent_sends"].to_numpy(np.int64)
        else:
            recent = recent_send_counts(cid, t)
        keep = np.isin(cid, wanted) & (t < end_us)
        cid, t, recent = cid[keep], t[keep], recent[keep]
        kid = sends_df["content_id"].to_numpy(np.int64)[keep]
        ci = self._rows(cid, self._contact_ids, "sends_df.contact_id")
        ki = self._rows(kid, self._content_ids, "sends_df.content_id")
        p = self._unconditional(ci, self.conditional(ci, ki, t, recent))["conversion"]
        window = send_to_conversion_cdf((end_us - t) / 1e6) - send_to_conversion_cdf((start_us - t) / 1e6)
        log_miss = np.log1p(-np.clip(p * window, 0.0, 1.0 - 1e-12))
        uniq, inv = np.unique(wanted, return_inverse=True)
        per = np.zeros(len(uniq))
        np.add.at(per, np.searchsorted(uniq, cid), log_miss)
        return 1.0 - np.exp(per[inv])


def recent_send_counts(contact_ids: np.ndarray, sent_us: np.ndarray, window_us: int = 7 * 24 * US_PER_HOUR) -> np.ndarray:
    """For each send, the number of sends to the same contact in the previous `window_us` (exclusive)."""
    n = len(contact_ids)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((sent_us, contact_ids))
    c, t = contact_ids[order], sent_us[order] // 1_000_000  # seconds keep the key inside int64
    window_s = window_us // 1_000_000
    # one sortable key: each contact's sends on its own stretch of the time axis
    rank = np.concatenate([[0], np.cumsum(c[1:] != c[:-1])])
    span = int(t.max() - t.min()) + 2 * window_s + 1
    key = rank * span + (t - t.min())
    first = np.searchsorted(key, key - window_s, side="left")
    same_time_before = np.searchsorted(key, key, side="left")
    out = np.empty(n, dtype=np.int64)
    out[order] = same_time_before - first
    return out
