"""Frame-to-frame tracking of the reference point: detect once, then follow the target.

In a camera stream the target moves a few millimetres between frames, so the mean of
the joints just estimated is a better cube centre for the next frame than a fresh
detection, and it is free: the whole-image detector and the refinement CNN (together
most of the time spent around the network, docs/performance.md) then run only to
acquire the target, to re-check it every ``redetect_every`` frames, and to recover
when the followed cube no longer holds a confident pose.

The live node and the offline bag evaluator both wrap their estimator in
:class:`TrackingEstimator`, so a bag evaluation measures exactly what the node does.
Pure Python/NumPy: no ROS here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from v2v_ros.core.camera import Intrinsics
from v2v_ros.core.estimator import PoseResult


@dataclass(frozen=True)
class TrackingConfig:
    """When a frame may reuse the previous frame's estimate as its cube centre."""

    enabled: bool = False
    # Frames further apart than this (or out of order) start over with a detection.
    max_gap_s: float = 0.25
    # Detect anyway every N tracked frames, so a track that drifted onto another
    # object is corrected within N frames (0 = only when the track is lost).
    redetect_every: int = 30
    # A followed cube whose pose scores below this (mean peak confidence) is treated
    # as lost: the same frame is estimated again from a fresh detection.
    min_score: float = 0.4

    def __post_init__(self) -> None:
        if not self.max_gap_s > 0:
            raise ValueError(f"tracking max_gap_s must be > 0 s, got {self.max_gap_s}")
        if self.redetect_every < 0:
            raise ValueError(f"tracking redetect_every must be >= 0 frames, got {self.redetect_every}")
        if not 0.0 <= self.min_score <= 1.0:
            raise ValueError(f"tracking min_score must be in [0, 1], got {self.min_score}")


class TrackingEstimator:
    """Wraps a :class:`~v2v_ros.core.estimator.PoseEstimator`: same ``estimate``, plus a stamp.

    ``stats`` counts frames by how their cube centre was found: ``detected`` (no track),
    ``tracked``, ``redetected`` (periodic check) and ``reacquired`` (the followed cube
    failed, the frame was re-estimated from a detection).
    """

    follows_stream = True  # evaluators feed it frames in order, with stamps

    def __init__(self, estimator: Any, config: TrackingConfig | None = None) -> None:
        self.estimator = estimator
        self.config = config or TrackingConfig()
        # verified: frames whose first candidate centre was doubted and its rivals estimated
        self.stats = {"detected": 0, "tracked": 0, "redetected": 0, "reacquired": 0, "verified": 0}
        self._centre: np.ndarray | None = None
        self._stamp_ns: int | None = None
        self._since_detect = 0

    def __getattr__(self, name: str) -> Any:
        # joint_names, meta, grid, precision, ... of the wrapped estimator
        if name == "estimator":
            raise AttributeError(name)
        return getattr(self.estimator, name)

    def reset(self) -> None:
        """Forget the track (new stream, lifecycle transition, parameter change)."""
        self._centre, self._stamp_ns, self._since_detect = None, None, 0

    def estimate(self, depth_mm: np.ndarray, intrinsics: Intrinsics, stamp_ns: int | None = None) -> PoseResult:
        """Estimate one frame; ``stamp_ns`` (the image's stamp) decides whether the track still holds."""
        seed = self._seed(stamp_ns)
        if seed is None:
            kind = "redetected" if self.config.enabled and self._centre is not None else "detected"
            # A periodic re-detection keeps the followed centre as the first rival: if the detector
            # is doubtful there, the track survives in one verification round (not several).
            prior = self._centre if kind == "redetected" and self._fresh(stamp_ns) else None
            result = self.estimator.estimate(depth_mm, intrinsics, prior=prior)
        else:
            result = self.estimator.estimate(depth_mm, intrinsics, reference_point=seed)
            kind = "tracked"
            if not self._holds(result):
                followed = result
                result = self.estimator.estimate(depth_mm, intrinsics)
                kind = "reacquired"
                result.timings = _summed(followed.timings, result.timings)
        self.stats[kind] += 1
        self.stats["verified"] += int(getattr(result, "candidates", 1) > 1)
        self._since_detect = self._since_detect + 1 if kind == "tracked" else 0
        self._stamp_ns = stamp_ns
        centre = np.asarray(result.joints, np.float64).mean(axis=0) if self._holds(result) else None
        # A centre at or behind the camera plane cannot seed a cube: the estimator refuses such a
        # reference point (ValueError), so following it would turn the next frame into an error.
        self._centre = centre if centre is not None and centre[2] > 0 else None
        return replace(result, tracked=kind == "tracked")

    def _holds(self, result: PoseResult) -> bool:
        """Whether a pose is confident enough to follow (and to centre the next cube on)."""
        return bool(result.valid and result.score >= self.config.min_score and np.all(np.isfinite(result.joints)))

    def _fresh(self, stamp_ns: int | None) -> bool:
        """Whether the last estimate is recent enough to say where the target is now."""
        if stamp_ns is None or self._stamp_ns is None:
            return True
        gap = (stamp_ns - self._stamp_ns) * 1e-9
        return 0 < gap <= self.config.max_gap_s

    def _seed(self, stamp_ns: int | None) -> np.ndarray | None:
        cfg = self.config
        if not cfg.enabled or self._centre is None or not self._fresh(stamp_ns):
            return None
        if cfg.redetect_every and self._since_detect >= cfg.redetect_every:
            return None
        return self._centre


def _summed(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    """Per-stage timings of two passes over one frame (what the frame really cost)."""
    return {k: a.get(k, 0.0) + b.get(k, 0.0) for k in {**a, **b}}
