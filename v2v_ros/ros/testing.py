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
from v2v_ros.ros.transport import profile_env

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


# -- a camera in another process ---------------------------------------------------------------------
# The node's normal case is a camera driver in a separate process (shared-memory or UDP transport,
# DDS discovery between processes, the driver's own QoS), which an in-process harness never
# exercises. `python -m v2v_ros.ros.testing camera ...` is such a driver for tests and benchmarks.

def vga_intrinsics(width: int, height: int) -> Intrinsics:
    """A depth camera of the given size with a ~67 degree horizontal field of view (like a RealSense)."""
    f = 0.75 * width
    return Intrinsics(fx=f, fy=f, cx=(width - 1) / 2.0, cy=(height - 1) / 2.0)


def camera_info_msg(intr: Intrinsics, width: int, height: int) -> CameraInfo:
    """CameraInfo with K and P of ``intr`` (plumb_bob, no distortion), header left empty."""
    info = CameraInfo(width=width, height=height, distortion_model="plumb_bob")
    info.k = [intr.fx, 0.0, intr.cx, 0.0, intr.fy, intr.cy, 0.0, 0.0, 1.0]
    info.p = [intr.fx, 0.0, intr.cx, 0.0, 0.0, intr.fy, intr.cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    info.d = [0.0] * 5
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    return info


def run_camera(args: Any) -> dict[str, Any]:
    """Publish a 16UC1 depth stream + camera_info like a camera driver; returns what was sent.

    Frames are paced on a monotonic schedule (no drift); stamps are the ROS clock at publish
    time (like a driver stamping at capture). camera_info is published before its image with the
    same stamp (``--info-offset-ms`` shifts it, for drivers that stamp the two topics apart), or
    only once per ``--info-every`` frames. Waits for a subscriber on both topics first.
    """
    from rclpy.qos import DurabilityPolicy, HistoryPolicy  # noqa: PLC0415

    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    if args.profile:
        profile_env()  # large images through shared memory: the publisher's segment (v2v_ros.ros.transport)
    rclpy.init()
    node = Node("v2v_test_camera")
    reliability = (ReliabilityPolicy.RELIABLE if args.reliability == "reliable"
                   else ReliabilityPolicy.BEST_EFFORT)
    qos = QoSProfile(depth=args.qos_depth, reliability=reliability, history=HistoryPolicy.KEEP_LAST,
                     durability=DurabilityPolicy.VOLATILE)
    pub_image = node.create_publisher(Image, args.image_topic, qos)
    pub_info = node.create_publisher(CameraInfo, args.info_topic, qos)
    intr = vga_intrinsics(args.width, args.height)
    depth = blob_depth(args.height, args.width, intr, center_mm=(0.0, 0.0, 500.0), radius_mm=60.0,
                       background_mm=900.0)
    data = np.round(depth).astype("<u2").tobytes()
    info = camera_info_msg(intr, args.width, args.height)
    sent: dict[str, Any] = {"images": 0, "infos": 0, "image_bytes": len(data), "first_stamp_ns": None,
                            "last_stamp_ns": None, "matched": False}
    try:
        sent["matched"] = wait_for(lambda: pub_image.get_subscription_count() > 0
                                   and pub_info.get_subscription_count() > 0, args.wait_s)
        time.sleep(args.settle_s)  # the subscriber's side of discovery completes shortly after ours
        n = args.frames if args.frames > 0 else int(round(args.seconds * args.hz))
        t0 = time.monotonic()
        for i in range(n):
            stamp = node.get_clock().now()
            ns = stamp.nanoseconds
            image = Image(height=args.height, width=args.width, encoding="16UC1", is_bigendian=0,
                          step=args.width * 2, data=data)
            image.header.stamp = stamp.to_msg()
            image.header.frame_id = args.frame_id
            if args.info_every > 0 and i % args.info_every == 0:
                info.header.frame_id = args.frame_id
                info_ns = ns + int(args.info_offset_ms * 1e6)
                info.header.stamp.sec, info.header.stamp.nanosec = divmod(info_ns, 1_000_000_000)
                pub_info.publish(info)
                sent["infos"] += 1
            pub_image.publish(image)
            sent["images"] += 1
            sent["first_stamp_ns"] = sent["first_stamp_ns"] or ns
            sent["last_stamp_ns"] = ns
            delay = t0 + (i + 1) / args.hz - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        sent["seconds"] = time.monotonic() - t0
        time.sleep(args.linger_s)  # best effort: nothing to resend, but let the last samples leave
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return sent


def run_count(args: Any) -> dict[str, Any]:
    """Count what arrives on the camera topics with a best-effort (or reliable) subscription.

    Stops ``--idle-s`` seconds after the last message (or after ``--seconds``): the other half of
    a transport measurement with ``camera``, without the node in the way.
    """
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    rclpy.init()
    node = Node("v2v_test_counter")
    reliability = (ReliabilityPolicy.RELIABLE if args.reliability == "reliable"
                   else ReliabilityPolicy.BEST_EFFORT)
    qos = QoSProfile(depth=5, reliability=reliability)
    got = {"images": 0, "infos": 0}
    last = [time.monotonic()]

    def on(kind: str) -> Callable[[Any], None]:
        def cb(_: Any) -> None:
            got[kind] += 1
            last[0] = time.monotonic()
        return cb

    node.create_subscription(Image, args.image_topic, on("images"), qos)
    node.create_subscription(CameraInfo, args.info_topic, on("infos"), qos)
    end = time.monotonic() + args.seconds
    try:
        while time.monotonic() < end and not (got["images"] + got["infos"] and time.monotonic() - last[0] > args.idle_s):
            rclpy.spin_once(node, timeout_sec=0.1)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return got


def main(argv: list[str] | None = None) -> int:
    """``python -m v2v_ros.ros.testing camera|count [...]``: prints one JSON line (sent or received)."""
    import argparse  # noqa: PLC0415
    import json  # noqa: PLC0415

    ap = argparse.ArgumentParser(prog="python -m v2v_ros.ros.testing")
    sub = ap.add_subparsers(dest="cmd", required=True)
    cam = sub.add_parser("camera", help="publish a synthetic 16UC1 depth stream + camera_info")
    cam.add_argument("--hz", type=float, default=30.0)
    cam.add_argument("--seconds", type=float, default=10.0)
    cam.add_argument("--frames", type=int, default=0, help="frames to send (overrides --seconds)")
    cam.add_argument("--width", type=int, default=640)
    cam.add_argument("--height", type=int, default=480)
    cam.add_argument("--reliability", choices=["best_effort", "reliable"], default="best_effort")
    cam.add_argument("--qos-depth", type=int, default=5)
    cam.add_argument("--image-topic", default="/camera/depth/image_rect_raw")
    cam.add_argument("--info-topic", default="/camera/depth/camera_info")
    cam.add_argument("--frame-id", default=FRAME)
    cam.add_argument("--info-offset-ms", type=float, default=0.0)
    cam.add_argument("--info-every", type=int, default=1, help="camera_info every N frames (0: never)")
    cam.add_argument("--wait-s", type=float, default=30.0)
    cam.add_argument("--settle-s", type=float, default=1.0)
    cam.add_argument("--linger-s", type=float, default=1.0)
    cam.add_argument("--no-profile", dest="profile", action="store_false",
                     help="publish without the package's Fast DDS profile (a camera driver with its defaults)")
    cnt = sub.add_parser("count", help="count images and camera_infos received (best effort by default)")
    cnt.add_argument("--reliability", choices=["best_effort", "reliable"], default="best_effort")
    cnt.add_argument("--image-topic", default="/camera/depth/image_rect_raw")
    cnt.add_argument("--info-topic", default="/camera/depth/camera_info")
    cnt.add_argument("--seconds", type=float, default=120.0)
    cnt.add_argument("--idle-s", type=float, default=5.0)
    args = ap.parse_args(argv)
    if args.cmd == "count":
        print(json.dumps(run_count(args)), flush=True)
        return 0
    sent = run_camera(args)
    print(json.dumps(sent), flush=True)
    return 0 if sent["matched"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
