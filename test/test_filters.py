"""One Euro filter: smooths jitter at rest, follows fast motion, resets on gaps."""

from __future__ import annotations

import numpy as np
import pytest

from v2v_ros.core.filters import OneEuroFilter


def test_reduces_jitter_at_rest() -> None:
    rng = np.random.default_rng(0)
    f = OneEuroFilter(min_cutoff=1.0, beta=0.0)
    raw = 100.0 + rng.normal(0, 3.0, (300, 21, 3))
    out = np.stack([f(x, i / 30) for i, x in enumerate(raw)])
    assert out[50:].std() < 0.5 * raw[50:].std()


def test_beta_reduces_lag_on_motion() -> None:
    t = np.arange(60) / 30
    x = (t * 300.0)[:, None]  # 300 mm/s
    lag = {}
    for beta in (0.0, 0.05):
        f = OneEuroFilter(min_cutoff=1.0, beta=beta)
        out = np.array([f(v, s) for v, s in zip(x, t, strict=False)])
        lag[beta] = float(np.abs(out[-1] - x[-1]).item())
    assert lag[0.05] < 0.5 * lag[0.0]


def test_resets_on_gap_time_reversal_shape_and_nan() -> None:
    f = OneEuroFilter(reset_after_s=0.5)
    f(np.zeros(3), 0.0)
    assert np.allclose(f(np.full(3, 100.0), 2.0), 100.0)  # gap: no dragging from the old position
    assert np.allclose(f(np.full(3, 5.0), 1.0), 5.0)  # time went backwards (bag loop)
    assert f(np.ones((2, 3)), 1.1).shape == (2, 3)
    nan = np.array([np.nan, 1.0, 1.0])
    assert np.isnan(f(nan, 1.2)[0])


def test_invalid_parameters() -> None:
    with pytest.raises(ValueError):
        OneEuroFilter(min_cutoff=0.0)
    with pytest.raises(ValueError):
        OneEuroFilter(beta=-1.0)


def test_a_non_finite_time_is_refused_not_a_poisoned_state() -> None:
    """One NaN stamp used to turn every later output into NaN (dt = NaN passed the gap checks)."""
    f = OneEuroFilter()
    f(np.zeros(3), 0.0)
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="time t"):
            f(np.ones(3), bad)
    assert np.all(np.isfinite(f(np.ones(3), 0.033)))
    g = OneEuroFilter()
    with pytest.raises(ValueError, match="time t"):
        g(np.zeros(3), float("nan"))
    for t in (0.0, 0.033, 0.066):
        assert np.all(np.isfinite(g(np.ones(3), t)))


@pytest.mark.parametrize("reset_after_s", [0.0, -1.0, float("nan")])
def test_invalid_reset_after(reset_after_s: float) -> None:
    with pytest.raises(ValueError, match="reset_after_s"):
        OneEuroFilter(reset_after_s=reset_after_s)
