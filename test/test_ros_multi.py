"""v2v_pose_node with max_targets 2 over real DDS on loopback: two hands, ids, handedness, per-id markers."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
rclpy = pytest.importorskip("rclpy", reason="rclpy not importable (run `make setup` / eval \"$(make -s env)\")")
try:
    from v2v_ros.msg import Skeleton3DArray  # noqa: F401
except ImportError as exc:  # pragma: no cover
    pytest.skip(f"v2v_ros.msg not built ({exc}); run `make setup`", allow_module_level=True)

from rclpy.parameter import Parameter  # noqa: E402

from v2v_ros.data.synthetic import SynthConfig  # noqa: E402
from v2v_ros.data.synthetic.multi import HandsSpec, render_multi_frame  # noqa: E402
from v2v_ros.evaluate.multi import match_targets  # noqa: E402
from v2v_ros.resources import shipped_model  # noqa: E402
from v2v_ros.ros.convert import make_camera_info, make_image, skeleton_to_mm  # noqa: E402
from v2v_ros.ros.testing import FRAME, Harness, wait_for  # noqa: E402

pytestmark = pytest.mark.ros
ROOT = Path(__file__).resolve().parents[1]
DOMAIN = 50 + os.getpid() % 10  # 50..59


@pytest.fixture(scope="module")
def harness():
    h = Harness(DOMAIN, {"model_path": str(shipped_model("hand_default")), "device": "cpu", "max_targets": 2},
                params_file=str(ROOT / "config/hand_pose.yaml"))
    assert h.node.state == "active", h.node.last_error
    assert h.wait_connected(), "DDS discovery did not complete"
    yield h
    h.close()


def _two_hands():
    for i in range(20):
        f = render_multi_frame(31, i, SynthConfig(), HandsSpec(2, 2))
        if f.info["arrangement"] == "apart" and min(d["visible"] for d in f.info["targets"]) > 0.8:
            return f
    raise AssertionError("no two-hand frame with both hands apart and visible")


def _send(h: Harness, frame, stamp_ns: int):
    h.publish(make_image(frame.depth, stamp_ns, FRAME), make_camera_info(frame.intrinsics, *frame.image_size,
                                                                         stamp_ns, FRAME))

    def stamped(m):
        return m.header.stamp.sec * 10**9 + m.header.stamp.nanosec == stamp_ns

    assert wait_for(lambda: any(stamped(m) for m in list(h.skeletons)), 20.0), f"no skeletons for {stamp_ns}"
    return next(m for m in list(h.skeletons) if stamped(m))


def test_two_hands_each_published_with_an_id_handedness_and_own_marker_colour(harness: Harness) -> None:
    frame = _two_hands()
    t0 = 1_700_000_000_000_000_000
    first = _send(harness, frame, t0)
    assert len(first.skeletons) == 2
    ids = [sk.id for sk in first.skeletons]
    assert len(set(ids)) == 2
    assert {sk.handedness for sk in first.skeletons} <= {"left", "right"}
    assert all(0.5 <= sk.handedness_confidence <= 1.0 and 0.0 < sk.score <= 1.0 for sk in first.skeletons)
    pred = np.stack([skeleton_to_mm(sk)[0] for sk in first.skeletons])
    assert len(match_targets(pred, frame.targets)) == 2  # both on a hand, one each (metres -> mm round trip)
    # the same hands 33 ms later keep their ids
    second = _send(harness, frame, t0 + 33_333_333)
    assert sorted(sk.id for sk in second.skeletons) == sorted(ids)
    # markers: one joint list per id, in different colours
    stamp = second.header.stamp
    assert wait_for(lambda: any(m.markers and m.markers[-1].header.stamp == stamp for m in list(harness.markers)), 5.0)
    arr = next(m for m in list(harness.markers) if m.markers and m.markers[-1].header.stamp == stamp)
    joints = [m for m in arr.markers if m.ns == "joints"]
    assert len(joints) == 2
    colours = {(round(m.colors[0].r, 3), round(m.colors[0].g, 3), round(m.colors[0].b, 3)) for m in joints}
    assert len(colours) == 2


def test_max_targets_one_publishes_a_single_skeleton_again(harness: Harness) -> None:
    node = harness.node
    assert node.set_parameters([Parameter("max_targets", value=1)])[0].successful
    try:
        msg = _send(harness, _two_hands(), 1_700_000_010_000_000_000)
        assert len(msg.skeletons) == 1
        assert not node.set_parameters([Parameter("max_targets", value=0)])[0].successful
    finally:
        node.set_parameters([Parameter("max_targets", value=2)])


def test_opposite_hands_prior_is_a_runtime_parameter_the_tracker_uses(harness: Harness) -> None:
    """0.5 (several people's hands) reaches the multi-target tracker at once; out-of-range values are refused."""
    from v2v_ros.core.tracking import OPPOSITE_PRIOR, MultiTracker

    node = harness.node
    assert isinstance(node._estimator, MultiTracker) and node._estimator.opposite_prior == OPPOSITE_PRIOR
    assert node.set_parameters([Parameter("opposite_hands_prior", value=0.5)])[0].successful
    try:
        assert node._estimator.opposite_prior == 0.5
        assert len(_send(harness, _two_hands(), 1_700_000_020_000_000_000).skeletons) == 2
        assert not node.set_parameters([Parameter("opposite_hands_prior", value=1.0)])[0].successful
        assert not node.set_parameters([Parameter("opposite_hands_prior", value=0.3)])[0].successful
    finally:
        node.set_parameters([Parameter("opposite_hands_prior", value=OPPOSITE_PRIOR)])
