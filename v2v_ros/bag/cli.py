"""``v2v eval-bag`` (registered by v2v_ros.cli): offline, without rclpy.

The bag tools read and write rosbag2 with ``rosbags`` and run the pure core, so they
work where ROS 2 is not installed. ``v2v play``, which publishes into live DDS and
needs rclpy, lives in the ROS shell (:mod:`v2v_ros.ros.play_cli`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

DEFAULT_DEPTH = "/camera/depth/image_rect_raw"
DEFAULT_INFO = "/camera/depth/camera_info"


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("eval-bag", help="run the pose estimator over a rosbag2 and score it",
                              description="Pair depth and camera_info by stamp, run the node's PoseEstimator, write "
                              "a predictions bag and metrics.json (+ plots with --gt-topic). sqlite3 and mcap.")
    p.add_argument("bag", type=Path, help="rosbag2 folder (or its .db3/.mcap file)")
    p.add_argument("--depth-topic", default=DEFAULT_DEPTH, help="sensor_msgs/Image or compressedDepth topic")
    p.add_argument("--info-topic", default=DEFAULT_INFO, help="sensor_msgs/CameraInfo topic")
    p.add_argument("--gt-topic", default=None, help="v2v_ros/msg/Skeleton3DArray ground truth (metres)")
    p.add_argument("--out", type=Path, required=True, help="output folder (predictions bag, metrics.json, plots)")
    p.add_argument("--model", default="models/hand_default.safetensors", help="checkpoint (package-relative ok)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda:N")
    # The node's defaults (config/*_pose.yaml: precision auto, backend torch), so that an offline
    # evaluation measures the arithmetic the live node runs.
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16", "int8"],
                   help="inference precision, as the node's `precision` parameter (default: auto, like the node)")
    p.add_argument("--backend", default="torch", choices=["torch", "onnxruntime"], help="inference backend")
    p.add_argument("--storage", choices=["sqlite3", "mcap"], default=None, help="predictions bag format "
                   "(default: the input's)")
    p.add_argument("--pred-topic", default="/v2v_pose_node/skeletons")
    p.add_argument("--static-camera-info", action="store_true", help="reuse the latest camera_info for every frame")
    p.add_argument("--min-confidence", type=float, default=0.0,
                   help="publish/score only poses whose mean confidence reaches this, in [0, 1] (as the node)")
    p.add_argument("--limit", type=int, default=None, help="only the first N depth frames")
    p.add_argument("--tracking", action="store_true",
                   help="follow the target from frame to frame as the node does with tracking.enabled "
                        "(detector/refiner only to acquire, re-check and recover it)")
    p.add_argument("--redetect-every", type=int, default=30, help="with --tracking: frames between detections")
    p.add_argument("--max-targets", type=int, default=1,
                   help="targets per frame as the node's max_targets: > 1 estimates every target (each with its "
                        "track id) and, with --gt-topic, adds the multi-target metrics (matching, detection, "
                        "identity switches, handedness) to metrics.json")
    p.add_argument("--opposite-hands-prior", type=float, default=None, metavar="P",
                   help="with several targets: how likely two hands seen together are one person's left and right hand "
                        "(the node's opposite_hands_prior, default 0.99); 0.5 decides each hand's side alone")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_eval_bag)


def run_eval_bag(args: argparse.Namespace) -> int:
    from v2v_ros.bag.evaluate import run_bag, score, write_outputs  # noqa: PLC0415
    from v2v_ros.bag.io import BagError, bag_storage, open_reader  # noqa: PLC0415
    from v2v_ros.core.checkpoint import CheckpointError  # noqa: PLC0415
    from v2v_ros.core.estimator import PoseEstimator  # noqa: PLC0415
    from v2v_ros.core.skeletons import SKELETONS  # noqa: PLC0415
    from v2v_ros.core.tracking import MultiTracker, TrackingConfig, TrackingEstimator, checked_opposite_prior  # noqa: PLC0415
    from v2v_ros.data.calibration import synthetic_calibration_source  # noqa: PLC0415

    if not 0.0 <= args.min_confidence <= 1.0:
        print(f"eval-bag: --min-confidence must be in [0, 1], got {args.min_confidence}", file=sys.stderr)
        return 1
    if not 1 <= args.max_targets <= 16:
        print(f"eval-bag: --max-targets must be in [1, 16], got {args.max_targets}", file=sys.stderr)
        return 1
    try:
        checked_opposite_prior(args.opposite_hands_prior)
    except ValueError as exc:
        print(f"eval-bag: --opposite-hands-prior: {exc}", file=sys.stderr)
        return 1
    try:
        model = _resolve(args.model)
        est = PoseEstimator.load(model, device=args.device, precision=args.precision, backend=args.backend,
                                 calibration=synthetic_calibration_source)  # used by --precision int8 only
        config = TrackingConfig(enabled=args.tracking, redetect_every=args.redetect_every)
        tracker: Any = (MultiTracker(est, config, max_targets=args.max_targets,
                                     opposite_prior=args.opposite_hands_prior) if args.max_targets > 1
                        else TrackingEstimator(est, config))
        open_reader(args.bag).close()
        storage = args.storage or bag_storage(args.bag)
        out: Path = args.out
        out.mkdir(parents=True, exist_ok=True)
        run = run_bag(tracker, args.bag, args.depth_topic, args.info_topic, args.gt_topic, out / "predictions",
                      args.pred_topic, storage, args.static_camera_info, args.min_confidence, args.limit,
                      progress=not args.no_progress)
    except (BagError, CheckpointError, FileNotFoundError, KeyError, ValueError) as exc:
        # str(KeyError) is the repr of its message (quoted); print the message itself
        print(f"eval-bag: {exc.args[0] if isinstance(exc, KeyError) and exc.args else exc}", file=sys.stderr)
        return 1
    report = None
    if args.gt_topic:
        report, _, _ = score(run.pred, run.gt, list(est.joint_names))
        if args.max_targets > 1:
            from v2v_ros.bag.evaluate import score_multi_bag  # noqa: PLC0415

            report["multi_target"] = score_multi_bag(run)
    sk = SKELETONS.get(est.meta.skeleton)
    summary = write_outputs(out, run, report, {"bag": str(args.bag), "model": str(model), "device": str(est.device),
                                                 "precision": est.precision, "backend": est.backend,
                                                 "reference": run.reference},
                            sk.bones if sk else None)
    print(format_summary(summary))
    return 0


def format_summary(s: dict[str, Any]) -> str:
    m = s.get("metrics") or {}
    sr = (m.get("success_rate") or {}).get("20")
    lat = s.get("latency_ms") or {}
    rows = [("frames in", s.get("frames_in")), ("frames out", s.get("frames_out")),
            ("dropped", s.get("dropped", 0)), ("rejected", sum((s.get("rejected") or {}).values())),
            *([("cube centres", ", ".join(f"{k} {v}" for k, v in s["reference"].items()))]
              if s.get("reference") else []),
            ("mean error (mm)", _fmt(m.get("mean_error_mm"))),
            ("success rate @20 mm", _fmt(None if sr is None else 100 * sr, "%")),
            ("latency p50 (ms)", _fmt(lat.get("p50"))), ("latency p95 (ms)", _fmt(lat.get("p95"))),
            ("throughput (frames/s)", _fmt(s.get("throughput_fps")))]
    mt = m.get("multi_target")
    if mt:
        pct = (lambda v: _fmt(None if v is None else 100.0 * v, "%"))  # noqa: E731
        rows += [("targets found / in view", f"{mt['found']} / {mt['targets_in_view']}"),
                 ("detection precision", pct(mt["precision"])), ("detection recall", pct(mt["recall"])),
                 ("matched mean error (mm)", _fmt(mt["mean_error_mm"])),
                 ("handedness accuracy", pct(mt["handedness_accuracy"])),
                 ("identity switches /100 frames", _fmt(mt["id_switches_per_100_frames"]))]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)


def _fmt(v: Any, unit: str = "") -> str:
    return "n/a" if v is None else f"{v:.1f}{unit}" if isinstance(v, float) else f"{v}{unit}"


def _resolve(path: str) -> Path:
    p = Path(path)
    if p.is_absolute() or p.with_suffix(".safetensors").exists() or p.is_dir():
        return p
    root = Path(__file__).resolve().parents[2]
    if (root / p).with_suffix(".safetensors").exists():
        return root / p
    raise FileNotFoundError(f"model {path!r} not found (tried {Path.cwd() / p} and {root / p})")
