"""Pinhole camera geometry: the one place that converts between pixels+depth and millimetres.

Convention (fixed, other modules and tests rely on it): u, v are 0-based pixel
indices (column, row), d is depth in millimetres along the optical axis, and
x = (u - cx)·z/fx, y = (v - cy)·z/fy, z = d. This is the ROS optical frame
(REP 103: x right, y down, z forward) expressed in millimetres.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from v2v_ros.core.arrays import array_module


@dataclass(frozen=True)
class Intrinsics:
    """Focal lengths and principal point of a pinhole camera, in pixels.

    A negative focal length is allowed (NYU's ground truth uses fy < 0 to flip the
    image y axis); zero, NaN and infinite values are rejected because they make the
    projection undefined.
    """

    fx: float
    fy: float
    cx: float
    cy: float

    def __post_init__(self) -> None:
        for name in ("fx", "fy", "cx", "cy"):
            value = getattr(self, name)
            if not isinstance(value, (int, float, np.floating, np.integer)) or not math.isfinite(value):
                raise ValueError(f"Intrinsics.{name} must be a finite number, got {value!r}")
        for name in ("fx", "fy"):
            if getattr(self, name) == 0:
                raise ValueError(f"Intrinsics.{name} must be non-zero, got {getattr(self, name)!r}")
        object.__setattr__(self, "fx", float(self.fx))
        object.__setattr__(self, "fy", float(self.fy))
        object.__setattr__(self, "cx", float(self.cx))
        object.__setattr__(self, "cy", float(self.cy))

    @classmethod
    def from_k(cls, k: Sequence[float]) -> "Intrinsics":
        """Build from the 9 row-major numbers of ``sensor_msgs/CameraInfo.k``.

        Only real cameras are accepted: focal lengths must be positive here
        (a ROS camera never reports a flipped axis through K).
        """
        values = np.asarray(k, dtype=np.float64).ravel()
        if values.size != 9:
            raise ValueError(f"CameraInfo.k must have 9 elements, got {values.size}")
        if not np.all(np.isfinite(values)):
            raise ValueError(f"CameraInfo.k must be finite, got {values.tolist()}")
        fx, fy, cx, cy = values[0], values[4], values[2], values[5]
        if fx <= 0 or fy <= 0:
            raise ValueError(f"CameraInfo.k focal lengths must be positive, got fx={fx}, fy={fy}")
        return cls(fx=float(fx), fy=float(fy), cx=float(cx), cy=float(cy))

    def to_k(self) -> list[float]:
        """The 9 numbers of a CameraInfo.k matrix (row-major 3×3)."""
        return [self.fx, 0.0, self.cx, 0.0, self.fy, self.cy, 0.0, 0.0, 1.0]

    def to_xyz(self, uvd: Any) -> Any:
        """Pixels (u, v) and depth d (mm), shape (..., 3) -> camera points (..., 3) mm."""
        xp = array_module(uvd)
        uvd = xp.asarray(uvd)
        u, v, d = uvd[..., 0], uvd[..., 1], uvd[..., 2]
        return xp.stack(((u - self.cx) * d / self.fx, (v - self.cy) * d / self.fy, d), axis=-1)

    def to_uvd(self, xyz: Any) -> Any:
        """Camera points (..., 3) mm -> pixels and depth (..., 3). z must be non-zero."""
        xp = array_module(xyz)
        xyz = xp.asarray(xyz)
        x, y, z = xyz[..., 0], xyz[..., 1], xyz[..., 2]
        return xp.stack((x * self.fx / z + self.cx, y * self.fy / z + self.cy, z), axis=-1)

    def backproject(
        self, depth_mm: Any, offset: tuple[int, int] = (0, 0), z_range: tuple[float, float] | None = None
    ) -> Any:
        """Valid pixels of a depth image (mm) -> (N, 3) float32 points in mm.

        Pixels that are 0, negative, NaN or infinite are invalid and skipped.
        ``offset`` = (u0, v0) is the position of ``depth_mm[0, 0]`` in the full
        image, so a crop can be back-projected without copying the whole frame.
        ``z_range`` = (near, far) keeps only depths in [near, far): a voxeliser needs
        only its cube's slab, and filtering before the arithmetic is the cheap place.
        """
        xp = array_module(depth_mm)
        depth = xp.asarray(depth_mm)
        if depth.ndim != 2:
            raise ValueError(f"depth must be a 2-D (H, W) array, got shape {tuple(depth.shape)}")
        depth = depth.astype(xp.float32, copy=False)
        if z_range is not None and math.isfinite(z_range[0]) and math.isfinite(z_range[1]):
            # Finite bounds already reject NaN and ±inf (every comparison with NaN is false).
            valid = (depth >= max(float(z_range[0]), _TINY)) & (depth < z_range[1])
        else:
            valid = xp.isfinite(depth) & (depth > 0)
            if z_range is not None:
                valid &= (depth >= z_range[0]) & (depth < z_range[1])
        v, u = xp.nonzero(valid)
        z = depth[v, u]
        x = (u.astype(xp.float32) + (offset[0] - self.cx)) * (z / self.fx)
        y = (v.astype(xp.float32) + (offset[1] - self.cy)) * (z / self.fy)
        return xp.stack((x, y, z), axis=1)

    def scaled(self, factor: float) -> "Intrinsics":
        """Intrinsics of the image resized by ``factor`` (pixel centres at integer indices)."""
        return Intrinsics(self.fx * factor, self.fy * factor, self.cx * factor, self.cy * factor)


_TINY = float(np.nextafter(np.float32(0), np.float32(1)))  # smallest positive depth: 0 means invalid


def cube_footprint(intr: Intrinsics, center: np.ndarray, cube: float, width: int, height: int) -> tuple[int, int, int, int]:
    """Pixel box (u0, v0, u1, v1), end-exclusive and clipped to the image, that sees the whole cube.

    The 8 corners of the axis-aligned cube are projected (corners behind the camera
    are clamped to 1 mm depth, i.e. to the image border). Plain Python floats, not NumPy:
    it runs on every frame between forwards, where each small NumPy call costs several
    times its idle time (0.20 ms measured for the array version after a forward, docs/performance.md).
    """
    half = 0.5 * float(cube)
    x, y, z = (float(c) for c in np.asarray(center, dtype=np.float64).reshape(3))
    zs = (max(z - half, 1.0), max(z + half, 1.0))
    us = [(x + sx) * intr.fx / zc + intr.cx for sx in (-half, half) for zc in zs]
    vs = [(y + sy) * intr.fy / zc + intr.cy for sy in (-half, half) for zc in zs]
    u0 = min(max(math.floor(min(us)), 0), width)
    u1 = min(max(math.ceil(max(us)) + 1, 0), width)
    v0 = min(max(math.floor(min(vs)), 0), height)
    v1 = min(max(math.ceil(max(vs)) + 1, 0), height)
    return u0, v0, u1, v1
