"""Scoring several targets per frame: minimum-cost matching, detection, error, identity and handedness.

Why a separate scorer: with two hands in view, "the" prediction of a frame does not
exist. Each frame's predictions are matched to its ground-truth targets by minimum total
mean-joint distance (Hungarian assignment, ``scipy.optimize.linear_sum_assignment``).
An assigned pair is a match when the prediction is on that target: its mean joint
distance is at most ``match_mm``, or its joint mean (the skeleton's centre) lies within
``locate_mm`` of the target's. A skeleton on the cup next to a hand is no match; a badly
wrong pose of the hand itself is (it is a bad pose, not a skeleton where there is no
hand: counting it as a false target would claim a second skeleton that was never
published). Then:

* detection: a ground-truth hand at least ``min_visible`` visible (share of its surface
  the camera sees, ``info['targets'][k]['visible']``) must be matched (recall); a
  prediction matched to nothing is a false target (precision, and the share of frames
  with one). A prediction on a mostly hidden hand is neither: it may or may not be found.
* accuracy: mean joint error over matched targets (all, and the visible ones), and the
  share of matched poses within ``match_mm`` (with their own mean error);
* handedness: share of matched targets whose predicted side is the true one;
* identity (streams): a ground-truth target whose matched prediction carries a different
  track id than at its previous match in the same clip is an identity switch (CLEAR-MOT),
  reported per 100 frames.

Pure NumPy + SciPy; the estimator interface is ``estimate_all(depth, intrinsics)`` (or,
for a tracker, ``estimate_all(depth, intrinsics, stamp_ns=...)``) returning results with
``joints``, ``valid`` and optionally ``handedness`` and ``track_id``.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

MATCH_MM = 50.0  # a prediction within this mean joint distance of a target can be that target's
LOCATE_MM = 60.0  # ... and so can one whose joint mean is this close to the target's (a hand's half width)
MIN_VISIBLE = 0.5  # hands at least this visible must be found (the targets' "in view")


def pairwise_mean_error(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(P, J, 3) x (G, J, 3) -> (P, G) mean joint distance (mm); NaN joints are left out of the mean."""
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    if len(pred) == 0 or len(gt) == 0:
        return np.zeros((len(pred), len(gt)))
    d = np.linalg.norm(pred[:, None] - gt[None], axis=-1)  # (P, G, J)
    finite = np.isfinite(d)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(finite, d, 0.0).sum(axis=-1) / finite.sum(axis=-1)
    return np.where(np.isfinite(out), out, np.inf)


def match_targets(pred: np.ndarray, gt: np.ndarray, match_mm: float = MATCH_MM, locate_mm: float | None = None
                  ) -> list[tuple[int, int, float]]:
    """Minimum-cost one-to-one matching of predictions to targets: (pred index, target index, mean error mm).

    The assignment minimises the total mean joint distance over all pairs, so two hands
    close together are not both given to the nearer prediction. Assigned pairs whose mean
    joint distance exceeds ``match_mm`` are then dropped (no match) unless ``locate_mm`` is
    given and the prediction's joint mean lies within it of the target's: a wrong pose
    placed on the right hand is still that hand's.
    """
    if len(pred) == 0 or len(gt) == 0:
        return []
    cost = pairwise_mean_error(pred, gt)
    big = 1e9
    rows, cols = linear_sum_assignment(np.where(np.isfinite(cost), cost, big))
    near = np.zeros_like(cost, dtype=bool)
    if locate_mm is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN skeleton has no centre: no match
            pc = np.nanmean(np.asarray(pred, np.float64), axis=1)
            gc = np.nanmean(np.asarray(gt, np.float64), axis=1)
        d = np.linalg.norm(pc[:, None] - gc[None], axis=-1)
        near = np.isfinite(d) & (d <= locate_mm)
    return [(int(r), int(c), float(cost[r, c])) for r, c in zip(rows, cols, strict=True)
            if cost[r, c] <= match_mm or near[r, c]]


@dataclass
class FrameTargets:
    """Ground truth and predictions of one frame, as the scorer needs them."""

    gt: np.ndarray  # (G, J, 3) mm
    visible: np.ndarray  # (G,) fraction in [0, 1]
    gt_ids: list[int]  # identity of each target within its clip
    gt_sides: list[str]
    pred: np.ndarray  # (P, J, 3) mm (valid predictions only)
    pred_sides: list[str]  # "" when the estimator did not say
    pred_ids: list[int]  # -1 when there is no tracker
    clip: int = 0
    arrangement: str = ""
    pred_scores: list[float] = field(default_factory=list)  # mean joint confidence of each prediction


@dataclass
class MultiRun:
    frames: list[FrameTargets] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    wall_ms: float = 0.0


