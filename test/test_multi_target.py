"""Several targets per frame: handedness from the pose, estimate_all, the multi-target tracker and its scoring."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from v2v_ros.core.camera import Intrinsics
from v2v_ros.core.estimator import PoseEstimator, PoseResult, without_hands
from v2v_ros.core.handedness import hand_frame_depths, handedness
from v2v_ros.core.skeletons import HAND_MSRA21
from v2v_ros.core.tracking import MultiTracker, TrackingConfig
from v2v_ros.data.synthetic.hand import HandModel, HandShape, random_rotation, sample_pose
from v2v_ros.evaluate.multi import FrameTargets, match_targets, score_multi

NS = 1_000_000_000
MIRROR = np.diag([-1.0, 1.0, 1.0])


def _hand(seed: int, side: str = "right") -> np.ndarray:
    rng = np.random.default_rng(seed)
    return HandModel(HandShape.default(side)).joints(sample_pose(rng))


# -- handedness ---------------------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), rot_seed=st.integers(0, 10_000),
       shift=st.tuples(*[st.floats(-500, 500)] * 3))
def test_handedness_ignores_pose_placement_and_flips_under_a_mirror(seed: int, rot_seed: int,
                                                                    shift: tuple[float, float, float]) -> None:
    j = _hand(seed)
    rot = random_rotation(np.random.default_rng(rot_seed))
    moved = j @ rot.T + np.asarray(shift)
    side, conf = handedness(j)
    side_moved, conf_moved = handedness(moved)
    assert side_moved == side and conf_moved == pytest.approx(conf, abs=1e-9)  # rigid motion: same answer
    mirrored, conf_m = handedness(moved @ MIRROR)  # a mirror image is the other hand, equally sure
    if side:
        assert mirrored == ("left" if side == "right" else "right") and conf_m == pytest.approx(conf, abs=1e-9)


def test_handedness_is_mostly_right_on_model_hands_and_refuses_degenerate_joints() -> None:
    right = sum(handedness(_hand(s, "right"))[0] == "right" for s in range(200))
    left = sum(handedness(_hand(s, "left"))[0] == "left" for s in range(200))
    assert right >= 190 and left >= 190
    assert handedness(np.zeros((21, 3))) == ("", 0.0)
    assert handedness(np.full((21, 3), np.nan)) == ("", 0.0)
    assert hand_frame_depths(np.zeros((15, 3))) is None


# -- matching and scoring -----------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(perm_seed=st.integers(0, 1000), n=st.integers(1, 4))
def test_matching_recovers_any_permutation_of_well_separated_targets(perm_seed: int, n: int) -> None:
    rng = np.random.default_rng(perm_seed)
    gt = np.stack([_hand(k) + np.array([300.0 * k, 0.0, 600.0]) for k in range(n)])
    perm = rng.permutation(n)
    pred = gt[perm] + rng.normal(0.0, 3.0, gt.shape)
    pairs = match_targets(pred, gt)
    assert sorted((p, g) for p, g, _ in pairs) == sorted((int(i), int(perm[i])) for i in range(n))


def test_matching_minimises_the_total_not_each_greedily() -> None:
    a, b = np.zeros((21, 3)), np.full((21, 3), 40.0)
    # p0 is nearest to both targets; greedy would give it a and leave p1 (far from a) on b at 60 mm
    gt = np.stack([a, b])
    pred = np.stack([a + 20.0 / np.sqrt(3), a - 10.0 / np.sqrt(3)])
    pairs = match_targets(pred, gt, match_mm=1e9)
    assert {(p, g) for p, g, _ in pairs} == {(0, 1), (1, 0)}


def _ft(gt: np.ndarray, pred: np.ndarray, ids: Sequence[int], vis: Sequence[float] | None = None,
        clip: int = 0) -> FrameTargets:
    sides = ["right", "left"]
    nearest = [int(np.argmin([np.abs(p - g).mean() for g in gt])) for p in pred]  # each prediction's true side
    return FrameTargets(gt=gt, visible=np.asarray(vis if vis is not None else [1.0] * len(gt)), gt_ids=[0, 1][:len(gt)],
                        gt_sides=sides[:len(gt)], pred=pred, pred_sides=[sides[k] for k in nearest],
                        pred_ids=list(ids), clip=clip)


def test_score_counts_false_targets_misses_and_identity_switches() -> None:
    a, b = _hand(1), _hand(2) + 300.0
    gt = np.stack([a, b])
    frames = [
        _ft(gt, np.stack([a, b]), [7, 8]),
        _ft(gt, np.stack([b, a]), [8, 7]),  # same ids on the same hands, listed in another order: no switch
        _ft(gt, np.stack([a, b]), [8, 7]),  # ids exchanged: two switches
        _ft(gt, np.stack([a]), [8], vis=[1.0, 0.2]),  # b mostly hidden: not required
        _ft(gt, np.stack([a, b, a + 1000.0]), [8, 7, 9]),  # a false target
    ]
    m = score_multi(frames)
    assert m["id_switches"] == 2 and m["false_targets"] == 1 and m["missed"] == 0
    assert m["recall"] == 1.0 and m["all_hands_found_rate"] == 1.0
    assert m["false_target_frame_rate"] == pytest.approx(0.2)
    assert m["handedness_accuracy"] == pytest.approx(1.0)
    assert m["mean_error_mm"] == pytest.approx(0.0)


def test_a_wrong_pose_on_the_hand_is_a_bad_match_not_a_false_target() -> None:
    """A skeleton centred on the hand but with its joints 80 mm off is the hand's (counted in the error and
    outside "within match_mm"); one centred 100 mm beside the hand is a false target and the hand a miss."""
    a = _hand(1)
    centre = a.mean(axis=0)
    spread = a - centre
    wrong = centre + spread[::-1] * 1.0 + np.array([[80.0, 0.0, 0.0]] * 10 + [[-80.0, 0.0, 0.0]] * 11)
    wrong += centre - wrong.mean(axis=0)  # same centre, joints elsewhere
    assert np.linalg.norm(wrong - a, axis=1).mean() > 50.0
    beside = a + np.array([100.0, 0.0, 0.0])
    m = score_multi([_ft(a[None], wrong[None], [0]), _ft(a[None], a[None] + 2.0, [0])])
    assert m["false_targets"] == 0 and m["found"] == 2 and m["matched"] == 2
    assert m["within_match"] == 1 and m["within_match_rate"] == pytest.approx(0.5)
    assert m["mean_error_within_match_mm"] == pytest.approx(np.sqrt(12.0))
    assert m["mean_error_mm"] > 25.0
    far = score_multi([_ft(a[None], beside[None], [0])])
    assert far["false_targets"] == 1 and far["missed"] == 1 and far["matched"] == 0
    strict = score_multi([_ft(a[None], wrong[None], [0])], locate_mm=None)  # the pose criterion alone
    assert strict["false_targets"] == 1 and strict["missed"] == 1


# -- the multi-target tracker, on a scripted estimator ------------------------------------------------------
class Scripted:
    """estimate_all returning hands at scripted centres (what a perfect estimator would see)."""

    def __init__(self) -> None:
        self.centres: list[np.ndarray] = []
        self.sides: list[str] = []
        self.confidence = 0.8  # every joint's: the pose's score
        self.side_confidence: float | list[float] = 0.9  # every pose's, or one per centre
        self.searches = 0
        self.priors_seen: list[int] = []  # cubes followed per call
        self.poses_seen: list[list[np.ndarray]] = []  # the followed hands' predicted poses per call
        self.meta = type("M", (), {"num_joints": 21, "joint_names": HAND_MSRA21.joint_names,
                                   "skeleton": HAND_MSRA21.name, "cube_size": 200.0})()

    def estimate_all(self, depth: Any, intr: Any, max_targets: int = 2, priors: Sequence[Any] = (),
                     search: bool = True, one_at_a_time: bool = False, prior_poses: Sequence[Any] = ()
                     ) -> list[PoseResult]:
        self.searches += int(search)
        self.priors_seen.append(len(priors))
        self.poses_seen.append([np.asarray(p) for p in prior_poses])
        out = []
        sure = self.side_confidence if isinstance(self.side_confidence, list) else [self.side_confidence] * len(self.sides)
        for c, side, side_confidence in zip(self.centres, self.sides, sure, strict=True):
            near_prior = any(np.linalg.norm(c - p) < 150.0 for p in priors)
            if not (search or near_prior):
                continue  # without a search only the followed cubes are looked at
            joints = _hand(3) - _hand(3).mean(axis=0) + c
            out.append(PoseResult(joints=joints, confidence=np.full(21, self.confidence, np.float32), reference_point=c,
                                  joint_names=HAND_MSRA21.joint_names, skeleton=HAND_MSRA21.name, cube_size=200.0,
                                  valid=True, handedness=side, handedness_confidence=side_confidence))
        return out[:max_targets]


def test_a_doubtful_pose_reports_its_side_as_a_guess_and_does_not_turn_a_tracks_side() -> None:
    """A pose the network doubts (mean joint confidence under 0.6) keeps its side as a guess at 0.5; a track
    fed such poses keeps the side its sure poses gave, and sure poses still revise it."""
    from v2v_ros.core.handedness import DOUBTFUL_POSE_SCORE, SIDE_RELIABILITY, handedness, pose_side

    j = _hand(4)
    side, sure = handedness(j)
    assert sure > 0.97  # so that the caps below bite
    assert pose_side(j, 0.9) == (side, sure)
    assert pose_side(j, DOUBTFUL_POSE_SCORE - 0.01) == (side, 0.5)
    # just above the bar, no surer than poses of that confidence were: capped, and never above a surer pose's cap
    caps = [pose_side(j, s)[1] for s in (DOUBTFUL_POSE_SCORE, 0.66, SIDE_RELIABILITY[-1][0])]
    assert caps == [0.9, 0.97, sure] == [SIDE_RELIABILITY[1][1], SIDE_RELIABILITY[2][1], sure]
    assert all(pose_side(j, s)[0] == side for s in (DOUBTFUL_POSE_SCORE, 0.66))
    est = Scripted()
    tracker = MultiTracker(est, TrackingConfig(enabled=True), max_targets=1)
    est.centres, est.sides = [np.array([0.0, 0.0, 600.0])], ["right"]

    def run(frames: int, start: int) -> str:
        for i in range(start, start + frames):
            found = tracker.estimate_all(None, None, stamp_ns=i * NS // 30)
        return found[0].handedness

    assert run(10, 0) == "right"
    est.sides, est.confidence, est.side_confidence = ["left"], 0.45, 0.5  # as pose_side reports them
    assert run(40, 10) == "right"
    est.confidence, est.side_confidence = 0.8, 0.99
    assert run(40, 50) == "left"


def test_two_hands_seen_together_decide_their_sides_together() -> None:
    """Next to a hand surely left, a hand whose poses only weakly say "left" too is published right (one
    person's two hands); two hands both surely right stay right (two people's); opposite_prior 0.5 decides
    each hand alone; bodies (no side) stay without one."""
    left, right = np.array([-150.0, 0.0, 600.0]), np.array([150.0, 0.0, 600.0])

    def sides(prior: float, said: list[str], sure: list[float], frames: int = 5) -> dict[int, tuple[str, float]]:
        est = Scripted()
        est.centres, est.sides, est.side_confidence = [left, right], said, sure
        tracker = MultiTracker(est, TrackingConfig(enabled=True), opposite_prior=prior)
        for i in range(frames):
            found = tracker.estimate_all(None, None, stamp_ns=i * NS // 30)
        return {r.track_id: (r.handedness, round(r.handedness_confidence, 3)) for r in found}

    together = sides(0.99, ["left", "left"], [0.99, 0.6])
    assert together[0][0] == "left" and together[1][0] == "right"
    assert together[1][1] > 0.9  # surer than its own five weak poses ever were of "left"
    alone = sides(0.5, ["left", "left"], [0.99, 0.6])
    assert alone[0][0] == alone[1][0] == "left"
    assert alone[1][1] == pytest.approx(1.0 / (1.0 + 0.4**5 / 0.6**5), abs=1e-3)  # its own pooled poses
    two_people = sides(0.99, ["right", "right"], [0.99, 0.99], frames=10)
    assert [s for s, _ in two_people.values()] == ["right", "right"]
    assert sides(0.99, ["", ""], [0.0, 0.0]) == {0: ("", 0.0), 1: ("", 0.0)}  # bodies: no side to decide
    for bad in (0.4, 1.0):
        with pytest.raises(ValueError, match="opposite_prior"):
            MultiTracker(Scripted(), opposite_prior=bad)


def test_a_missing_hand_is_held_for_camera_time_not_for_answered_frames() -> None:
    """A CPU answering every 4th frame of a 30 Hz camera: a hand that left is held for 10 camera frames
    (one third of a second), i.e. three answered frames, not for ten answered frames (1.3 s of cubes
    and searches for a hand that is gone)."""
    est = Scripted()
    tracker = MultiTracker(est, TrackingConfig(enabled=True), hold_frames=10)
    a, b = np.array([-150.0, 0.0, 600.0]), np.array([150.0, 0.0, 600.0])
    est.centres, est.sides = [a, b], ["right", "left"]
    for k in range(3):
        tracker.estimate_all(None, None, stamp_ns=4 * k * NS // 30)
    est.centres, est.sides = [a], ["right"]  # the left hand leaves
    tracker.estimate_all(None, None, stamp_ns=4 * 3 * NS // 30)
    assert sorted(m for _, _, m in tracker.tracks) == [0, 4]  # four camera frames since it was seen
    for k in (4, 5):
        tracker.estimate_all(None, None, stamp_ns=4 * k * NS // 30)
    assert sorted(m for _, _, m in tracker.tracks) == [0, 12]
    searches = est.searches
    tracker.estimate_all(None, None, stamp_ns=4 * 6 * NS // 30)
    assert est.priors_seen[-1] == 1  # no cube for the gone hand any more
    assert est.searches == searches  # and no search every frame for it (the next is the 3rd-frame one)


def test_ids_do_not_swap_when_two_hands_cross_at_different_depths() -> None:
    est = Scripted()
    tracker = MultiTracker(est, TrackingConfig(enabled=True))
    ids_by_side: dict[str, set[int]] = {"left": set(), "right": set()}
    for i in range(61):
        s = i / 60.0
        # the right hand moves left to right, the left hand right to left, 120 mm apart in depth
        est.centres = [np.array([-200.0 + 400.0 * s, 0.0, 600.0]), np.array([200.0 - 400.0 * s, 20.0, 720.0])]
        est.sides = ["right", "left"]
        found = tracker.estimate_all(None, None, stamp_ns=i * NS // 30)
        assert len(found) == 2
        for r in found:
            side = est.sides[int(np.argmin([np.linalg.norm(r.joints.mean(0) - c) for c in est.centres]))]
            ids_by_side[side].add(r.track_id)
    assert ids_by_side == {"right": {0}, "left": {1}}
    assert est.searches < 61 // 2  # followed frames do not search the whole image


def test_a_briefly_hidden_hand_comes_back_under_its_id_without_disturbing_the_other() -> None:
    est = Scripted()
    tracker = MultiTracker(est, TrackingConfig(enabled=True), hold_frames=10)
    a, b = np.array([-150.0, 0.0, 600.0]), np.array([150.0, 0.0, 600.0])
    est.sides = ["right", "left"]
    ids = []
    for i in range(30):
        hidden = 10 <= i < 16
        est.centres = [a] if hidden else [a, b]
        est.sides = ["right"] if hidden else ["right", "left"]
        found = tracker.estimate_all(None, None, stamp_ns=i * NS // 30)
        ids.append(sorted(r.track_id for r in found))
    assert ids[:10] == [[0, 1]] * 10 and ids[10:16] == [[0]] * 6 and ids[16:] == [[0, 1]] * 14
    assert tracker.stats["tracks_started"] == 2


def test_a_hand_hidden_longer_than_the_hold_keeps_its_id_until_forgotten_and_pooled_handedness() -> None:
    est = Scripted()
    tracker = MultiTracker(est, TrackingConfig(enabled=True), hold_frames=2, remember_frames=6)
    est.centres, est.sides = [np.array([0.0, 0.0, 600.0])], ["left"]
    first = tracker.estimate_all(None, None, stamp_ns=0)[0]
    assert first.handedness == "left" and first.handedness_confidence == pytest.approx(0.9)
    second = tracker.estimate_all(None, None, stamp_ns=NS // 30)[0]
    assert second.handedness_confidence > 0.9  # two poses say "left": surer than one
    est.centres, est.sides = [], []
    for i in range(2, 6):  # 4 frames hidden: past the hold (no cube for it), still remembered
        assert tracker.estimate_all(None, None, stamp_ns=i * NS // 30) == []
    assert est.priors_seen[-1] == 0  # no cube spent on a track past its hold
    est.centres, est.sides = [np.array([20.0, 0.0, 600.0])], ["left"]
    assert tracker.estimate_all(None, None, stamp_ns=6 * NS // 30)[0].track_id == 0
    est.centres, est.sides = [], []
    for i in range(7, 15):  # hidden longer than remember_frames: forgotten
        tracker.estimate_all(None, None, stamp_ns=i * NS // 30)
    est.centres, est.sides = [np.array([20.0, 0.0, 600.0])], ["left"]
    assert tracker.estimate_all(None, None, stamp_ns=15 * NS // 30)[0].track_id == 1
    with pytest.raises(ValueError):
        MultiTracker(est, max_targets=0)
    with pytest.raises(ValueError):
        MultiTracker(est, hold_frames=10, remember_frames=5)


def test_a_late_frame_keeps_the_ids_and_searches_while_a_new_scene_starts_over() -> None:
    est = Scripted()
    tracker = MultiTracker(est, TrackingConfig(enabled=True, max_gap_s=0.25))
    est.centres, est.sides = [np.array([-150.0, 0.0, 600.0]), np.array([150.0, 0.0, 600.0])], ["right", "left"]
    for i in range(5):
        first = {r.handedness: r.track_id for r in tracker.estimate_all(None, None, stamp_ns=i * NS // 30)}
    searches = est.searches
    # 0.5 s later (a busy CPU dropped the frames between): the hands moved 60 mm, the ids stay
    est.centres = [c + np.array([60.0, 0.0, 0.0]) for c in est.centres]
    late = {r.handedness: r.track_id for r in tracker.estimate_all(None, None, stamp_ns=4 * NS // 30 + NS // 2)}
    assert late == first and est.searches == searches + 1  # the late frame searched
    # two seconds later, or stamps going back (a bag replayed from its start): a new scene, new ids
    t = 4 * NS // 30 + NS // 2 + 2 * NS
    after_pause = {r.track_id for r in tracker.estimate_all(None, None, stamp_ns=t)}
    assert after_pause.isdisjoint(first.values())
    replayed = {r.track_id for r in tracker.estimate_all(None, None, stamp_ns=0)}
    assert replayed.isdisjoint(after_pause | set(first.values()))


def test_a_returning_hand_is_named_by_its_side_not_by_where_it_reappears() -> None:
    """Left and right hands, the left one hidden for a while: it reappears 400 mm away (beyond any
    distance gate) and keeps its id because its side matches; a pose of the other side does not take it."""
    est = Scripted()
    tracker = MultiTracker(est, TrackingConfig(enabled=True), hold_frames=2, remember_frames=60, search_every=1)
    left, right = np.array([-150.0, 0.0, 600.0]), np.array([150.0, 0.0, 600.0])
    for i in range(3):
        est.centres, est.sides = [left, right], ["left", "right"]
        ids = {r.handedness: r.track_id for r in tracker.estimate_all(None, None, stamp_ns=i * NS // 30)}
    assert ids == {"left": 0, "right": 1}
    for i in range(3, 12):  # the left hand hidden for 9 frames
        est.centres, est.sides = [right], ["right"]
        assert [r.track_id for r in tracker.estimate_all(None, None, stamp_ns=i * NS // 30)] == [1]
    est.centres, est.sides = [right, left + np.array([0.0, 400.0, 0.0])], ["right", "left"]
    back = {r.handedness: r.track_id for r in tracker.estimate_all(None, None, stamp_ns=12 * NS // 30)}
    assert back == {"left": 0, "right": 1}
    # a third, right-sided pose far away is no returning left hand: a new id
    tracker2 = MultiTracker(est, TrackingConfig(enabled=True), hold_frames=2, remember_frames=60,
                            search_every=1)
    for i in range(3):
        est.centres, est.sides = [left, right], ["left", "right"]
        tracker2.estimate_all(None, None, stamp_ns=i * NS // 30)
    for i in range(3, 12):
        est.centres, est.sides = [right], ["right"]
        tracker2.estimate_all(None, None, stamp_ns=i * NS // 30)
    est.centres, est.sides = [right, left + np.array([0.0, 400.0, 0.0])], ["right", "right"]
    ids2 = sorted(r.track_id for r in tracker2.estimate_all(None, None, stamp_ns=12 * NS // 30))
    assert ids2 == [1, 2]


# -- estimate_all with the shipped hand model on two-hand scenes ----------------------------------------------
@pytest.fixture(scope="module")
def shipped() -> PoseEstimator:
    from v2v_ros.resources import shipped_model

    path = shipped_model("hand_default")
    return PoseEstimator.load(path, device="cpu", precision="fp32")


def test_estimate_all_finds_two_hands_apart_in_one_frame(shipped: PoseEstimator) -> None:
    from v2v_ros.data.synthetic import SynthConfig
    from v2v_ros.data.synthetic.multi import HandsSpec, render_multi_frame

    found_both = 0
    frames = [f for f in (render_multi_frame(21, i, SynthConfig(), HandsSpec(2, 2)) for i in range(12))
              if f.info["arrangement"] == "apart"][:4]
    assert frames
    for f in frames:
        res = shipped.estimate_all(f.depth, f.intrinsics, max_targets=2)
        assert len(res) <= 2 and all(r.valid for r in res)
        assert res == sorted(res, key=lambda r: -r.score)
        assert {r.handedness for r in res} <= {"left", "right"}
        pairs = match_targets(np.stack([r.joints for r in res]) if res else np.zeros((0, 21, 3)), f.targets)
        found_both += len(pairs) == 2
    assert found_both >= len(frames) - 1
    one = shipped.estimate_all(frames[0].depth, frames[0].intrinsics, max_targets=1)
    assert len(one) == 1


def _cube_counter(est: PoseEstimator, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Cubes per pose-network call of ``est`` (what a frame costs, whatever the backend)."""
    calls: list[int] = []
    cubes = est._cubes

    def counted(depth: Any, intr: Any, centers: list[np.ndarray], timings: dict[str, float], full: Any = None) -> Any:
        calls.append(len(centers))
        return cubes(depth, intr, centers, timings, full)

    monkeypatch.setattr(est, "_cubes", counted)
    return calls


