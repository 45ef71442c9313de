"""Helpers for node tests and the demo: tiny checkpoints, synthetic frames, an in-process harness.

The harness runs :class:`~v2v_ros.ros.node.PoseNode` and a client node in their own
rclpy context (own ROS domain id, DDS on loopback) on a background executor thread,
so tests exercise real DDS transport without subprocess start-up cost.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image
from visualization_msgs.msg import MarkerArray

from v2v_ros.core.camera import Intrinsics
from v2v_ros.msg import Skeleton3DArray

INTR = Intrinsics(fx=120.0, fy=120.0, cx=79.5, cy=59.5)  # a 160x120 camera
FRAME = "camera_depth_optical_frame"


def write_tiny_checkpoint(path: str | Path, grid_size: int = 16, seed: int = 0) -> Path:
    """Random-weight hand model (fast on CPU) for tests; returns the .safetensors path."""
    import torch  # noqa: PLC0415

    from v2v_ros.core.checkpoint import ModelMeta, save_checkpoint  # noqa: PLC0415
    from v2v_ros.core.model import V2VPoseNet  # noqa: PLC0415
    from v2v_ros.core.skeletons import HAND_MSRA21  # noqa: PLC0415

    torch.manual_seed(seed)
    meta = ModelMeta(skeleton="hand_msra21", joint_names=list(HAND_MSRA21.joint_names), grid_size=grid_size,
                     cube_size=200.0)
    return save_checkpoint(path, V2VPoseNet(21).state_dict(), meta)


def blob_depth(height: int = 120, width: int = 160, intr: Intrinsics = INTR,
               center_mm: tuple[float, float, float] = (0.0, 0.0, 500.0), radius_mm: float = 60.0,
               background_mm: float = 0.0) -> np.ndarray:
    """Depth (mm) of a sphere in front of an optional wall: a stand-in for a hand."""
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    dx, dy = (u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy
    d = np.stack([dx, dy, np.ones_like(dx)], -1)
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    c = np.asarray(center_mm, float)
    b = d @ c
    disc = b**2 - (c @ c - radius_mm**2)
    t = b - np.sqrt(np.maximum(disc, 0))
    z = np.where(disc > 0, t * d[..., 2], background_mm)
    return z.astype(np.float32)


class Harness:
    """PoseNode + a client node in one private context, spun on a background thread."""

    def __init__(self, domain_id: int, params: dict[str, Any] | None = None, params_file: str | None = None,
                 namespace: str = "") -> None:
        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
        from v2v_ros.ros.node import PoseNode  # noqa: PLC0415

        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        cli = ["--ros-args", "--params-file", params_file] if params_file else None
        overrides = [Parameter(k, value=v) for k, v in (params or {}).items()]
        self.node = PoseNode(context=self.context, namespace=namespace, cli_args=cli, parameter_overrides=overrides)
        self.client = Node("v2v_test_client", context=self.context, namespace=namespace)
        sensor = QoSProfile(depth=10, reliability=qos_profile_sensor_data.reliability)
        self.pub_image = self.client.create_publisher(Image, "depth/image", sensor)
        self.pub_info = self.client.create_publisher(CameraInfo, "depth/camera_info", sensor)
        reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        self.skeletons: list[Skeleton3DArray] = []
        self.markers: list[MarkerArray] = []
        self._lock = threading.Lock()
        name = self.node.get_fully_qualified_name()
        self.client.create_subscription(Skeleton3DArray, f"{name}/skeletons", self._on_skel, reliable)
        self.client.create_subscription(MarkerArray, f"{name}/markers", self._on_markers, reliable)
        # The node's own executor kind (see node.main). Not MultiThreadedExecutor: in rclpy 9.x it
        # re-yields queued tasks in a busy loop that holds the GIL (ros2/rclpy#1452, fixed in
        # 10.0.4), which stalled this process's inference worker for seconds per frame (measured).
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.executor.add_node(self.client)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # shutdown races
            pass

    def _on_skel(self, msg: Skeleton3DArray) -> None:
        with self._lock:
            self.skeletons.append(msg)

    def _on_markers(self, msg: MarkerArray) -> None:
        with self._lock:
            self.markers.append(msg)

    def wait_connected(self, timeout: float = 10.0) -> bool:
        """Wait until the node's subscriptions and our subscription have matched (DDS discovery)."""
        name = self.node.get_fully_qualified_name()
        return wait_for(lambda: self.pub_image.get_subscription_count() > 0
                        and self.pub_info.get_subscription_count() > 0
                        and self.client.count_publishers(f"{name}/skeletons") > 0, timeout)

    def publish(self, image: Image, info: CameraInfo | None) -> None:
        if info is not None:
            self.pub_info.publish(info)
        self.pub_image.publish(image)

    def close(self) -> None:
        try:
            self.executor.shutdown(timeout_sec=2.0)
        except Exception:
            pass
        self.node._stop_worker()
        self.node.destroy_node()
        self.client.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self._thread.join(timeout=5.0)


def wait_for(cond: Callable[[], bool], timeout: float = 10.0, period: float = 0.02) -> bool:
    """Poll ``cond`` until true or ``timeout`` seconds passed."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(period)
    return bool(cond())