def frame_targets_of(frame: Any) -> tuple[np.ndarray, np.ndarray, list[int], list[str]]:
    """(joints (G, J, 3), visible (G,), ids, sides) of a frame; single-target frames count their joints as one."""
    info = getattr(frame, "info", None) or {}
    targets = getattr(frame, "targets", None)
    if targets is None:
        j = np.asarray(frame.joints, np.float64)[None]
        targets = j if np.isfinite(j).all() else j[:0]
        side = info.get("handedness")
        described = [{"id": 0, "visible": 1.0, "handedness": side or ""}] * len(targets)
    else:
        targets = np.asarray(targets, np.float64)
        described = list(info.get("targets") or [{} for _ in range(len(targets))])
    return (targets, np.array([float(d.get("visible", 1.0)) for d in described]),
            [int(d.get("id", k)) for k, d in enumerate(described)], [str(d.get("handedness") or "") for d in described])


def run_multi(estimator: Any, frames: Iterable[Any], *, limit: int | None = None, progress: bool = False) -> MultiRun:
    """Call ``estimator.estimate_all`` on each frame (with stream stamps for a tracker) and keep what scoring needs."""
    from v2v_ros.evaluate.runner import frame_image, stream_stamp_ns  # noqa: PLC0415

    run = MultiRun()
    stage: dict[str, float] = {}
    wall = 0.0
    iterator: Iterable[Any] = frames
    if progress:
        from tqdm import tqdm  # noqa: PLC0415

        iterator = tqdm(frames, total=limit if limit is not None else None, desc="eval", unit="frame")
    for i, frame in enumerate(iterator):
        if limit is not None and i >= limit:
            break
        depth = frame_image(frame)
        t0 = time.perf_counter()
        if getattr(estimator, "follows_stream", False):
            results = estimator.estimate_all(depth, frame.intrinsics, stamp_ns=stream_stamp_ns(i, frame))
        else:
            results = estimator.estimate_all(depth, frame.intrinsics)
        wall += time.perf_counter() - t0
        seen: set[int] = set()
        for r in results:  # the results of one frame share one timings dict: count it once
            t = getattr(r, "timings", None) or {}
            if id(t) not in seen:
                seen.add(id(t))
                for k, v in t.items():
                    stage[k] = stage.get(k, 0.0) + float(v)
        valid = [r for r in results if r.valid]
        gt, visible, ids, sides = frame_targets_of(frame)
        info = getattr(frame, "info", None) or {}
        run.frames.append(FrameTargets(
            gt=gt, visible=visible, gt_ids=ids, gt_sides=sides,
            pred=np.stack([np.asarray(r.joints, np.float64) for r in valid]) if valid else np.zeros((0, *gt.shape[1:])),
            pred_sides=[str(getattr(r, "handedness", "") or "") for r in valid],
            pred_ids=[int(getattr(r, "track_id", -1)) for r in valid],
            clip=int(info.get("clip", 0)), arrangement=str(info.get("arrangement", "")),
            pred_scores=[float(r.score) for r in valid],
        ))
    if not run.frames:
        raise ValueError("no frames to evaluate")
    n = len(run.frames)
    run.timings_ms = {k: v / n for k, v in stage.items()}
    run.wall_ms = 1000.0 * wall / n
    return run