def test_one_at_a_time_search_finds_two_hands_and_spends_one_cube_on_a_followed_one(
        shipped: PoseEstimator, monkeypatch: pytest.MonkeyPatch) -> None:
    from v2v_ros.data.synthetic import SynthConfig, render_frame
    from v2v_ros.data.synthetic.multi import HandsSpec, render_multi_frame

    frames = [f for f in (render_multi_frame(21, i, SynthConfig(), HandsSpec(2, 2)) for i in range(12))
              if f.info["arrangement"] == "apart"][:4]
    found_both = 0
    for f in frames:  # acquisition one hand at a time: the second searched without the first one's pixels
        res = shipped.estimate_all(f.depth, f.intrinsics, max_targets=2, one_at_a_time=True)
        pairs = match_targets(np.stack([r.joints for r in res]) if res else np.zeros((0, 21, 3)), f.targets)
        found_both += len(pairs) == 2
    assert found_both >= len(frames) - 1
    # One hand in view, followed, and a search for a second: the peaks on the followed hand's fingers and
    # forearm find no hand once its pixels are hidden, so the frame costs the followed cube alone.
    f = render_frame(2, 0)
    calls = _cube_counter(shipped, monkeypatch)
    batch = shipped.estimate_all(f.depth, f.intrinsics, max_targets=2)
    assert len(batch) == 1 and sum(calls) > 1  # the batch search gives several peaks of the hand a cube
    calls.clear()
    followed = shipped.estimate_all(f.depth, f.intrinsics, max_targets=2, priors=[batch[0].joints.mean(axis=0)],
                                    one_at_a_time=True)  # as the tracker calls it
    assert len(followed) == 1 and calls == [1]
    assert np.linalg.norm(followed[0].joints - f.joints, axis=1).mean() < 20.0


