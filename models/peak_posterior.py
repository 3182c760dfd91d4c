"""Posterior over a contact's preferred send hours from its send-hour counts, empirical-Bayes prior.

Observation model (one contact): a send at local hour h on a weekday is opened
with probability sigma(b + F[p, h]), on a weekend day sigma(b + F[q, h] + s);
b is the contact's base log-odds, p / q its preferred weekday / weekend hour
and F a bump template: amplitude a times a circular Gaussian of width w
around the peak (minus its daily mean), minus `night` before 05:30.

Prior (learned, not assumed): b on a grid with weights `base_prior`; p from
the contact's segment (seniority x industry) distribution `segment_weekday`
(the population's `population_weekday` for an unknown segment); q given p
from `weekend_given_weekday` (so "evening on weekdays, evening on weekends"
couplings are learned). They are fitted by EM on the training period's
contacts (Dempster, Laird & Rubin 1977), i.e. the nonparametric maximum
likelihood prior of empirical Bayes (Robbins 1956; Laird 1978), with the
segment rows shrunk toward the population. The template's amplitude and
width are chosen by the marginal likelihood on the same contacts.

Inputs are cumulative counts per local send hour: `sent` and `opened`, each
(n, 48) = 24 weekday hours then 24 weekend hours. Output: the posterior
predictive open probability and the posterior-mean lift at each top of the
hour (the slots a planner can choose). All numpy, a few small matrix
products per batch.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HOURS = 24
# The posterior's matrix products run in float64: in float32 their rounding depends on the batch size
# (BLAS picks other kernels), by ~6e-7 relative, and the slot features built from them (a slot's rate
# relative to the best slot's, its lift below the best) put near-tied hours on either side of the
# booster's splits: one contact's best send time then changed with the batch it was scored in (up to
# 34% in probability on the default world). In float64 the rounding is ~1e-17, and `posterior` snaps its
# outputs to 1e-10, so a contact's features no longer depend on its batch.
FLOAT = np.float64
PEAK_STEP = 0.5


def peak_grid() -> np.ndarray:
    return (np.arange(int(HOURS / PEAK_STEP)) + 0.5) * PEAK_STEP


def _log_sigmoid(x):
    return -np.logaddexp(0.0, -x)


def bump_template(hours: np.ndarray, amplitude: float, width: float, night: float) -> np.ndarray:
    """(peaks, len(hours)) log-odds lift of a send at `hours` for each peak of `peak_grid()`."""
    peaks = peak_grid()
    d = np.abs(np.asarray(hours, float)[None, :] - peaks[:, None])
    d = np.minimum(d, HOURS - d)
    bump = np.exp(-0.5 * (d / width) ** 2)
    mean = width * np.sqrt(2 * np.pi) / HOURS  # daily mean of the bump (exact for widths << 24 h)
    return amplitude * (bump - mean) - night * (np.asarray(hours, float)[None, :] < 5.5)


@dataclass
class PeakPrior:
    """Learned prior and template; `posterior` turns counts into per-slot open probabilities."""

    base_logits: np.ndarray            # (B,) grid of base log-odds
    base_prior: np.ndarray             # (B,)
    segment_keys: list                 # 'seniority|industry'
    segment_weekday: np.ndarray        # (S, P) prior of the weekday peak per segment
    population_weekday: np.ndarray     # (P,)
    weekend_given_weekday: np.ndarray  # (P, P) rows: weekday peak, columns: weekend peak
    amplitude: float = 2.6
    width: float = 1.6
    night: float = 0.6
    weekend_shift: float = -0.2

    def __post_init__(self):
        self.segment_index = {k: i for i, k in enumerate(self.segment_keys)}
        self._cache()

    def _cache(self) -> None:
        B, P = len(self.base_logits), len(peak_grid())
        obs = bump_template(np.arange(HOURS) + 0.5, self.amplitude, self.width, self.night)  # sends spread over the hour
        top = bump_template(np.arange(HOURS), self.amplitude, self.width, self.night)         # slots: top of the hour
        self._weights = []
        self._rates = []
        for shift in (0.0, self.weekend_shift):
            z = self.base_logits[:, None, None] + obs[None] + shift                           # (B, P, 24)
            w = np.concatenate([_log_sigmoid(z), _log_sigmoid(-z)], axis=2).reshape(B * P, 2 * HOURS)
            self._weights.append(np.ascontiguousarray(w.T, dtype=FLOAT))                 # (48, B*P)
            zt = self.base_logits[:, None, None] + top[None] + shift
            self._rates.append((1.0 / (1.0 + np.exp(-zt))).reshape(B * P, HOURS).astype(FLOAT))
        self._lift = top.astype(FLOAT)                                                   # (P, 24)
        self._base = np.asarray(self.base_prior, FLOAT)
        self._segment = np.asarray(self.segment_weekday, FLOAT).reshape(-1, P)
        self._population = np.asarray(self.population_weekday, FLOAT)
        self._transition = np.asarray(self.weekend_given_weekday, FLOAT)
        self._shape = (B, P)

    # --- inference ----------------------------------------------------------------
    def segment_rows(self, keys) -> np.ndarray:
        return np.fromiter((self.segment_index.get(k, -1) for k in keys), dtype=np.int64, count=len(keys))

    def _weekday_prior(self, seg: np.ndarray) -> np.ndarray:
        if not len(self._segment):
            return np.broadcast_to(self._population, (len(seg), len(self._population)))
        return np.where((seg >= 0)[:, None], self._segment[np.maximum(seg, 0)], self._population[None, :])

    def _likelihoods(self, sent: np.ndarray, opened: np.ndarray):
        """Per part (weekday, weekend): likelihood (n, B, P) scaled by its row maximum, and the log scale."""
        B, P = self._shape
        out = []
        for part, weights in enumerate(self._weights):
            cols = slice(part * HOURS, (part + 1) * HOURS)
            k = opened[:, cols]
            counts = np.hstack([k, np.maximum(sent[:, cols] - k, 0.0)]).astype(FLOAT)
            ll = counts @ weights
            top = ll.max(axis=1, keepdims=True)
            out.append((np.exp(ll - top).reshape(-1, B, P), top[:, 0]))
        return out

    def _joint(self, sent, opened, seg):
        (A, la), (Q, lq) = self._likelihoods(np.asarray(sent, float), np.asarray(opened, float))
        B, P = self._shape
        U = self._base[None, :, None] * self._weekday_prior(seg)[:, None, :] * A              # (n, B, P)
        G = (Q.reshape(-1, P) @ self._transition.T).reshape(Q.shape)                          # sum over weekend peak
        wd = U * G
        Z = wd.sum(axis=(1, 2))
        return U, Q, wd, Z, la + lq

    def posterior(self, sent, opened, seg, chunk: int = 20_000) -> dict[str, np.ndarray]:
        """Posterior predictive P(open) and mean lift at each top of the hour: (n, 48) each."""
        if len(sent) > chunk:
            parts = [self.posterior(sent[i:i + chunk], opened[i:i + chunk], seg[i:i + chunk], chunk)
                     for i in range(0, len(sent), chunk)]
            return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        B, P = self._shape
        U, Q, wd, Z, _ = self._joint(sent, opened, seg)
        H = (U.reshape(-1, P) @ self._transition).reshape(U.shape)                            # sum over weekday peak
        we = H * Q
        wd /= Z[:, None, None]
        we /= Z[:, None, None]
        n = len(Z)
        rate = np.hstack([wd.reshape(n, B * P) @ self._rates[0], we.reshape(n, B * P) @ self._rates[1]])
        lift = np.hstack([wd.sum(axis=1) @ self._lift, we.sum(axis=1) @ self._lift])
        # snapped to 1e-10: what is left of the batch-size rounding (~1e-17) then changes no feature
        return {"rate": np.round(rate, 10), "lift": np.round(lift, 10), "weekday_peak": wd.sum(axis=1),
                "weekend_peak": we.sum(axis=1)}

    # --- persistence --------------------------------------------------------------
    def to_dict(self) -> dict:
        r = lambda a: np.round(np.asarray(a, float), 8).tolist()  # noqa: E731
        return {"base_logits": r(self.base_logits), "base_prior": r(self.base_prior),
                "segment_keys": list(self.segment_keys), "segment_weekday": r(self.segment_weekday),
                "population_weekday": r(self.population_weekday),
                "weekend_given_weekday": r(self.weekend_given_weekday), "amplitude": self.amplitude,
                "width": self.width, "night": self.night, "weekend_shift": self.weekend_shift}

    @classmethod
    def from_dict(cls, d: dict) -> "PeakPrior":
        P = len(peak_grid())
        return cls(np.asarray(d["base_logits"], float), np.asarray(d["base_prior"], float), list(d["segment_keys"]),
                   np.asarray(d["segment_weekday"], float).reshape(-1, P), np.asarray(d["population_weekday"], float),
                   np.asarray(d["weekend_given_weekday"], float).reshape(P, P), float(d["amplitude"]),
                   float(d["width"]), float(d["night"]), float(d["weekend_shift"]))

    @classmethod
    def uniform(cls, amplitude=2.6, width=1.6, night=0.6, weekend_shift=-0.2) -> "PeakPrior":
        """Flat prior (no training data): every peak and base level equally likely."""
        base = np.arange(-4.5, 1.01, 0.5)
        P = len(peak_grid())
        return cls(base, np.full(len(base), 1 / len(base)), [], np.zeros((0, P)), np.full(P, 1 / P),
                   np.full((P, P), 1 / P), amplitude, width, night, weekend_shift)


def fit_peak_prior(sent: np.ndarray, opened: np.ndarray, keys, iterations: int = 40, shrinkage: float = 30.0,
                   amplitudes=(2.0, 2.6, 3.2), widths=(1.2, 1.6, 2.0), night: float = 0.6,
                   weekend_shift: float = -0.2, search_contacts: int = 4000, search_iterations: int = 10,
                   seed: int = 0) -> PeakPrior:
    """EM fit of the prior on contacts' counts; template by marginal likelihood over a small grid.

    `keys`: segment key per contact; segments are shrunk toward the population with the weight of
    `shrinkage` pseudo-contacts (a segment with few contacts stays near the population). The
    template grid is searched on a random subsample of `search_contacts` contacts.
    """
    from threadpoolctl import threadpool_limits

    sent = np.asarray(sent, float)
    opened = np.asarray(opened, float)
    keys = np.asarray(keys, dtype=object)
    if len(sent) == 0:
        return PeakPrior.uniform(night=night, weekend_shift=weekend_shift)
    segs, seg = np.unique(keys, return_inverse=True)
    sub = np.random.default_rng(seed).permutation(len(sent))[:search_contacts]
    with threadpool_limits(1):  # small matrix products: BLAS threads only spin
        scores = {(a, w): _em(sent[sub], opened[sub], segs, seg[sub], search_iterations, shrinkage, a, w, night,
                              weekend_shift)[1] for a in amplitudes for w in widths}
        a, w = max(scores, key=scores.get)
        prior, _ = _em(sent, opened, segs, seg, iterations, shrinkage, a, w, night, weekend_shift)
    return prior


def _em(sent, opened, segs, seg, iterations, shrinkage, amplitude, width, night, weekend_shift):
    prior = PeakPrior.uniform(amplitude, width, night, weekend_shift)
    P = len(peak_grid())
    prior.segment_keys = list(segs)
    prior.segment_index = {k: i for i, k in enumerate(segs)}
    prior.segment_weekday = np.tile(prior.population_weekday, (len(segs), 1))
    counts = np.bincount(seg, minlength=len(segs)).astype(float)
    loglik = -np.inf
    for _ in range(iterations):
        U, Q, wd, Z, scale = prior._joint(sent, opened, seg)
        loglik = float(np.sum(np.log(Z, dtype=np.float64) + scale))
        post = wd / Z[:, None, None]
        prior.base_prior = post.sum(axis=(0, 2), dtype=np.float64) / len(Z)
        peak = post.sum(axis=1, dtype=np.float64)                                # (n, P)
        population = peak.mean(axis=0)
        by_seg = np.zeros((len(segs), P))
        np.add.at(by_seg, seg, peak)
        prior.population_weekday = population
        prior.segment_weekday = (by_seg + shrinkage * population) / (counts + shrinkage)[:, None]
        pair = ((U / Z[:, None, None]).reshape(-1, P).T @ Q.reshape(-1, P)).astype(np.float64) \
            * prior.weekend_given_weekday
        pair += 1e-3 / P                                                         # keep every cell reachable
        prior.weekend_given_weekday = pair / pair.sum(axis=1, keepdims=True)
        prior._cache()
    keep = prior.base_prior >= 1e-3 * prior.base_prior.max()  # drop base levels the data never uses
    prior.base_logits, prior.base_prior = prior.base_logits[keep], prior.base_prior[keep] / prior.base_prior[keep].sum()
    prior._cache()
    return prior, loglik