def score_multi(frames: Sequence[FrameTargets], match_mm: float = MATCH_MM, min_visible: float = MIN_VISIBLE,
                locate_mm: float | None = LOCATE_MM) -> dict[str, Any]:
    """The multi-target report (see the module docstring) of scored frames."""
    tp = fn = fp = 0
    both_frames = both_found = false_frames = 0
    errors: list[float] = []
    errors_visible: list[float] = []
    side_ok = side_n = 0
    switches = 0
    last_id: dict[tuple[int, int], int] = {}
    tracked = any(pid >= 0 for f in frames for pid in f.pred_ids)
    by_arrangement: dict[str, dict[str, int]] = {}
    for f in frames:
        pairs = match_targets(f.pred, f.gt, match_mm, locate_mm)
        matched_gt = {g for _, g, _ in pairs}
        matched_pred = {p for p, _, _ in pairs}
        must = [g for g in range(len(f.gt)) if f.visible[g] >= min_visible]
        hit = [g for g in must if g in matched_gt]
        tp += len(hit)
        fn += len(must) - len(hit)
        false = len(f.pred) - len(matched_pred)
        fp += false
        false_frames += int(false > 0)
        if len(must) >= 2 and len(must) == len(f.gt):
            both_frames += 1
            both_found += int(len(hit) == len(must))
        arr = by_arrangement.setdefault(f.arrangement or "-", {"frames": 0, "targets": 0, "found": 0, "false": 0,
                                                               "matched": 0, "error_sum_mm": 0.0})
        arr["frames"] += 1
        arr["targets"] += len(must)
        arr["found"] += len(hit)
        arr["false"] += false
        arr["matched"] += len(pairs)
        arr["error_sum_mm"] += sum(e for _, _, e in pairs)
        for p, g, err in pairs:
            errors.append(err)
            if f.visible[g] >= min_visible:
                errors_visible.append(err)
            if f.pred_sides[p] and f.gt_sides[g]:
                side_n += 1
                side_ok += int(f.pred_sides[p] == f.gt_sides[g])
            pid = f.pred_ids[p]
            if pid >= 0:
                key = (f.clip, f.gt_ids[g])
                if key in last_id and last_id[key] != pid:
                    switches += 1
                last_id[key] = pid
    for arr in by_arrangement.values():  # mean error of the matched targets of each kind of scene
        total = arr.pop("error_sum_mm")
        arr["mean_error_mm"] = total / arr["matched"] if arr["matched"] else None
    n = len(frames)
    close = [e for e in errors if e <= match_mm]
    return {
        "frames": n,
        "targets_in_view": tp + fn, "found": tp, "missed": fn, "false_targets": fp,
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / (tp + fn) if tp + fn else None,
        "frames_with_all_hands_in_view": both_frames,  # >= 2 targets, all at least min_visible
        "all_hands_found_rate": both_found / both_frames if both_frames else None,
        "false_target_frame_rate": false_frames / n if n else None,
        "matched": len(errors),
        "mean_error_mm": float(np.mean(errors)) if errors else None,
        "mean_error_visible_mm": float(np.mean(errors_visible)) if errors_visible else None,
        "within_match": len(close),  # matched poses within match_mm of their target
        "within_match_rate": len(close) / len(errors) if errors else None,
        "mean_error_within_match_mm": float(np.mean(close)) if close else None,
        "handedness_accuracy": side_ok / side_n if side_n else None,
        "handedness_scored": side_n,
        "id_switches": switches if tracked else None,
        "id_switches_per_100_frames": 100.0 * switches / n if tracked and n else None,
        "by_arrangement": dict(sorted(by_arrangement.items())),
        "match_mm": match_mm, "locate_mm": locate_mm, "min_visible": min_visible,
    }


def evaluate_multi(estimator: Any, frames: Any, *, limit: int | None = None, progress: bool = False,
                   match_mm: float = MATCH_MM, min_visible: float = MIN_VISIBLE, locate_mm: float | None = LOCATE_MM,
                   extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run and score ``estimator`` on multi-target ``frames``; the dict ``v2v eval --json`` prints."""
    run = run_multi(estimator, frames, limit=limit, progress=progress)
    report: dict[str, Any] = {"multi_target": score_multi(run.frames, match_mm, min_visible, locate_mm)}
    fingerprint = getattr(frames, "fingerprint", None)
    if fingerprint is not None:
        report["data"] = {"fingerprint": fingerprint, "frames": len(run.frames), "limit": limit,
                          "generator": (getattr(frames, "meta", {}) or {}).get("generator", {}).get("name")}
    report["timings_ms"] = {k: round(v, 3) for k, v in run.timings_ms.items()}
    report["wall_ms_per_frame"] = round(run.wall_ms, 3)
    if extra:
        report.update(extra)
    return report


def format_multi(report: dict[str, Any]) -> str:
    """Human-readable lines of a multi-target report."""
    m = report["multi_target"]

    def pct(v: Any) -> str:
        return "n/a" if v is None else f"{100.0 * v:.2f} %"

    def mm(v: Any) -> str:
        return "n/a" if v is None else f"{v:.2f} mm"

    lines = [
        f"frames: {m['frames']}   targets in view (>= {m['min_visible']:.0%} visible): {m['targets_in_view']}",
        f"detection: precision {pct(m['precision'])}, recall {pct(m['recall'])} ({m['false_targets']} false targets)",
        f"all targets found (frames with >= 2 targets, all in view): {pct(m['all_hands_found_rate'])} "
        f"of {m['frames_with_all_hands_in_view']}",
        f"frames with a false target: {pct(m['false_target_frame_rate'])}",
        f"mean error over {m['matched']} matched targets: {mm(m['mean_error_mm'])} "
        f"(visible ones: {mm(m['mean_error_visible_mm'])}); within {m['match_mm']:g} mm: "
        f"{pct(m.get('within_match_rate'))}, their mean {mm(m.get('mean_error_within_match_mm'))}",
        f"handedness accuracy: {pct(m['handedness_accuracy'])} of {m['handedness_scored']}",
    ]
    if m["id_switches"] is not None:
        lines.append(f"identity switches: {m['id_switches']} ({m['id_switches_per_100_frames']:.2f} per 100 frames)")
    lines.append("by arrangement: " + ", ".join(f"{k} {v['found']}/{v['targets']} found, {v['false']} false"
                                                for k, v in m["by_arrangement"].items()))
    if report.get("timings_ms"):
        lines.append("timings (ms/frame): " + ", ".join(f"{k} {v:.2f}" for k, v in report["timings_ms"].items()))
    lines.append(f"wall time per frame: {report['wall_ms_per_frame']:.2f} ms")
    return "\n".join(lines)
