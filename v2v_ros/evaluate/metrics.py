"""The paper's evaluation metrics (sec. 8.2), pure numpy.

* Hands: mean 3D distance error (mm) over all joints and frames, per-joint
  error, and the success-frame rate: the fraction of frames whose *maximum*
  joint error is <= tau, for tau = 0..80 mm (the curves of paper Fig. 7).
* Bodies: average precision with the 10 cm rule: per joint, the fraction of
  frames where that joint is within 100 mm; mAP is its mean over joints.
  Reported as fractions in [0, 1].

Policy for missing values (so that failing to answer is never rewarded):
* a frame whose *ground truth* has a non-finite value cannot be scored and is
  dropped from every metric (reported as ``skipped_frames``);
* a frame whose *prediction* has any non-finite joint (the estimator returned
  an invalid result) is an invalid frame: it has no distance, so it is left out
  of the mean and per-joint errors, but it counts as a failure at every
  threshold of the success rate and as a miss for every joint in the 10 cm AP.
  ``invalid_frames`` says how many there were.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

SUCCESS_THRESHOLDS_MM = np.arange(0, 81, dtype=np.float64)  # 0, 1, ..., 80 mm
SUCCESS_REPORT_STEP_MM = 10
AP_THRESHOLD_MM = 100.0  # the 10 cm rule

# The rows of the paper's Table 5 (ITOP): each body part averages the AP of its joints (ITOP names).
BODY_PARTS: dict[str, tuple[str, ...]] = {
    "head": ("head",),
    "neck": ("neck",),
    "shoulders": ("r_shoulder", "l_shoulder"),
    "elbows": ("r_elbow", "l_elbow"),
    "hands": ("r_hand", "l_hand"),
    "torso": ("torso",),
    "hips": ("r_hip", "l_hip"),
    "knees": ("r_knee", "l_knee"),
    "feet": ("r_foot", "l_foot"),
}


def joint_errors(pred: Any, gt: Any) -> np.ndarray:
    """Euclidean distance per frame and joint: (N, J, 3) x2 -> (N, J) mm.

    Rows of frames whose prediction is invalid (any non-finite value) are all NaN,
    so the whole frame is treated alike by the metrics below.
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[-1] != 3:
        raise ValueError(f"pred and gt must both be (N, J, 3), got {pred.shape} and {gt.shape}")
    errors = np.linalg.norm(pred - gt, axis=-1)
    errors[~np.isfinite(pred).all(axis=(1, 2))] = np.nan
    return errors


def valid_frames(errors: np.ndarray) -> np.ndarray:
    """(N,) bool: frames that have a distance for every joint."""
    return np.isfinite(np.asarray(errors)).all(axis=1)


def mean_error(errors: np.ndarray) -> float:
    """Mean over all joints of all valid frames (NaN when there is none)."""
    errors = np.asarray(errors, dtype=np.float64)
    ok = valid_frames(errors)
    return float(errors[ok].mean()) if ok.any() else math.nan


def per_joint_error(errors: np.ndarray) -> np.ndarray:
    """(J,) mean error of each joint over the valid frames."""
    errors = np.asarray(errors, dtype=np.float64)
    ok = valid_frames(errors)
    if not ok.any():
        return np.full(errors.shape[1], np.nan)
    return errors[ok].mean(axis=0)


