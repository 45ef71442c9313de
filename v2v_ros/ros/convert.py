"""Message <-> core type conversions (the thin shell around the functional core).

Reading functions are duck-typed on field names, so they accept rclpy messages and
the dataclasses ``rosbags`` deserialises alike; building functions create rclpy
messages. Units: the core works in mm, messages carry metres (REP 103).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from v2v_ros.core.camera import Intrinsics
from v2v_ros.core.depth_decode import compressed_msg_to_mm, encode_depth, image_msg_to_mm, info_msg_to_intrinsics
from v2v_ros.core.estimator import PoseResult
from v2v_ros.core.stream import stamp_to_ns
from v2v_ros.msg import Keypoint3D, Skeleton3D, Skeleton3DArray

MM_PER_M = 1000.0


def header_stamp_ns(header: Any) -> int:
    return stamp_to_ns(header.stamp.sec, header.stamp.nanosec)


# Readers are shared with the bag evaluator (pure, duck-typed); re-exported under the node's names.
image_to_mm = image_msg_to_mm
compressed_to_mm = compressed_msg_to_mm
info_to_intrinsics = info_msg_to_intrinsics


def result_to_skeleton(result: PoseResult, joints_mm: np.ndarray | None = None, skeleton_id: int = 0) -> Skeleton3D:
    """One PoseResult (mm) -> Skeleton3D (m); ``joints_mm`` overrides the joints (smoothed)."""
    joints = np.asarray(result.joints if joints_mm is None else joints_mm, dtype=np.float64) / MM_PER_M
    conf = np.asarray(result.confidence, dtype=np.float64)
    ref = np.asarray(result.reference_point, dtype=np.float64) / MM_PER_M
    sk = Skeleton3D()
    sk.id = int(skeleton_id)
    sk.skeleton_type = str(result.skeleton)
    sk.joint_names = [str(n) for n in result.joint_names]
    sk.keypoints = [
        Keypoint3D(position=_point(p), confidence=float(c)) for p, c in zip(joints, conf, strict=False)
    ]
    sk.reference_point = _point(ref)
    sk.cube_size = float(result.cube_size) / MM_PER_M
    sk.score = float(result.score)
    sk.valid = bool(result.valid)
    sk.handedness = str(getattr(result, "handedness", "") or "")
    sk.handedness_confidence = float(getattr(result, "handedness_confidence", 0.0))
    return sk


def skeleton_array(header: Header, skeletons: Sequence[Skeleton3D] = ()) -> Skeleton3DArray:
    """Skeleton3DArray with the input image's header (empty = processed, nothing found)."""
    return Skeleton3DArray(header=header, skeletons=list(skeletons))


def skeleton_to_mm(sk: Any) -> tuple[np.ndarray, np.ndarray]:
    """Skeleton3D (rclpy or rosbags) -> joints (J, 3) mm and confidence (J,)."""
    joints = np.array([[k.position.x, k.position.y, k.position.z] for k in sk.keypoints], dtype=np.float64)
    conf = np.array([k.confidence for k in sk.keypoints], dtype=np.float64)
    return joints.reshape(-1, 3) * MM_PER_M, conf


def make_image(depth_mm: np.ndarray, stamp_ns: int, frame_id: str, encoding: str = "16UC1",
               is_bigendian: bool = False) -> Image:
    """Depth (mm) -> Image message (tests, replay tools)."""
    data, step = encode_depth(depth_mm, encoding, is_bigendian)
    msg = Image(header=make_header(stamp_ns, frame_id), height=int(depth_mm.shape[0]), width=int(depth_mm.shape[1]),
                encoding=encoding, is_bigendian=int(bool(is_bigendian)), step=step)
    msg.data = data
    return msg


def make_camera_info(intr: Intrinsics, width: int, height: int, stamp_ns: int, frame_id: str) -> CameraInfo:
    """CameraInfo for a pinhole camera without distortion (tests, replay tools)."""
    msg = CameraInfo(header=make_header(stamp_ns, frame_id), width=int(width), height=int(height))
    msg.k = intr.to_k()
    msg.p = [intr.fx, 0.0, intr.cx, 0.0, 0.0, intr.fy, intr.cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.distortion_model = "plumb_bob"
    msg.d = [0.0] * 5
    return msg


def make_header(stamp_ns: int, frame_id: str) -> Header:
    return Header(stamp=Time(sec=int(stamp_ns // 1_000_000_000), nanosec=int(stamp_ns % 1_000_000_000)),
                  frame_id=frame_id)


def _point(p: np.ndarray) -> Point:
    return Point(x=float(p[0]), y=float(p[1]), z=float(p[2]))
