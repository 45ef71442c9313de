"""v2v_pose_node over real DDS on loopback: round trip, lifecycle, parameters, diagnostics.

Each test module uses its own ROS domain id; the node runs in-process (fast) except
for one test that starts ``python -m v2v_ros.ros.node --ros-args --params-file``
exactly as users and the demo do.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
rclpy = pytest.importorskip("rclpy", reason="rclpy not importable (run `make setup` / eval \"$(make -s env)\")")
try:
    from v2v_ros.msg import Skeleton3DArray  # noqa: F401
except ImportError as exc:  # pragma: no cover
    pytest.skip(f"v2v_ros.msg not built ({exc}); run `make setup`", allow_module_level=True)

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetState  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from visualization_msgs.msg import Marker  # noqa: E402

from v2v_ros.ros.convert import make_camera_info, make_image  # noqa: E402
from v2v_ros.ros.diagnostics import build_status, status_values  # noqa: E402
from v2v_ros.ros.testing import FRAME, INTR, Harness, blob_depth, wait_for, write_tiny_checkpoint  # noqa: E402

pytestmark = pytest.mark.ros
ROOT = Path(__file__).resolve().parents[1]
DOMAIN = 1 + (os.getpid() * 7 + 11) % 93  # + offsets up to 8: stays in 1..101 (ROS: safe IDs on Linux)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(write_tiny_checkpoint(tmp_path_factory.mktemp("model") / "tiny16.safetensors", grid_size=16))


@pytest.fixture(scope="module")
def harness(model: str):
    # The tiny test model ships no refiner/detector, which config/hand_pose.yaml asks for.
    h = Harness(DOMAIN, {"model_path": model, "device": "cpu", "use_refinement": False, "use_detector": False},
                params_file=str(ROOT / "config/hand_pose.yaml"))
    assert h.node.state == "active", h.node.last_error
    assert h.wait_connected(), "DDS discovery did not complete"
    yield h
    h.close()


def _frame(stamp_ns: int, depth: np.ndarray | None = None, frame_id: str = FRAME, encoding: str = "16UC1"):
    depth = blob_depth() if depth is None else depth
    img = make_image(depth, stamp_ns, frame_id, encoding)
    info = make_camera_info(INTR, depth.shape[1], depth.shape[0], stamp_ns, frame_id)
    return img, info


def _send_and_wait(h: Harness, stamp_ns: int, **kw) -> object:
    img, info = _frame(stamp_ns, **kw)
    h.publish(img, info)

    def got():
        return any(m.header.stamp.sec * 10**9 + m.header.stamp.nanosec == stamp_ns for m in list(h.skeletons))

    assert wait_for(got, 10.0), f"no Skeleton3DArray for stamp {stamp_ns}"
    return next(m for m in list(h.skeletons) if m.header.stamp.sec * 10**9 + m.header.stamp.nanosec == stamp_ns)


def test_round_trip_stamp_frame_units(harness: Harness) -> None:
    stamp = 1_700_000_000_123_456_789
    msg = _send_and_wait(harness, stamp)
    assert msg.header.frame_id == FRAME
    assert len(msg.skeletons) == 1
    sk = msg.skeletons[0]
    assert sk.valid and sk.skeleton_type == "hand_msra21" and len(sk.keypoints) == 21 == len(sk.joint_names)
    pos = np.array([[k.position.x, k.position.y, k.position.z] for k in sk.keypoints])
    # metres, inside the 0.2 m cube around the blob at z = 0.5 m
    assert abs(sk.cube_size - 0.2) < 1e-6
    ref = np.array([sk.reference_point.x, sk.reference_point.y, sk.reference_point.z])
    assert 0.4 < ref[2] < 0.6
    assert np.all(np.abs(pos - ref) <= 0.1 + 1e-6)
    assert all(0.0 <= k.confidence <= 1.0 for k in sk.keypoints)
    # markers with the same header, colours in [0, 1]
    assert wait_for(lambda: any(m.markers and m.markers[0].header.stamp == msg.header.stamp
                                for m in list(harness.markers)), 5.0)
    arr = next(m for m in list(harness.markers) if m.markers and m.markers[0].header.stamp == msg.header.stamp)
    ns = {m.ns for m in arr.markers}
    assert "joints" in ns and {"bones/thumb", "bones/index", "bones/little"} <= ns
    for m in arr.markers:
        assert m.header.frame_id == FRAME
        assert m.lifetime.sec + m.lifetime.nanosec > 0
        for c in list(m.colors) + [m.color]:
            assert 0.0 <= c.r <= 1.0 and 0.0 <= c.g <= 1.0 and 0.0 <= c.b <= 1.0 and 0.0 <= c.a <= 1.0
    joints = next(m for m in arr.markers if m.ns == "joints")
    assert np.allclose([[p.x, p.y, p.z] for p in joints.points], pos, atol=1e-6)


def test_no_hand_gives_empty_array_and_deleteall(harness: Harness) -> None:
    _send_and_wait(harness, 1_700_000_001_000_000_000)  # hand present
    far = np.zeros((120, 160), np.float32)
    far[:2, :2] = 800.0  # a few valid pixels: not bad input, but no hand
    no_hand = harness.node.counters.get("no_hand")
    msg = _send_and_wait(harness, 1_700_000_002_000_000_000, depth=far)
    assert msg.skeletons == []
    assert harness.node.counters.get("no_hand") == no_hand + 1  # counted, and visible in /diagnostics
    assert status_values(build_status(harness.node.snapshot()))["no_hand"] == str(no_hand + 1)
    assert wait_for(lambda: any(m.markers and m.markers[0].action == Marker.DELETEALL
                                for m in list(harness.markers)), 5.0)


def test_parameters_validation_and_runtime_updates(harness: Harness) -> None:
    node = harness.node
    res = node.set_parameters([Parameter("min_confidence", value=1.5)])[0]
    assert not res.successful and "min_confidence" in res.reason and "1.5" in res.reason
    res = node.set_parameters([Parameter("model_path", value="/tmp/other.safetensors")])[0]
    assert not res.successful and "read-only" in res.reason.lower()
    res = node.set_parameters([Parameter("min_depth_mm", value=5000.0)])[0]
    assert not res.successful and "min_depth_mm" in res.reason
    # runtime-safe: cube size changes the next output without a restart
    assert node.set_parameters([Parameter("cube_size", value=250.0)])[0].successful
    msg = _send_and_wait(harness, 1_700_000_003_000_000_000)
    assert abs(msg.skeletons[0].cube_size - 0.25) < 1e-6
    assert node.set_parameters([Parameter("cube_size", value=0.0)])[0].successful
    # min_confidence 1.0: random weights never reach it -> empty array
    assert node.set_parameters([Parameter("min_confidence", value=1.0)])[0].successful
    assert _send_and_wait(harness, 1_700_000_004_000_000_000).skeletons == []
    assert node.set_parameters([Parameter("min_confidence", value=0.0)])[0].successful
    assert node.set_parameters([Parameter("smoothing.enabled", value=True)])[0].successful
    a = _send_and_wait(harness, 1_700_000_005_000_000_000).skeletons[0]
    b = _send_and_wait(harness, 1_700_000_005_033_000_000, depth=blob_depth(center_mm=(30.0, 0.0, 500.0))).skeletons[0]
    assert node.set_parameters([Parameter("smoothing.enabled", value=False)])[0].successful
    raw = _send_and_wait(harness, 1_700_000_006_000_000_000, depth=blob_depth(center_mm=(30.0, 0.0, 500.0)))
    xs = [np.mean([k.position.x for k in s.keypoints]) for s in (a, b, raw.skeletons[0])]
    assert xs[0] < xs[1] < xs[2]  # smoothed estimate lags behind the raw one
    # candidate verification is runtime-safe and reaches the estimator
    res = node.set_parameters([Parameter("localization.hypotheses", value=0)])[0]
    assert not res.successful and "localization.hypotheses" in res.reason
    assert node.set_parameters([Parameter("localization.hypotheses", value=1),
                                Parameter("localization.verify_below", value=0.2)])[0].successful
    assert (node._main_estimator.hypotheses, node._main_estimator.verify_below) == (1, 0.2)


def test_verification_defaults_are_the_core_defaults(tmp_path: Path) -> None:
    from v2v_ros.core.estimator import DEFAULT_HYPOTHESES, DEFAULT_VERIFY_BELOW, PoseEstimator
    from v2v_ros.ros import params as P

    assert P.BY_NAME["localization.hypotheses"].default == DEFAULT_HYPOTHESES
    assert P.BY_NAME["localization.verify_below"].default == DEFAULT_VERIFY_BELOW
    est = PoseEstimator.load(write_tiny_checkpoint(tmp_path / "m.safetensors"), device="cpu")
    assert (est.hypotheses, est.verify_below) == (DEFAULT_HYPOTHESES, DEFAULT_VERIFY_BELOW)


def test_tracking_centres_each_cube_on_the_previous_estimate(harness: Harness) -> None:
    node = harness.node
    assert node.set_parameters([Parameter("tracking.min_score", value=0.0),  # random weights score low
                                Parameter("tracking.enabled", value=True)])[0].successful
    try:
        t0 = 1_700_000_007_000_000_000
        msgs = [_send_and_wait(harness, t0 + i * 33_000_000, depth=blob_depth(center_mm=(10.0 * i, 0.0, 500.0)))
                for i in range(3)]
        sks = [m.skeletons[0] for m in msgs]
        for prev, cur in zip(sks, sks[1:], strict=False):
            mean = np.mean([[k.position.x, k.position.y, k.position.z] for k in prev.keypoints], axis=0)
            ref = np.array([cur.reference_point.x, cur.reference_point.y, cur.reference_point.z])
            np.testing.assert_allclose(ref, mean, atol=1e-6)  # metres, previous skeleton's joint mean
        counters = node.snapshot().counters
        assert counters["reference.tracked"] == 2 and counters["reference.detected"] >= 1
        assert status_values(build_status(node.snapshot()))["reference.tracked"] == "2"  # in /diagnostics
        # a stamp far in the future is a gap: the track restarts from a detection
        _send_and_wait(harness, t0 + 5 * 10**9)
        assert node.snapshot().counters["reference.redetected"] == 1
        assert not node.set_parameters([Parameter("tracking.max_gap_s", value=0.0)])[0].successful
    finally:
        assert node.set_parameters([Parameter("tracking.enabled", value=False)])[0].successful


def test_diagnostics_published(harness: Harness) -> None:
    got: list[DiagnosticArray] = []
    sub = harness.client.create_subscription(DiagnosticArray, "/diagnostics", got.append, 10)
    try:
        assert wait_for(lambda: any(s.name.startswith("v2v_pose_node") for m in list(got) for s in m.status), 5.0)
        status = next(s for m in list(got) for s in m.status if s.name.startswith("v2v_pose_node"))
        vals = status_values(status)
        for key in ("input_rate_hz", "output_rate_hz", "latency_p50_ms", "latency_p95_ms", "dropped", "rejected",
                    "device", "model", "frames_in", "frames_out"):
            assert key in vals, key
        assert vals["device"] == "cpu" and vals["model"].startswith("tiny16")
    finally:
        harness.client.destroy_subscription(sub)


def test_lifecycle_transitions_and_model_failures(model: str, tmp_path: Path) -> None:
    h = Harness(DOMAIN + 1, {"model_path": model, "device": "cpu", "autostart": False}, namespace="lc")
    try:
        node = h.node
        assert node.state == "unconfigured"
        # drive one transition through the standard lifecycle service, the others directly
        cli = h.client.create_client(ChangeState, f"{node.get_fully_qualified_name()}/change_state")
        assert cli.wait_for_service(5.0)
        req = ChangeState.Request()
        req.transition.id = 1  # configure
        fut = cli.call_async(req)
        assert wait_for(fut.done, 10.0) and fut.result().success
        assert node.state == "inactive" and node._estimator is not None
        assert node._main_estimator._engine is not None  # warmed up: built before the first frame
        get = h.client.create_client(GetState, f"{node.get_fully_qualified_name()}/get_state")
        assert get.wait_for_service(5.0)
        fut = get.call_async(GetState.Request())
        assert wait_for(fut.done, 5.0) and fut.result().current_state.label == "inactive"
        node.trigger_activate()
        assert node.state == "active"
        assert h.wait_connected()
        _send_and_wait(h, 1_700_000_010_000_000_000)
        node.trigger_deactivate()
        assert node.state == "inactive" and node._worker is None
        n = len(h.skeletons)
        img, info = _frame(1_700_000_011_000_000_000)
        h.publish(img, info)
        time.sleep(0.5)
        assert len(h.skeletons) == n  # inactive: nothing processed
        node.trigger_cleanup()
        assert node.state == "unconfigured" and node._estimator is None
        node.trigger_configure()
        assert node.state == "inactive"  # configure again after cleanup works
    finally:
        h.close()
    missing = str(tmp_path / "missing.safetensors")
    h2 = Harness(DOMAIN + 2, {"model_path": missing, "device": "cpu"}, namespace="bad")
    try:
        assert h2.node.state == "unconfigured"
        assert "missing.safetensors" in h2.node.last_error
    finally:
        h2.close()
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"not a safetensors file")
    Path(str(corrupt).replace(".safetensors", ".json")).write_text(Path(model.replace(".safetensors", ".json"))
                                                                    .read_text())
    h3 = Harness(DOMAIN + 3, {"model_path": str(corrupt), "device": "cpu"}, namespace="corrupt")
    try:
        assert h3.node.state == "unconfigured"
        assert "corrupt" in h3.node.last_error
    finally:
        h3.close()


def test_warm_up_failure_fails_configure(model: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A model that cannot run a synthetic frame fails configure loudly (and holds nothing)."""
    from v2v_ros.core.estimator import PoseEstimator  # noqa: PLC0415

    def broken(self: PoseEstimator, rounds: int = 2) -> float:
        raise RuntimeError("conv3d: unsupported input")

    monkeypatch.setattr(PoseEstimator, "warm_up", broken)
    h = Harness(DOMAIN + 8, {"model_path": model, "device": "cpu"}, namespace="warm")
    try:
        assert h.node.state == "unconfigured" and h.node._estimator is None
        assert "warm-up" in h.node.last_error and "conv3d: unsupported input" in h.node.last_error
    finally:
        h.close()


