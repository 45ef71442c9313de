"""``v2v eval-bag``: run the node's pipeline over a recorded bag and score it against ground truth.

Same pieces as the live node, minus DDS: StampPairer pairs depth and camera_info by
stamp, depth_decode turns the message fields into mm, PoseEstimator estimates. Every
paired frame is processed (offline there is no reason to drop), and its predictions
are written to a new bag (Skeleton3DArray, metres, input header) so they can be
replayed, plus ``metrics.json`` and plots when a ground-truth topic is given.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from v2v_ros.bag.io import SkeletonBagWriter, iter_messages, skeleton_array_to_mm, stamp_ns_of, topic_types
from v2v_ros.core.depth_decode import DepthDecodeError, compressed_msg_to_mm, image_msg_to_mm, info_msg_to_intrinsics
from v2v_ros.core.stream import StampPairer
from v2v_ros.core.tracking import MultiTracker, TrackingConfig, TrackingEstimator

COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"


@dataclass
class BagRun:
    """Outcome of one bag evaluation."""

    frames_in: int = 0
    frames_out: int = 0
    rejected: Counter = field(default_factory=Counter)
    latency_ms: list[float] = field(default_factory=list)
    pred: dict[int, np.ndarray | None] = field(default_factory=dict)  # stamp -> (J, 3) mm or None
    gt: dict[int, np.ndarray] = field(default_factory=dict)
    overlay: dict[str, Any] | None = None
    joint_names: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    reference: dict[str, int] = field(default_factory=dict)  # how cube centres were found (tracking stats)
    # several targets per frame (a MultiTracker): stamp -> every published target / every ground-truth skeleton
    multi_pred: dict[int, list[Any]] = field(default_factory=dict)
    multi_gt: dict[int, list[Any]] = field(default_factory=dict)


def run_bag(estimator: Any, bag: str | Path, depth_topic: str, info_topic: str, gt_topic: str | None = None,
            out_bag: str | Path | None = None, pred_topic: str = "/v2v_pose_node/skeletons", storage: str = "sqlite3",
            static_info: bool = False, min_confidence: float = 0.0, limit: int | None = None,
            progress: bool = True, on_frame: Callable[[int], None] | None = None) -> BagRun:
    """Estimate every paired depth frame of ``bag``; optionally write the predictions bag.

    ``estimator`` is a PoseEstimator or, to evaluate what the node does with
    ``tracking.enabled``, a TrackingEstimator around one (frames are fed in bag order
    with their stamps, exactly as the node sees them).
    """
    if not isinstance(estimator, (TrackingEstimator, MultiTracker)):
        estimator = TrackingEstimator(estimator, TrackingConfig(enabled=False))
    types = topic_types(bag)
    roles = {"depth": depth_topic, "camera_info": info_topic, **({"ground-truth": gt_topic} if gt_topic else {})}
    # Every topic is checked before the predictions bag is created: a typo must not leave a
    # half-written OUT/predictions behind that the next run would refuse to overwrite.
    missing = [f"{role} topic {t!r}" for role, t in roles.items() if t not in types]
    if missing:
        raise KeyError(f"{', '.join(missing)} not in {bag} (topics: {sorted(types)})")
    compressed = types[depth_topic][0] == COMPRESSED_TYPE
    topics = list(roles.values())
    total = types[depth_topic][1]
    if limit is not None:
        total = min(total, limit)
    pairer = StampPairer(capacity=50, static_info=static_info)
    run = BagRun(joint_names=list(getattr(estimator, "joint_names", ()) or ()))
    writer = SkeletonBagWriter(out_bag, pred_topic, storage) if out_bag is not None else None
    bar = None
    if progress:
        from tqdm import tqdm  # noqa: PLC0415

        bar = tqdm(total=total, unit="frame", desc="eval-bag", dynamic_ncols=True)
    t_start = time.perf_counter()
    try:
        for topic, _t, msg in iter_messages(bag, topics):
            if topic == gt_topic:
                joints = skeleton_array_to_mm(msg)
                if joints is not None:
                    run.gt[stamp_ns_of(msg)] = joints
                run.multi_gt[stamp_ns_of(msg)] = list(msg.skeletons)
                continue
            if topic == depth_topic:
                if limit is not None and run.frames_in >= limit:
                    continue
                run.frames_in += 1
                # Every frame read gets a slot: one that is rejected (no camera_info, undecodable,
                # another camera's frame) scores as a failure, as the node's unanswered frames do in
                # the demo, instead of leaving the metrics to the frames that went well.
                run.pred.setdefault(stamp_ns_of(msg), None)
                pairs, rejected = pairer.add_depth(stamp_ns_of(msg), msg.header.frame_id, msg, time.monotonic())
            else:
                pairs, rejected = pairer.add_info(stamp_ns_of(msg), msg.header.frame_id, msg)
            for r in rejected:
                run.rejected[r.reason] += 1
            for p in pairs:
                _process(estimator, p, compressed, run, writer, min_confidence)
                if bar is not None:
                    bar.update(1)
                if on_frame is not None:
                    on_frame(run.frames_out)
        if pairer.pending_depth:  # never paired by the end of the bag
            run.rejected["no_camera_info"] += pairer.pending_depth
    finally:
        if bar is not None:
            bar.close()
        if writer is not None:
            writer.close()
    run.wall_s = time.perf_counter() - t_start
    run.reference = dict(estimator.stats)
    return run


def _process(estimator: Any, pair: Any, compressed: bool, run: BagRun, writer: SkeletonBagWriter | None,
             min_confidence: float) -> None:
    t0 = time.perf_counter()
    msg = pair.depth
    try:
        depth = compressed_msg_to_mm(msg) if compressed else image_msg_to_mm(msg)
        intr = info_msg_to_intrinsics(pair.info, depth.shape)
    except DepthDecodeError as exc:
        run.rejected[exc.reason] += 1
        return
    stamp = pair.stamp_ns
    results = []
    if not np.any(depth > 0):
        run.rejected["all_invalid"] += 1
        run.pred[stamp] = None
    else:
        try:
            if isinstance(estimator, MultiTracker):  # every target, each with its track id
                found = [r for r in estimator.estimate_all(depth, intr, stamp_ns=stamp)
                         if float(np.mean(r.confidence)) >= min_confidence]
                run.multi_pred[stamp] = found
                run.pred[stamp] = np.asarray(found[0].joints, np.float64) if found else None
                results = found
                if run.overlay is None and found:
                    run.overlay = {"stamp": stamp, "depth": depth, "intrinsics": intr}
                run.latency_ms.append((time.perf_counter() - t0) * 1e3)
                run.frames_out += 1
                if writer is not None:
                    writer.write(msg.header, results, ids=[max(r.track_id, 0) for r in results])
                return
            res = estimator.estimate(depth, intr, stamp_ns=stamp)
        except DepthDecodeError as exc:  # wrong units or 8-bit data (core check): counted like the node does
            run.rejected[exc.reason] += 1
            return
        ok = res.valid and float(np.mean(res.confidence)) >= min_confidence
        run.pred[stamp] = np.asarray(res.joints, np.float64) if ok else None
        if ok:
            results.append(res)
        if run.overlay is None and ok:
            run.overlay = {"stamp": stamp, "depth": depth, "intrinsics": intr}
    run.latency_ms.append((time.perf_counter() - t0) * 1e3)
    run.frames_out += 1
    if writer is not None:
        writer.write(msg.header, results)


def score_multi_bag(run: BagRun) -> dict[str, Any]:
    """Multi-target metrics (v2v_ros.evaluate.multi) over the ground-truth frames of a bag.

    Bags carry no visibility, so every ground-truth skeleton counts as in view; ids and
    handedness come from the ground truth's ``id`` and ``handedness`` fields. A frame the
    estimator never answered (rejected) has no predictions: its targets are misses.
    """
    from v2v_ros.evaluate.multi import FrameTargets, score_multi  # noqa: PLC0415

    frames = []
    for stamp in sorted(s for s in run.multi_gt if s in run.pred):
        gts = run.multi_gt[stamp]
        gt = np.stack([np.array([[k.position.x, k.position.y, k.position.z] for k in sk.keypoints]) * 1000.0
                       for sk in gts]) if gts else np.zeros((0, len(run.joint_names) or 21, 3))
        preds = run.multi_pred.get(stamp, [])
        frames.append(FrameTargets(
            gt=gt, visible=np.ones(len(gts)), gt_ids=[int(sk.id) for sk in gts],
            gt_sides=[str(getattr(sk, "handedness", "") or "") for sk in gts],
            pred=np.stack([np.asarray(r.joints, np.float64) for r in preds]) if preds else np.zeros((0, *gt.shape[1:])),
            pred_sides=[r.handedness for r in preds], pred_ids=[r.track_id for r in preds]))
    return score_multi(frames)


def score(pred: dict[int, np.ndarray | None], gt: dict[int, np.ndarray], joint_names: list[str] | None = None
          ) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """Metrics over the ground-truth frames that have a prediction slot (missing/invalid = NaN = failure).

    Returns (report, pred (N, J, 3), gt (N, J, 3)) in stamp order.
    """
    from v2v_ros.evaluate.metrics import evaluate_arrays  # noqa: PLC0415

    stamps = sorted(s for s in gt if s in pred)
    if not stamps:
        return {"frames": 0, "mean_error_mm": None, "success_rate": {}}, np.zeros((0, 0, 3)), np.zeros((0, 0, 3))
    g = np.stack([gt[s] for s in stamps])
    p = np.stack([pred[s] if pred[s] is not None and pred[s].shape == gt[s].shape else np.full_like(gt[s], np.nan)
                  for s in stamps])
    return evaluate_arrays(p, g, joint_names), p, g


def write_outputs(out: Path, run: BagRun, report: dict[str, Any] | None, extra: dict[str, Any],
                  bones: Any = None) -> dict[str, Any]:
    """metrics.json (+ plots and an overlay when scored); returns the JSON written."""
    from v2v_ros.evaluate.metrics import to_jsonable  # noqa: PLC0415

    out.mkdir(parents=True, exist_ok=True)
    lat = np.asarray(run.latency_ms, float)
    summary = {
        "frames_in": run.frames_in,
        "frames_out": run.frames_out,
        "rejected": dict(run.rejected),
        "latency_ms": {"p50": float(np.percentile(lat, 50)) if lat.size else None,
                       "p95": float(np.percentile(lat, 95)) if lat.size else None},
        "throughput_fps": run.frames_out / run.wall_s if run.wall_s > 0 else None,
        **extra,
    }
    if report is not None:
        summary["metrics"] = report
    summary = to_jsonable(summary)
    (out / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
    if report is not None and report.get("frames"):
        write_plots(out, report, run, bones)
    return summary


def write_plots(out: Path, report: dict[str, Any], run: BagRun, bones: Any) -> list[Path]:
    from v2v_ros.evaluate.plots import overlay, plot_per_joint_errors, plot_success_curve  # noqa: PLC0415

    curve = report["success_curve"]
    paths = [plot_success_curve((curve["thresholds_mm"], [r if r is not None else np.nan for r in curve["rates"]]),
                                out / "success_curve.png"),
             plot_per_joint_errors([v if v is not None else np.nan for v in report["per_joint_error_mm"]],
                                   report.get("joint_names"), out / "per_joint_error.png")]
    if run.overlay is not None:
        s = run.overlay["stamp"]
        paths.append(overlay(run.overlay["depth"], run.overlay["intrinsics"], run.pred.get(s), run.gt.get(s),
                             bones or (), out / "overlay.png", title=f"stamp {s}"))
    return paths
