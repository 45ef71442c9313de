"""Training samples: depth frame -> augmented occupancy grid and Gaussian heatmap targets.

Augmentation (paper sec. 7) is one similarity transform applied identically to the
back-projected points and to the joints before voxelisation: rotation about the
camera z axis through the cube centre, isotropic scaling about it, and a
translation of whole voxels' worth of millimetres.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from v2v_ros.core.camera import Intrinsics, cube_footprint
from v2v_ros.core.voxel import INPUT_CHANNELS, OTHER_TARGETS_CHANNEL, VoxelGrid


@dataclass(frozen=True)
class Augmentation:
    rotation_deg: float = 40.0
    scale_range: tuple[float, float] = (0.8, 1.2)
    translation_voxels: float = 8.0

    def sample(self, rng: np.random.Generator, voxel_size: float) -> tuple[np.ndarray, np.ndarray]:
        """A random (3×3 linear part, translation mm) pair."""
        theta = math.radians(rng.uniform(-self.rotation_deg, self.rotation_deg))
        s = rng.uniform(*self.scale_range)
        c, si = math.cos(theta), math.sin(theta)
        a = s * np.array([[c, -si, 0.0], [si, c, 0.0], [0.0, 0.0, 1.0]])
        t = rng.uniform(-self.translation_voxels, self.translation_voxels, 3) * voxel_size
        return a, t


NO_AUGMENTATION = Augmentation(0.0, (1.0, 1.0), 0.0)


def make_sample(
    depth: np.ndarray,
    offset: tuple[int, int],
    intrinsics: Intrinsics,
    joints: np.ndarray,
    grid: VoxelGrid,
    rng: np.random.Generator,
    aug: Augmentation = NO_AUGMENTATION,
    sigma: float = 1.7,
    center: np.ndarray | None = None,
    center_jitter_mm: float = 0.0,
    channels: int = 1,
    removed: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(voxels (C, N, N, N), heatmaps (J, N/2, N/2, N/2)) float32 for one frame.

    ``depth`` may be a crop whose top-left pixel is ``offset`` in the full image. With
    ``channels=2``, ``removed`` (same shape as ``depth``, or None for nothing removed) holds the
    depths a mask took out of ``depth`` as another target's; they go, under the same augmentation,
    into channel :data:`~v2v_ros.core.voxel.OTHER_TARGETS_CHANNEL` as at run time.
    """
    if channels not in INPUT_CHANNELS:
        raise ValueError(f"channels must be one of {INPUT_CHANNELS}, got {channels!r}")
    if removed is not None and channels == 1:
        raise ValueError("removed points need a second input channel (channels=2)")
    if center is None:
        center = joints.mean(axis=0)
    center = np.asarray(center, dtype=np.float64)
    if center_jitter_mm > 0:
        center = center + rng.normal(0.0, center_jitter_mm, 3)
    a, t = aug.sample(rng, grid.voxel_size)
    # Only pixels that can land in the cube matter: crop before back-projection. A point
    # p lands in it iff a (p - c) + t does, so |p - c|_i <= sum_j |a^-1_ij| (half + |t_j|):
    # the inverse rotation reaches sqrt(2) x further along x/y at the cube's corners
    # than the cube itself, which a bound using the scale alone would cut off.
    half = 0.5 * grid.cube_size
    reach = 2.0 * float((np.abs(np.linalg.inv(a)) @ (half + np.abs(t))).max()) + 1.0
    h, w = depth.shape
    u0, v0, u1, v1 = cube_footprint(intrinsics, center, reach, offset[0] + w, offset[1] + h)
    u0, v0 = max(u0 - offset[0], 0), max(v0 - offset[1], 0)
    u1, v1 = max(u1 - offset[0], 0), max(v1 - offset[1], 0)

    def voxelized(image: np.ndarray) -> np.ndarray:
        pts = intrinsics.backproject(image[v0:v1, u0:u1], offset=(offset[0] + u0, offset[1] + v0)).astype(np.float64)
        return grid.voxelize(((pts - center) @ a.T + center + t).astype(np.float32), center)

    vox = np.zeros((channels, grid.size, grid.size, grid.size), np.float32)
    vox[0] = voxelized(depth)
    if removed is not None:
        vox[OTHER_TARGETS_CHANNEL] = voxelized(removed)
    jts = (np.asarray(joints, dtype=np.float64) - center) @ a.T + center + t
    hm = grid.heatmaps(jts, center, sigma)
    return vox, hm