def test_python_m_node_with_params_file(model: str) -> None:
    """The way this machine (and make demo) runs the node: python -m ... --ros-args --params-file."""
    env = dict(os.environ, ROS_DOMAIN_ID=str(DOMAIN + 4), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "v2v_ros.ros.node", "--ros-args", "--params-file",
           str(ROOT / "config/hand_pose.yaml"), "-p", f"model_path:={model}", "-p", "device:=cpu",
           "-p", "use_refinement:=false", "-p", "use_detector:=false",  # the tiny test model ships neither
           "-r", "depth/image:=/cam/depth", "-r", "depth/camera_info:=/cam/info"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    from rclpy.context import Context  # noqa: PLC0415
    from rclpy.executors import SingleThreadedExecutor  # noqa: PLC0415
    from rclpy.qos import QoSProfile, qos_profile_sensor_data  # noqa: PLC0415
    from sensor_msgs.msg import CameraInfo, Image  # noqa: PLC0415
    from v2v_ros.msg import Skeleton3DArray  # noqa: PLC0415

    ctx = Context()
    rclpy.init(context=ctx, domain_id=DOMAIN + 4)
    node = rclpy.create_node("py_m_client", context=ctx)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    got: list = []
    try:
        qos = QoSProfile(depth=10, reliability=qos_profile_sensor_data.reliability)
        pi, pc = node.create_publisher(Image, "/cam/depth", qos), node.create_publisher(CameraInfo, "/cam/info", qos)
        node.create_subscription(Skeleton3DArray, "/v2v_pose_node/skeletons", got.append, 10)
        end = time.monotonic() + 30
        k = 0
        while not got and time.monotonic() < end and proc.poll() is None:
            if pi.get_subscription_count() and pc.get_subscription_count():
                img, info = _frame(1_700_000_020_000_000_000 + k)
                pc.publish(info)
                pi.publish(img)
                k += 1
            ex.spin_once(timeout_sec=0.2)
        assert got, f"no output from the subprocess node (rc={proc.poll()})"
        assert got[0].header.frame_id == FRAME and len(got[0].skeletons) == 1
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)
    assert "configured: model tiny16" in out, out


