"""Reference-point tracking (core.tracking) on a real PoseEstimator following a moving object.

The test network puts every joint's heatmap peak at the centroid of the occupied
voxels, so the estimate is wherever the object really is inside the cube: a track
that is not updated, or updated with the wrong centre, loses the object.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from v2v_ros.core.camera import Intrinsics
from v2v_ros.core.checkpoint import ModelMeta
from v2v_ros.core.estimator import PoseEstimator
from v2v_ros.core.skeletons import HAND_MSRA21
from v2v_ros.core.tracking import TrackingConfig, TrackingEstimator

CAM = Intrinsics(615.0, 615.0, 319.5, 239.5)
NS = 1_000_000_000


class CentroidNet(torch.nn.Module):
    """Heatmaps (paper eq. 1, σ = 1.7) peaking at the occupied voxels' centroid."""

    def __init__(self, joints: int, sigma: float = 1.7) -> None:
        super().__init__()
        self.joints, self.sigma = joints, sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, n = x.shape[:3]
        m = n // 2
        idx = torch.arange(n, dtype=torch.float32) + 0.5
        occ = x[:, 0]
        total = occ.sum(dim=(1, 2, 3)).clamp(min=1.0)
        gx = (occ.sum(dim=(2, 3)) * idx).sum(1) / total
        gy = (occ.sum(dim=(1, 3)) * idx).sum(1) / total
        gz = (occ.sum(dim=(1, 2)) * idx).sum(1) / total
        k = torch.arange(m, dtype=torch.float32)
        ox, oy, oz = (g[:, None] / 2 - 0.5 - k for g in (gx, gy, gz))  # output voxel k is centred at 2(k+0.5)
        d2 = ox[:, :, None, None] ** 2 + oy[:, None, :, None] ** 2 + oz[:, None, None, :] ** 2
        hm = torch.exp(-d2 / (2 * self.sigma**2))
        return hm[:, None].expand(b, self.joints, m, m, m)


def _estimator() -> PoseEstimator:
    meta = ModelMeta(HAND_MSRA21.name, list(HAND_MSRA21.joint_names), 32, 200.0)
    return PoseEstimator(CentroidNet(meta.num_joints), meta, device="cpu", min_points=5)


def _ball(centre: np.ndarray, radius: float = 35.0) -> np.ndarray:
    """Depth (mm) of a ball in front of a far wall."""
    h, w = 480, 640
    depth = np.full((h, w), 3000.0, dtype=np.float32)
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    x = (u - CAM.cx) / CAM.fx
    y = (v - CAM.cy) / CAM.fy
    # ray (x, y, 1)·t hits the sphere |p - c| = r
    a = x * x + y * y + 1.0
    bq = -2.0 * (x * centre[0] + y * centre[1] + centre[2])
    c = float(centre @ centre) - radius**2
    disc = bq * bq - 4 * a * c
    hit = disc >= 0
    t = (-bq - np.sqrt(np.where(hit, disc, 0.0))) / (2 * a)
    depth[hit] = t[hit].astype(np.float32)
    return depth


def _path(n: int, step_mm: float = 6.0) -> list[np.ndarray]:
    return [np.array([-60.0 + step_mm * i, 20.0, 520.0 + 2.0 * i]) for i in range(n)]


