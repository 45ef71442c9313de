"""int8 calibration volumes rendered from the synthetic hands and people.

The inference core (``v2v_ros.core.inference``) quantises a network on whatever
volumes its caller gives it and never imports data code; the command-line tools and
the node pass :func:`synthetic_calibration_source` so that ``precision: int8`` works
without a dataset on disk. Another source (frames of the user's own camera) is any
callable with the same signature.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from v2v_ros.core.camera import cube_footprint
from v2v_ros.core.skeletons import is_body_skeleton
from v2v_ros.core.voxel import INPUT_CHANNELS, OTHER_TARGETS_CHANNEL, VoxelGrid, removed_depth


def synthetic_calibration(grid_size: int, cube_size: float = 200.0, count: int = 8, seed: int = 7,
                          body: bool = False, channels: int = 1) -> np.ndarray:
    """(count, C, N, N, N) occupancy volumes of synthetic hands (or people, ``body``) for int8 calibration.

    Rendered on the fly (a few ms per frame), so quantising needs no dataset on disk;
    the volumes go through the same crop/voxelisation as inference. The calibration
    must look like what the model sees: a body model calibrated on hands in its 2 m
    cube would get activation ranges from a few occupied voxels. With ``channels=2`` (hands),
    every second volume is a hand of a two-hand scene with the other hand's pixels moved to the
    second channel, as the estimator's masked cubes are; a first layer calibrated without them
    would clip what that channel adds.
    """
    if channels not in INPUT_CHANNELS:
        raise ValueError(f"channels must be one of {INPUT_CHANNELS}, got {channels!r}")
    if body:
        from v2v_ros.data.synthetic.body import render_body_frame as render  # noqa: PLC0415
    else:
        from v2v_ros.data.synthetic import render_frame as render  # noqa: PLC0415

    grid = VoxelGrid(cube_size, grid_size)
    out = np.zeros((count, channels, grid_size, grid_size, grid_size), np.float32)
    pairs = _close_pairs(seed, cube_size, count) if channels == 2 and not body else None
    for i in range(count):
        removed = None
        if pairs is not None and i % 2:
            from v2v_ros.core.estimator import without_hands  # noqa: PLC0415 - only for two-channel models

            f = next(pairs)
            full, intr, c = f.full_depth(), f.intrinsics, f.targets[0].mean(axis=0)
            depth = without_hands(full, intr, [f.targets[1]])
            removed = removed_depth(full, depth)
        else:
            f = render(seed, i)
            depth, intr, c = f.full_depth(), f.intrinsics, f.joints.mean(axis=0)
        u0, v0, u1, v1 = cube_footprint(intr, c, cube_size, depth.shape[1], depth.shape[0])
        grid.voxelize_depth(depth[v0:v1, u0:u1], intr, c, offset=(u0, v0), out=out[i, 0])
        if removed is not None:
            grid.voxelize_depth(removed[v0:v1, u0:u1], intr, c, offset=(u0, v0), out=out[i, OTHER_TARGETS_CHANNEL])
    return out


def _close_pairs(seed: int, cube_size: float, count: int) -> Iterator[Any]:
    """Two-hand frames whose second hand reaches into the first's cube (apart ones calibrate nothing new)."""
    from v2v_ros.data.synthetic.multi import HandsSpec, render_multi_frame  # noqa: PLC0415

    frames = (render_multi_frame(seed, k, hands=HandsSpec(2, 2)) for k in range(100 * count))
    return (f for f in frames if np.linalg.norm(f.targets[0].mean(0) - f.targets[1].mean(0)) < 0.5 * cube_size)


def synthetic_calibration_source(grid_size: int, cube_size: float, skeleton: str, channels: int = 1) -> np.ndarray:
    """A :data:`v2v_ros.core.inference.CalibrationSource`: synthetic people for body skeletons, else hands."""
    return synthetic_calibration(grid_size, cube_size, body=is_body_skeleton(skeleton), channels=channels)
