"""``v2v_pose_node``: lifecycle ROS 2 node around :class:`v2v_ros.core.estimator.PoseEstimator`.

Thin shell by design: callbacks only pair messages (core.stream.StampPairer) and
hand the newest pair to a worker thread (core.stream.LatestSlot); the worker decodes
(core.depth_decode), estimates (the same PoseEstimator the bag evaluator uses),
optionally smooths (core.filters.OneEuroFilter) and publishes. Inference never runs
on the executor thread, so parameter services, lifecycle transitions and diagnostics
stay responsive while a slow CPU model works, and frames that arrive meanwhile
replace each other instead of queueing.

Run without a lifecycle manager (``autostart`` true, the default)::

    python -m v2v_ros.ros.node --ros-args --params-file config/hand_pose.yaml
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.exceptions import ParameterUninitializedException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray

from v2v_ros.core.depth_decode import DepthDecodeError
from v2v_ros.core.estimator import PoseEstimator, PoseResult
from v2v_ros.core.filters import OneEuroFilter
from v2v_ros.core.stream import (
    Counters,
    LatencyStats,
    LatestSlot,
    Paired,
    RateMeter,
    StampPairer,
    Throttle,
    stamp_to_ns,
)
from v2v_ros.core.threads import configure_threads
from v2v_ros.core.tracking import MultiTracker, TrackingConfig, TrackingEstimator
from v2v_ros.core.voxel import VoxelGrid
from v2v_ros.data.calibration import synthetic_calibration_source
from v2v_ros.msg import Skeleton3DArray
from v2v_ros.ros import params as P
from v2v_ros.ros.convert import (
    MM_PER_M,
    compressed_to_mm,
    header_stamp_ns,
    image_to_mm,
    info_to_intrinsics,
    result_to_skeleton,
    skeleton_array,
)
from v2v_ros.ros.diagnostics import PipelineSnapshot, build_array, no_hand_cause
from v2v_ros.ros.markers import MarkerOptions, delete_all, id_color, skeleton_markers

NODE_NAME = "v2v_pose_node"
INPUT_QUEUE_DEPTH = 10  # DDS reader queue of each input topic (see on_activate)
WARN_PERIOD_S = 5.0


@dataclass
class _Frame:
    """What a depth callback hands to the pairer: the message and how to decode it."""

    msg: Any
    compressed: bool


def tracking_config(cfg: dict[str, Any]) -> TrackingConfig:
    """The tracking.* parameters as the core's TrackingConfig."""
    return TrackingConfig(enabled=bool(cfg["tracking.enabled"]), max_gap_s=float(cfg["tracking.max_gap_s"]),
                          redetect_every=int(cfg["tracking.redetect_every"]),
                          min_score=float(cfg["tracking.min_score"]))


