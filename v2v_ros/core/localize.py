"""Initial localisation of the target from depth alone (paper sec. 4, before refinement).

The hand is taken to be the nearest object: pixels within ``depth_band_mm`` behind
the nearest valid depth are back-projected and their centre of mass is refined by
a few mean-shift steps restricted to the cube. This is the classic baseline the
refinement CNN improves on (paper Table 2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from v2v_ros.core.camera import Intrinsics


@dataclass(frozen=True)
class Localizer:
    """Nearest-object depth band + centre of mass, in mm."""

    cube_size: float = 200.0
    depth_band_mm: float = 150.0
    min_depth_mm: float = 100.0
    max_depth_mm: float = 3000.0
    iterations: int = 3
    min_points: int = 30
    step: int = 2  # subsampling of the image; CoM needs far fewer pixels than the frame has

    def __post_init__(self) -> None:
        if not self.depth_band_mm > 0:
            raise ValueError(f"depth_band_mm must be positive, got {self.depth_band_mm}")
        if not 0 <= self.min_depth_mm < self.max_depth_mm:
            raise ValueError(f"need 0 <= min_depth_mm < max_depth_mm, got {self.min_depth_mm}, {self.max_depth_mm}")
        if self.step < 1:
            raise ValueError(f"step must be >= 1, got {self.step}")

    def locate(self, depth_mm: np.ndarray, intrinsics: Intrinsics) -> np.ndarray | None:
        """Centre (3,) mm of the nearest object, or None when there is none."""
        s = self.step
        sub = depth_mm[::s, ::s]
        valid = (sub > self.min_depth_mm) & (sub < self.max_depth_mm)
        d = sub[valid]
        if d.size < self.min_points:
            return None
        # The k-th nearest pixel rather than the minimum: a few flying pixels must not win.
        k = min(d.size - 1, 10 + d.size // 2000)
        near = float(np.partition(d, k)[k])
        band = valid & (sub <= near + self.depth_band_mm)
        v, u = np.nonzero(band)
        z = sub[v, u].astype(np.float64)
        pts = np.stack(((u * s - intrinsics.cx) * z / intrinsics.fx, (v * s - intrinsics.cy) * z / intrinsics.fy, z), 1)
        if pts.shape[0] < self.min_points:
            return None
        center = pts.mean(axis=0)
        half = self.cube_size / 2.0
        for _ in range(self.iterations):
            inside = np.all(np.abs(pts - center) < half, axis=1)
            if inside.sum() < self.min_points:
                break
            center = pts[inside].mean(axis=0)
        return center
