"""int8 calibration volumes rendered from the synthetic hands and people.

The inference core (``v2v_ros.core.inference``) quantises a network on whatever
volumes its caller gives it and never imports data code; the command-line tools and
the node pass :func:`synthetic_calibration_source` so that ``precision: int8`` works
without a dataset on disk. Another source (frames of the user's own camera) is any
callable with the same signature.
"""

from __future__ import annotations

import numpy as np

from v2v_ros.core.camera import cube_footprint
from v2v_ros.core.skeletons import is_body_skeleton
from v2v_ros.core.voxel import VoxelGrid


def synthetic_calibration(grid_size: int, cube_size: float = 200.0, count: int = 8, seed: int = 7,
                          body: bool = False) -> np.ndarray:
    """(count, 1, N, N, N) occupancy volumes of synthetic hands (or people, ``body``) for int8 calibration.

    Rendered on the fly (a few ms per frame), so quantising needs no dataset on disk;
    the volumes go through the same crop/voxelisation as inference. The calibration
    must look like what the model sees: a body model calibrated on hands in its 2 m
    cube would get activation ranges from a few occupied voxels.
    """
    if body:
        from v2v_ros.data.synthetic.body import render_body_frame as render  # noqa: PLC0415
    else:
        from v2v_ros.data.synthetic import render_frame as render  # noqa: PLC0415

    grid = VoxelGrid(cube_size, grid_size)
    out = np.zeros((count, 1, grid_size, grid_size, grid_size), np.float32)
    for i in range(count):
        f = render(seed, i)
        depth, intr = f.full_depth(), f.intrinsics
        c = f.joints.mean(axis=0)
        u0, v0, u1, v1 = cube_footprint(intr, c, cube_size, depth.shape[1], depth.shape[0])
        grid.voxelize_depth(depth[v0:v1, u0:u1], intr, c, offset=(u0, v0), out=out[i, 0])
    return out


def synthetic_calibration_source(grid_size: int, cube_size: float, skeleton: str) -> np.ndarray:
    """A :data:`v2v_ros.core.inference.CalibrationSource`: synthetic people for body skeletons, else hands."""
    return synthetic_calibration(grid_size, cube_size, body=is_body_skeleton(skeleton))
