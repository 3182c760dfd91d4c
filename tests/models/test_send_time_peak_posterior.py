"""Empirical-Bayes peak prior and posterior (`models.peak_posterior`) on contacts with known peaks."""
import json

import numpy as np

from models.peak_posterior import PeakPrior, fit_peak_prior, peak_grid

SEGMENT_PEAKS = {"ic|software": 8.0, "executive|retail": 13.0}


def _contacts(n: int, seed: int):
    """Send-hour counts of contacts whose weekday peak is their segment's hour + N(0, 1)."""
    rng = np.random.default_rng(seed)
    keys = np.array(list(SEGMENT_PEAKS), dtype=object)[rng.integers(0, 2, n)]
    peak = np.array([SEGMENT_PEAKS[k] for k in keys]) + rng.normal(0, 1.0, n)
    base = rng.normal(-1.3, 0.4, n)
    sent, opened = np.zeros((n, 48)), np.zeros((n, 48))
    sends = rng.poisson(14, n)
    c = np.repeat(np.arange(n), sends)
    h = rng.uniform(6.0, 22.0, len(c))
    d = np.abs(h - peak[c])
    z = base[c] + 2.6 * (np.exp(-0.5 * (np.minimum(d, 24 - d) / 1.5) ** 2) - 1.5 * np.sqrt(2 * np.pi) / 24)
    o = rng.random(len(c)) < 1 / (1 + np.exp(-z))
    np.add.at(sent, (c, h.astype(int)), 1)
    np.add.at(opened, (c, h.astype(int)), o)
    return sent, opened, keys, peak


def _peak_error(prior: PeakPrior, sent, opened, keys, peak) -> float:
    rate = prior.posterior(sent, opened, prior.segment_rows(keys))["rate"][:, :24]
    d = np.abs(rate.argmax(axis=1) - peak)
    return float(np.median(np.minimum(d, 24 - d)))


def test_em_learns_segment_peaks_and_beats_a_flat_prior():
    sent, opened, keys, peak = _contacts(1600, seed=1)
    prior = fit_peak_prior(sent[:1000], opened[:1000], keys[:1000], iterations=15, search_contacts=400,
                           search_iterations=4, amplitudes=(2.6,), widths=(1.2, 1.6))
    grid = peak_grid()
    for key, hour in SEGMENT_PEAKS.items():
        mode = grid[np.argmax(prior.segment_weekday[prior.segment_index[key]])]
        assert abs(mode - hour) <= 1.0, (key, mode)
    assert np.isclose(prior.base_prior.sum(), 1.0) and np.allclose(prior.weekend_given_weekday.sum(axis=1), 1.0)
    held_out = (sent[1000:], opened[1000:], keys[1000:], peak[1000:])
    flat = PeakPrior.uniform(width=prior.width)
    assert _peak_error(prior, *held_out) < _peak_error(flat, *held_out)


def test_posterior_without_history_is_the_segment_prior_and_round_trips_through_json():
    sent, opened, keys, _ = _contacts(300, seed=2)
    prior = fit_peak_prior(sent, opened, keys, iterations=5, search_contacts=100, search_iterations=2,
                           amplitudes=(2.6,), widths=(1.6,))
    empty = prior.posterior(np.zeros((2, 48)), np.zeros((2, 48)), prior.segment_rows(np.array(list(SEGMENT_PEAKS))))
    assert np.allclose(empty["weekday_peak"][0], prior.segment_weekday[prior.segment_index["ic|software"]])
    again = PeakPrior.from_dict(json.loads(json.dumps(prior.to_dict())))
    a = prior.posterior(sent[:50], opened[:50], prior.segment_rows(keys[:50]))
    b = again.posterior(sent[:50], opened[:50], again.segment_rows(keys[:50]))
    assert np.allclose(a["rate"], b["rate"], atol=1e-6) and np.allclose(a["lift"], b["lift"], atol=1e-5)
    unknown = prior.posterior(np.zeros((1, 48)), np.zeros((1, 48)), prior.segment_rows(np.array(["x|y"])))
    assert np.allclose(unknown["weekday_peak"][0], prior.population_weekday)


def test_posterior_of_a_contact_does_not_depend_on_its_batch():
    """Serving scores one contact or a thousand per call: a contact's posterior (and so its slot features
    and its best send time) must be the same in both. In float32 it moved by ~6e-7, enough to move near-tied
    hours across the booster's splits."""
    sent, opened, keys, _ = _contacts(700, seed=3)
    prior = fit_peak_prior(sent[:400], opened[:400], keys[:400], iterations=5, search_contacts=200,
                           search_iterations=2, amplitudes=(2.6,), widths=(1.6,))
    seg = prior.segment_rows(keys)
    whole = prior.posterior(sent, opened, seg)
    for lo, hi in [(0, 1), (5, 6), (17, 50), (333, 334), (100, 199), (650, 700)]:
        part = prior.posterior(sent[lo:hi], opened[lo:hi], seg[lo:hi])
        for k in ("rate", "lift"):
            assert np.array_equal(part[k], whole[k][lo:hi]), (k, lo, hi)


def test_hour_features_equal_slot_features_at_every_hour():
    from models.send_time import hour_features, slot_features, with_posterior

    sent, opened, keys, _ = _contacts(60, seed=4)
    prior = fit_peak_prior(sent, opened, keys, iterations=3, search_contacts=60, search_iterations=1,
                           amplitudes=(2.6,), widths=(1.6,))
    rng = np.random.default_rng(0)
    profile = with_posterior({"sent": sent, "opened": opened, "segment": keys,
                              **{k: rng.integers(0, 9, 60).astype(float) for k in
                                 ("opens_wd", "opens_we", "sends_wd", "sends_we", "best_wd", "best_we")}}, prior)
    rows = np.array([3, 0, 59, 17])
    want = slot_features(profile, np.repeat(rows, 168), np.tile(np.arange(168), len(rows)))
    assert np.array_equal(hour_features(profile, rows), want)