def test_followed_touching_hands_are_each_estimated_without_the_other_in_one_forward(
        shipped: PoseEstimator, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the tracker's predicted poses, each followed cube is voxelised on the image without the other
    hand (no extra cube); without them, both cubes see the same image."""
    from v2v_ros.data.synthetic import SynthConfig
    from v2v_ros.data.synthetic.multi import HandsSpec, render_multi_frame

    f = next(f for f in (render_multi_frame(21, i, SynthConfig(), HandsSpec(2, 2)) for i in range(40))
             if f.info["arrangement"] == "touching" and len(f.targets) == 2)
    seen: list[Any] = []
    cubes = shipped._cubes

    def spy(depth: Any, intr: Any, centers: list[np.ndarray], timings: dict[str, float], full: Any = None) -> Any:
        seen.append(depth)
        return cubes(depth, intr, centers, timings, full)

    monkeypatch.setattr(shipped, "_cubes", spy)
    centres = [t.mean(axis=0) for t in f.targets]
    masked = shipped.estimate_all(f.depth, f.intrinsics, 2, priors=centres, search=False,
                                  prior_poses=list(f.targets))
    assert len(seen) == 1 and isinstance(seen[0], list) and len(seen[0]) == 2  # one forward, two images
    for i in range(2):
        np.testing.assert_array_equal(seen[0][i], without_hands(f.depth, f.intrinsics, [f.targets[1 - i]]))
        assert (seen[0][i] == 0).sum() > (f.depth == 0).sum()  # the other hand's pixels are gone
    assert len(masked) == 2
    seen.clear()
    plain = shipped.estimate_all(f.depth, f.intrinsics, 2, priors=centres, search=False)
    assert len(seen) == 1 and len(plain) == 2
    assert all(img is f.depth for img in seen[0])  # nothing to mask without the tracker's poses


@settings(max_examples=60, deadline=None)
@given(x=st.floats(-300, 300), y=st.floats(-200, 200), z=st.floats(300, 1200), dz=st.floats(20, 600),
       side=st.floats(-1.5, 1.5))
def test_a_hand_hides_another_only_when_nearer_and_over_it_in_the_image(
        shipped: PoseEstimator, x: float, y: float, z: float, dz: float, side: float) -> None:
    """``_hides``: a hand on the ray to another one and nearer hides it, whatever the depth gap; the one
    behind never hides the one in front; a hand more than a cube's width away in the image hides nothing."""
    k = Intrinsics(fx=615.0, fy=615.0, cx=320.0, cy=240.0)
    back = np.array([x, y, z + dz])
    on_ray = back * (z / (z + dz))  # same pixel, nearer
    assert shipped._hides(k, on_ray, back)
    assert not shipped._hides(k, back, on_ray)
    width = shipped.grid.cube_size / back[2]  # a cube's width at the back hand's depth, in normalised image units
    aside = on_ray + np.array([(1.01 + abs(side)) * width * z, 0.0, 0.0])  # over a cube's width away in the image
    assert not shipped._hides(k, aside, back)


def test_a_followed_hand_half_hidden_by_the_other_is_checked_without_it(
        shipped: PoseEstimator, monkeypatch: pytest.MonkeyPatch) -> None:
    """The presence classifier sees each followed cube on the image its pose is estimated on (the other
    followed hands' predicted pixels removed): a hand behind the other stays followed, in the same forward,
    instead of being turned down and searched for again (three cubes in three forwards)."""
    from v2v_ros.data.synthetic import SynthConfig
    from v2v_ros.data.synthetic.multi import HandsSpec, render_multi_frame

    # occluding frames of seed 21: the classifier gives the hand behind 0.0-0.2 on the image as it is
    frames = [render_multi_frame(21, i, SynthConfig(), HandsSpec(2, 2)) for i in (7, 16, 22, 45)]
    calls = _cube_counter(shipped, monkeypatch)
    for f in frames:
        assert f.info["arrangement"] == "occluding" and len(f.targets) == 2
        centres = [t.mean(axis=0) for t in f.targets]
        plain = shipped.presence(f.depth, f.intrinsics, centres)
        assert plain.min() < shipped.presence.threshold  # the premise: one of them is turned down as it is
        calls.clear()
        res = shipped.estimate_all(f.depth, f.intrinsics, 2, priors=centres, search=False, one_at_a_time=True,
                                   prior_poses=list(f.targets))
        assert calls == [2] and len(res) == 2  # both followed, one forward
        pairs = match_targets(np.stack([r.joints for r in res]), f.targets)
        assert len(pairs) == 2
        calls.clear()
        shipped.estimate_all(f.depth, f.intrinsics, 2, priors=centres, search=False, one_at_a_time=True)
        assert calls != [2]  # without the predicted poses the hidden hand is turned down


def test_the_tracker_hands_its_predicted_poses_to_the_followed_cubes() -> None:
    """Each followed cube comes with its hand's last pose moved to where the track predicts it."""
    est = Scripted()
    tracker = MultiTracker(est, TrackingConfig(enabled=True))
    est.sides = ["right", "left"]
    hand = _hand(3) - _hand(3).mean(axis=0)
    for i in range(4):  # both hands move 5 mm per frame to the right
        est.centres = [np.array([-60.0 + 5 * i, 0.0, 500.0]), np.array([60.0 + 5 * i, 0.0, 520.0])]
        tracker.estimate_all(None, None, stamp_ns=i * NS // 30)
    assert est.poses_seen[0] == []  # nothing followed yet
    last = est.poses_seen[-1]
    assert len(last) == 2 == est.priors_seen[-1]
    for pose, true in zip(sorted(last, key=lambda p: p[:, 0].mean()), est.centres, strict=True):
        np.testing.assert_allclose(pose - pose.mean(axis=0), hand, atol=1e-6)  # the hand's pose, moved
        assert np.linalg.norm(pose.mean(axis=0) - true) < 3.0  # to where the hand is now (velocity)


def _hands_found(est: PoseEstimator, f: Any) -> int:
    """How many of the frame's hands ``estimate_all`` (max_targets 2) finds (matched to the ground truth)."""
    res = est.estimate_all(f.depth, f.intrinsics, max_targets=2)
    return len(match_targets(np.stack([r.joints for r in res]) if res else np.zeros((0, 21, 3)), f.targets))


def test_one_more_look_without_the_found_hand_finds_the_hand_the_batch_missed(
        shipped: PoseEstimator, monkeypatch: pytest.MonkeyPatch) -> None:
    """Frames of seed 21 (a hand in front of another, two apart, two touching) where the batch finds one
    hand (frames chosen for the shipped weights: a better pose network finds more in the batch): the remaining candidates, checked on the image without that hand's pixels, give the second."""
    from v2v_ros.data.synthetic import SynthConfig
    from v2v_ros.data.synthetic.multi import HandsSpec, render_multi_frame

    frames = [render_multi_frame(21, i, SynthConfig(), HandsSpec(2, 2)) for i in (22, 25, 50)]
    assert [f.info["arrangement"] for f in frames] == ["occluding", "apart", "touching"]
    assert [_hands_found(shipped, f) for f in frames] == [2, 2, 2]
    monkeypatch.setattr(shipped, "_one_more_look", lambda depth, intr, m, found, timings: found)
    monkeypatch.setattr(shipped, "_split_pair", lambda depth, intr, found, accepted, timings: found)  # the batch alone
    monkeypatch.setattr(shipped, "_doubted_poses", lambda depth, intr, m, found, doubted, timings: found)
    assert [_hands_found(shipped, f) for f in frames] == [1, 1, 1]


def test_the_hand_found_by_one_more_look_is_estimated_without_the_found_one(
        shipped: PoseEstimator, monkeypatch: pytest.MonkeyPatch) -> None:
    """Touching hands of seed 21: the one more look's cube next to the found hand, voxelised with that hand
    in it, gives the found hand's pose again (a duplicate, dropped); voxelised on the image without the
    found hand's pixels, as the classifier saw it, it gives the second hand (frames 46 and 71, chosen for the
    shipped weights: of the 9 touching frames among the first 200 where the look, without the split of
    touching hands, finds the second hand, 3 are ones where the unmasked cube loses it; in the 6 others
    that cube's pose still lands on the second hand)."""
    from v2v_ros.data.synthetic import SynthConfig
    from v2v_ros.data.synthetic.multi import HandsSpec, render_multi_frame

    frames = [render_multi_frame(21, i, SynthConfig(), HandsSpec(2, 2)) for i in (46, 71)]
    assert {f.info["arrangement"] for f in frames} == {"touching"}
    monkeypatch.setattr(shipped, "_split_pair", lambda depth, intr, found, accepted, timings: found)  # the look alone
    assert [_hands_found(shipped, f) for f in frames] == [2, 2]
    cubes = shipped._estimate_cubes
    masked_forwards: list[int] = []

    def with_the_found_hand(depth: Any, intr: Any, centers: Any, timings: Any, check_presence: bool = True,
                            full: Any = None) -> Any:
        if isinstance(depth, np.ndarray) and (depth == 0).sum() > (frame.depth == 0).sum():  # a masked image
            masked_forwards.append(len(centers))
            depth = frame.depth
        return cubes(depth, intr, centers, timings, check_presence, full)

    monkeypatch.setattr(shipped, "_estimate_cubes", with_the_found_hand)
    found = []
    for frame in frames:
        found.append(_hands_found(shipped, frame))
    assert found == [1, 1] and len(masked_forwards) == 2


def test_the_look_keeps_less_confident_hands_but_not_a_found_hands_forearm(
        shipped: PoseEstimator, monkeypatch: pytest.MonkeyPatch) -> None:
    """Seed 21: behind a near hand (occluding frame 194, the only such frame among the first 200) the look's
    pose of the hidden hand is under MASKED_POSE_SCORE and kept from LOOK_POSE_SCORE; on a hand alone
    (frame 111, the first hand) the look's cube on what the mask left of it gives a pose around its wrist,
    which is no second hand. (Frames chosen for the shipped weights.)"""
    from v2v_ros.core import estimator as estimator_module
    from v2v_ros.data.synthetic import SynthConfig
    from v2v_ros.data.synthetic.multi import HandsSpec, render_multi_frame

    hidden = [render_multi_frame(21, i, SynthConfig(), HandsSpec(2, 2)) for i in (194,)]
    alone = render_multi_frame(21, 111, SynthConfig(), HandsSpec(2, 2), only=0)
    assert {f.info["arrangement"] for f in hidden} == {"occluding"} and len(alone.targets) == 1
    assert [_hands_found(shipped, f) for f in hidden] == [2]
    assert len(shipped.estimate_all(alone.depth, alone.intrinsics, max_targets=2)) == 1
    monkeypatch.setattr(estimator_module, "FOREARM_MM", 0.0)
    assert len(shipped.estimate_all(alone.depth, alone.intrinsics, max_targets=2)) == 2
    monkeypatch.setattr(estimator_module, "LOOK_POSE_SCORE", estimator_module.MASKED_POSE_SCORE)
    assert [_hands_found(shipped, f) for f in hidden] == [1]


def test_a_hand_the_classifier_doubts_even_refined_is_kept_when_its_pose_is_confident(
        shipped: PoseEstimator, monkeypatch: pytest.MonkeyPatch) -> None:
    """Seed 21 frame 72, the first hand alone: the classifier doubts its candidate even at the refined centre
    (no later look asks again: nothing is found), and the pose network poses it confidently there."""
    from v2v_ros.core import estimator as estimator_module
    from v2v_ros.data.synthetic import SynthConfig
    from v2v_ros.data.synthetic.multi import HandsSpec, render_multi_frame

    f = render_multi_frame(21, 72, SynthConfig(), HandsSpec(2, 2), only=0)
    res = shipped.estimate_all(f.depth, f.intrinsics, max_targets=2)
    assert len(res) == 1 and len(match_targets(np.stack([r.joints for r in res]), f.targets)) == 1
    assert res[0].presence < shipped.presence.threshold  # type: ignore[union-attr]  # (at the refined centre)
    assert res[0].score >= estimator_module.DOUBTED_POSE_SCORE
    monkeypatch.setattr(estimator_module, "DOUBTED_POSE_SCORE", 1.01)
    assert shipped.estimate_all(f.depth, f.intrinsics, max_targets=2) == []


def test_the_look_poses_the_candidates_it_doubts_on_the_masked_image(
        shipped: PoseEstimator, monkeypatch: pytest.MonkeyPatch) -> None:
    """Seed 86, occluding frame 57 (chosen for the shipped weights: the only such frame among the first 400):
    on the image without the near hand the classifier still doubts the peaks on the hand behind it; the look
    gives its free cube to the doubted candidate, and the pose there is confident. (The batch's own doubted
    candidates are off here: this is the look.)"""
    from v2v_ros.core import estimator as estimator_module
    from v2v_ros.data.synthetic import SynthConfig
    from v2v_ros.data.synthetic.multi import HandsSpec, render_multi_frame

    frames = [render_multi_frame(86, i, SynthConfig(), HandsSpec(2, 2)) for i in (57,)]
    assert {f.info["arrangement"] for f in frames} == {"occluding"}
    monkeypatch.setattr(shipped, "_doubted_poses", lambda depth, intr, m, found, doubted, timings: found)
    assert [_hands_found(shipped, f) for f in frames] == [2]
    for f in frames:
        second = shipped.estimate_all(f.depth, f.intrinsics, max_targets=2)[1]
        assert second.presence < shipped.presence.threshold  # type: ignore[union-attr]
    monkeypatch.setattr(estimator_module, "DOUBTED_POSE_SCORE", 1.01)
    assert [_hands_found(shipped, f) for f in frames] == [1]


def test_one_more_look_places_the_detector_peaks_on_the_image_without_the_found_hands(
        shipped: PoseEstimator, monkeypatch: pytest.MonkeyPatch) -> None:
    """Occluding frames of seed 21: the near hand takes the detector's peaks of the whole image; on the image
    without its pixels the peaks move to the hand behind it, which the one more look then finds."""
    from v2v_ros.data.synthetic import SynthConfig
    from v2v_ros.data.synthetic.multi import HandsSpec, render_multi_frame

    frames = [render_multi_frame(21, i, SynthConfig(), HandsSpec(2, 2)) for i in (22, 44, 45, 53)]
    assert {f.info["arrangement"] for f in frames} == {"occluding"}
    assert [_hands_found(shipped, f) for f in frames] == [2, 2, 2, 2]
    candidates = shipped._candidates

    def on_the_whole_image(depth: Any, intr: Any, max_targets: int, kept: Any, timings: Any) -> Any:
        return candidates(frame.depth, intr, max_targets, kept, timings)

    monkeypatch.setattr(shipped, "_candidates", on_the_whole_image)
    found = []
    for frame in frames:
        found.append(_hands_found(shipped, frame))
    assert found == [1, 1, 1, 1]


def test_without_a_tracker_a_second_target_needs_some_confidence(
        shipped: PoseEstimator, monkeypatch: pytest.MonkeyPatch) -> None:
    """A doubtful second pose (mean joint confidence under SECOND_TARGET_SCORE) is no target on a frame
    without a tracker; the most confident one stays whatever its score."""
    from dataclasses import replace

    from v2v_ros.core import estimator as estimator_module
    from v2v_ros.data.synthetic import render_frame

    f = render_frame(2, 0)
    own = shipped._own_hands

    def with_a_doubtful_second(depth: Any, intr: Any, found: list[Any], timings: Any) -> list[Any]:
        kept = own(depth, intr, found, timings)
        far = replace(kept[0], joints=kept[0].joints + np.array([400.0, 0.0, 0.0]),
                      confidence=np.full_like(kept[0].confidence, 0.2))
        return [*kept[:1], far]

    monkeypatch.setattr(shipped, "_own_hands", with_a_doubtful_second)
    assert len(shipped.estimate_all(f.depth, f.intrinsics, max_targets=2)) == 1
    monkeypatch.setattr(estimator_module, "SECOND_TARGET_SCORE", 0.1)
    assert len(shipped.estimate_all(f.depth, f.intrinsics, max_targets=2)) == 2


def test_estimate_all_finds_nothing_in_an_empty_scene_and_estimate_is_unchanged(shipped: PoseEstimator) -> None:
    from v2v_ros.data.synthetic import render_frame

    assert shipped.estimate_all(np.zeros((480, 640), np.float32), Intrinsics(615, 615, 319.5, 239.5)) == []
    f = render_frame(2, 0)
    single = shipped.estimate(f.depth, f.intrinsics)
    again = shipped.estimate(f.depth, f.intrinsics)
    np.testing.assert_array_equal(single.joints, again.joints)
    assert single.track_id == -1 and single.handedness in ("left", "right")
    with pytest.raises(ValueError):
        shipped.estimate_all(f.depth, f.intrinsics, max_targets=0)


def test_hiding_a_hand_removes_its_pixels_only() -> None:
    cam = Intrinsics(615.0, 615.0, 319.5, 239.5)
    depth = np.full((480, 640), 600.0, np.float32)
    joints = _hand(5) - _hand(5).mean(axis=0) + np.array([0.0, 0.0, 600.0])
    out = without_hands(depth, cam, [joints])
    uv = cam.to_uvd(joints)
    for u, v, _ in uv.round().astype(int):
        assert out[v, u] == 0.0  # the wall at the joints' depth is where the hand is
    assert out[10, 10] == 600.0 and depth.min() == 600.0  # far from the hand and the input: untouched


def _without_hands_one_disk_at_a_time(depth: np.ndarray, cam: Intrinsics, poses: list[np.ndarray],
                                      r: float = 22.0) -> np.ndarray:
    """The definition of hiding a hand: every pixel tested against every disk over the whole image
    (without_hands draws each disk in its own small window and must give the same image)."""
    out = depth.copy()
    h, w = depth.shape
    for joints in poses:
        pts = [joints]
        for f in range(5):
            chain = [0, *range(1 + 4 * f, 5 + 4 * f)]
            a, b = joints[chain[:-1]], joints[chain[1:]]
            pts += [a + (b - a) * s for s in (0.25, 0.5, 0.75)]
        for q in np.concatenate(pts):
            if q[2] <= r:
                continue
            r_px = abs(cam.fx) * r / q[2]
            uc, vc = cam.fx * q[0] / q[2] + cam.cx, cam.fy * q[1] / q[2] + cam.cy
            vv, uu = np.mgrid[0:h, 0:w]
            disk = (uu - uc) ** 2 + (vv - vc) ** 2 <= r_px**2
            out[disk & (np.abs(depth - q[2]) < r)] = 0.0
    return out


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), shift=st.tuples(st.floats(-400, 400), st.floats(-300, 300), st.floats(-550, 900)),
       hands=st.integers(1, 2))
