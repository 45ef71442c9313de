"""Writing synthetic frames as a rosbag2 that looks like a depth camera plus ground truth.

Topics (all stamped alike, frame ``camera_depth_optical_frame``):

* ``/camera/depth/image_rect_raw``  sensor_msgs/msg/Image, 16UC1 millimetres, full frames
* ``/camera/depth/camera_info``     sensor_msgs/msg/CameraInfo (plumb_bob, no distortion)
* ``/ground_truth/skeletons``       v2v_ros/msg/Skeleton3DArray, joints in metres

so the ROS node can be run on the bag and scored against the ground truth.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer

from v2v_ros.data.rosbag_types import typestore_with_v2v_msgs
from v2v_ros.data.shards import Frame

DEPTH_TOPIC = "/camera/depth/image_rect_raw"
INFO_TOPIC = "/camera/depth/camera_info"
GT_TOPIC = "/ground_truth/skeletons"
FRAME_ID = "camera_depth_optical_frame"
START_NS = 1_700_000_000 * 1_000_000_000  # fixed start of the 30 Hz timeline
RATE_HZ = 30.0
STORAGE = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}


def stamp_ns(i: int, rate_hz: float = RATE_HZ, start_ns: int = START_NS) -> int:
    """Header stamp (ns) of frame ``i``."""
    return start_ns + int(round(i * 1e9 / rate_hz))


class FrameBagWriter:
    """Context manager that appends :class:`Frame` s (full image or crop) to a new rosbag2 folder."""

    def __init__(self, path: str | os.PathLike[str], storage: str = "sqlite3", skeleton_type: str = "hand_msra21",
                 joint_names: list[str] | None = None, cube_size_m: float = 0.2, rate_hz: float = RATE_HZ) -> None:
        if storage not in STORAGE:
            raise ValueError(f"bag storage must be one of {sorted(STORAGE)}, got {storage!r}")
        self.path = Path(path)
        self.storage = storage
        self.skeleton_type = skeleton_type
        self.joint_names = list(joint_names or [])
        self.cube_size_m = float(cube_size_m)
        self.rate_hz = rate_hz
        self.ts = typestore_with_v2v_msgs()
        self.count = 0
        self._writer: Writer | None = None
        self._conns: dict[str, Any] = {}

    def __enter__(self) -> "FrameBagWriter":
        self._writer = Writer(self.path, version=8, storage_plugin=STORAGE[self.storage])
        self._writer.open()
        for topic, msgtype in ((DEPTH_TOPIC, "sensor_msgs/msg/Image"), (INFO_TOPIC, "sensor_msgs/msg/CameraInfo"),
                               (GT_TOPIC, "v2v_ros/msg/Skeleton3DArray")):
            self._conns[topic] = self._writer.add_connection(topic, msgtype, typestore=self.ts)
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def add(self, frame: Frame) -> None:
        """Write the three messages of one frame at the next 30 Hz stamp."""
        if self._writer is None:
            raise RuntimeError("FrameBagWriter must be used as a context manager")
        t = self.ts.types
        ns = stamp_ns(self.count, self.rate_hz)
        header = t["std_msgs/msg/Header"](
            stamp=t["builtin_interfaces/msg/Time"](sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000),
            frame_id=FRAME_ID,
        )
        width, height = frame.image_size
        full = np.clip(np.rint(np.nan_to_num(frame.full_depth())), 0, 65535).astype("<u2")
        image = t["sensor_msgs/msg/Image"](
            header=header, height=height, width=width, encoding="16UC1", is_bigendian=0, step=2 * width,
            data=np.frombuffer(full.tobytes(), dtype=np.uint8),
        )
        k = frame.intrinsics
        info = t["sensor_msgs/msg/CameraInfo"](
            header=header, height=height, width=width, distortion_model="plumb_bob",
            d=np.zeros(0, dtype=np.float64), k=np.array(k.to_k(), dtype=np.float64),
            r=np.eye(3).ravel(), p=np.array([k.fx, 0.0, k.cx, 0.0, 0.0, k.fy, k.cy, 0.0, 0.0, 0.0, 1.0, 0.0]),
            binning_x=0, binning_y=0,
            roi=t["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False),
        )
        point = t["geometry_msgs/msg/Point"]
        names = self.joint_names or [f"joint_{i}" for i in range(len(frame.joints))]
        # Multi-target frames (v2v synth --hands): one skeleton per target, id = 16 x clip + the target's id
        # in its clip (ground truth for identity metrics); a frame without a target has none.
        described = list(frame.info.get("targets") or [])
        if frame.targets is not None:
            # ids unique over the whole bag: a clip of a --sequence stream shows other hands than the last one
            clip = int(frame.info.get("clip", 0))
            ids = [clip * 16 + int(d.get("id", k)) for k, d in enumerate(described)]
            targets = list(frame.targets)
            ids = ids if len(ids) == len(targets) else list(range(len(targets)))
            sides = [str(d.get("handedness") or "") for d in described] if len(described) == len(targets) \
                else [""] * len(targets)
        else:
            targets, ids, sides = [frame.joints], [0], [str(frame.info.get("handedness") or "")]
        skeletons = []
        for tid, joints, side in zip(ids, targets, sides, strict=True):
            joints_m = np.asarray(joints, dtype=np.float64) / 1000.0
            ref = joints_m.mean(axis=0)
            skeletons.append(t["v2v_ros/msg/Skeleton3D"](
                id=tid, skeleton_type=self.skeleton_type, joint_names=list(names),
                keypoints=[t["v2v_ros/msg/Keypoint3D"](position=point(x=float(p[0]), y=float(p[1]), z=float(p[2])),
                                                       confidence=1.0) for p in joints_m],
                reference_point=point(x=float(ref[0]), y=float(ref[1]), z=float(ref[2])),
                cube_size=self.cube_size_m, score=1.0, valid=True,
                handedness=side if side in ("left", "right") else "", handedness_confidence=1.0 if side else 0.0,
            ))
        gt = t["v2v_ros/msg/Skeleton3DArray"](header=header, skeletons=skeletons)
        for topic, msg in ((DEPTH_TOPIC, image), (INFO_TOPIC, info), (GT_TOPIC, gt)):
            self._writer.write(self._conns[topic], ns, self.ts.serialize_cdr(msg, msg.__msgtype__))
        self.count += 1
