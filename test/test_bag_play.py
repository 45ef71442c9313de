"""`v2v play`: a bag's messages reach live DDS subscribers with their recorded stamps and spacing."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
rclpy = pytest.importorskip("rclpy", reason="rclpy not importable (run `make setup`)")
synth_bag = pytest.importorskip("v2v_ros.data.synthetic.bag")

from rclpy.context import Context  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from v2v_ros.cli import main as v2v  # noqa: E402
from v2v_ros.ros.play import play  # noqa: E402

pytestmark = pytest.mark.ros
DOMAIN = 1 + (os.getpid() * 7 + 131) % 93  # + offsets up to 8: stays in 1..101 (ROS: safe IDs on Linux)


def test_play_republishes_with_timing(tmp_path: Path) -> None:
    assert v2v(["synth", "--out", str(tmp_path / "d"), "--n", "4", "--seed", "5", "--bag"]) == 0
    ctx = Context()
    rclpy.init(context=ctx, domain_id=DOMAIN)
    node = rclpy.create_node("play_test", context=ctx)
    got: list[tuple[float, Image]] = []
    infos: list[CameraInfo] = []
    node.create_subscription(Image, "/remapped/depth", lambda m: got.append((time.monotonic(), m)), 10)
    node.create_subscription(CameraInfo, synth_bag.INFO_TOPIC, infos.append, 10)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    t = threading.Thread(target=ex.spin, daemon=True)
    t.start()
    try:
        n = play(tmp_path / "d" / "bag", rate=0.5, topics=[synth_bag.DEPTH_TOPIC, synth_bag.INFO_TOPIC],
                 remap={synth_bag.DEPTH_TOPIC: "/remapped/depth"}, wait_subscribers=5.0, context=ctx)
        assert n == 8
        end = time.monotonic() + 5
        while (len(got) < 4 or len(infos) < 4) and time.monotonic() < end:
            time.sleep(0.05)
        assert len(got) == 4 and len(infos) == 4
        stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for _, m in got]
        assert stamps == [synth_bag.stamp_ns(i) for i in range(4)]
        span = got[-1][0] - got[0][0]
        assert span > 0.6 * (3 / 30) / 0.5  # 3 intervals of 33 ms at half speed
        assert got[0][1].encoding == "16UC1" and got[0][1].header.frame_id == synth_bag.FRAME_ID
    finally:
        ex.shutdown(timeout_sec=1.0)
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)


def test_play_names_topics_missing_from_the_bag(tmp_path: Path) -> None:
    assert v2v(["synth", "--out", str(tmp_path / "d"), "--n", "2", "--seed", "5", "--bag"]) == 0
    with pytest.raises(ValueError, match="/nope") as err:
        play(tmp_path / "d" / "bag", topics=[synth_bag.DEPTH_TOPIC, "/nope"], wait_subscribers=0.0,
             domain_id=DOMAIN + 1)
    assert synth_bag.DEPTH_TOPIC in str(err.value)  # lists what the bag has


def test_play_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`v2v play` on a missing bag, a missing topic or a bad --remap: exit 2 and a reason, no traceback."""
    assert v2v(["play", str(tmp_path / "no_bag")]) == 2
    assert "bag not found" in capsys.readouterr().err
    assert v2v(["synth", "--out", str(tmp_path / "d"), "--n", "2", "--seed", "5", "--bag"]) == 0
    capsys.readouterr()
    assert v2v(["play", str(tmp_path / "d" / "bag"), "--topics", "/nope", "--wait-subscribers", "0",
                "--domain-id", str(DOMAIN + 2)]) == 2
    assert "/nope" in capsys.readouterr().err
    assert v2v(["play", str(tmp_path / "d" / "bag"), "--remap", "/a=/b"]) == 2
    assert "FROM:=TO" in capsys.readouterr().err
