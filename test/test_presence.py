"""Hand presence: hand-free scenes, the presence classifier, and that nothing publishes a hand it did not see.

A pose network finds a pose in any cube, so these tests check the one gate that can say
"no hand": the estimator (detected, verified, tracked and given centres), the shipped
classifier on the shapes that used to come back as confident hands, the evaluation's
precision/recall and the node's no_hand counters.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from v2v_ros.core.camera import Intrinsics
from v2v_ros.core.checkpoint import ModelMeta
from v2v_ros.core.estimator import PoseEstimator, PoseResult
from v2v_ros.core.presence import NO_HAND, Presence, PresenceMeta, PresenceNet
from v2v_ros.core.skeletons import HAND_MSRA21
from v2v_ros.core.tracking import TrackingConfig, TrackingEstimator
from v2v_ros.data.synthetic import SynthConfig, render_frame
from v2v_ros.data.synthetic.negatives import NEGATIVE_KINDS, is_negative, render_negative

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "models" / "hand_default.safetensors"
CAM = Intrinsics(615.0, 615.0, 319.5, 239.5)
SMALL = SynthConfig(width=160, height=120, fx=153.75, fy=153.75, cx=79.5, cy=59.5)


# -- hand-free scenes ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", NEGATIVE_KINDS)
def test_every_hand_free_kind_renders_a_labelled_frame_without_joints(kind: str) -> None:
    frames = [render_negative(3, i, SMALL, kinds=(kind,)) for i in range(6)]
    for f in frames:
        assert f.depth.shape == (SMALL.height, SMALL.width) and f.depth.dtype == np.float32
        assert np.isnan(f.joints).all() and f.joints.shape == (HAND_MSRA21.num_joints, 3)
        assert f.info["scene"] == kind and f.info["hand"] is False
        assert np.all(f.depth >= 0) and np.all(np.isfinite(f.depth))
    if kind != "empty":  # something is seen (empty: sometimes nothing at all, sometimes a far wall)
        assert all(np.any(f.depth > 0) for f in frames)


def test_hand_free_frames_are_deterministic_and_differ_between_indices() -> None:
    a, b = render_negative(4, 9, SMALL), render_negative(4, 9, SMALL)
    np.testing.assert_array_equal(a.depth, b.depth)
    assert a.info == b.info
    kinds = {render_negative(4, i, SMALL).info["scene"] for i in range(40)}
    assert len(kinds) >= 6  # drawn from all kinds, not one
    with pytest.raises(ValueError, match="unknown hand-free scene kind"):
        render_negative(4, 0, SMALL, kinds=("mug",))


def test_arm_scene_keeps_the_hand_end_of_the_forearm_outside_the_image() -> None:
    # The forearm reaches in from a border: some border pixel shows it in most frames.
    touching = 0
    for i in range(20):
        d = render_negative(5, i, SMALL, kinds=("arm",)).depth
        border = np.concatenate([d[0], d[-1], d[:, 0], d[:, -1]])
        touching += int(np.any((border > 0) & (border < 1100)))
    assert touching >= 15


def test_mixed_set_draw_is_per_frame_and_matches_the_fraction() -> None:
    draws = [is_negative(6, i, 0.3) for i in range(2000)]
    assert abs(np.mean(draws) - 0.3) < 0.04
    assert draws[:50] == [is_negative(6, i, 0.3) for i in range(50)]
    assert not any(is_negative(6, i, 0.0) for i in range(50)) and all(is_negative(6, i, 1.0) for i in range(50))


# -- the estimator's gate (stub classifier, stub pose network) ----------------------------------------
class CountingNet(torch.nn.Module):
    """Flat-but-peaked heatmaps (a confident pose anywhere) and a count of forwards."""

    def __init__(self, size: int = 16) -> None:
        super().__init__()
        self.calls = 0
        hm = torch.zeros(HAND_MSRA21.num_joints, size // 2, size // 2, size // 2)
        hm[:, size // 4, size // 4, size // 4] = 0.9
        self.hm = hm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.hm[None].expand(x.shape[0], -1, -1, -1, -1)


class StubPresence:
    """Says "hand" for centres the test marks, "no hand" elsewhere."""

    threshold = 0.5

    def __init__(self, hand_at: list[np.ndarray] | None = None) -> None:
        self.hand_at = hand_at or []
        self.asked: list[np.ndarray] = []

    def __call__(self, depth: np.ndarray, intr: Intrinsics, centers: list[np.ndarray]) -> np.ndarray:
        self.asked.extend(np.asarray(c) for c in centers)
        return np.array([0.9 if any(np.linalg.norm(np.asarray(c) - h) < 30 for h in self.hand_at) else 0.1
                         for c in centers], np.float32)


class FixedCandidates:
    """A detector that proposes the given centres, in order."""

    def __init__(self, centres: list[np.ndarray]) -> None:
        self.centres = centres

    def __call__(self, depth: np.ndarray, intr: Intrinsics) -> np.ndarray:
        return self.centres[0]

    def hypotheses(self, depth: np.ndarray, intr: Intrinsics, k: int) -> Any:
        yield from self.centres[:k]


def _disc_scene() -> tuple[np.ndarray, list[np.ndarray]]:
    """Two discs, at 500 mm left and right of the centre; their centres (mm)."""
    v, u = np.mgrid[0:480, 0:640]
    depth = np.zeros((480, 640), np.float32)
    centres = []
    for uc in (200, 440):
        depth[(u - uc) ** 2 + (v - 240) ** 2 <= 60**2] = 500.0
        centres.append(CAM.to_xyz(np.array([uc, 240.0, 510.0])))
    return depth, centres


def _gated(presence: StubPresence, centres: list[np.ndarray], hypotheses: int = 8) -> tuple[PoseEstimator, CountingNet]:
    net = CountingNet()
    meta = ModelMeta(HAND_MSRA21.name, list(HAND_MSRA21.joint_names), 16, 200.0)
    est = PoseEstimator(net, meta, detector=FixedCandidates(centres), presence=presence,  # type: ignore[arg-type]
                        min_points=5, hypotheses=hypotheses)
    return est, net


def test_without_a_gate_any_object_is_a_confident_hand() -> None:
    depth, centres = _disc_scene()
    est, _ = _gated(StubPresence(), centres)
    est.presence = None
    r = est.estimate(depth, CAM)
    assert r.valid and r.score > 0.8  # what the gate is for


def test_hand_free_cubes_give_no_hand_without_a_pose_forward() -> None:
    depth, centres = _disc_scene()
    presence = StubPresence()
    est, net = _gated(presence, centres)
    r = est.estimate(depth, CAM)
    assert not r.valid and r.reason == NO_HAND and r.score == 0.0
    assert net.calls == 0  # the pose network never ran
    assert len(presence.asked) == 2 and r.candidates == 2  # every candidate was asked
    assert r.presence == pytest.approx(0.1) and "presence" in r.timings
    # explicitly given cubes (the tracker's, eval --centers) pass the same gate
    assert not est.estimate(depth, CAM, reference_point=centres[1]).valid


def test_verification_moves_on_from_a_hand_free_first_candidate() -> None:
    depth, centres = _disc_scene()
    est, net = _gated(StubPresence(hand_at=[centres[1]]), centres)
    r = est.estimate(depth, CAM)
    assert r.valid and r.presence == pytest.approx(0.9)
    np.testing.assert_allclose(r.reference_point, centres[1])
    assert net.calls == 1  # only the hand's cube reached the pose network


def test_a_tracked_cube_that_loses_its_hand_publishes_nothing() -> None:
    depth, centres = _disc_scene()
    presence = StubPresence(hand_at=[centres[0]])
    est, _ = _gated(presence, centres)
    tracker = TrackingEstimator(est, TrackingConfig(enabled=True, min_score=0.0))
    assert tracker.estimate(depth, CAM, stamp_ns=0).valid
    presence.hand_at = []  # the hand leaves; the scene stays
    r = tracker.estimate(depth, CAM, stamp_ns=33_000_000)
    assert not r.valid and r.reason == NO_HAND
    assert tracker.stats["reacquired"] == 1  # the followed cube was checked, then a fresh detection too


def test_warm_up_still_reaches_the_pose_network() -> None:
    est, net = _gated(StubPresence(), [np.array([0.0, 0.0, 600.0])])
    est.warm_up(rounds=1)
    assert net.calls >= 1


# -- the classifier as a companion file ---------------------------------------------------------------
def test_presence_companion_round_trip_and_checks(tmp_path: Path) -> None:
    torch.manual_seed(0)
    meta = PresenceMeta(threshold=0.37)
    p = Presence(PresenceNet(), meta)
    path = p.save(tmp_path / "m.presence.safetensors")
    q = Presence.load(path)
    assert q.threshold == pytest.approx(0.37)
    depth, centres = _disc_scene()
    np.testing.assert_allclose(q(depth, CAM, centres), p(depth, CAM, centres), atol=1e-5)
    assert q(depth, CAM, []).shape == (0,)
    bad = path.with_suffix(".json")
    bad.write_text(bad.read_text().replace("v2v_presence", "v2v_detector"))
    with pytest.raises(Exception, match="kind must be 'v2v_presence'"):
        Presence.load(path)


# -- the shipped classifier ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shipped() -> PoseEstimator:
    if not Presence.paths(SHIPPED)[0].exists():
        pytest.skip("models/hand_default.presence.safetensors not shipped")
    return PoseEstimator.load(SHIPPED, device="cpu", precision="fp32")


def test_shipped_model_loads_the_presence_classifier(shipped: PoseEstimator) -> None:
    assert isinstance(shipped.presence, Presence) and 0.0 < shipped.presence.threshold < 1.0


def test_presence_takes_one_image_per_centre_in_one_batch(shipped: PoseEstimator) -> None:
    """A list of images gives each centre its own (a followed hand checked without the other one), with the
    same answers as one image per call; a list of the wrong length is refused."""
    f = render_frame(2, 0)
    centre = f.joints.mean(axis=0)
    empty = np.zeros_like(f.depth)
    both = shipped.presence([f.depth, empty], f.intrinsics, [centre, centre])
    np.testing.assert_allclose(both[0], shipped.presence(f.depth, f.intrinsics, [centre])[0], rtol=1e-5)
    np.testing.assert_allclose(both[1], shipped.presence(empty, f.intrinsics, [centre])[0], rtol=1e-5)
    assert both[0] >= shipped.presence.threshold > both[1]
    with pytest.raises(ValueError, match="1 images for 2 centres"):
        shipped.presence([f.depth], f.intrinsics, [centre, centre])


def test_shipped_model_finds_no_hand_in_the_shapes_that_used_to_pass(shipped: PoseEstimator) -> None:
    v, u = np.mgrid[0:480, 0:640]
    disc = np.where((u - 320) ** 2 + (v - 240) ** 2 <= 60**2, 500.0, 0.0).astype(np.float32)
    wall = np.full((480, 640), 800.0, np.float32)
    noise = np.random.default_rng(0).integers(0, 255, (480, 640)).astype(np.uint8)  # an 8-bit image read as mm
    for name, depth in (("disc", disc), ("wall", wall), ("uint8", noise)):
        try:
            r = shipped.estimate(depth, CAM)
        except ValueError:  # the input check may refuse 8-bit data outright: no skeleton either
            assert name == "uint8"
            continue
        assert not r.valid and r.reason == NO_HAND, (name, r.valid, r.reason, r.presence)


def test_shipped_model_rejects_hand_free_scenes_and_keeps_hands(shipped: PoseEstimator) -> None:
    # A small held-out sample (seeds the classifier was not trained or calibrated on); the measured
    # rates on thousands of frames are in models/hand_default.presence.md.
    neg = [shipped.estimate(render_negative(3, i).depth, CAM).valid for i in range(30)]
    pos = [shipped.estimate(render_frame(2, i).depth, CAM).valid for i in range(30)]
    assert sum(neg) <= 1 and sum(pos) >= 28, (sum(neg), sum(pos))


# -- evaluation and node counters -------------------------------------------------------------------------
class Oracle:
    """Publishes on hand frames and on the frames listed in ``fooled``."""

    def __init__(self, fooled: set[int]) -> None:
        self.fooled, self.i = fooled, 0

    def estimate(self, depth: np.ndarray, intr: Intrinsics, reference_point: Any = None) -> PoseResult:
        frame = self.frames[self.i]
        self.i += 1
        valid = bool(np.isfinite(frame.joints).all()) or (self.i - 1) in self.fooled
        joints = frame.joints if np.isfinite(frame.joints).all() else np.zeros((21, 3))
        return PoseResult(joints=np.asarray(joints, np.float64), confidence=np.ones(21, np.float32),
                          reference_point=np.zeros(3), joint_names=HAND_MSRA21.joint_names, skeleton="hand",
                          cube_size=200.0, valid=valid, reason="" if valid else NO_HAND)


def test_eval_reports_detection_precision_and_recall_on_a_mixed_set() -> None:
    from v2v_ros.evaluate.runner import evaluate_estimator

    frames = [render_frame(2, i, SMALL) if i % 2 == 0 else render_negative(2, i, SMALL) for i in range(10)]
    est = Oracle(fooled={3})
    est.frames = frames  # type: ignore[attr-defined]
    report = evaluate_estimator(est, frames)
    det = report["detection"]
    assert (det["frames_with_hand"], det["frames_without_hand"]) == (5, 5)
    assert (det["true_positives"], det["false_positives"], det["false_negatives"], det["true_negatives"]) == (5, 1, 0, 4)
    assert det["precision"] == pytest.approx(5 / 6) and det["recall"] == 1.0 and det["on_hand"] == 1.0
    assert sum(v["published"] for v in det["hand_free_by_scene"].values()) == 1
    assert report["frames"] == 5 and report["skipped_frames"] == 5  # pose metrics on the hand frames only
    assert report["mean_error_mm"] == pytest.approx(0.0, abs=1e-6)


def test_no_hand_cause_names_why_nothing_was_published() -> None:
    pytest.importorskip("diagnostic_msgs", reason="ROS messages not importable")
    from v2v_ros.ros.diagnostics import PipelineSnapshot, build_status, no_hand_cause, status_values

    def res(valid: bool, reason: str = "") -> PoseResult:
        return PoseResult(np.zeros((21, 3)), np.full(21, 0.2, np.float32), np.zeros(3), (), "hand", 200.0, valid, reason)

    assert no_hand_cause(res(False, NO_HAND)) == "absent"
    assert no_hand_cause(res(True)) == "low_confidence"
    assert no_hand_cause(res(False, "only 3 occupied voxels in the cube (need 50)")) == "invalid"
    snap = PipelineSnapshot("n", "active", "cpu", "m", 30.0, 30.0, 1.0, 2.0,
                            counters={"no_hand": 3, "no_hand.absent": 2, "no_hand.low_confidence": 1})
    values = status_values(build_status(snap))
    assert (values["no_hand"], values["no_hand.absent"], values["no_hand.low_confidence"]) == ("3", "2", "1")


# -- v2v synth --no-hand-fraction ----------------------------------------------------------------------------
@pytest.mark.parametrize("extra, message", [
    (["--no-hand-fraction", "0.5"], "needs --full-frame"),
    (["--full-frame", "--no-hand-fraction", "1.5"], "must be in [0, 1]"),
    (["--full-frame", "--no-hand-fraction", "0.5", "--no-hand-kinds", "cup,mug"], "unknown kind(s) mug"),
    (["--full-frame", "--no-hand-kinds", "cup"], "needs --no-hand-fraction > 0"),
    (["--full-frame", "--no-hand-fraction", "0.5", "--sequence", "4"], "cannot be combined with --sequence"),
])
def test_synth_no_hand_options_are_checked_before_writing(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          extra: list[str], message: str) -> None:
    from v2v_ros.cli import main

    out = tmp_path / "ds"
    assert main(["synth", "--out", str(out), "--n", "2", *extra]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_synth_writes_a_mixed_set_the_evaluator_can_split(tmp_path: Path) -> None:
    from v2v_ros.cli import main
    from v2v_ros.data.shards import ShardDataset

    out = tmp_path / "mixed"
    assert main(["synth", "--out", str(out), "--n", "12", "--seed", "6", "--full-frame", "--width", "160",
                 "--height", "120", "--fx", "154", "--no-hand-fraction", "0.5", "--no-hand-kinds", "cup,arm"]) == 0
    frames = list(ShardDataset(out))
    hand_free = [f for f in frames if np.isnan(f.joints).all()]
    assert [np.isnan(f.joints).all() for f in frames] == [is_negative(6, i, 0.5) for i in range(12)]
    assert 0 < len(hand_free) < 12 and {f.info["scene"] for f in hand_free} <= {"cup", "arm"}
    assert sum(np.isfinite(f.joints).all() for f in frames) == 12 - len(hand_free)  # the rest are labelled hands


def test_two_hand_scene_crops_label_each_visible_hand_positive() -> None:
    """Presence training data from a two-hand scene: jittered crops at each hand at least half visible are
    positives, candidates far from both hands negatives, candidates near a hidden hand unused."""
    from v2v_ros.data.synthetic.multi import HandsSpec, render_multi_frame
    from v2v_ros.train import presence as tp

    cfg = tp.PresenceConfig(candidates_model=str(SHIPPED))
    meta = {k: v for k, v in vars(tp._meta(cfg)).items() if k != "provenance"}
    tp._init_worker(str(SHIPPED), meta, cfg.hypotheses)
    try:
        seed, index = 27, 3
        frame = render_multi_frame(seed, index, hands=HandsSpec(2, 2))
        out = tp._crops((seed, index, False, cfg.jitter_mm, cfg.positive_within_mm, cfg.negative_beyond_mm,
                         tp.TWO_HANDS))
    finally:
        tp._STATE.clear()
    visible = [t["visible"] for t in frame.info["targets"]]
    assert out["kind"] == "two_hands"
    jittered = out["source"] == 0
    assert int(jittered.sum()) == 2 * sum(v >= tp.MIN_VISIBLE for v in visible)
    assert np.all(out["y"][jittered] == 1)
    assert out["x"].shape[1:] == (cfg.input_size, cfg.input_size) and out["x"].dtype == np.int8


def test_a_model_uses_the_companions_of_the_model_it_names(tmp_path: Path) -> None:
    """A second pose network (e.g. a cheaper grid) names the model whose refiner, detector and presence
    classifier it shares: they load from there, its own files win, and without the name a required
    companion is an error that names the missing file."""
    from v2v_ros.core.checkpoint import CheckpointError, save_checkpoint  # noqa: PLC0415
    from v2v_ros.core.model import V2VPoseNet  # noqa: PLC0415

    torch.manual_seed(0)
    state = V2VPoseNet(21).state_dict()

    def meta(**kw: Any) -> ModelMeta:
        return ModelMeta(**{"skeleton": HAND_MSRA21.name, "joint_names": list(HAND_MSRA21.joint_names),
                            "grid_size": 32, "cube_size": 250.0, **kw})

    base = save_checkpoint(tmp_path / "base.safetensors", state, meta())
    Presence(PresenceNet(), PresenceMeta(threshold=0.37)).save(Presence.paths(base)[0])
    fast = save_checkpoint(tmp_path / "fast.safetensors", state, meta(grid_size=24, companions="base"))
    est = PoseEstimator.load(fast, device="cpu", presence=True)
    assert est.presence is not None and est.presence.threshold == pytest.approx(0.37)
    assert est.grid.size == 24
    alone = save_checkpoint(tmp_path / "alone.safetensors", state, meta())
    assert PoseEstimator.load(alone, device="cpu").presence is None  # "auto": none of its own, none named
    with pytest.raises(CheckpointError, match="alone.presence.safetensors"):
        PoseEstimator.load(alone, device="cpu", presence=True)
    Presence(PresenceNet(), PresenceMeta(threshold=0.61)).save(Presence.paths(fast)[0])
    assert PoseEstimator.load(fast, device="cpu").presence.threshold == pytest.approx(0.61)
    with pytest.raises(CheckpointError, match="companions must be the stem"):
        meta(companions="../base").validate()
