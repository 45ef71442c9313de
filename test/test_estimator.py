"""PoseEstimator end to end with a test-only network that emits ideal heatmaps.

The fake network knows the true joints and the cube centre it will be called with,
so any mistake in units, axis order, cropping, stride or decoding shows up as an
error in millimetres.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from v2v_ros.core.camera import Intrinsics
from v2v_ros.core.checkpoint import ModelMeta
from v2v_ros.core.estimator import PoseEstimator, check_depth
from v2v_ros.core.skeletons import HAND_MSRA21
from v2v_ros.core.voxel import VoxelGrid

CAM = Intrinsics(615.0, 615.0, 319.5, 239.5)
CUBE = 200.0


class IdealHeatmapNet(torch.nn.Module):
    """Returns the target heatmaps of known joints and records the voxel input it saw."""

    def __init__(self, joints: np.ndarray, center: np.ndarray, grid: VoxelGrid) -> None:
        super().__init__()
        self.hm = torch.from_numpy(grid.heatmaps(joints, center))
        self.seen: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen = x.clone()
        return self.hm[None].expand(x.shape[0], -1, -1, -1, -1)


def _scene(joints: np.ndarray) -> np.ndarray:
    """Depth image (mm) of small spheres at the joints in front of a far wall."""
    h, w = 480, 640
    depth = np.full((h, w), 2500.0, dtype=np.float32)
    v, u = np.mgrid[0:h, 0:w]
    for x, y, z in joints:
        r = 6.0
        uc, vc = x * CAM.fx / z + CAM.cx, y * CAM.fy / z + CAM.cy
        rp = r * CAM.fx / z
        m = (u - uc) ** 2 + (v - vc) ** 2 <= rp**2
        depth[m] = np.minimum(depth[m], z - r)
    return depth


def _estimator(joints: np.ndarray, center: np.ndarray, size: int = 88) -> tuple[PoseEstimator, IdealHeatmapNet]:
    meta = ModelMeta(HAND_MSRA21.name, list(HAND_MSRA21.joint_names), size, CUBE)
    grid = VoxelGrid(CUBE, size)
    net = IdealHeatmapNet(joints, center, grid)
    return PoseEstimator(net, meta, device="cpu", min_points=5), net


def _joints(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.array([30.0, -20.0, 520.0]) + rng.uniform(-70, 70, (21, 3))


@pytest.mark.parametrize("size", [32, 88])
def test_pipeline_recovers_joints_in_mm(size: int) -> None:
    joints = _joints(0)
    center = joints.mean(axis=0)
    est, net = _estimator(joints, center, size)
    res = est.estimate(_scene(joints), CAM, reference_point=center)
    assert res.valid, res.reason
    assert np.abs(res.joints - joints).max() < 1e-3
    assert res.joint_names == HAND_MSRA21.joint_names and res.cube_size == CUBE
    assert set(res.timings) >= {"input", "voxelize", "forward", "decode", "total"}
    # The network's input really has the joints' spheres where the grid convention says.
    grid = VoxelGrid(CUBE, size)
    g = np.floor(grid.to_grid(joints - [0, 0, 6.0], center)).astype(int)  # front surface of each sphere
    seen = net.seen[0, 0].numpy()
    hits = [seen[max(i - 1, 0):i + 2, max(j - 1, 0):j + 2, max(k - 1, 0):k + 2].any() for i, j, k in g]
    assert all(hits)


def test_localisation_finds_the_nearest_object_without_reference() -> None:
    joints = _joints(1)
    est, _ = _estimator(joints, joints.mean(axis=0))
    # Without a reference the cube is centred by the localiser; the ideal net still
    # encodes joints relative to the true centre, so only check the centre itself.
    res = est.estimate(_scene(joints), CAM)
    assert res.valid
    assert np.linalg.norm(res.reference_point - joints.mean(axis=0)) < 40.0


def test_batched_estimate_matches_single_calls() -> None:
    joints = _joints(2)
    center = joints.mean(axis=0)
    est, _ = _estimator(joints, center)
    depth = _scene(joints)
    many = est.estimate_many(depth, CAM, [center, center + [5, 0, 0]])
    one = est.estimate(depth, CAM, reference_point=center)
    np.testing.assert_allclose(many[0].joints, one.joints)
    assert len(many) == 2 and all(r.valid for r in many)


def test_empty_cube_is_invalid_not_garbage() -> None:
    joints = _joints(3)
    est, _ = _estimator(joints, joints.mean(axis=0))
    res = est.estimate(_scene(joints), CAM, reference_point=[0.0, 0.0, 1500.0])
    assert not res.valid and "occupied voxels" in res.reason
    assert np.isnan(res.joints).all() and res.score == 0.0


@pytest.mark.parametrize("fill", [0.0, np.nan, np.inf, -5.0])
def test_all_invalid_depth_is_invalid(fill: float) -> None:
    joints = _joints(4)
    est, _ = _estimator(joints, joints.mean(axis=0))
    res = est.estimate(np.full((48, 64), fill, dtype=np.float32), CAM)
    assert not res.valid and "no valid depth" in res.reason


@pytest.mark.parametrize(
    "depth, match",
    [
        (np.zeros((0, 5), np.float32), "empty"),
        (np.zeros((4, 4, 3), np.uint16), "2-D"),
        (np.zeros((4, 4), bool), "dtype"),
        (np.zeros((4, 4), np.complex64), "dtype"),
        ([[1.0, 2.0]], "numpy array"),
    ],
)
def test_bad_depth_raises_naming_the_problem(depth, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        check_depth(depth)


@pytest.mark.parametrize("ref, match", [([1.0, 2.0], "3 finite"), ([0, 0, np.nan], "3 finite"), ([0, 0, -5], "z > 0")])
def test_bad_reference_point(ref, match: str) -> None:
    joints = _joints(5)
    est, _ = _estimator(joints, joints.mean(axis=0))
    with pytest.raises(ValueError, match=match):
        est.estimate(_scene(joints), CAM, reference_point=ref)


def test_uint16_and_float_depth_agree() -> None:
    joints = _joints(6)
    center = joints.mean(axis=0)
    est, net = _estimator(joints, center)
    d = np.round(_scene(joints))
    est.estimate(d.astype(np.uint16), CAM, reference_point=center)
    a = net.seen.clone()
    est.estimate(d.astype(np.float32), CAM, reference_point=center)
    assert torch.equal(a, net.seen)


class OccupancyGatedNet(IdealHeatmapNet):
    """Ideal heatmaps scaled by how full the cube is: sure of itself on the hand, unsure on a lone ball."""

    def __init__(self, joints: np.ndarray, center: np.ndarray, grid: VoxelGrid, full_at: float) -> None:
        super().__init__(joints, center, grid)
        self.full_at = full_at
        self.cubes = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.cubes += x.shape[0]
        sure = (x.flatten(1).sum(1) / self.full_at).clamp(max=1.0)
        return self.hm[None] * sure[:, None, None, None, None]


class ScriptedDetector:
    """Detector peaks at given 3D points, best first (the interface PoseEstimator verifies)."""

    def __init__(self, centers: list[np.ndarray]) -> None:
        self.centers = centers
        self.placed: list[int] = []

    def hypotheses(self, depth: np.ndarray, intr: Intrinsics, k: int) -> Iterator[np.ndarray]:
        for i, c in enumerate(self.centers[:k]):
            self.placed.append(i)  # what the estimator asked for, in order
            yield c

    def __call__(self, depth: np.ndarray, intr: Intrinsics) -> np.ndarray | None:
        return next(self.hypotheses(depth, intr, 1), None)


# Balls nearer the camera than the hand, outside its cube and inside the image.
BALLS = ([-180.0, 0.0, -120.0], [-180.0, 120.0, -120.0], [-180.0, -120.0, -120.0])


def _hand_and_ball(balls: int = 1) -> tuple[PoseEstimator, OccupancyGatedNet, np.ndarray, np.ndarray, np.ndarray]:
    joints = _joints(3)
    hand = joints.mean(axis=0)
    spots = [hand + np.array(b) for b in BALLS[:balls]]
    depth = _scene(joints)
    for spot in spots:
        depth = np.minimum(depth, _scene(spot[None]))
    meta = ModelMeta(HAND_MSRA21.name, list(HAND_MSRA21.joint_names), 32, CUBE)
    grid = VoxelGrid(CUBE, 32)
    occupied = [grid.voxelize(CAM.backproject(depth), c).sum() for c in (hand, *spots)]
    assert all(occupied[0] > 3 * k > 0 for k in occupied[1:])  # the scene is what the test means
    net = OccupancyGatedNet(joints, hand, grid, full_at=float(occupied[0]))
    est = PoseEstimator(net, meta, device="cpu", min_points=3)
    net.full_at = float(est.estimate(depth, CAM, reference_point=hand).points_in_cube)  # as the estimator samples
    net.cubes = 0
    est.detector = ScriptedDetector([*spots, hand])
    return est, net, depth, joints, hand


@pytest.mark.parametrize("source", ["detector", "localizer"])
def test_doubtful_detection_is_checked_against_the_next_peak(source: str) -> None:
    est, net, depth, joints, hand = _hand_and_ball()
    if source == "localizer":  # no detector: the localiser's proposals (bodies: the next objects) are verified
        est.localizer, est.detector = est.detector, None
    res = est.estimate(depth, CAM)
    assert res.valid and res.score > 0.9
    np.testing.assert_allclose(res.reference_point, hand)
    assert np.abs(res.joints - joints).max() < 1e-3
    assert net.cubes == 2 and getattr(est, source).placed == [0, 1] and res.candidates == 2
    assert {"localize", "voxelize", "forward", "decode", "total"} <= set(res.timings)
    assert res.timings["total"] == pytest.approx(sum(v for k, v in res.timings.items() if k != "total"))


def test_rivals_come_in_rounds_until_one_is_confident() -> None:
    est, net, depth, joints, hand = _hand_and_ball(balls=3)
    est.hypotheses = 8
    res = est.estimate(depth, CAM)  # round 1: two balls, round 2: the hand
    assert net.cubes == 4 and est.detector.placed == [0, 1, 2, 3] and res.candidates == 4
    np.testing.assert_allclose(res.reference_point, hand)
    est, net, depth, joints, hand = _hand_and_ball(balls=3)
    est.detector.centers = [est.detector.centers[0], hand, *est.detector.centers[1:3]]
    est.hypotheses = 8
    res = est.estimate(depth, CAM)  # round 1 finds the hand: no second round
    assert net.cubes == 3 and est.detector.placed == [0, 1, 2]
    np.testing.assert_allclose(res.reference_point, hand)
    est, net, depth, joints, hand = _hand_and_ball(balls=3)
    est.hypotheses = 3  # the cap: the hand is the 4th candidate and is never tried
    res = est.estimate(depth, CAM)
    assert net.cubes == 3 and est.detector.placed == [0, 1, 2] and res.score < 0.5


def test_a_prior_centre_is_the_first_rival() -> None:
    est, net, depth, joints, hand = _hand_and_ball(balls=3)  # the hand is the detector's 4th candidate
    res = est.estimate(depth, CAM, prior=hand)  # e.g. the tracker's last estimate
    assert net.cubes == 3 and est.detector.placed == [0, 1]  # one round: the prior and one more peak
    np.testing.assert_allclose(res.reference_point, hand)
    with pytest.raises(ValueError, match="prior must be in front"):
        est.estimate(depth, CAM, prior=[0.0, 0.0, -5.0])


@pytest.mark.parametrize(("hypotheses", "verify_below"), [(1, 0.7), (3, 0.0)])
def test_trusting_the_best_peak_keeps_it(hypotheses: int, verify_below: float) -> None:
    est, net, depth, _, _ = _hand_and_ball()
    est.hypotheses, est.verify_below = hypotheses, verify_below
    res = est.estimate(depth, CAM)
    assert net.cubes == 1 and est.detector.placed == [0]
    assert res.score < 0.5  # the ball: what the detector said, unverified


def test_confident_detection_costs_one_forward() -> None:
    est, net, depth, joints, hand = _hand_and_ball()
    est.detector.centers.reverse()  # hand first
    res = est.estimate(depth, CAM)
    assert net.cubes == 1 and est.detector.placed == [0] and res.candidates == 1
    np.testing.assert_allclose(res.reference_point, hand)


@pytest.mark.parametrize(("kwargs", "match"), [({"hypotheses": 0}, "hypotheses"), ({"verify_below": 1.5}, "verify_below")])
def test_verification_settings_are_checked(kwargs: dict, match: str) -> None:
    meta = ModelMeta(HAND_MSRA21.name, list(HAND_MSRA21.joint_names), 32, CUBE)
    with pytest.raises(ValueError, match=match):
        PoseEstimator(torch.nn.Identity(), meta, device="cpu", **kwargs)


def test_warm_up_runs_the_network_and_changes_no_result() -> None:
    """The node warms up at configure so the first frame is not slow; it must reach the
    network (even on a frame where nothing is detected) and leave no state behind."""
    joints = _joints(4)
    center = joints.mean(axis=0)
    cold, _ = _estimator(joints, center)
    warm, net = _estimator(joints, center)
    assert net.seen is None
    seconds = warm.warm_up(rounds=1)
    assert seconds > 0 and net.seen is not None and warm._engine is not None
    depth = _scene(joints)
    a, b = cold.estimate(depth, CAM), warm.estimate(depth, CAM)
    np.testing.assert_array_equal(a.joints, b.joints)
    np.testing.assert_array_equal(a.reference_point, b.reference_point)


@pytest.mark.filterwarnings("ignore:invalid value encountered")  # inf * 0 in the sub-voxel fit
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_network_output_is_invalid_not_a_confident_pose(bad: float) -> None:
    """A NaN/inf heatmap (fp16 overflow, a broken engine) must not read as a confident pose."""
    joints = _joints(7)
    center = joints.mean(axis=0)
    est, net = _estimator(joints, center, size=32)
    net.hm = net.hm.clone()
    net.hm[3, 1, 2, 3] = bad  # one voxel of one joint's heatmap
    res = est.estimate(_scene(joints), CAM, reference_point=center)
    assert not res.valid and "not finite" in res.reason
    assert np.isnan(res.joints).all() and res.score == 0.0 and res.points_in_cube > 0


def test_depth_in_other_units_is_an_error_not_a_pose() -> None:
    """Metres given as millimetres, or 8-bit data, would voxelise into an empty or absurd cube
    (or a confident fake): the estimator refuses them, naming the value and the likely cause."""
    from v2v_ros.core.depth_decode import DepthDecodeError  # noqa: PLC0415

    joints = _joints(6)
    est, _ = _estimator(joints, joints.mean(axis=0))
    scene = _scene(joints)
    assert est.estimate(scene, CAM).valid  # the same scene in millimetres is fine
    cases = [(scene / 1000.0, "depth_units", "metres, not millimetres"),
             (scene * 1000.0, "depth_units", "millimetres scaled as metres"),
             (np.clip(scene / 10, 0, 255).astype(np.uint8), "depth_8bit", "8-bit")]
    for depth, reason, match in cases:
        for call in (lambda d=depth: est.estimate(d, CAM), lambda d=depth: est.estimate_many(d, CAM, [[0, 0, 500]])):
            with pytest.raises(DepthDecodeError, match=match) as err:
                call()
            assert err.value.reason == reason and isinstance(err.value, ValueError)