def test_hiding_hands_in_windows_equals_testing_every_pixel(seed: int, shift: tuple[float, float, float],
                                                           hands: int) -> None:
    """Poses anywhere (partly outside the image, some points behind the camera) over a noisy scene."""
    rng = np.random.default_rng(seed)
    cam = Intrinsics(float(rng.uniform(200, 700)), float(rng.uniform(200, 700)), 79.5, 59.5)
    poses = [_hand(seed + k) - _hand(seed + k).mean(axis=0) + np.array(shift) + [0, 0, 600.0] + 90.0 * k
             for k in range(hands)]
    depth = rng.uniform(0, 1500, (120, 160)).astype(np.float32)
    depth[rng.random(depth.shape) < 0.2] = 0.0
    for p in poses:  # put the hand's own surface into the image where it projects
        uvd = cam.to_uvd(p[p[:, 2] > 1.0]).round().astype(int)
        ok = (uvd[:, 0] >= 0) & (uvd[:, 0] < 160) & (uvd[:, 1] >= 0) & (uvd[:, 1] < 120)
        depth[uvd[ok, 1], uvd[ok, 0]] = uvd[ok, 2]
    np.testing.assert_array_equal(without_hands(depth, cam, poses), _without_hands_one_disk_at_a_time(depth, cam, poses))