def test_follows_a_moving_object_without_detecting() -> None:
    tracker = TrackingEstimator(_estimator(), TrackingConfig(enabled=True, redetect_every=0))
    results = [tracker.estimate(_ball(c), CAM, stamp_ns=i * NS // 30) for i, c in enumerate(_path(20))]
    assert [r.tracked for r in results] == [False] + [True] * 19
    assert tracker.stats == {"detected": 1, "tracked": 19, "redetected": 0, "reacquired": 0, "verified": 0}
    for prev, res in zip(results, results[1:], strict=False):
        # each tracked cube is centred on the previous estimate, and localisation did not run
        np.testing.assert_allclose(res.reference_point, prev.joints.mean(axis=0))
        assert "localize" not in res.timings and res.valid
    # the estimates stay on the object (the ball's visible surface is ~ 2/3 r in front of its centre)
    for c, res in zip(_path(20), results, strict=True):
        assert np.linalg.norm(res.joints.mean(axis=0)[:2] - c[:2]) < 10.0


def test_disabled_tracker_detects_every_frame() -> None:
    tracker = TrackingEstimator(_estimator(), TrackingConfig(enabled=False))
    results = [tracker.estimate(_ball(c), CAM, stamp_ns=i * NS // 30) for i, c in enumerate(_path(4))]
    assert not any(r.tracked for r in results) and tracker.stats["detected"] == 4
    assert all("localize" in r.timings for r in results)


def test_gap_out_of_order_stamps_and_periodic_redetection() -> None:
    tracker = TrackingEstimator(_estimator(), TrackingConfig(enabled=True, max_gap_s=0.1, redetect_every=3))
    path = _path(12)
    stamps = [0, 33, 66, 99, 132, 400, 433, 10, 43, 76, 109, 142]  # ms: a gap at 400, a restart at 10
    kinds = []
    for c, ms in zip(path, stamps, strict=True):
        before = dict(tracker.stats)
        tracker.estimate(_ball(c), CAM, stamp_ns=ms * 1_000_000)
        kinds.append(next(k for k, v in tracker.stats.items() if v != before[k]))
    assert kinds == ["detected", "tracked", "tracked", "tracked", "redetected",  # every 3 tracked frames
                     "redetected", "tracked",  # 268 ms gap > 0.1 s
                     "redetected", "tracked", "tracked", "tracked", "redetected"]  # stamp went back


def test_periodic_redetection_offers_the_followed_centre_as_a_rival() -> None:
    est = _estimator()
    priors: list = []
    real = est.estimate

    def spy(depth, intr, reference_point=None, prior=None):  # noqa: ANN001, ANN202
        if reference_point is None:
            priors.append(None if prior is None else np.asarray(prior).copy())
        return real(depth, intr, reference_point=reference_point, prior=prior)

    est.estimate = spy
    tracker = TrackingEstimator(est, TrackingConfig(enabled=True, max_gap_s=0.1, redetect_every=2))
    stamps = [0, 33, 66, 99, 400]  # detect, track, track, redetect (periodic), redetect after a gap
    for c, ms in zip(_path(5), stamps, strict=True):
        tracker.estimate(_ball(c), CAM, stamp_ns=ms * 1_000_000)
    assert len(priors) == 3 and priors[0] is None and priors[2] is None  # first detection; stale track
    assert priors[1] is not None and priors[1].shape == (3,)  # the followed centre, offered as a rival


def test_lost_target_is_reacquired_in_the_same_frame() -> None:
    tracker = TrackingEstimator(_estimator(), TrackingConfig(enabled=True, redetect_every=0))
    tracker.estimate(_ball(np.array([-80.0, 0.0, 500.0])), CAM, stamp_ns=0)
    jumped = np.array([150.0, 40.0, 600.0])  # far outside the followed 200 mm cube
    res = tracker.estimate(_ball(jumped), CAM, stamp_ns=NS // 30)
    assert tracker.stats["reacquired"] == 1 and not res.tracked and res.valid
    assert np.linalg.norm(res.joints.mean(axis=0)[:2] - jumped[:2]) < 10.0
    assert "localize" in res.timings and res.timings["forward"] > 0
    tracker.reset()
    assert not tracker.estimate(_ball(jumped), CAM, stamp_ns=2 * NS // 30).tracked


def test_wrapper_exposes_the_estimator_and_validates_its_config() -> None:
    est = _estimator()
    tracker = TrackingEstimator(est)
    assert tracker.joint_names == est.joint_names and tracker.grid is est.grid
    with pytest.raises(ValueError, match="max_gap_s"):
        TrackingConfig(max_gap_s=0)
    with pytest.raises(ValueError, match="redetect_every"):
        TrackingConfig(redetect_every=-1)
    with pytest.raises(ValueError, match="min_score"):
        TrackingConfig(min_score=2.0)


class _BehindCamera:
    """An estimator whose confident pose lies behind the camera (joints' mean z < 0)."""

    joint_names = HAND_MSRA21.joint_names

    def __init__(self) -> None:
        self.calls: list = []
        self.real = _estimator()

    def estimate(self, depth, intr, reference_point=None, prior=None):  # noqa: ANN001, ANN201
        self.calls.append((reference_point, prior))
        res = self.real.estimate(depth, intr, reference_point=reference_point)  # refuses z <= 0, as the node's would
        res.joints = res.joints - [0.0, 0.0, 2.0 * res.joints[:, 2].max()]  # every joint at z < 0
        res.confidence = np.ones_like(res.confidence)
        return res


def test_a_centre_behind_the_camera_is_not_followed() -> None:
    """The estimator rejects z <= 0 reference points (ValueError): the next frame must detect instead."""
    est = _BehindCamera()
    tracker = TrackingEstimator(est, TrackingConfig(enabled=True, redetect_every=0))
    for i in range(2):
        tracker.estimate(_ball(np.array([0.0, 0.0, 500.0])), CAM, stamp_ns=i * NS // 30)
    assert [c[0] for c in est.calls] == [None, None] and tracker.stats["detected"] == 2
