import numpy as np
import pytest

from models.calibration import Calibrator
from models.metrics import expected_calibration_error


@pytest.mark.parametrize("method", ["isotonic", "platt"])
def test_calibration_fixes_overconfident_scores(method):
    rng = np.random.default_rng(0)
    true_p = rng.beta(1, 20, 40_000)
    y = rng.random(len(true_p)) < true_p
    raw = np.clip(true_p * 3.0, 0, 0.999)  # systematically 3x too high
    half = len(raw) // 2
    cal = Calibrator(method).fit(raw[:half], y[:half])
    before = expected_calibration_error(y[half:], raw[half:])
    after = expected_calibration_error(y[half:], cal.transform(raw[half:]))
    assert after < before / 3
    assert after < 0.01
    # monotone: calibration never reorders contacts
    grid = np.linspace(0, 1, 200)
    assert np.all(np.diff(cal.transform(grid)) >= -1e-12)
    # JSON round trip gives the same map
    again = Calibrator.from_dict(cal.to_dict())
    np.testing.assert_allclose(again.transform(raw[:100]), cal.transform(raw[:100]))


def test_unknown_method_rejected():
    with pytest.raises(ValueError, match="calibration method"):
        Calibrator("magic")
