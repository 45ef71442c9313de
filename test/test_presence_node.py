"""The node with a presence classifier next to its model: min_confidence 0 still publishes no fake hand.

Real DDS on loopback in its own domain (40..49). The classifier here is one that never sees a
hand (threshold above any probability), so a frame that the bare pose network would publish
(a sphere, ``blob_depth``) must come back as an empty array, counted as ``no_hand.absent``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
rclpy = pytest.importorskip("rclpy", reason="rclpy not importable (run `make setup` / eval \"$(make -s env)\")")
try:
    from v2v_ros.msg import Skeleton3DArray  # noqa: F401
except ImportError as exc:  # pragma: no cover
    pytest.skip(f"v2v_ros.msg not built ({exc}); run `make setup`", allow_module_level=True)

from v2v_ros.core.presence import Presence, PresenceMeta, PresenceNet  # noqa: E402
from v2v_ros.ros.convert import make_camera_info, make_image  # noqa: E402
from v2v_ros.ros.diagnostics import build_status, status_values  # noqa: E402
from v2v_ros.ros.testing import FRAME, INTR, Harness, blob_depth, wait_for, write_tiny_checkpoint  # noqa: E402

pytestmark = pytest.mark.ros
ROOT = Path(__file__).resolve().parents[1]
DOMAIN = 40 + os.getpid() % 10


def _published(h: Harness, stamp_ns: int) -> list:
    depth = blob_depth()
    h.publish(make_image(depth, stamp_ns, FRAME, "16UC1"), make_camera_info(INTR, depth.shape[1], depth.shape[0],
                                                                             stamp_ns, FRAME))

    def got() -> bool:
        return any(m.header.stamp.sec * 10**9 + m.header.stamp.nanosec == stamp_ns for m in list(h.skeletons))

    assert wait_for(got, 10.0), f"no Skeleton3DArray for stamp {stamp_ns}"
    return next(m for m in list(h.skeletons) if m.header.stamp.sec * 10**9 + m.header.stamp.nanosec == stamp_ns).skeletons


@pytest.mark.parametrize("with_presence", [False, True])
def test_node_publishes_no_skeleton_where_the_classifier_sees_no_hand(tmp_path: Path, with_presence: bool) -> None:
    model = write_tiny_checkpoint(tmp_path / "tiny16.safetensors", grid_size=16)
    if with_presence:
        Presence(PresenceNet(), PresenceMeta(threshold=1.01)).save(Presence.paths(model)[0])
    h = Harness(DOMAIN, {"model_path": str(model), "device": "cpu", "use_refinement": False, "use_detector": False,
                         "min_confidence": 0.0, "tracking.enabled": True},
                params_file=str(ROOT / "config/hand_pose.yaml"))
    try:
        assert h.node.state == "active", h.node.last_error
        assert h.wait_connected(), "DDS discovery did not complete"
        skeletons = [_published(h, 1_700_000_000_000_000_000 + k * 33_000_000) for k in range(3)]
        counters = h.node.counters
        if not with_presence:  # without the gate the sphere is a "hand" (what the classifier is for)
            assert all(len(s) == 1 for s in skeletons)
            assert counters.get("no_hand.absent") == 0
            return
        assert all(s == [] for s in skeletons)  # tracked or not, nothing is published
        assert counters.get("no_hand") == 3 and counters.get("no_hand.absent") == 3
        values = status_values(build_status(h.node.snapshot()))
        assert values["no_hand"] == "3" and values["no_hand.absent"] == "3"
    finally:
        h.close()