def test_eval_bag_scores_every_target_of_a_two_hand_stream(tmp_path) -> None:  # noqa: ANN001
    import json

    from v2v_ros.cli import main

    data = tmp_path / "two"
    assert main(["synth", "--out", str(data), "--n", "8", "--seed", "21", "--hands", "2", "--sequence", "8",
                 "--full-frame", "--bag"]) == 0
    out = tmp_path / "eval"
    assert main(["eval-bag", str(data / "bag"), "--gt-topic", "/ground_truth/skeletons", "--out", str(out),
                 "--tracking", "--max-targets", "2", "--no-progress", "--device", "cpu"]) == 0
    m = json.loads((out / "metrics.json").read_text())["metrics"]["multi_target"]
    assert m["frames"] == 8 and m["targets_in_view"] == 16
    assert m["id_switches"] is not None and m["handedness_scored"] == m["matched"]
    from v2v_ros.bag.io import iter_messages

    counts = [len(msg.skeletons) for _, _, msg in iter_messages(out / "predictions", ["/v2v_pose_node/skeletons"])]
    assert len(counts) == 8 and max(counts) <= 2
    assert main(["eval-bag", str(data / "bag"), "--out", str(tmp_path / "bad"), "--max-targets", "0"]) == 1
    assert main(["eval-bag", str(data / "bag"), "--out", str(tmp_path / "bad"), "--max-targets", "2",
                 "--opposite-hands-prior", "1.0"]) == 1


