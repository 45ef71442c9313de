"""``v2v play`` (registered by v2v_ros.cli): republish a rosbag2 into live DDS.

The one bag command that needs rclpy, so it lives in the ROS shell and not with the
offline bag tools (:mod:`v2v_ros.bag.cli`). Registering it imports nothing from ROS
(``v2v --help`` works without rclpy); rclpy is imported when the command runs, and its
absence is a one-line error.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

# Largest ROS_DOMAIN_ID that DDS can map to UDP ports (ROS 2 docs: 0-232 on Linux).
MAX_DOMAIN_ID = 232


def register(subparsers: Any) -> None:
    q = subparsers.add_parser("play", help="republish a rosbag2 into live DDS with its original timing",
                              description="Like `ros2 bag play` without ROS tools: keeps the recorded timing "
                              "(scaled by --rate), optional --loop. DDS stays on loopback.")
    q.add_argument("bag", type=Path)
    q.add_argument("--rate", type=float, default=1.0, help="speed factor (2 = twice as fast)")
    q.add_argument("--loop", action="store_true")
    q.add_argument("--topics", nargs="*", default=None, help="only these topics")
    q.add_argument("--remap", nargs="*", default=[], metavar="FROM:=TO", help="publish topic FROM as TO")
    q.add_argument("--wait-subscribers", type=float, default=5.0,
                   help="seconds to wait for a subscriber on the first topic before starting")
    q.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID (default: the environment's)")
    q.set_defaults(func=run_play)


def run_play(args: argparse.Namespace) -> int:
    bad = [r for r in args.remap if ":=" not in r]
    if bad:
        print(f"play: --remap needs FROM:=TO, got {bad}", file=sys.stderr)
        return 2
    remap = dict(r.split(":=", 1) for r in args.remap)
    if args.domain_id is not None and not 0 <= args.domain_id <= MAX_DOMAIN_ID:
        print(f"play: --domain-id must be in [0, {MAX_DOMAIN_ID}], got {args.domain_id}", file=sys.stderr)
        return 2
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    try:
        from v2v_ros.ros.play import play  # noqa: PLC0415  (rclpy only when the command runs)
    except ImportError as exc:
        print(f"play: needs rclpy ({exc}); run `eval \"$(make -s env)\"`", file=sys.stderr)
        return 1
    from v2v_ros.bag.io import BagError  # noqa: PLC0415

    try:
        n = play(args.bag, rate=args.rate, loop=args.loop, topics=args.topics, remap=remap,
                 wait_subscribers=args.wait_subscribers, domain_id=args.domain_id)
    except (BagError, ValueError) as exc:  # missing bag or topic: one line, not a traceback
        print(f"play: {exc}", file=sys.stderr)
        return 2
    print(f"play: published {n} messages")
    return 0