class PoseNode(LifecycleNode):
    """Depth image + camera_info in, Skeleton3DArray + markers + diagnostics out."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        for spec in P.PARAMS:
            default = spec.default if spec.default != [] else Parameter.Type.STRING_ARRAY
            self.declare_parameter(spec.name, default, spec.descriptor())
        self.add_on_set_parameters_callback(self._validate_params)
        self.add_post_set_parameters_callback(self._apply_params)

        self.counters = Counters()
        self.latency = LatencyStats()
        self.rate_in = RateMeter()
        self.rate_out = RateMeter()
        self._throttle = Throttle(WARN_PERIOD_S)
        self._pair_lock = threading.Lock()
        self._est_lock = threading.Lock()
        self._filter_lock = threading.Lock()  # the worker filters while parameter updates reset
        self.slot: LatestSlot[Paired] = LatestSlot()
        self.pairer = StampPairer(self._p("pair_buffer"))
        # Receive time of the depth frame last handed to the worker (guarded by _pair_lock): a pair
        # completed later whose depth frame arrived earlier (its camera_info came late) is superseded.
        self._last_dispatched: float | None = None
        self._filter = OneEuroFilter()
        self._id_filters: dict[int, OneEuroFilter] = {}  # max_targets > 1: one filter per track id
        self._marker_ids: set[int] = set()  # ids whose markers RViz shows now
        self._estimator: Any = None
        self._main_estimator: PoseEstimator | None = None
        self._model_name = ""
        self._device = "none"
        self._state = "unconfigured"
        self._last_problem = ""
        self._last_problem_t = 0.0
        self._had_hand = False
        self._worker: threading.Thread | None = None
        self._running = threading.Event()
        self._subs: list[Any] = []
        self._pub_skel: Any = None
        self._pub_markers: Any = None
        self.last_error = ""
        self._cfg: dict[str, Any] = self._values()
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diag_timer = self.create_timer(self._p("diagnostics_period"), self.publish_diagnostics)

        if self._p("autostart"):
            self.trigger_configure()
            if self._state == "inactive":
                self.trigger_activate()

    # -- parameters ------------------------------------------------------------------------
    def _p(self, name: str) -> Any:
        try:
            return self.get_parameter(name).value
        except ParameterUninitializedException:
            return [] if P.BY_NAME[name].default == [] else P.BY_NAME[name].default

    def _values(self) -> dict[str, Any]:
        return {spec.name: self._p(spec.name) for spec in P.PARAMS}

    def _validate_params(self, parameters: list[Parameter]) -> SetParametersResult:
        """Reject values outside the rules of params.validate, naming parameter and value."""
        merged = self._values()
        merged.update({p.name: p.value for p in parameters})
        for p in parameters:
            msg = P.validate(p.name, p.value, merged)
            if msg:
                return SetParametersResult(successful=False, reason=msg)
        return SetParametersResult(successful=True)

    def _apply_params(self, parameters: list[Parameter]) -> None:
        """Runtime-safe parameters take effect on the next frame."""
        self._cfg = self._values()
        names = {p.name for p in parameters}
        if names & {"static_camera_info", "pair_tolerance_ms"}:
            with self._pair_lock:
                self.pairer.static_info = bool(self._cfg["static_camera_info"])
                self.pairer.tolerance_ns = int(self._cfg["pair_tolerance_ms"] * 1e6)
        if names & {"smoothing.min_cutoff", "smoothing.beta", "smoothing.d_cutoff", "smoothing.enabled"}:
            with self._filter_lock:
                self._filter.configure(self._cfg["smoothing.min_cutoff"], self._cfg["smoothing.beta"],
                                       self._cfg["smoothing.d_cutoff"])
                self._filter.reset()
        if names & {"cube_size", "depth_band_mm", "min_depth_mm", "max_depth_mm",
                     "localization.hypotheses", "localization.verify_below"}:
            with self._est_lock:
                self._apply_geometry()
        if names & {"max_targets", "opposite_hands_prior"}:
            with self._est_lock:
                if self._main_estimator is not None:
                    self._estimator = self._wrap(self._main_estimator, self._cfg)
            with self._filter_lock:
                self._id_filters.clear()
        if any(n.startswith("tracking.") for n in names):
            with self._est_lock:
                if self._estimator is not None:
                    self._estimator.config = tracking_config(self._cfg)
                    self._estimator.reset()

    def _apply_geometry(self) -> None:
        """Cube size, localisation band and detector verification on the loaded estimator
        (caller holds _est_lock)."""
        if self._main_estimator is None:
            return
        for est in (self._main_estimator,):
            cube = self._cfg["cube_size"] or float(est.meta.cube_size)
            est.grid = VoxelGrid(cube, est.meta.grid_size, est.meta.stride)
            est.localizer = replace(est.localizer, cube_size=cube, depth_band_mm=self._cfg["depth_band_mm"],
                                    min_depth_mm=self._cfg["min_depth_mm"], max_depth_mm=self._cfg["max_depth_mm"])
            est.hypotheses = int(self._cfg["localization.hypotheses"])
            est.verify_below = float(self._cfg["localization.verify_below"])

    # -- lifecycle -----------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Validate every parameter and load the model(s); a failure names the cause."""
        self._cfg = cfg = self._values()
        problems = P.validate_all(cfg)
        if problems:
            return self._fail_configure("invalid parameters: " + "; ".join(problems))
        try:
            device = self._pick_device(cfg["device"])
            paths = [P.resolve_model_path(x) for x in [cfg["model_path"], *cfg["ensemble_checkpoints"]]]
            main, estimator = self._load(paths, device, cfg)
        except Exception as exc:  # CheckpointError, FileNotFoundError, ValueError, torch errors
            return self._fail_configure(f"cannot load model: {exc}")
        with self._est_lock:
            self._main_estimator = main
            self._estimator = estimator
            self._apply_geometry()  # before the warm-up: it runs the shapes frames will use
        try:
            warm_s = main.warm_up()  # the first frame must not pay engine building and cold starts
        except Exception as exc:  # a model that cannot run a synthetic frame cannot run a real one
            self._release()
            return self._fail_configure(f"model failed its warm-up run: {type(exc).__name__}: {exc}")
        self._device = str(main.device)
        self._model_name = main.name + (" (refined)" if getattr(main, "refiner", None) is not None else "")
        with self._pair_lock:
            self.pairer = StampPairer(cfg["pair_buffer"], int(cfg["pair_tolerance_ms"] * 1e6),
                                      cfg["static_camera_info"])
        self._filter.configure(cfg["smoothing.min_cutoff"], cfg["smoothing.beta"], cfg["smoothing.d_cutoff"])
        self._filter.reset()
        self._pub_skel = self.create_publisher(Skeleton3DArray, "~/skeletons", 10)
        self._pub_markers = self.create_publisher(MarkerArray, "~/markers", 10)
        self._state = "inactive"
        self.last_error = ""
        self.get_logger().info(f"configured: model {self._model_name} on {self._device}, "
                               f"grid {main.meta.grid_size}, cube {main.grid.cube_size:.0f} mm, "
                               f"warm-up {warm_s * 1e3:.0f} ms")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Subscribe and start the worker; frames before activation are never seen."""
        # Sensor-data QoS (best effort, like camera drivers), but 10 deep instead of 5: a frame that DDS
        # overwrites in a full reader queue (executor busy for > 5 frame periods, measured up to ~0.4 s
        # on 2 loaded cores) is lost without any count; one that reaches us is dropped with a reason.
        qos = QoSProfile(depth=INPUT_QUEUE_DEPTH, reliability=qos_profile_sensor_data.reliability,
                         history=qos_profile_sensor_data.history, durability=qos_profile_sensor_data.durability)
        overrides = QoSOverridingOptions.with_default_policies()
        self._subs = [
            self.create_subscription(Image, "depth/image", self._on_image, qos, qos_overriding_options=overrides,
                                     event_callbacks=self._lost_events("lost.depth_image", "depth/image")),
            self.create_subscription(CameraInfo, "depth/camera_info", self._on_info, qos,
                                     qos_overriding_options=overrides,
                                     event_callbacks=self._lost_events("camera_info.lost", "depth/camera_info")),
        ]
        if self._cfg["use_compressed"]:
            self._subs.append(self.create_subscription(
                CompressedImage, "depth/image/compressedDepth", self._on_compressed, qos,
                qos_overriding_options=overrides,
                event_callbacks=self._lost_events("lost.depth_compressed", "depth/image/compressedDepth")))
        self.slot.reopen()
        with self._est_lock:
            if self._estimator is not None:
                self._estimator.reset()  # frames from before a deactivation are no track to follow
        self._running.set()
        self._worker = threading.Thread(target=self._work, name="v2v_pose_worker", daemon=True)
        self._worker.start()
        self._state = "active"
        self.get_logger().info(f"active: listening on {self.resolve_topic_name('depth/image')}")
        return TransitionCallbackReturn.SUCCESS

    def _lost_events(self, key: str, topic: str) -> SubscriptionEventCallbacks:
        """Count messages DDS reports lost before they reached us (gaps in the publisher's sequence).

        They never enter ``frames_in``; with a best-effort camera in another process this is where
        frames lost in transport show up (docs/node.md, "Transport").
        """
        def on_lost(info: Any) -> None:
            self.counters.inc(key, int(info.total_count_change))
            if self._throttle.ready(key):
                self.get_logger().warning(
                    f"DDS lost {self.counters.get(key)} messages so far on {self.resolve_topic_name(topic)} "
                    "before delivery (large images from another process: see docs/node.md, Transport)")
        return SubscriptionEventCallbacks(message_lost=on_lost, use_default_callbacks=False)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_worker()
        self._state = "inactive"
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release the model (and its GPU memory) and the output publishers."""
        self._stop_worker()
        self._release()
        self._state = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_worker()
        self._release()
        self._state = "finalized"
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_worker()
        self._release()
        self._state = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    @property
    def state(self) -> str:
        """unconfigured, inactive, active or finalized (our mirror of the state machine)."""
        return self._state

    def _fail_configure(self, message: str) -> TransitionCallbackReturn:
        self.last_error = message
        self._problem(message)
        self.get_logger().error(f"configure failed: {message}")
        return TransitionCallbackReturn.FAILURE

    def _pick_device(self, device: str) -> str:
        import torch  # noqa: PLC0415

        if device.startswith("cuda"):
            index = int(device.split(":")[1]) if ":" in device else 0
            if not torch.cuda.is_available() or index >= torch.cuda.device_count():
                self.get_logger().warning(f"device={device!r} requested but CUDA device {index} is not "
                                          "available; falling back to cpu")
                return "cpu"
        return device

    def _load(self, paths: list[Any], device: str, cfg: dict[str, Any]) -> tuple[PoseEstimator, TrackingEstimator]:
        """(main estimator, estimator to call): the same object; several paths form one
        epoch ensemble evaluated in a single batched forward by PoseEstimator."""
        # Process-wide: 0 adapts the count to the cores other processes leave free (core.threads).
        configure_threads(int(cfg["threads"]))
        est = PoseEstimator.load(paths if len(paths) > 1 else paths[0], device=device,
                                 refiner=bool(cfg["use_refinement"]),  # True: configure fails if it is missing
                                 detector=bool(cfg["use_detector"]),
                                 precision=cfg["precision"], backend=cfg["backend"],
                                 calibration=synthetic_calibration_source)  # used only by precision int8
        # cube and localisation band are applied to `est` by _apply_geometry; frames go through the tracker
        return est, self._wrap(est, cfg)

    @staticmethod
    def _wrap(est: PoseEstimator, cfg: dict[str, Any]) -> TrackingEstimator | MultiTracker:
        """What frames go through: the single-target tracker, or with max_targets > 1 the multi-target one
        (every target, each with a stable id; core.tracking.MultiTracker)."""
        if int(cfg["max_targets"]) > 1:
            return MultiTracker(est, tracking_config(cfg), max_targets=int(cfg["max_targets"]),
                                opposite_prior=float(cfg["opposite_hands_prior"]))
        return TrackingEstimator(est, tracking_config(cfg))

    def _release(self) -> None:
        with self._est_lock:
            self._estimator = None
            self._main_estimator = None
        for pub in (self._pub_skel, self._pub_markers):
            if pub is not None:
                self.destroy_publisher(pub)
        self._pub_skel = self._pub_markers = None
        try:
            import torch  # noqa: PLC0415

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except Exception:
            pass

    def _stop_worker(self) -> None:
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []
        self._running.clear()
        self.slot.close()
        if self._worker is not None:
            self._worker.join(timeout=10.0)
            self._worker = None
        # Frames still waiting for a camera_info or for the worker never come out: count them.
        waiting = self.slot.clear()
        with self._pair_lock:
            waiting += self.pairer.clear()
            self._last_dispatched = None
        if waiting:
            self.counters.inc("dropped", waiting)
            self.counters.inc("dropped.shutdown", waiting)

    # -- callbacks (executor thread: cheap only) ------------------------------------------------
    def _on_image(self, msg: Image) -> None:
        self._on_depth(_Frame(msg, False))

    def _on_compressed(self, msg: CompressedImage) -> None:
        self._on_depth(_Frame(msg, True))

    def _on_depth(self, frame: _Frame) -> None:
        now = time.monotonic()
        self.counters.inc("frames_in")
        self.rate_in.tick(now)
        header = frame.msg.header
        with self._pair_lock:
            pairs, rejected = self.pairer.add_depth(header_stamp_ns(header), header.frame_id, frame, now)
        self._dispatch(pairs, rejected)

    def _on_info(self, msg: CameraInfo) -> None:
        self.counters.inc("camera_info.in")
        with self._pair_lock:
            pairs, rejected = self.pairer.add_info(header_stamp_ns(msg.header), msg.header.frame_id, msg,
                                                   info_key=calibration_key(msg))
        self._dispatch(pairs, rejected)

    def _dispatch(self, pairs: list[Paired], rejected: list[Any]) -> None:
        for r in rejected:
            self._reject(r.reason, r.message)
        for p in pairs:
            with self._pair_lock:
                # Newest wins by arrival: a depth frame that waited for a late camera_info while a newer
                # frame already went to the worker would publish a stamp older than the last output.
                # (Arrival order, not stamp order: a looping bag or a restarted driver goes back in stamps.)
                if self._last_dispatched is not None and p.received < self._last_dispatched:
                    self.counters.inc("dropped")
                    self.counters.inc("dropped.superseded")
                    continue
                self._last_dispatched = p.received
                displaced = self.slot.put(p)
            if displaced is not None:  # newest frame wins: the worker was busy
                self.counters.inc("dropped")
                self.counters.inc("dropped.newer_frame")

    # -- worker ------------------------------------------------------------------------------
    def _work(self) -> None:
        while self._running.is_set():
            pair = self.slot.get(timeout=0.2)
            if pair is None:
                continue
            try:
                self._process(pair)
            except Exception as exc:  # never let one frame kill the worker
                self._reject("internal", f"unexpected error: {type(exc).__name__}: {exc}")
            finally:
                self.slot.task_done()

    def _process(self, pair: Paired) -> None:
        cfg = self._cfg
        start = time.monotonic()
        age_ms = (start - pair.received) * 1e3
        if cfg["max_age_ms"] > 0 and age_ms > cfg["max_age_ms"]:
            self.counters.inc("dropped")
            self.counters.inc("dropped.stale")
            message = f"frame dropped: {age_ms:.1f} ms since it arrived > max_age_ms={cfg['max_age_ms']:g}"
            self._problem(message)
            if self._throttle.ready("stale"):
                self.get_logger().warning(f"{message} ({self.counters.get('dropped.stale')} so far)")
            return
        frame: _Frame = pair.depth
        header: Header = frame.msg.header
        decoded: dict[str, int] = {}
        try:
            depth = (compressed_to_mm(frame.msg, cfg["max_pixels"]) if frame.compressed
                     else image_to_mm(frame.msg, cfg["max_pixels"], decoded))
            intr = info_to_intrinsics(pair.info, depth.shape)
        except DepthDecodeError as exc:
            self._reject(exc.reason, str(exc))
            return
        # Non-finite pixels were zeroed by the decoder; count them as a (tolerated) input problem.
        if decoded.get("nonfinite"):
            self._warn("nonfinite_pixels", "depth contains NaN/inf pixels (treated as invalid)")
        # Outputs keep the input's frame (REP 103); an empty one cannot be placed in TF or RViz.
        if not header.frame_id:
            self._warn("empty_frame_id", "depth image header.frame_id is '' (outputs keep it: TF/RViz cannot place "
                                         "them; set the camera driver's frame)")
        result: PoseResult | list[PoseResult] | None = None
        if not np.any(depth > 0):
            self._reject("all_invalid", "depth image has no valid pixel (all zero, NaN or inf)")
        else:
            with self._est_lock:
                est = self._estimator
                if est is None:  # released by a concurrent cleanup
                    self.counters.inc("dropped")
                    self.counters.inc("dropped.shutdown")
                    return
                try:
                    stamp = stamp_to_ns(header.stamp.sec, header.stamp.nanosec)
                    if isinstance(est, MultiTracker):
                        result = est.estimate_all(depth, intr, stamp_ns=stamp)
                    else:
                        result = est.estimate(depth, intr, stamp_ns=stamp)
                except ValueError as exc:  # DepthDecodeError: depth in the wrong units or 8-bit (core check)
                    reason = exc.reason if isinstance(exc, DepthDecodeError) else "estimator"
                    enc = "" if frame.compressed else f" (encoding {frame.msg.encoding!r})"
                    self._reject(reason, f"estimator rejected the frame{enc}: {exc}")
                    return
        self._publish(header, result, pair.received, cfg)

    def _publish(self, header: Header, result: PoseResult | list[PoseResult] | None, received: float,
                 cfg: dict[str, Any]) -> None:
        if isinstance(result, list):
            self._publish_all(header, result, received, cfg)
            return
        pub_skel, pub_markers = self._pub_skel, self._pub_markers
        if pub_skel is None:  # released by a concurrent cleanup: the frame goes unanswered, counted
            self.counters.inc("dropped")
            self.counters.inc("dropped.shutdown")
            return
        found = result is not None and result.valid and result.score >= cfg["min_confidence"]
        skeletons = []
        if found:
            assert result is not None
            joints = result.joints
            if cfg["smoothing.enabled"]:
                t = header.stamp.sec + header.stamp.nanosec * 1e-9
                with self._filter_lock:
                    joints = self._filter(joints, t)
            skeletons.append(result_to_skeleton(result, joints))
        else:
            with self._filter_lock:
                self._filter.reset()
            if result is not None:  # processed, nothing published: counted by why (/diagnostics no_hand.*)
                self.counters.inc("no_hand")
                self.counters.inc(f"no_hand.{no_hand_cause(result)}")
        pub_skel.publish(skeleton_array(header, skeletons))
        if cfg["markers.enabled"] and pub_markers is not None:
            if found:
                assert result is not None
                opts = MarkerOptions(cfg["markers.joint_radius"], cfg["markers.line_width"], cfg["markers.lifetime"],
                                     cfg["markers.show_cube"])
                sk = skeletons[0]
                joints_m = np.array([[k.position.x, k.position.y, k.position.z] for k in sk.keypoints])
                pub_markers.publish(skeleton_markers(
                    header, joints_m, result.confidence, result.skeleton, opts, 0,
                    np.asarray(result.reference_point) / MM_PER_M, result.cube_size / MM_PER_M))
            elif self._had_hand:
                pub_markers.publish(delete_all(header))
        self._had_hand = found
        self._frame_out(received)

    def _frame_out(self, received: float) -> None:
        now = time.monotonic()
        self.latency.add(now - received)
        self.rate_out.tick(now)
        self.counters.inc("frames_out")

    def _publish_all(self, header: Header, results: list[PoseResult], received: float, cfg: dict[str, Any]) -> None:
        """Every target of a frame (max_targets > 1): one Skeleton3D per target, its id the tracker's."""
        pub_skel, pub_markers = self._pub_skel, self._pub_markers
        if pub_skel is None:  # released by a concurrent cleanup: the frame goes unanswered, counted
            self.counters.inc("dropped")
            self.counters.inc("dropped.shutdown")
            return
        shown = [r for r in results if r.valid and r.score >= cfg["min_confidence"]]
        skeletons = []
        t = header.stamp.sec + header.stamp.nanosec * 1e-9
        with self._filter_lock:
            for r in shown:
                joints = r.joints
                if cfg["smoothing.enabled"]:
                    f = self._id_filters.get(r.track_id)
                    if f is None:
                        f = self._id_filters[r.track_id] = OneEuroFilter()
                        f.configure(cfg["smoothing.min_cutoff"], cfg["smoothing.beta"], cfg["smoothing.d_cutoff"])
                    joints = f(joints, t)
                skeletons.append(result_to_skeleton(r, joints, max(r.track_id, 0)))
            live = {r.track_id for r in shown}
            for k in [k for k in self._id_filters if k not in live]:
                del self._id_filters[k]  # a target that comes back starts its smoothing afresh
        if not shown:
            self.counters.inc("no_hand")
            self.counters.inc("no_hand.no_target")
        pub_skel.publish(skeleton_array(header, skeletons))
        if cfg["markers.enabled"] and pub_markers is not None:
            ids = {int(sk.id) for sk in skeletons}
            markers = delete_all(header) if ids != self._marker_ids and self._marker_ids else None
            opts = MarkerOptions(cfg["markers.joint_radius"], cfg["markers.line_width"], cfg["markers.lifetime"],
                                 cfg["markers.show_cube"])
            for r, sk in zip(shown, skeletons, strict=True):
                joints_m = np.array([[k.position.x, k.position.y, k.position.z] for k in sk.keypoints])
                more = skeleton_markers(header, joints_m, r.confidence, r.skeleton, opts, int(sk.id),
                                        np.asarray(r.reference_point) / MM_PER_M, r.cube_size / MM_PER_M,
                                        joint_color=id_color(int(sk.id)))
                if markers is None:
                    markers = more
                else:
                    markers.markers += more.markers
            if markers is not None:
                pub_markers.publish(markers)
            self._marker_ids = ids
        self._had_hand = bool(shown)
        self._frame_out(received)

    # -- problems and diagnostics -------------------------------------------------------------
    def _reject(self, reason: str, message: str) -> None:
        """Count a rejected frame and warn at most every few seconds per reason."""
        self.counters.inc(f"rejected.{reason}")
        self._problem(message)
        if self._throttle.ready(reason):
            total = self.counters.get(f"rejected.{reason}")
            self.get_logger().warning(f"frame rejected ({reason}, {total} so far): {message}")

    def _warn(self, key: str, message: str) -> None:
        self.counters.inc(f"warn.{key}")
        if self._throttle.ready(key):
            self.get_logger().warning(f"{message} ({self.counters.get(f'warn.{key}')} so far)")

    def _problem(self, message: str) -> None:
        self._last_problem, self._last_problem_t = message, time.monotonic()

    def snapshot(self) -> PipelineSnapshot:
        """Current statistics (also used by tests and the demo)."""
        p50, p95 = self.latency.percentiles_ms()
        recent = self._last_problem if time.monotonic() - self._last_problem_t < 10.0 else ""
        counters = self.counters.snapshot()
        counters["dropped"] = counters.get("dropped", 0)
        est = self._estimator
        if est is not None and getattr(est, "config", None) is not None and est.config.enabled:
            counters.update({f"reference.{k}": v for k, v in est.stats.items()})
        with self._pair_lock:
            queue = {"pending_depth": self.pairer.pending_depth, "pending_total": len(self.pairer),
                     "slot": len(self.slot)}
            counters["camera_info.unused"] = self.pairer.info_unused
            counters["camera_info.fallback"] = self.pairer.fallback_pairs
        counters.setdefault("camera_info.in", 0)
        counters.update(frame_accounting(counters, queue["pending_depth"] + self.slot.pending))
        return PipelineSnapshot(self.get_name(), self._state, self._device, self._model_name or "none",
                                self.rate_in.rate(), self.rate_out.rate(), p50, p95, counters, queue, recent)

    def publish_diagnostics(self) -> None:
        header = Header(stamp=self.get_clock().now().to_msg())
        self._diag_pub.publish(build_array(header, self.snapshot()))


def calibration_key(msg: CameraInfo) -> tuple[Any, ...]:
    """What makes two camera_infos the same calibration (the pairer's fallback compares these)."""
    return (msg.header.frame_id, msg.width, msg.height, msg.distortion_model, tuple(msg.k), tuple(msg.d),
            tuple(msg.p), msg.binning_x, msg.binning_y, msg.roi.x_offset, msg.roi.y_offset, msg.roi.width,
            msg.roi.height)


def frame_accounting(counters: dict[str, int], pending: int) -> dict[str, int]:
    """``frames.pending`` and ``frames.unaccounted`` for diagnostics.

    Every depth frame that enters ends exactly one way: published (``frames_out``), dropped
    (``dropped``, by reason in ``dropped.*``), rejected without an answer (``rejected.*``
    except ``all_invalid``, which still publishes an empty array), or it is still waiting
    (pair buffer, hand-over slot, worker). ``frames.unaccounted`` is what is left over: 0 when
    the node is idle (a frame moving between two stages can show for one report).
    """
    rejected = sum(v for k, v in counters.items() if k.startswith("rejected.") and k != "rejected.all_invalid")
    left = (counters.get("frames_in", 0) - counters.get("frames_out", 0) - counters.get("dropped", 0)
            - rejected - pending)
    return {"frames.pending": pending, "frames.unaccounted": left}


def main(args: list[str] | None = None) -> int:
    """Entry point of ``v2v_pose_node`` / ``python -m v2v_ros.ros.node``; 1 if autostart fails."""
    try:
        rclpy.init(args=args if args is not None else sys.argv)
    except Exception as exc:  # RCLError: e.g. a --params-file that does not exist or does not parse
        text = (str(exc).splitlines() or [repr(exc)])[0].strip('"')
        print(f"[{NODE_NAME}] fatal: cannot start ROS: {text}", file=sys.stderr)
        return 1
    node: PoseNode | None = None
    code = 0
    try:
        node = PoseNode()
        if node.get_parameter("autostart").value and node.state != "active":
            node.get_logger().fatal(f"autostart failed: {node.last_error}")
            return 1
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception as exc:  # e.g. a parameter override of the wrong type at declaration
        print(f"[{NODE_NAME}] fatal: {type(exc).__name__}: {exc}", file=sys.stderr)
        code = 1
    finally:
        if node is not None:
            node._stop_worker()
            node.destroy_node()
        if rclpy.ok():
            rclpy.try_shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