def test_bags_recorded_with_the_skeleton_layout_before_handedness_still_read(tmp_path) -> None:  # noqa: ANN001
    from rosbags.rosbag2 import StoragePlugin, Writer

    from v2v_ros.bag.io import iter_messages, skeleton_array_to_mm
    from v2v_ros.data.rosbag_types import find_msg_dir, typestore_with_v2v_msgs

    old = tmp_path / "msg"
    old.mkdir()
    for name in ("Keypoint3D", "Skeleton3DArray"):
        (old / f"{name}.msg").write_text((find_msg_dir() / f"{name}.msg").read_text())
    current = (find_msg_dir() / "Skeleton3D.msg").read_text()
    before = "\n".join(line for line in current.splitlines() if "handedness" not in line.split("#")[0])
    assert "handedness" in current and "string handedness" not in before
    (old / "Skeleton3D.msg").write_text(before)
    ts = typestore_with_v2v_msgs(msg_dir=old)
    t = ts.types
    point = t["geometry_msgs/msg/Point"]
    sk = t["v2v_ros/msg/Skeleton3D"](
        id=3, skeleton_type="hand_msra21", joint_names=["wrist"],
        keypoints=[t["v2v_ros/msg/Keypoint3D"](position=point(x=0.1, y=0.2, z=0.3), confidence=1.0)],
        reference_point=point(x=0.0, y=0.0, z=0.3), cube_size=0.2, score=1.0, valid=True)
    header = t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](sec=1, nanosec=0), frame_id="f")
    writer = Writer(tmp_path / "bag", version=8, storage_plugin=StoragePlugin.SQLITE3)
    writer.open()
    conn = writer.add_connection("/gt", "v2v_ros/msg/Skeleton3DArray", typestore=ts)
    msg = t["v2v_ros/msg/Skeleton3DArray"](header=header, skeletons=[sk, sk])
    writer.write(conn, 1, ts.serialize_cdr(msg, "v2v_ros/msg/Skeleton3DArray"))
    writer.close()
    (_, _, got), = list(iter_messages(tmp_path / "bag", ["/gt"]))
    assert [s.id for s in got.skeletons] == [3, 3]
    np.testing.assert_allclose(skeleton_array_to_mm(got), [[100.0, 200.0, 300.0]])