def test_python_m_node_missing_model_exits_with_message(tmp_path: Path) -> None:
    env = dict(os.environ, ROS_DOMAIN_ID=str(DOMAIN + 5), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    missing = tmp_path / "absent.safetensors"
    r = subprocess.run([sys.executable, "-m", "v2v_ros.ros.node", "--ros-args", "-p", f"model_path:={missing}"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert str(missing) in r.stdout + r.stderr


def test_ensemble_and_refinement_options(model: str, tmp_path: Path) -> None:
    second = str(write_tiny_checkpoint(tmp_path / "second.safetensors", grid_size=16, seed=1))
    h = Harness(DOMAIN + 6, {"model_path": model, "device": "cpu", "ensemble_checkpoints": [second]},
                namespace="ens")
    try:
        assert h.node.state == "active", h.node.last_error
        est = h.node._main_estimator  # both checkpoints loaded, averaged in one forward
        assert est.name == "tiny16+1" and getattr(est.model, "members", 1) == 2
        assert h.wait_connected()
        sk = _send_and_wait(h, 1_700_000_030_000_000_000).skeletons[0]
        assert len(sk.keypoints) == 21 and sk.valid
    finally:
        h.close()
    h = Harness(DOMAIN + 7, {"model_path": model, "device": "cpu", "use_refinement": True}, namespace="ref")
    try:  # refinement demanded but the checkpoint has no refiner: configure fails and says why
        assert h.node.state == "unconfigured"
        assert "refiner" in h.node.last_error
    finally:
        h.close()
