"""Which ground-truth joints the depth camera actually sees, and the errors split by it.

The success-frame rate scores each frame's *worst* joint, and the worst joint of a
depth frame is very often one the camera cannot see (a fingertip behind the palm, a
foot behind the legs from above): its position is a guess from the rest of the
pose. Splitting the errors by visibility says how much of a missed target is the
network and how much is the view, which the model cards need to say what limits them.

A joint counts as visible when it projects into the image and the surface seen at its
pixel (median of the valid depths in a 3×3 window) lies no more than ``tolerance``
in front of it. Joints sit inside the limb, so the tolerance is the limb's depth
behind its own surface plus sensor noise: ``VISIBILITY_TOLERANCE_MM`` per target kind.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from v2v_ros.evaluate.metrics import valid_frames

# A finger is ~15-20 mm thick (joint ~10 mm behind the surface) + noise; a body's joints
# (hips, torso) lie up to ~120 mm behind the skin.
VISIBILITY_TOLERANCE_MM: dict[str, float] = {"hand": 25.0, "body": 150.0}


def joint_visibility(depth_mm: np.ndarray, joints_mm: np.ndarray, intrinsics: Any, tolerance_mm: float) -> np.ndarray:
    """(J,) bool: joints whose pixel shows a surface at most ``tolerance_mm`` in front of them.

    ``depth_mm`` is the whole image the ``intrinsics`` refer to (0 = invalid). A joint
    off the image, behind the camera, or on a pixel with no valid depth around it is
    not visible (nothing shows it).
    """
    depth = np.asarray(depth_mm, dtype=np.float32)
    joints = np.asarray(joints_mm, dtype=np.float64)
    h, w = depth.shape
    vis = np.zeros(len(joints), dtype=bool)
    ahead = np.isfinite(joints).all(axis=1) & (joints[:, 2] > 0)
    if not ahead.any():
        return vis
    uvd = np.asarray(intrinsics.to_uvd(joints[ahead]))
    for k, (u, v, z) in zip(np.flatnonzero(ahead), uvd, strict=True):
        iu, iv = int(math.floor(u + 0.5)), int(math.floor(v + 0.5))
        if not (0 <= iu < w and 0 <= iv < h):
            continue
        window = depth[max(0, iv - 1) : iv + 2, max(0, iu - 1) : iu + 2]
        seen = window[np.isfinite(window) & (window > 0)]
        vis[k] = seen.size > 0 and float(np.median(seen)) >= z - tolerance_mm
    return vis


def visibility_report(errors: np.ndarray, visible: np.ndarray, thresholds_mm: tuple[int, ...] = (10, 20, 40, 80)
                      ) -> dict[str, Any]:
    """Errors of visible vs occluded joints and the success rate scored on visible joints only.

    ``errors`` (N, J) mm with NaN rows for invalid predictions (they fail every
    threshold, as in ``metrics.success_curve``); ``visible`` (N, J) bool.
    """
    errors = np.asarray(errors, dtype=np.float64)
    visible = np.asarray(visible, dtype=bool)
    if errors.shape != visible.shape:
        raise ValueError(f"errors {errors.shape} and visibility {visible.shape} differ")
    ok = valid_frames(errors)
    e, v = errors[ok], visible[ok]

    def mean_of(mask: np.ndarray) -> float:
        return float(e[mask].mean()) if mask.any() else math.nan

    # Invalid frames (NaN rows) fail every threshold; valid ones are scored on their visible joints.
    worst_visible = np.where(ok, np.where(visible, errors, 0.0).max(axis=1), np.inf)
    worst_joint = e.argmax(axis=1)  # e holds valid frames only: no NaN
    return {
        "visible_fraction": float(visible.mean()) if visible.size else math.nan,
        "per_joint_visible_fraction": visible.mean(axis=0).tolist() if visible.size else [],
        "frames_all_visible": float(visible.all(axis=1).mean()) if visible.size else math.nan,
        "mean_error_visible_mm": mean_of(v),
        "mean_error_occluded_mm": mean_of(~v),
        "worst_joint_occluded_fraction": float((~v[np.arange(len(e)), worst_joint]).mean()) if e.size else math.nan,
        "success_rate_visible_joints": {str(t): float((worst_visible <= t).mean()) for t in thresholds_mm},
    }