def test_estimate_all_finds_people_in_a_room_with_the_body_model() -> None:
    from v2v_ros.data.synthetic.body import BodyConfig
    from v2v_ros.data.synthetic.multi_body import PeopleSpec, render_people_frame
    from v2v_ros.resources import shipped_model

    est = PoseEstimator.load(shipped_model("body_default"), device="cpu", precision="fp32")
    frame = render_people_frame(5, 0, BodyConfig(), PeopleSpec(2, 2))
    found = est.estimate_all(frame.depth, frame.intrinsics, max_targets=3)
    assert 1 <= len(found) <= 3 and all(r.handedness == "" for r in found)
    pairs = match_targets(np.stack([r.joints for r in found]), frame.targets, match_mm=200.0)
    assert len(pairs) >= 1 and len(pairs) == len(found)  # every pose on a person, no two on the same one


def _without_nearer_every_pixel(depth: np.ndarray, cam: Intrinsics, keep: np.ndarray, other: np.ndarray,
                                r: float = 120.0) -> np.ndarray:
    """The definition of the first split of two touching hands, tested on every pixel of the image."""
    h, w = depth.shape
    v, u = np.mgrid[0:h, 0:w]
    z = depth.astype(np.float64)
    p = np.stack([(u - cam.cx) * z / cam.fx, (v - cam.cy) * z / cam.fy, z], axis=-1)
    d_other, d_keep = np.linalg.norm(p - other, axis=-1), np.linalg.norm(p - keep, axis=-1)
    out = depth.copy()
    out[(z > 0) & (d_other < d_keep) & (d_other < r)] = 0.0
    return out


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), other=st.tuples(st.floats(-600, 600), st.floats(-400, 400), st.floats(-50, 1500)),
       offset=st.tuples(*[st.floats(-200, 200)] * 3), flip=st.booleans())
