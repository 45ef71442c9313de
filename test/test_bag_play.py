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


def test_play_is_complete_into_a_best_effort_subscriber_in_another_process(tmp_path: Path) -> None:
    """`v2v play` of 640x480 frames to another process with a best-effort subscription (what the
    node uses): every image and camera_info arrives. Fast DDS's default shared-memory segment
    (512 KiB) loses most such frames; play gives its process the package's profile."""
    import json  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    assert v2v(["synth", "--out", str(tmp_path / "d"), "--n", "30", "--seed", "5", "--bag"]) == 0
    env = {k: v for k, v in os.environ.items() if k not in ("FASTDDS_DEFAULT_PROFILES_FILE",
                                                           "FASTRTPS_DEFAULT_PROFILES_FILE")}
    env.update(ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_DOMAIN_ID=str(DOMAIN + 3))
    counter = subprocess.Popen([sys.executable, "-m", "v2v_ros.ros.testing", "count", "--image-topic",
                                synth_bag.DEPTH_TOPIC, "--info-topic", synth_bag.INFO_TOPIC, "--seconds", "90",
                                "--idle-s", "3"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        played = subprocess.run([sys.executable, "-m", "v2v_ros.cli", "play", str(tmp_path / "d" / "bag"),
                                 "--topics", synth_bag.DEPTH_TOPIC, synth_bag.INFO_TOPIC, "--wait-subscribers", "30",
                                 "--domain-id", str(DOMAIN + 3)], env=env, capture_output=True, text=True,
                                timeout=120)
        assert played.returncode == 0, played.stderr
        out, _ = counter.communicate(timeout=120)
    finally:
        if counter.poll() is None:
            counter.kill()
    assert json.loads(out.strip().splitlines()[-1]) == {"images": 30, "infos": 30}
