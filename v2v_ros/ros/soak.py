"""Soak benchmark: the node as its own process fed by a camera in another process (not a test).

    python -m v2v_ros.ros.soak --frames 10000 --hz 30 --json reports/soak.json

Starts ``python -m v2v_ros.ros.node`` with a params file and ``python -m v2v_ros.ros.testing camera``
(640x480 16UC1, best effort, the package's Fast DDS profile), listens to ``~/skeletons`` and
``/diagnostics`` here, samples the node's resident memory every second, and reports frames sent /
received / answered / dropped by reason, RSS at start, middle and end, and end-to-end latency
percentiles (skeleton arrival here minus the image stamp: capture to answer, one clock).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy

from v2v_ros.msg import Skeleton3DArray
from v2v_ros.ros.transport import profile_env

NODE = "/v2v_pose_node"


def rss_mib(pid: int) -> float:
    """Resident set size of a process (MiB) from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def soak(frames: int, hz: float, params_file: str, domain_id: int, extra: list[str]) -> dict[str, Any]:
    env = profile_env(dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_DOMAIN_ID=str(domain_id)))
    node_cmd = [sys.executable, "-m", "v2v_ros.ros.node", "--ros-args", "--params-file", params_file,
                "-r", "depth/image:=/camera/depth/image_rect_raw",
                "-r", "depth/camera_info:=/camera/depth/camera_info", *extra]
    node = subprocess.Popen(node_cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ctx = Context()
    rclpy.init(context=ctx, domain_id=domain_id)
    obs = Node("v2v_soak_observer", context=ctx)
    lat: list[float] = []
    diag: dict[str, str] = {}
    lock = threading.Lock()

    def on_skel(msg: Skeleton3DArray) -> None:
        now = obs.get_clock().now().nanoseconds
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        with lock:
            lat.append((now - stamp) / 1e6)

    def on_diag(msg: DiagnosticArray) -> None:
        for st in msg.status:
            if st.name.startswith("v2v_pose_node"):
                with lock:
                    diag.clear()
                    diag.update({kv.key: kv.value for kv in st.values})

    obs.create_subscription(Skeleton3DArray, f"{NODE}/skeletons", on_skel, QoSProfile(depth=200,
                            reliability=ReliabilityPolicy.RELIABLE))
    obs.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 10)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(obs)
    spin = threading.Thread(target=ex.spin, daemon=True)
    spin.start()
    rss: list[tuple[float, float]] = []
    cam_out = ""
    try:
        # "start" is the configured node (model loaded, warmed up), not the interpreter starting.
        end = time.monotonic() + 180.0
        while time.monotonic() < end and diag.get("state") != "active" and node.poll() is None:
            time.sleep(0.2)
        if diag.get("state") != "active":
            raise RuntimeError("the node did not become active (see its log)")
        cam = subprocess.Popen([sys.executable, "-m", "v2v_ros.ros.testing", "camera", "--frames", str(frames),
                                "--hz", str(hz), "--wait-s", "120"], env=env, stdout=subprocess.PIPE, text=True)
        t0 = time.monotonic()
        while cam.poll() is None:
            rss.append((time.monotonic() - t0, rss_mib(node.pid)))
            time.sleep(1.0)
        cam_out = cam.stdout.read() if cam.stdout else ""
        time.sleep(3.0)  # last frames and one more /diagnostics
        rss.append((time.monotonic() - t0, rss_mib(node.pid)))
    finally:
        node.terminate()
        log = node.communicate(timeout=30)[0]
        ex.shutdown(timeout_sec=2.0)
        obs.destroy_node()
        rclpy.try_shutdown(context=ctx)
    sent = json.loads(cam_out.strip().splitlines()[-1])
    streaming = rss
    middle = len(streaming) // 2
    arr = np.asarray(lat)
    return {
        "frames_sent": sent["images"], "hz": hz, "seconds": round(sent.get("seconds", 0.0), 1),
        "diagnostics": diag,
        "rss_mib": {"start": round(streaming[0][1], 1), "middle": round(streaming[middle][1], 1),
                    "end": round(streaming[-1][1], 1), "max": round(max(r for _, r in streaming), 1),
                    "samples": len(streaming)},
        "latency_ms": {"n": int(arr.size), "p50": round(float(np.percentile(arr, 50)), 1),
                       "p95": round(float(np.percentile(arr, 95)), 1),
                       "max": round(float(arr.max()), 1)} if arr.size else {},
        "node_log_tail": log.splitlines()[-5:],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m v2v_ros.ros.soak", description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=10000)
    ap.add_argument("--hz", type=float, default=30.0)
    ap.add_argument("--params-file", default="config/hand_pose.yaml")
    ap.add_argument("--domain-id", type=int, default=int(os.environ.get("ROS_DOMAIN_ID", "43")))
    ap.add_argument("--json", help="also write the result here")
    ap.add_argument("node_args", nargs="*", help="extra --ros-args for the node (after --)")
    args = ap.parse_args(argv)
    res = soak(args.frames, args.hz, args.params_file, args.domain_id, args.node_args)
    text = json.dumps(res, indent=2)
    print(text)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
