"""Republish a rosbag2 into live DDS with its recorded timing (``v2v play``; no ros2 CLI needed).

Messages are published as the serialized CDR bytes stored in the bag (rclpy's
``publish(bytes)``), so nothing is re-encoded and stamps stay the recorded ones:
the live node's outputs can be matched to a bag's ground truth by stamp.
"""

from __future__ import annotations

import importlib
import os
import time
from pathlib import Path
from typing import Any, Callable

import rclpy
from rclpy.context import Context
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy

from v2v_ros.bag.io import open_reader
from v2v_ros.ros.transport import profile_env


def msg_class(msgtype: str) -> Any:
    """'sensor_msgs/msg/Image' -> sensor_msgs.msg.Image (ImportError names the type)."""
    pkg, _, name = msgtype.split("/")
    try:
        return getattr(importlib.import_module(f"{pkg}.msg"), name)
    except (ImportError, AttributeError) as exc:
        raise ImportError(f"message type {msgtype} is not importable here ({exc})") from exc


def play(bag: str | os.PathLike[str], rate: float = 1.0, loop: bool = False, topics: list[str] | None = None,
         remap: dict[str, str] | None = None, wait_subscribers: float = 5.0, domain_id: int | None = None,
         stop: Callable[[], bool] | None = None, context: Context | None = None) -> int:
    """Publish the bag's messages with their recorded spacing divided by ``rate``; returns how many.

    ValueError names any of ``topics`` that the bag does not contain.
    """
    if rate <= 0:
        raise ValueError(f"rate must be positive, got {rate}")
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    # Depth images to a node in another process go through this process's shared-memory segment:
    # with Fast DDS's default 512 KiB, a best-effort subscriber loses most full-size frames
    # (v2v_ros.ros.transport). Takes effect if no ROS context of this process exists yet.
    profile_env()
    remap = remap or {}
    own = context is None
    ctx = context or Context()
    if own:
        rclpy.init(context=ctx, domain_id=domain_id)
    node = Node("v2v_bag_player", context=ctx)
    count = 0
    reader = None
    try:
        reader = open_reader(Path(bag))
        conns = [c for c in reader.connections if topics is None or c.topic in topics]
        missing = sorted(set(topics or ()) - {c.topic for c in conns})
        if missing:
            raise ValueError(f"topics {missing} are not in {bag} (it has {sorted({c.topic for c in reader.connections})})")
        if not conns:
            return 0  # an empty bag
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        pubs = {c.id: node.create_publisher(msg_class(c.msgtype), remap.get(c.topic, c.topic), qos) for c in conns}
        if wait_subscribers > 0:
            # Every topic's subscriber, not only the first: a node that sees images without their
            # camera_info at the start rejects those frames.
            end = time.monotonic() + wait_subscribers
            while any(p.get_subscription_count() == 0 for p in pubs.values()) and time.monotonic() < end:
                time.sleep(0.05)
            time.sleep(0.5)  # the subscribers' side of discovery completes shortly after ours
        while True:
            t0_bag: int | None = None
            t0 = time.monotonic()
            for conn, t, raw in reader.messages(connections=conns):
                if stop is not None and stop():
                    return count
                if t0_bag is None:
                    t0_bag = t
                delay = t0 + (t - t0_bag) / 1e9 / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                pubs[conn.id].publish(bytes(raw))
                count += 1
            if not loop:
                break
        time.sleep(0.2)  # let the last messages leave before the publishers go away
        return count
    finally:
        if reader is not None:
            reader.close()
        node.destroy_node()
        if own:
            rclpy.try_shutdown(context=ctx)