def test_splitting_two_candidates_in_a_window_equals_testing_every_pixel(
        seed: int, other: tuple[float, float, float], offset: tuple[float, float, float], flip: bool) -> None:
    """Candidates anywhere (off axis, near or behind the camera, NYU's negative fy) over a noisy scene: the
    window :func:`without_nearer` back-projects holds every pixel of the ball around the other candidate."""
    from v2v_ros.core.estimator import without_nearer

    # Two candidates a hair apart have no halfway plane to speak of: every pixel is a tie, decided by
    # rounding (squared distances here, distances in the reference). The estimator's candidates are
    # at least a 60 mm ball apart.
    assume(float(np.linalg.norm(offset)) >= 1.0)
    rng = np.random.default_rng(seed)
    cam = Intrinsics(float(rng.uniform(200, 700)), float(rng.uniform(200, 700)) * (-1 if flip else 1), 79.5, 59.5)
    o = np.asarray(other)
    k = o + np.asarray(offset)
    depth = rng.uniform(0, 1500, (120, 160)).astype(np.float32)
    depth[rng.random(depth.shape) < 0.2] = 0.0
    if o[2] > 1.0:  # a patch of surface around the other candidate, where it projects
        u, v = cam.fx * o[0] / o[2] + cam.cx, cam.fy * o[1] / o[2] + cam.cy
        if 0 <= u < 160 and 0 <= v < 120:
            depth[max(int(v) - 15, 0):int(v) + 15, max(int(u) - 15, 0):int(u) + 15] = o[2] + rng.uniform(-60, 60)
    out = without_nearer(depth, cam, k, o)
    np.testing.assert_array_equal(out, _without_nearer_every_pixel(depth, cam, k, o))
    assert not np.shares_memory(out, depth)


def test_touching_hands_posed_as_one_are_split_into_their_two_hands(
        shipped: PoseEstimator, monkeypatch: pytest.MonkeyPatch) -> None:
    """Touching hands of seed 21 (frame 160, found for the shipped weights by a search over the seed's
    touching frames) where the batch's cubes give one hand: the classifier's two candidates, each cube
    without the pixels nearer the other, give both hands. The one more look, which runs after the split,
    is off here (on this frame it does not find the second hand either)."""
    from v2v_ros.data.synthetic import SynthConfig
    from v2v_ros.data.synthetic.multi import HandsSpec, render_multi_frame

    f = render_multi_frame(21, 160, SynthConfig(), HandsSpec(2, 2))
    assert f.info["arrangement"] == "touching"
    monkeypatch.setattr(shipped, "_one_more_look", lambda depth, intr, m, found, timings: found)
    res = shipped.estimate_all(f.depth, f.intrinsics, max_targets=2)
    pairs = match_targets(np.stack([r.joints for r in res]), f.targets)
    assert len(res) == len(pairs) == 2 and max(e for _, _, e in pairs) < 25.0
    monkeypatch.setattr(shipped, "_split_pair", lambda depth, intr, found, accepted, timings: found)
    assert _hands_found(shipped, f) == 1


def test_a_single_hand_is_not_split_in_two(shipped: PoseEstimator, monkeypatch: pytest.MonkeyPatch) -> None:
    """A hand of seed 21 rendered alone (frame 118) on which the classifier passes two candidates. Two rules
    each keep the split from making two hands of it: its first poses of the hand's parts lie less than
    PAIR_FIRST_JOINTS_MM apart (no second forward), and its final poses, distinct and confident enough,
    are less confident than the hand's own pose (PAIR_MARGIN). Without both the frame publishes a false
    second hand."""
    from v2v_ros.core import estimator as estimator_module
    from v2v_ros.data.synthetic import SynthConfig
    from v2v_ros.data.synthetic.multi import HandsSpec, render_multi_frame

    f = render_multi_frame(21, 118, SynthConfig(), HandsSpec(2, 2), only=0)
    assert len(f.targets) == 1
    res = shipped.estimate_all(f.depth, f.intrinsics, max_targets=2)
    assert len(res) == 1 and len(match_targets(np.stack([r.joints for r in res]), f.targets)) == 1
    for margin, apart, published in ((1.0, estimator_module.PAIR_FIRST_JOINTS_MM, 1),
                                     (estimator_module.PAIR_MARGIN, 0.0, 1), (1.0, 0.0, 2)):
        monkeypatch.setattr(estimator_module, "PAIR_MARGIN", margin)
        monkeypatch.setattr(estimator_module, "PAIR_FIRST_JOINTS_MM", apart)
        res = shipped.estimate_all(f.depth, f.intrinsics, max_targets=2)
        assert len(res) == published and len(match_targets(np.stack([r.joints for r in res]), f.targets)) == 1


def test_a_doubted_candidate_is_asked_again_once_refined(shipped: PoseEstimator, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two hands apart (seed 21, frame 124): the classifier doubts the detector's peak on one as placed and
    passes it once the refiner has centred it; without that second question the hand is lost."""
    from v2v_ros.core import estimator as estimator_module
    from v2v_ros.data.synthetic import SynthConfig
    from v2v_ros.data.synthetic.multi import HandsSpec, render_multi_frame

    f = render_multi_frame(21, 124, SynthConfig(), HandsSpec(2, 2))
    assert f.info["arrangement"] == "apart" and _hands_found(shipped, f) == 2
    monkeypatch.setattr(estimator_module, "DOUBTED_PRESENCE", 1.0)
    assert _hands_found(shipped, f) == 1


def test_a_split_goes_on_only_with_first_poses_that_may_be_two_hands() -> None:
    """The split's second forward is spent only on pairs whose first poses are both confident enough and
    whose joints lie a hand apart: the same hand twice, or a weak pose, would not give two hands."""
    from v2v_ros.core import estimator as estimator_module
    from v2v_ros.core.estimator import _two_hands

    def pose(shift_mm: float, confidence: float, valid: bool = True) -> PoseResult:
        joints = _hand(3) + np.array([shift_mm, 0.0, 0.0])
        return PoseResult(joints=joints, confidence=np.full(21, confidence, np.float32),
                          reference_point=joints.mean(axis=0), joint_names=HAND_MSRA21.joint_names,
                          skeleton=HAND_MSRA21.name, cube_size=250.0, valid=valid)

    apart = estimator_module.PAIR_FIRST_JOINTS_MM + 5.0
    bar = estimator_module.PAIR_FIRST_SCORE
    assert _two_hands(pose(0.0, 0.7), pose(apart, bar + 0.01))
    assert _two_hands(pose(apart, 0.7), pose(0.0, 0.7))
    assert not _two_hands(pose(0.0, 0.7), pose(apart - 10.0, 0.7))  # the same hand, posed twice
    assert not _two_hands(pose(0.0, 0.7), pose(apart, bar - 0.01))  # too weak a pose
    assert not _two_hands(pose(0.0, 0.7), pose(apart, 0.7, valid=False))


def test_crowded_hands_are_estimated_again_with_the_masks_of_the_better_poses(
        shipped: PoseEstimator, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two touching hands (seed 21, frame 3, chosen for the shipped weights): the first re-estimate of
    each crowded cube removes the other hand's pixels as its first pose placed them; the second round
    removes them as the first round's better pose places them, and both hands come out closer
    (docs/multi_target.md, "Crowded cubes")."""
    from v2v_ros.core import estimator as estimator_module
    from v2v_ros.data.synthetic import SynthConfig
    from v2v_ros.data.synthetic.multi import HandsSpec, render_multi_frame

    f = render_multi_frame(21, 3, SynthConfig(), HandsSpec(2, 2))
    assert f.info["arrangement"] == "touching"
    errors = {}
    for rounds in (1, 2):
        monkeypatch.setattr(estimator_module, "SEPARATE_ROUNDS", rounds)
        res = shipped.estimate_all(f.depth, f.intrinsics, max_targets=2)
        pairs = match_targets(np.stack([r.joints for r in res]), f.targets)
        assert len(res) == len(pairs) == 2
        errors[rounds] = float(np.mean([e for _, _, e in pairs]))
    assert errors[2] < errors[1] - 3.0  # 15.2 against 21.8 mm
