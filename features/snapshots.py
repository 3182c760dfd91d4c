"""Contact snapshots with numpy: dense (contact x day) running sums, read at snapshot days.

Input: per-event arrays from DuckDB (sends, first opens, first clicks, other
events) with contact positions and UTC day numbers. For a chunk of contacts,
each additive measure becomes a dense (contacts x days) array via `bincount`,
its running sum along days is taken once (with a leading zero column), and a
snapshot at day S reads `cum[S - day0]` (everything on days < S); a w-day
window is `cum[S - day0] - cum[S - w - day0]`. Chunks bound memory; the work
is a handful of vectorized passes, never a Python loop over rows.

The population priors (the whole list's per-day totals the rates and profiles are
shrunk to, and the day grid) are a small `PopulationPriors` computed once from every
contact's facts. An engine built over a contact range's facts alone (`split_contacts`)
with the whole list's priors computes that range's rows exactly as the engine over
every contact does: that is how the Spark build (`features.spark_build`) gives each task
only its partition's facts.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from features.send_hours import send_hour_columns, sparse_send_hour_counts
from features.table_schemas import contact_table_schemas, table_from_arrays

US_PER_DAY = 86_400_000_000
BLOCK = 64  # contacts per block of facts; chunks of a multiple of BLOCK contacts are plain slices


@dataclass
class EventArrays:
    """Facts for the snapshot engine; contact fields are positions into `contacts`, times in µs UTC."""

    contact_ids: np.ndarray       # sorted int64
    created_us: np.ndarray        # int64 per contact
    tz_codes: np.ndarray          # int per contact, index into `zones`
    zones: list[str]
    topics: list[str]             # topic slugs
    send_c: np.ndarray
    send_t: np.ndarray
    send_topic: np.ndarray
    open_c: np.ndarray
    open_t: np.ndarray
    open_send_t: np.ndarray       # send time of each opened send (for the send-hour profile)
    click_c: np.ndarray
    click_t: np.ndarray
    click_topic: np.ndarray
    other_c: np.ndarray
    other_t: np.ndarray
    other_kind: np.ndarray        # 0 conversion, 1 unsubscribe, 2 bounce, 3 complaint
    other_value: np.ndarray       # revenue for conversions

    def n_facts(self) -> int:
        """Fact rows held (sends, opens, clicks and other events); 0 once an engine has taken them."""
        return sum(len(getattr(self, f"{family}_c")) for family in FACT_FAMILIES
                   if getattr(self, f"{family}_c") is not None)


# per-fact fields of each family of facts in `EventArrays`, the contact position first
FACT_FAMILIES = {
    "send": ("send_c", "send_t", "send_topic"),
    "open": ("open_c", "open_t", "open_send_t"),
    "click": ("click_c", "click_t", "click_topic"),
    "other": ("other_c", "other_t", "other_kind", "other_value"),
}
CONTACT_FIELDS = ("contact_ids", "created_us", "tz_codes")


def split_contacts(ev: EventArrays, bounds: list[tuple[int, int]]) -> list[EventArrays]:
    """`ev` cut into the contact ranges `bounds` (consecutive, covering every contact): one
    `EventArrays` per range holding only its contacts and their facts, contact positions relative
    to the range's start. A contact's facts keep their order (a stable sort), so the engine's
    per-cell float sums are the same. Takes ownership of `ev`'s fact arrays (released family by family).
    """
    n = len(ev.contact_ids)
    starts = np.array([lo for lo, _ in bounds] + [hi for _, hi in bounds[-1:]], dtype=np.int64)
    ends = np.array([hi for _, hi in bounds], dtype=np.int64)
    if not len(bounds) or starts[0] != 0 or ends[-1] != n or (ends != starts[1:]).any() or (ends < starts[:-1]).any():
        raise ValueError(f"bounds: expected consecutive (lo, hi) ranges covering contacts 0..{n}, got {bounds}")
    pieces: list[dict] = [{name: getattr(ev, name)[lo:hi] for name in CONTACT_FIELDS} for lo, hi in bounds]
    for fields in FACT_FAMILIES.values():
        c = getattr(ev, fields[0])
        part = np.searchsorted(starts[1:], c, side="right")      # range of each fact
        order = np.argsort(part.astype(np.uint16) if len(bounds) < 2**16 else part, kind="stable")
        edges = np.searchsorted(part[order], np.arange(len(bounds) + 1))
        del part
        for name in fields:
            col = getattr(ev, name)[order]
            setattr(ev, name, None)
            if name == fields[0]:
                col -= np.repeat(starts[:-1], np.diff(edges)).astype(col.dtype)  # relative to the range
            for piece, a, b in zip(pieces, edges[:-1], edges[1:]):
                piece[name] = col[a:b]
    return [EventArrays(zones=ev.zones, topics=ev.topics, **piece) for piece in pieces]


def local_hour_bins(open_c: np.ndarray, open_t: np.ndarray, tz_codes: np.ndarray, zones: list[str]) -> np.ndarray:
    """0-23 = weekday local hour, 24-47 = weekend local hour, per fact (contact positions, µs UTC).

    Offsets come from `simulation.localtime.ZoneClock` (one pandas call per zone over
    15-minute buckets, then one gather). Unknown zones count as UTC.
    """
    from simulation.localtime import US_PER_HOUR, ZoneClock

    t = np.asarray(open_t, dtype=np.int64)
    if len(t) == 0:
        return np.zeros(0, dtype=np.int64)
    local = ZoneClock([_zone_or_utc(z) for z in zones]).to_local(np.asarray(tz_codes)[open_c], t)
    hour = (local // US_PER_HOUR) % 24
    weekday = (local // US_PER_DAY + 3) % 7  # 1970-01-01 was a Thursday (Monday = 0)
    return hour + 24 * (weekday >= 5)


def _zone_or_utc(zone: str) -> str:
    import pandas as pd

    try:
        pd.Timestamp(0, tz="UTC").tz_convert(zone)
    except Exception:  # unknown zone name
        return "UTC"
    return zone


def _dense(c, d, nc, nd, weights=None, groups=None, n_groups=1) -> np.ndarray:
    """Day-major (nd, [n_groups,] nc) sums of weights (counts if None) at (day, [group,] contact).

    Groups before contacts: one group of a snapshot is then a contiguous row of contacts.
    """
    key = (d * n_groups + (0 if groups is None else groups)) * nc + c
    out = np.bincount(key, weights=weights, minlength=nd * nc * n_groups)
    if weights is None:
        out = out.astype(np.int32)
    return out.reshape(nd, n_groups, nc) if groups is not None else out.reshape(nd, nc)


def _running(a: np.ndarray, op=np.add) -> np.ndarray:
    """In place, `op`-accumulate over axis 0, one vectorized step per day (numpy's own
    accumulate along axis 0 walks the other axes in an inner strided loop, which is slower)."""
    if a.ndim == 1:
        return op.accumulate(a, out=a)
    for k in range(1, len(a)):
        op(a[k - 1], a[k], out=a[k])
    return a


def _cum0(a: np.ndarray) -> np.ndarray:
    """Running sum over days (axis 0) with a leading zero row: out[k] = sum of a[:k]."""
    out = np.empty((a.shape[0] + 1,) + a.shape[1:], dtype=a.dtype)
    out[0] = 0
    out[1:] = a
    return _running(out)


def _argmax(arrays: list[np.ndarray]) -> np.ndarray:
    """Index of the largest of several same-shape arrays, element-wise (first one on ties), as int64."""
    best, arg = arrays[0].copy(), np.zeros(arrays[0].shape, dtype=np.int64)
    for i, x in enumerate(arrays[1:], start=1):
        better = x > best
        np.copyto(best, x, where=better)
        arg[better] = i
    return arg


def _shrunk(k, n, p, a):
    return (k + a * p) / (n + a) if a > 0 else np.where(n > 0, k / np.maximum(n, 1), p)


@dataclass
class PopulationPriors:
    """What a contact's snapshots need from the whole list: the day grid (`day0`: the day before
    the first fact or snapshot; `nd` days up to the last snapshot) and the population's running
    per-day totals (`cum`: sends, opens, clicks, conversions; sends and clicks per topic; opens per
    local-hour bin) that the rates, topic affinities and hour profiles are shrunk to. Small: days x
    (4 + 2 topics + 48) counts, whatever the number of contacts."""

    snaps: np.ndarray
    day0: int
    nd: int
    cum: dict[str, np.ndarray]


def _fact_days(ev: EventArrays) -> np.ndarray:
    ts = [t for t in (ev.send_t, ev.open_t, ev.click_t, ev.other_t) if len(t)]
    return np.concatenate(ts) // US_PER_DAY if ts else np.zeros(0, dtype=np.int64)


def _day_positions(t: np.ndarray, day0: int, nd: int) -> tuple[np.ndarray, np.ndarray]:
    """Day positions of µs times, and a mask of those before the last snapshot."""
    d = t // US_PER_DAY - day0
    return d, d < nd


def population_priors(ev: EventArrays, snaps, open_bins: np.ndarray | None = None) -> PopulationPriors:
    """The priors of the population whose facts are all of `ev` (same windows, same snapshot days);
    `open_bins`: `local_hour_bins` of its opens, if already computed."""
    snaps = np.asarray(snaps, dtype=np.int64)
    if len(snaps) == 0 or (np.diff(snaps) <= 0).any():
        raise ValueError("snaps: expected increasing snapshot day numbers, at least one")
    day0 = int(min(_fact_days(ev).min(initial=snaps[0] - 1), snaps[0] - 1))
    nd = int(snaps[-1] - day0)
    if open_bins is None:
        open_bins = local_hour_bins(ev.open_c, ev.open_t, ev.tz_codes, ev.zones)

    def per_day(t, groups=None, n_groups=1):
        d, ok = _day_positions(t, day0, nd)
        c = np.zeros(int(ok.sum()), dtype=np.int64)
        out = _dense(c, d[ok], 1, nd, None, None if groups is None else groups[ok], n_groups)
        return _cum0(out[:, :, 0] if groups is not None else out[:, 0])

    nt = len(ev.topics)
    cum = {"sends": per_day(ev.send_t), "opens": per_day(ev.open_t), "clicks": per_day(ev.click_t),
           "conversions": per_day(ev.other_t[ev.other_kind == 0]),
           "sends_t": per_day(ev.send_t, ev.send_topic, nt), "clicks_t": per_day(ev.click_t, ev.click_topic, nt),
           "bins": per_day(ev.open_t, open_bins, 48)}
    return PopulationPriors(snaps=snaps, day0=day0, nd=nd, cum=cum)


class SnapshotEngine:
    """Snapshots of the contacts in `ev`: `chunk(lo, hi)` -> the four contact tables of contacts lo..hi-1.

    `priors`: the population's (`population_priors` over every contact's facts) when `ev` holds
    only some contacts (`split_contacts`); None when `ev` is the whole list, which is then its own
    population. Either way a contact's rows are the same.
    """

    def __init__(self, ev: EventArrays, snaps: np.ndarray, half_life_days: float, prior_strength: float,
                 profile_prior_strength: float, weights: dict, priors: PopulationPriors | None = None):
        self.ev = ev
        self.snaps = np.asarray(snaps, dtype=np.int64)      # snapshot day numbers, sorted
        open_bins = local_hour_bins(ev.open_c, ev.open_t, ev.tz_codes, ev.zones)
        if priors is None:
            priors = population_priors(ev, self.snaps, open_bins)
        elif not np.array_equal(priors.snaps, self.snaps):
            raise ValueError("priors: computed for other snapshot days than `snaps`")
        self.priors = priors
        self.day0, self.nd, self.pop = priors.day0, priors.nd, priors.cum  # days day0 .. last snapshot - 1
        self.h = float(half_life_days)
        self.a = float(prior_strength)
        self.a_prof = float(profile_prior_strength)
        self.w = weights
        self.schemas = contact_table_schemas(ev.topics)
        # facts before the last snapshot, grouped by block of contacts once: a chunk is a slice.
        # Each family's per-fact arrays in `ev` are released (set to None) once grouped, so the
        # facts are held once, not twice, whoever else holds `ev`.
        self.facts = {}
        send_bins = local_hour_bins(ev.send_c, ev.send_t, ev.tz_codes, ev.zones)
        self.facts["send"] = self._by_contact(ev.send_c, ev.send_t, ev.send_topic, send_bins)
        del send_bins
        ev.send_c = ev.send_t = ev.send_topic = None
        # opens binned by the local hour their send went out (counted on the day of the open)
        open_send_bins = local_hour_bins(ev.open_c, ev.open_send_t, ev.tz_codes, ev.zones)
        self.facts["open"] = self._by_contact(ev.open_c, ev.open_t, open_bins, open_send_bins)
        del open_bins, open_send_bins
        ev.open_c = ev.open_t = ev.open_send_t = None
        self.facts["click"] = self._by_contact(ev.click_c, ev.click_t, ev.click_topic)
        ev.click_c = ev.click_t = ev.click_topic = None
        self.facts["other"] = self._by_contact(ev.other_c, ev.other_t, ev.other_kind, ev.other_value)
        ev.other_c = ev.other_t = ev.other_kind = ev.other_value = None

    def _by_contact(self, c, t, *extra) -> list[np.ndarray]:
        """Facts grouped by block of BLOCK contacts (a stable sort: a contact's facts keep their
        order, so per-cell float sums do not change); block ids fit 16 bits -> radix sort."""
        d, ok = self._day(t)
        block = c[ok] // BLOCK
        small = len(self.ev.contact_ids) // BLOCK < 2**16
        order = np.argsort(block.astype(np.uint16) if small else block, kind="stable")
        cols = [x[ok][order] for x in (c, d, t, *extra)]
        return [np.searchsorted(block[order], np.arange(len(self.ev.contact_ids) // BLOCK + 2)), *cols]

    def _slice(self, family: str, lo: int, hi: int) -> list[np.ndarray]:
        """Facts of contacts lo..hi-1 (contact positions relative to lo)."""
        starts, c, *rest = self.facts[family]
        a, b = starts[lo // BLOCK], starts[-(-hi // BLOCK)]
        c, rest = c[a:b], [x[a:b] for x in rest]
        if lo % BLOCK or hi % BLOCK:  # not aligned to blocks: keep only lo..hi-1
            mine = (c >= lo) & (c < hi)
            c, rest = c[mine], [x[mine] for x in rest]
        return [c - lo, *rest]

    def _day(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Day positions, and a mask of facts before the last snapshot."""
        return _day_positions(t, self.day0, self.nd)

    def _at(self, cum: np.ndarray, lag: int = 0) -> np.ndarray:
        """cum (nd+1, ...) read at every snapshot (minus `lag` days) -> (n_snaps, ...); a view
        when those days are consecutive (daily snapshots), else a copy."""
        idx = np.clip(self.snaps - lag - self.day0, 0, self.nd)
        if len(idx) > 1 and (idx[1:] - idx[:-1] == 1).all():
            return cum[idx[0]: idx[-1] + 1]
        return cum[idx]

    # ---- population rates (all contacts, same windows, same snapshot) ---------------
    def _pop_rate(self, k: str, n: str, window: int) -> np.ndarray:
        kk = self._at(self.pop[k]) - self._at(self.pop[k], window)
        nn = self._at(self.pop[n]) - self._at(self.pop[n], window)
        return np.where(nn > 0, kk / np.maximum(nn, 1), 0.0)

    # ---- one chunk of contacts -------------------------------------------------------
    def chunk(self, lo: int, hi: int) -> dict[str, pa.Table]:
        ev, nd, nc = self.ev, self.nd, hi - lo
        S = len(self.snaps)

        sc, sd, st_, stop, sb = self._slice("send", lo, hi)
        oc, od, ot, ob, osb = self._slice("open", lo, hi)
        kc, kd, kt, ktop = self._slice("click", lo, hi)
        xc, xd, xt, xk, xv = self._slice("other", lo, hi)

        sends = _dense(sc, sd, nc, nd)
        opens = _dense(oc, od, nc, nd)
        cum = {
            "sends": _cum0(sends), "opens": _cum0(opens), "clicks": _cum0(_dense(kc, kd, nc, nd)),
            "conversions": _cum0(_dense(xc[xk == 0], xd[xk == 0], nc, nd)),
            "revenue": _cum0(_dense(xc[xk == 0], xd[xk == 0], nc, nd, xv[xk == 0])),
            "unsubscribes": _cum0(_dense(xc[xk == 1], xd[xk == 1], nc, nd)),
            "bounces": _cum0(_dense(xc[xk == 2], xd[xk == 2], nc, nd)),
            "complaints": _cum0(_dense(xc[xk == 3], xd[xk == 3], nc, nd)),
        }
        # decayed engagement: sum w * 2^((t - t0)/h) per day, running sum, times 2^(-(S - t0)/h)
        t0 = float(self.day0)
        dec = lambda t, w: w * np.exp2((t / US_PER_DAY - t0) / self.h)  # noqa: E731
        eng = (_dense(oc, od, nc, nd, dec(ot, self.w.get("open", 0.0)))
               + _dense(kc, kd, nc, nd, dec(kt, self.w.get("click", 0.0)))
               + _dense(xc[xk == 0], xd[xk == 0], nc, nd, dec(xt[xk == 0], self.w.get("conversion", 0.0))))
        eng_at = self._at(_cum0(eng)) * np.exp2(-(self.snaps - t0) / self.h)[:, None]

        def last_time(c, d, t):
            """Latest fact time (days since epoch) before each day position (row 0: none); -inf if none."""
            out = np.full((nd + 1) * nc, -np.inf)
            np.maximum.at(out, (d + 1) * nc + c, t / US_PER_DAY)
            return _running(out.reshape(nd + 1, nc), np.maximum)

        snap_days = self.snaps.astype(np.float64)[:, None]

        def since(last):
            v = snap_days - self._at(last)
            return np.where(np.isfinite(v), v, np.nan)

        # sends counted up to the last day with an open (fatigue streak = sends since then)
        sends_upto = cum["sends"][1:]
        at_open = np.full((nd + 1, nc), -1, dtype=sends_upto.dtype)
        np.copyto(at_open[1:], sends_upto, where=opens > 0)
        at_open = _running(at_open, np.maximum)

        created = ev.created_us[lo:hi]
        # rows go out contact-major (a contact's snapshots in a row): neighbouring rows then hold
        # near-equal values, which the Parquet encoding compresses far better than snapshot-major
        alive = created[:, None] < (self.snaps * US_PER_DAY)[None, :]          # (nc, S)
        every = bool(alive.all())

        def col(x):
            x = np.broadcast_to(x, (S, nc)).T
            return x.reshape(-1) if every else x[alive]

        ids = col(ev.contact_ids[lo:hi][None, :])
        ts = pa.array(col((self.snaps * US_PER_DAY)[:, None]), type=pa.timestamp("us", tz="UTC"))

        e: dict[str, np.ndarray] = {}
        for wd in (7, 30, 90):
            for m in ("sends", "opens", "clicks", "conversions"):
                e[f"{m}_{wd}d"] = (self._at(cum[m]) - self._at(cum[m], wd)).astype(np.int64)
        e["revenue_90d"] = self._at(cum["revenue"]) - self._at(cum["revenue"], 90)
        for wd in (30, 90):
            for m, name in (("opens", "open_rate"), ("clicks", "click_rate")):
                e[f"{name}_{wd}d"] = _shrunk(e[f"{m}_{wd}d"], e[f"sends_{wd}d"], self._pop_rate(m, "sends", wd)[:, None], self.a)
        e["conversion_rate_90d"] = _shrunk(e["conversions_90d"], e["sends_90d"],
                                           self._pop_rate("conversions", "sends", 90)[:, None], self.a)
        e["days_since_last_open"] = since(last_time(oc, od, ot))
        e["days_since_last_click"] = since(last_time(kc, kd, kt))
        e["days_since_last_send"] = since(last_time(sc, sd, st_))
        e["engagement_score"] = eng_at
        total_sends = self._at(cum["sends"])
        e["sends_since_last_open"] = (total_sends - np.maximum(self._at(at_open), 0)).astype(np.int64)
        for m in ("sends", "opens", "clicks", "conversions"):
            e[f"{m}_total"] = self._at(cum[m]).astype(np.int64)
        e["unsubscribed"] = self._at(cum["unsubscribes"]) > 0
        e["bounced"] = self._at(cum["bounces"]) > 0
        e["complained"] = self._at(cum["complaints"]) > 0
        e["tenure_days"] = snap_days - (created / US_PER_DAY)[None, :]

        # topic affinities over 90 days, shrunk to the population's topic CTR
        nt = len(ev.topics)
        tsends = _cum0(_dense(sc, sd, nc, nd, groups=stop, n_groups=nt))
        tclicks = _cum0(_dense(kc, kd, nc, nd, groups=ktop, n_groups=nt))
        n90 = self._at(tsends) - self._at(tsends, 90)               # (S, nt, nc)
        k90 = self._at(tclicks) - self._at(tclicks, 90)
        pn = self._at(self.pop["sends_t"]) - self._at(self.pop["sends_t"], 90)  # (S, nt)
        pk = self._at(self.pop["clicks_t"]) - self._at(self.pop["clicks_t"], 90)
        pt = np.where(pn > 0, pk / np.maximum(pn, 1), 0.0)
        topics = {f"click_affinity_{t}": _shrunk(k90[:, i], n90[:, i], pt[:, i, None], self.a)
                  for i, t in enumerate(ev.topics)}

        # local-time open profile (lifetime), shrunk to the population's profile
        bins = self._at(_cum0(_dense(oc, od, nc, nd, groups=ob, n_groups=48)))   # (S, 48, nc)
        q = self._at(self.pop["bins"])                                               # (S, 48)
        st: dict[str, np.ndarray] = {}
        best = {}
        a_prof = np.float32(self.a_prof)
        for k, kind in enumerate(("wd", "we")):
            n_b = bins[:, 24 * k: 24 * (k + 1)]
            n_tot = n_b.sum(axis=1)
            q_b = q[:, 24 * k: 24 * (k + 1)]
            q_tot = q_b.sum(axis=1, keepdims=True)
            prior = np.where(q_tot > 0, q_b / np.maximum(q_tot, 1), 1 / 24).astype(np.float32)  # (S, 24)
            # float32: 48 shares x every row is the bulk of the data; one contiguous (S, nc) array per hour
            n_tot32 = n_tot.astype(np.float32)
            share = [_shrunk(n_b[:, hr].astype(np.float32), n_tot32, prior[:, hr, None], a_prof) for hr in range(24)]
            st[f"opens_{'weekday' if kind == 'wd' else 'weekend'}"] = n_tot.astype(np.int64)
            for hr in range(24):
                st[f"open_share_{kind}_h{hr:02d}"] = share[hr]
            best[kind] = _argmax(share)
        st["best_hour_weekday"] = best["wd"]
        st["best_hour_weekend"] = best["we"]

        def table(name: str, cols: dict) -> pa.Table:
            arrays = {"contact_id": ids, "event_timestamp": ts, **{k: col(v) for k, v in cols.items()}}
            return table_from_arrays(self.schemas[name], arrays, name)

        return {"contact_engagement": table("contact_engagement", e),
                "contact_send_time": table("contact_send_time", st),
                "contact_topics": table("contact_topics", topics),
                "contact_send_hours": self._send_hour_counts(lo, hi, sc, sd, sb, oc, od, osb)}

    def _send_hour_counts(self, lo, hi, sc, sd, sb, oc, od, osb) -> pa.Table:
        """Sparse cumulative send / opened-send counts by local send hour (`features.send_hours`)."""
        snap_pos = self.snaps - self.day0          # snapshot j sees day positions < snap_pos[j]
        first = np.searchsorted(self.snaps * US_PER_DAY, self.ev.created_us[lo:hi], side="right")
        c, j, counts = sparse_send_hour_counts(sc, np.searchsorted(snap_pos, sd, side="right"), sb,
                                               oc, np.searchsorted(snap_pos, od, side="right"), osb,
                                               first, len(self.snaps))
        arrays = {"contact_id": self.ev.contact_ids[lo:hi][c],
                  "event_timestamp": pa.array(self.snaps[j] * US_PER_DAY, type=pa.timestamp("us", tz="UTC"))}
        arrays.update({name: counts[i] for i, name in enumerate(send_hour_columns())})
        arrays["sends_weekday"] = counts[:24].sum(axis=0, dtype=np.int32)
        arrays["sends_weekend"] = counts[24:48].sum(axis=0, dtype=np.int32)
        return table_from_arrays(self.schemas["contact_send_hours"], arrays, "contact_send_hours")
