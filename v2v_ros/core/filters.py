"""Temporal smoothing of keypoints: the One Euro filter (Casiez et al., CHI 2012).

Per-frame V2V-PoseNet estimates jitter by a few mm; a plain low-pass filter would
remove the jitter but lag behind fast motion. The One Euro filter adapts its cut-off
to the speed of the signal: slow motion -> strong smoothing, fast motion -> little
lag. It works on whole arrays (e.g. (J, 3) joints in mm) with timestamps in seconds,
so the node and offline tools filter identically. No ROS import.
"""

from __future__ import annotations

import math

import numpy as np


def _alpha(cutoff_hz: float, dt: float) -> float:
    """Smoothing factor of a first-order low-pass at ``cutoff_hz`` for a step ``dt``."""
    tau = 1.0 / (2.0 * math.pi * cutoff_hz)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """One Euro filter over arrays of any fixed shape.

    Parameters (as in the paper): ``min_cutoff`` (Hz) sets the smoothing at rest,
    ``beta`` how fast the cut-off grows with speed (per unit of the signal per
    second), ``d_cutoff`` (Hz) smooths the speed estimate. The state resets when the
    shape changes, when time goes backwards (bag loop, sim time reset) or after a gap
    longer than ``reset_after_s`` (a hand that reappears must not be dragged from its
    old position). Non-finite samples pass through and reset the state.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0,
                 reset_after_s: float = 0.5) -> None:
        self.configure(min_cutoff, beta, d_cutoff, reset_after_s)
        self.reset()

    def configure(self, min_cutoff: float, beta: float, d_cutoff: float, reset_after_s: float = 0.5) -> None:
        """Change parameters without losing the state (runtime parameter updates)."""
        if not min_cutoff > 0 or not d_cutoff > 0:
            raise ValueError(f"cut-off frequencies must be positive, got min_cutoff={min_cutoff}, d_cutoff={d_cutoff}")
        if not beta >= 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        if not reset_after_s > 0:  # NaN would never reset, <= 0 would never smooth
            raise ValueError(f"reset_after_s must be > 0 s, got {reset_after_s}")
        self.min_cutoff, self.beta, self.d_cutoff = float(min_cutoff), float(beta), float(d_cutoff)
        self.reset_after_s = float(reset_after_s)

    def reset(self) -> None:
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        """Filtered copy of ``x`` observed at time ``t`` (seconds).

        A non-finite ``t`` raises: its step would poison the state, and every later output, with NaN.
        """
        if not math.isfinite(t):
            raise ValueError(f"OneEuroFilter time t must be finite seconds, got {t!r}")
        x = np.asarray(x, dtype=np.float64)
        if not np.all(np.isfinite(x)):
            self.reset()
            return x.copy()
        if self._x is None or self._t is None or self._x.shape != x.shape:
            return self._start(x, t)
        dt = t - self._t
        if dt <= 0 or dt > self.reset_after_s:
            return self._start(x, t)
        dx = (x - self._x) / dt
        a_d = _alpha(self.d_cutoff, dt)
        dx_hat = a_d * dx + (1.0 - a_d) * self._dx
        cutoff = self.min_cutoff + self.beta * np.abs(dx_hat)
        tau = 1.0 / (2.0 * np.pi * cutoff)
        a = 1.0 / (1.0 + tau / dt)
        x_hat = a * x + (1.0 - a) * self._x
        self._x, self._dx, self._t = x_hat, dx_hat, t
        return x_hat.copy()

    def _start(self, x: np.ndarray, t: float) -> np.ndarray:
        self._x, self._dx, self._t = x.copy(), np.zeros_like(x), t
        return x.copy()
