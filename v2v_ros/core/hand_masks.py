"""Which pixels of a depth image belong to another hand, from the hands' poses.

Why: the pose network learnt one hand per cube. When two hands touch, or one is in front of the
other, each hand is posed on an image without the other hand's pixels. The estimator removes the
pixels near the other pose's joints and bones (:func:`v2v_ros.core.estimator.without_hands`);
:func:`without_nearer_hands` instead splits the surface between the two skeletons, which keeps
this hand's fingers where the hands touch and takes the other hand's palm and forearm.
``tools/two_hand_gap.py`` measures both: with the true poses the split is much the better mask,
with the poses the network gives (the ones the estimator has) the two are close, which is why
the estimator keeps its own (docs/multi_target.md, "What limits them"). Millimetres, the camera's
optical frame; ``depth`` in millimetres, 0 where there is no reading.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from v2v_ros.core.camera import Intrinsics, cube_footprint
from v2v_ros.core.skeletons import HAND_MSRA21

# A hand's forearm leaves the wrist away from the middle knuckle; this much of it lies in a cube.
FOREARM_LENGTH_MM = 120.0
# A pixel this close (mm, in 3D) to another hand's skeleton, and nearer to it than to the cube's own
# hand, is that hand's: a palm's half-thickness, a forearm's radius and the poses' error.
NEARER_HAND_MM = 60.0
_MIDDLE_MCP = HAND_MSRA21.index("middle_mcp")
_STEP_MM = 8.0  # spacing of the points along a bone
# Pixels are classified on a grid this fine (mm at the nearest depth; a 40³ cube's voxel is 6.25 mm);
# the other pixels of a grid cell follow it when their depth is within SAMPLE_DEPTH_MM of its own.
SAMPLE_MM = 2.5
SAMPLE_DEPTH_MM = 10.0


def skeleton_points(joints: np.ndarray, step_mm: float = _STEP_MM) -> np.ndarray:
    """(P, 3) points along a hand pose's bones (``HAND_MSRA21.bones``: wrist to each finger's joints)
    and its forearm, mm.

    Joints without an estimate (NaN) are skipped with their bones, so the points are finite.
    """
    j = np.asarray(joints, np.float64)
    pts = [j[np.isfinite(j).all(axis=1)]]
    for a, b in (j[list(bone)] for bone in HAND_MSRA21.bones):
        if not (np.isfinite(a).all() and np.isfinite(b).all()):
            continue
        k = max(int(np.linalg.norm(b - a) // step_mm), 1)
        pts.append(a + (b - a) * (np.arange(1, k) / k)[:, None])
    back = j[0] - j[_MIDDLE_MCP]
    norm = float(np.linalg.norm(back))
    if np.isfinite(norm) and norm > 1e-6:
        pts.append(j[0] + back / norm * np.arange(step_mm, FOREARM_LENGTH_MM + 1e-6, step_mm)[:, None])
    return np.concatenate(pts)


def without_nearer_hands(depth: np.ndarray, intrinsics: Intrinsics, own: np.ndarray | None,
                         others: Sequence[np.ndarray], radius_mm: float = NEARER_HAND_MM,
                         within: tuple[np.ndarray, float] | None = None) -> np.ndarray:
    """A copy of ``depth`` without the pixels of the ``others`` hands as seen from the hand posed ``own``.

    A pixel is another hand's when its 3D point lies within ``radius_mm`` of that hand's skeleton
    (:func:`skeleton_points`: bones and forearm) and nearer to it than to ``own``'s skeleton
    (``own`` None: nearer to no other hand). Why not everything near the other pose: where two
    hands touch, a ball around the other hand's fingers takes this hand's fingers too, and a narrow
    one leaves the other hand's palm surface and forearm. Splitting the surface between the two
    skeletons keeps each hand whole on its side: on validation touching hands with their true poses
    (``python tools/two_hand_gap.py data/dev_two data/dev_two_solo --checkpoint
    models/hand_fast.safetensors --precision int8``) 10.45 mm of error against 12.92 mm for the balls
    and 9.27 mm for the renderer's exact labels; with the network's own poses 14.47 against 15.75 mm.

    ``within`` (centre, size in mm): only pixels whose points lie inside that cube change, the part of
    the image a cube there sees (the rest is left as it is, which costs nothing).
    """
    from scipy.spatial import cKDTree  # noqa: PLC0415 - scipy only where two hands are masked

    out = depth.copy()
    h, w = depth.shape
    own_pts = skeleton_points(own) if own is not None else np.zeros((0, 3))
    own_tree = cKDTree(own_pts) if len(own_pts) else None
    for other in others:
        pts = skeleton_points(other)
        pts = pts[pts[:, 2] > 1.0]
        if not len(pts):
            continue
        other_tree = cKDTree(pts)
        lo, hi = pts.min(axis=0) - radius_mm, pts.max(axis=0) + radius_mm
        if within is not None:
            c, half = np.asarray(within[0], np.float64), within[1] / 2.0
            lo, hi = np.maximum(lo, c - half), np.minimum(hi, c + half)
            if np.any(lo >= hi):
                continue
        u0, v0, u1, v1 = cube_footprint(intrinsics, (lo + hi) / 2, float(np.max(hi - lo)), w, h)
        if u0 >= u1 or v0 >= v1:
            continue
        win = out[v0:v1, u0:u1]
        z_lo, z_hi = max(float(lo[2]), 0.0), float(hi[2])
        # One pixel in s x s decides for the pixels of its block at its depth (within SAMPLE_DEPTH_MM),
        # s pixels spanning about SAMPLE_MM at the nearest depth: a hand near the camera covers 10^5
        # pixels, far finer than a cube's voxels. The others (edges, steps in depth) decide alone.
        s = max(1, int(SAMPLE_MM * abs(intrinsics.fx) / max(z_lo, SAMPLE_MM)))
        sub = win[::s, ::s]
        sampled = (sub > z_lo) & (sub < z_hi)
        taken = np.zeros(sub.shape, bool)
        vv, uu = np.nonzero(sampled)
        taken[vv, uu] = _nearer(other_tree, own_tree, _points(intrinsics, sub[vv, uu], uu * s + u0, vv * s + v0),
                                radius_mm, (lo, hi))
        if s > 1:
            decided = _spread(sampled, s, win.shape) & (np.abs(win - _spread(sub, s, win.shape)) < SAMPLE_DEPTH_MM)
            vv, uu = np.nonzero((win > z_lo) & (win < z_hi) & ~decided)
            alone = _nearer(other_tree, own_tree, _points(intrinsics, win[vv, uu], uu + u0, vv + v0), radius_mm,
                            (lo, hi))
            taken = _spread(taken, s, win.shape) & decided
            taken[vv[alone], uu[alone]] = True
        win[taken] = 0.0
    return out


def _points(intrinsics: Intrinsics, z: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """(N, 3) 3D points, mm, of the pixels (u, v) at depths ``z`` (float64, for the KD-tree queries)."""
    return intrinsics.to_xyz(np.stack((u, v, z), axis=1).astype(np.float64))


def _nearer(other: Any, own: Any, points: np.ndarray, radius_mm: float, box: tuple[np.ndarray, np.ndarray]
            ) -> np.ndarray:
    """(N,) bool: the points inside ``box`` (lo, hi corners), within ``radius_mm`` of the ``other``
    KD-tree's points and nearer to them than to ``own``'s."""
    near = np.all((points > box[0]) & (points < box[1]), axis=1)
    if not near.any():
        return near
    d_other = np.full(len(points), np.inf)
    d_other[near] = other.query(points[near], distance_upper_bound=radius_mm)[0]
    near = d_other < radius_mm
    if own is not None and near.any():
        near[near] = d_other[near] < own.query(points[near], distance_upper_bound=radius_mm)[0]
    return near


def _spread(a: np.ndarray, s: int, shape: tuple[int, ...]) -> np.ndarray:
    """``a`` with each cell repeated over an s x s block, cut to ``shape``."""
    return np.repeat(np.repeat(a, s, axis=0), s, axis=1)[: shape[0], : shape[1]]