def success_curve(errors: np.ndarray, thresholds: Sequence[float] | np.ndarray = SUCCESS_THRESHOLDS_MM
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(thresholds, rates): fraction of frames whose max joint error <= tau; invalid frames fail."""
    errors = np.asarray(errors, dtype=np.float64)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if errors.shape[0] == 0:
        return thresholds, np.full(thresholds.shape, np.nan)
    worst = np.where(valid_frames(errors), np.max(np.nan_to_num(errors, nan=np.inf), axis=1), np.inf)
    rates = (worst[None, :] <= thresholds[:, None]).mean(axis=1)
    return thresholds, rates


def success_rate_dict(errors: np.ndarray, step: int = SUCCESS_REPORT_STEP_MM, max_mm: int = 80) -> dict[str, float]:
    """The success curve sampled every ``step`` mm: {"0": f, "10": f, ..., "80": f}."""
    taus = np.arange(0, max_mm + 1, step)
    _, rates = success_curve(errors, taus)
    return {str(int(t)): float(r) for t, r in zip(taus, rates, strict=True)}


def ap_per_joint(errors: np.ndarray, threshold: float = AP_THRESHOLD_MM) -> np.ndarray:
    """(J,) fraction of frames where the joint is within ``threshold`` mm; invalid frames are misses."""
    errors = np.asarray(errors, dtype=np.float64)
    if errors.shape[0] == 0:
        return np.full(errors.shape[1], np.nan)
    hit = np.nan_to_num(errors, nan=np.inf) <= threshold
    return hit.mean(axis=0)


def mean_ap(errors: np.ndarray, threshold: float = AP_THRESHOLD_MM) -> float:
    """mAP: the per-joint AP averaged over joints."""
    return float(np.mean(ap_per_joint(errors, threshold)))


def ap_per_part(ap: Sequence[float] | np.ndarray, joint_names: Sequence[str],
                parts: dict[str, tuple[str, ...]] = BODY_PARTS) -> dict[str, float]:
    """Per-joint AP grouped like Table 5: {part: mean AP of its joints, ..., "mean": mAP over all joints}.

    Parts whose joints are not all in ``joint_names`` are left out, so a layout
    other than ITOP's still gets its mean.
    """
    ap = np.asarray(ap, dtype=np.float64)
    if ap.shape != (len(joint_names),):
        raise ValueError(f"{ap.shape[0] if ap.ndim else 0} AP values for {len(joint_names)} joint names")
    index = {n: i for i, n in enumerate(joint_names)}
    out = {part: float(np.mean([ap[index[j]] for j in joints]))
           for part, joints in parts.items() if all(j in index for j in joints)}
    out["mean"] = float(np.mean(ap)) if ap.size else math.nan
    return out


def evaluate_arrays(pred: Any, gt: Any, joint_names: Sequence[str] | None = None, kind: str = "hand"
                    ) -> dict[str, Any]:
    """All metrics of one run as a JSON-ready dict (NaN becomes None).

    Keys: ``frames`` (scored frames, invalid predictions included), ``valid_frames``,
    ``invalid_frames``, ``skipped_frames``, ``mean_error_mm``, ``per_joint_error_mm``,
    ``joint_names``, ``success_rate`` ({"0".."80"} fractions), ``success_curve``
    (every mm); for ``kind='body'`` also ``map_10cm``, ``ap_10cm_per_joint`` and, given the
    joint names, ``ap_10cm_per_part`` (Table 5's rows: head ... feet, and "mean").
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape:
        raise ValueError(f"pred and gt shapes differ: {pred.shape} vs {gt.shape}")
    scorable = np.isfinite(gt).all(axis=(1, 2)) if gt.ndim == 3 else np.zeros(0, bool)
    errors = joint_errors(pred[scorable], gt[scorable])
    ok = valid_frames(errors)
    thresholds, rates = success_curve(errors)
    report: dict[str, Any] = {
        "frames": int(errors.shape[0]),
        "valid_frames": int(ok.sum()),
        "invalid_frames": int((~ok).sum()),
        "skipped_frames": int((~scorable).sum()),
        "mean_error_mm": mean_error(errors),
        "per_joint_error_mm": per_joint_error(errors).tolist(),
        "joint_names": list(joint_names) if joint_names is not None else None,
        "success_rate": success_rate_dict(errors),
        "success_curve": {"thresholds_mm": thresholds.tolist(), "rates": rates.tolist()},
    }
    if kind == "body":
        ap = ap_per_joint(errors)
        report["map_10cm"] = float(np.mean(ap)) if ap.size else math.nan
        report["ap_10cm_per_joint"] = ap.tolist()
        if joint_names is not None and len(joint_names) == ap.size:
            report["ap_10cm_per_part"] = ap_per_part(ap, list(joint_names))
    return to_jsonable(report)


def to_jsonable(value: Any) -> Any:
    """Recursively turn numpy scalars/arrays into Python and NaN/inf into None (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value
