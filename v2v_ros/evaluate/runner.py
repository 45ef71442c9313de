"""Run a pose estimator over labelled frames and score it; optionally write a report folder.

Written against interfaces, not classes, so it works with the real
``v2v_ros.core.estimator.PoseEstimator``, an ensemble of them, or a test double:

* an estimator has ``estimate(depth_mm, intrinsics, reference_point=None)``
  returning an object with ``joints`` (J, 3) mm, ``valid`` and optionally
  ``joint_names``, ``confidence``, ``reference_point`` and ``timings`` (ms);
* a frame has ``joints`` (J, 3) mm, ``intrinsics`` and either ``full_depth()``
  (synthetic shards, dataset readers) or a whole-image ``depth``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from v2v_ros.core.skeletons import is_body_skeleton
from v2v_ros.evaluate.metrics import evaluate_arrays, joint_errors, to_jsonable
from v2v_ros.evaluate.visibility import VISIBILITY_TOLERANCE_MM, joint_visibility, visibility_report


@dataclass
class EvalRun:
    """Raw outcome of running an estimator over frames (input to the metrics and the report)."""

    pred: np.ndarray  # (N, J, 3) mm, NaN rows for invalid results
    gt: np.ndarray  # (N, J, 3) mm
    names: list[str]
    # mean per stage over ALL frames (a stage that ran on some frames only, e.g. the detector
    # under tracking, is amortised), so the stages add up to 'total' as the report's ms/frame says
    timings_ms: dict[str, float]
    wall_ms: float  # mean wall time of one estimate() call
    invalid_reasons: dict[str, int]
    overlays: list[dict[str, Any]]  # kept frames for overlay drawing
    verified_frames: int = 0  # frames whose first candidate centre was doubted and its rivals estimated
    visible: np.ndarray | None = None  # (N, J) bool, ground-truth joints the camera sees (evaluate.visibility)
    published: np.ndarray | None = None  # (N,) bool, the estimator returned a valid result (the node publishes it)
    scenes: list[str] | None = None  # per frame: "hand", or the kind of a hand-free scene (info['scene'])


def frame_image(frame: Any) -> np.ndarray:
    """The whole depth image of a frame (the intrinsics refer to the whole image)."""
    if hasattr(frame, "full_depth"):
        return np.asarray(frame.full_depth(), dtype=np.float32)
    return np.asarray(frame.depth, dtype=np.float32)


def match_joints(joints: np.ndarray, pred_names: Sequence[str] | None, gt_names: Sequence[str] | None,
                 num_gt: int) -> np.ndarray:
    """Bring predicted joints to the ground truth's order and count.

    Same count: taken as is (same layout). Otherwise, by name, when every ground
    truth joint is among the predicted names (e.g. a 36-joint NYU model scored on
    the 14 evaluated joints). Anything else is a model/dataset mismatch.
    """
    joints = np.asarray(joints, dtype=np.float64)
    if joints.shape[0] == num_gt:
        return joints
    if pred_names and gt_names and all(n in pred_names for n in gt_names):
        index = [list(pred_names).index(n) for n in gt_names]
        return joints[index]
    raise ValueError(
        f"the estimator predicts {joints.shape[0]} joints but the dataset has {num_gt}; "
        "use a checkpoint trained on this dataset's layout"
    )


def run_estimator(estimator: Any, frames: Iterable[Any], *, limit: int | None = None,
                  joint_names: Sequence[str] | None = None, centers: np.ndarray | None = None,
                  num_overlays: int = 0, progress: bool = False, visibility_tolerance_mm: float | None = None
                  ) -> EvalRun:
    """Call ``estimator.estimate`` on each frame and collect predictions and ground truth.

    ``centers`` (N, 3) mm, NaN rows allowed, gives the reference point of each
    frame (V2V's refined centres); a NaN row lets the estimator localise itself.
    The first ``num_overlays`` frames are kept for drawing. With
    ``visibility_tolerance_mm`` each ground-truth joint is also marked visible or
    occluded in the frame's depth (``evaluate.visibility``).
    """
    preds: list[np.ndarray] = []
    gts: list[np.ndarray] = []
    names: list[str] = []
    stage_sum: dict[str, float] = {}
    reasons: dict[str, int] = {}
    overlays: list[dict[str, Any]] = []
    wall = 0.0
    verified = 0
    visible: list[np.ndarray] = []
    published: list[bool] = []
    scenes: list[str] = []
    iterator: Iterable[Any] = frames
    if progress:
        from tqdm import tqdm

        total = limit if limit is not None else (len(frames) if hasattr(frames, "__len__") else None)
        iterator = tqdm(frames, total=total, desc="eval", unit="frame")
    for i, frame in enumerate(iterator):
        if limit is not None and i >= limit:
            break
        depth = frame_image(frame)
        gt = np.asarray(frame.joints, dtype=np.float64)
        if visibility_tolerance_mm is not None:
            visible.append(joint_visibility(depth, gt, frame.intrinsics, visibility_tolerance_mm))
        ref = None
        if centers is not None and i < len(centers) and np.isfinite(centers[i]).all():
            ref = np.asarray(centers[i], dtype=np.float64)
        t0 = time.perf_counter()
        if getattr(estimator, "follows_stream", False):  # core.tracking.TrackingEstimator: needs stamps
            result = estimator.estimate(depth, frame.intrinsics, stamp_ns=stream_stamp_ns(i, frame))
        else:
            result = estimator.estimate(depth, frame.intrinsics, reference_point=ref)
        wall += time.perf_counter() - t0
        verified += int(getattr(result, "candidates", 1) > 1)
        published.append(bool(result.valid))
        hand = bool(np.isfinite(gt).all())  # hand-free frames (v2v synth --no-hand-fraction) have NaN joints
        scenes.append("hand" if hand else str((getattr(frame, "info", None) or {}).get("scene", "no_hand")))
        if result.valid:
            pred = match_joints(result.joints, getattr(result, "joint_names", None), joint_names, len(gt))
        else:
            pred = np.full(gt.shape, np.nan)
            reason = str(getattr(result, "reason", "") or "invalid")
            reasons[reason] = reasons.get(reason, 0) + 1
        for k, v in (getattr(result, "timings", None) or {}).items():
            stage_sum[k] = stage_sum.get(k, 0.0) + float(v)
        preds.append(pred)
        gts.append(gt)
        names.append(str(getattr(frame, "name", "") or i))
        if len(overlays) < num_overlays:
            overlays.append({"depth": depth, "intrinsics": frame.intrinsics, "pred": pred, "gt": gt, "name": names[-1]})
    if not preds:
        raise ValueError("no frames to evaluate")
    return EvalRun(
        pred=np.stack(preds), gt=np.stack(gts), names=names,
        timings_ms={k: stage_sum[k] / len(preds) for k in stage_sum},
        wall_ms=1000.0 * wall / len(preds), invalid_reasons=reasons, overlays=overlays, verified_frames=verified,
        visible=np.stack(visible) if visible else None, published=np.asarray(published, bool), scenes=scenes,
    )


# A published skeleton whose mean joint error is below this counts as found on the hand (not on a distractor).
ON_HAND_MM = 50.0


def detection_report(run: EvalRun) -> dict[str, Any]:
    """Hand detection as a manipulation stack sees it: a frame publishes a skeleton or it does not.

    Hand frames are the positives, hand-free frames (NaN joints) the negatives; precision and
    recall count published skeletons. ``on_hand`` is the share of published hand frames whose
    skeleton lies on the hand (mean joint error < ON_HAND_MM), so a skeleton on the cup next to
    the hand does not pass for a detection. Hand-free frames are also split by scene kind.
    """
    assert run.published is not None and run.scenes is not None
    hand = np.array([s == "hand" for s in run.scenes])
    pub = run.published
    tp, fn = int((pub & hand).sum()), int((~pub & hand).sum())
    fp, tn = int((pub & ~hand).sum()), int((~pub & ~hand).sum())
    err = np.nanmean(joint_errors(run.pred[pub & hand], run.gt[pub & hand]), axis=1) if tp else np.zeros(0)
    by_scene: dict[str, dict[str, int]] = {}
    for s, p in zip(run.scenes, pub, strict=True):
        if s != "hand":
            d = by_scene.setdefault(s, {"frames": 0, "published": 0})
            d["frames"] += 1
            d["published"] += int(p)
    return {
        "frames_with_hand": int(hand.sum()), "frames_without_hand": int((~hand).sum()),
        "true_positives": tp, "false_negatives": fn, "false_positives": fp, "true_negatives": tn,
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / (tp + fn) if tp + fn else None,
        "false_positive_rate": fp / (fp + tn) if fp + tn else None,
        "on_hand": float((err < ON_HAND_MM).mean()) if tp else None,
        "on_hand_mm": ON_HAND_MM,
        "hand_free_by_scene": dict(sorted(by_scene.items())),
    }


STREAM_RATE_HZ = 30.0


def stream_stamp_ns(index: int, frame: Any, rate_hz: float = STREAM_RATE_HZ) -> int:
    """Stamp of frame ``index`` played as a camera stream: ``rate_hz`` within a clip of a
    ``v2v synth --sequence`` dataset, and a one-second gap between clips (a new scene:
    a tracker must not carry its target across)."""
    clip = int((getattr(frame, "info", None) or {}).get("clip", 0))
    return int(round(index * 1e9 / rate_hz)) + clip * 1_000_000_000


def frames_skeleton(frames: Any) -> Any:
    """The skeleton preset a frame collection declares (``ShardDataset.skeleton``), or None."""
    from v2v_ros.core.skeletons import SKELETONS  # noqa: PLC0415

    name = getattr(frames, "skeleton", None)
    return SKELETONS.get(name) if isinstance(name, str) else None


def evaluate_estimator(estimator: Any, frames: Iterable[Any], *, spec: Any = None, limit: int | None = None,
                       centers: np.ndarray | None = None, out_dir: str | Path | None = None,
                       num_overlays: int = 4, progress: bool = False, extra: dict[str, Any] | None = None
                       ) -> dict[str, Any]:
    """Score ``estimator`` on ``frames``; returns the metrics dict (see ``metrics.evaluate_arrays``).

    ``spec`` (a ``DatasetSpec``) supplies joint names, bones and whether the
    body metrics (mAP 10 cm) apply. With ``out_dir`` a report folder is written:
    ``metrics.json``, ``success_curve.png``, ``per_joint_error.png``,
    ``overlay_*.png`` and ``predictions.npz`` (pred, gt, names, and ``visible`` when the
    ground-truth visibility was computed).
    """
    joint_names = list(spec.eval_joint_names) if spec is not None else None
    kind = spec.kind if spec is not None else "hand"
    bones = spec.bones if spec is not None else ()
    layout = frames_skeleton(frames)
    if layout is not None and (spec is None or spec.skeleton != layout.name):
        # e.g. `--dataset synthetic` on people written by `v2v synth --body`: the shards say what they hold
        joint_names, bones = list(layout.joint_names), layout.bones
        kind = "body" if is_body_skeleton(layout.name) else "hand"
    run = run_estimator(estimator, frames, limit=limit, joint_names=joint_names, centers=centers,
                        num_overlays=num_overlays if out_dir is not None else 0, progress=progress,
                        visibility_tolerance_mm=VISIBILITY_TOLERANCE_MM.get(kind))
    report = evaluate_arrays(run.pred, run.gt, joint_names=joint_names, kind=kind)
    report["dataset"] = spec.name if spec is not None else None
    fingerprint = getattr(frames, "fingerprint", None)  # shard folders: the content's sha256 (data.shards)
    if fingerprint is not None:
        # what was evaluated, so a number can be traced to its frames (first ``limit`` of them)
        report["data"] = {"fingerprint": fingerprint, "frames": int(len(run.gt)), "limit": limit,
                          "generator_version": frames.meta.get("generator", {}).get("version")
                          if hasattr(frames, "meta") else None}
    report["timings_ms"] = {k: round(v, 3) for k, v in run.timings_ms.items()}
    report["wall_ms_per_frame"] = round(run.wall_ms, 3)
    report["invalid_reasons"] = run.invalid_reasons
    report["verified_frames"] = run.verified_frames
    report["detection"] = detection_report(run)
    if run.visible is not None:
        hand = np.isfinite(run.gt).all(axis=(1, 2))  # hand-free frames have no joints to see
        if hand.any():
            report["visibility"] = to_jsonable(visibility_report(joint_errors(run.pred[hand], run.gt[hand]),
                                                                 run.visible[hand]))
    if extra:
        report.update(extra)
    if out_dir is not None:
        write_report(run, report, out_dir, bones=bones)
        report["report_dir"] = str(out_dir)
    return report


def write_report(run: EvalRun, report: dict[str, Any], out_dir: str | Path,
                 bones: Sequence[tuple[int, int]] = ()) -> Path:
    """Write the report folder of one evaluation run."""
    from v2v_ros.evaluate import plots

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    extra = {} if run.visible is None else {"visible": run.visible}
    np.savez_compressed(out / "predictions.npz", pred=run.pred, gt=run.gt, names=np.asarray(run.names), **extra)
    errors = joint_errors(run.pred, run.gt)
    label = str(report.get("dataset") or "")
    plots.plot_success_curve({label: errors}, out / "success_curve.png")
    plots.plot_per_joint_errors(report["per_joint_error_mm"], report.get("joint_names"), out / "per_joint_error.png")
    if "ap_10cm_per_joint" in report:
        plots.plot_per_joint_errors(report["ap_10cm_per_joint"], report.get("joint_names"), out / "ap_10cm.png",
                                    title="AP (10 cm rule) per joint", unit="AP")
    for k, item in enumerate(run.overlays):
        dist = np.linalg.norm(item["pred"] - item["gt"], axis=-1)
        note = f"mean error {dist.mean():.1f} mm" if np.isfinite(dist).all() else "invalid prediction"
        plots.overlay(item["depth"], item["intrinsics"], item["pred"], item["gt"], bones,
                      out / f"overlay_{k:03d}.png", title=f"{item['name']}  {note}")
    return out
