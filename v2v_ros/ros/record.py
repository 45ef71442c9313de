"""Replay a bag into a running node and record its outputs (used by ``make demo``)."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.serialization import serialize_message

from v2v_ros.msg import Skeleton3DArray
from v2v_ros.ros.diagnostics import status_values
from v2v_ros.ros.play import play


def replay_and_record(bag: Path, node: subprocess.Popen, rate: float, domain: int, depth_topic: str,
                      info_topic: str, out_topic: str) -> dict[str, Any] | None:
    """Wait for the node (subprocess) to come up, replay ``bag`` into it, record its outputs.

    Returns None if the node exits or does not subscribe within 120 s; otherwise the
    recorded Skeleton3DArrays as (receive time, message, CDR bytes), the last
    diagnostics values, the number of messages sent and the replay duration.
    """

    ctx = Context()
    rclpy.init(context=ctx, domain_id=domain)
    rec = rclpy.create_node("v2v_demo_recorder", context=ctx)
    got: list[tuple[float, Any, bytes]] = []
    diag: dict[str, str] = {}

    def on_skel(msg: Any) -> None:
        got.append((time.monotonic(), msg, serialize_message(msg)))

    def on_diag(msg: Any) -> None:
        for s in msg.status:
            if s.name.startswith("v2v_pose_node"):
                diag.clear()
                diag.update(status_values(s))

    rec.create_subscription(Skeleton3DArray, out_topic, on_skel, QoSProfile(depth=200,
                            reliability=ReliabilityPolicy.RELIABLE))
    rec.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 10)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(rec)
    spin = threading.Thread(target=ex.spin, daemon=True)
    spin.start()
    try:
        end = time.monotonic() + 120
        while rec.count_subscribers(depth_topic) == 0 or rec.count_publishers(out_topic) == 0:
            if node.poll() is not None or time.monotonic() > end:
                return None
            time.sleep(0.1)
        print(f"[demo] replaying {bag} at {rate:g}x into the node ...", flush=True)
        t0 = time.monotonic()
        sent = play(bag, rate=rate, topics=[depth_topic, info_topic], wait_subscribers=2.0, context=ctx)
        t_play = time.monotonic() - t0
        # wait until the node has answered everything it will answer (quiet for 1.5 s)
        last = -1
        while len(got) != last:
            last = len(got)
            time.sleep(1.5)
        time.sleep(1.2)  # one more diagnostics period, so the counters include the last frames
        return {"messages": got, "diag": dict(diag), "sent": sent, "play_s": t_play}
    finally:
        ex.shutdown(timeout_sec=1.0)
        rec.destroy_node()
        rclpy.try_shutdown(context=ctx)
