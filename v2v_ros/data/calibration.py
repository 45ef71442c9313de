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
    if channels == 2 and not body:
        return _with_other_hands(grid_size, cube_size, count, seed)
    if body:
        from v2v_ros.data.synthetic.body import render_body_frame as render  # noqa: PLC0415
    else:
        from v2v_ros.data.synthetic import render_frame as render  # noqa: PLC0415

    grid = VoxelGrid(cube_size, grid_size)
    out = np.zeros((count, channels, grid_size, grid_size, grid_size), np.float32)
    for i in range(count):
        f = render(seed, i)
        depth, intr = f.full_depth(), f.intrinsics
        c = f.joints.mean(axis=0)
        u0, v0, u1, v1 = cube_footprint(intr, c, cube_size, depth.shape[1], depth.shape[0])
        grid.voxelize_depth(depth[v0:v1, u0:u1], intr, c, offset=(u0, v0), out=out[i, 0])
    return out


def _with_other_hands(grid_size: int, cube_size: float, count: int, seed: int) -> np.ndarray:
    """Two-channel volumes: single hands, and hands of two-hand scenes with the other hand removed."""
    from v2v_ros.core.estimator import without_hands  # noqa: PLC0415 - only for two-channel models
    from v2v_ros.data.synthetic import render_frame  # noqa: PLC0415
    from v2v_ros.data.synthetic.multi import HandsSpec, render_multi_frame  # noqa: PLC0415

    grid = VoxelGrid(cube_size, grid_size)
    out = np.zeros((count, 2, grid_size, grid_size, grid_size), np.float32)
    pairs = (render_multi_frame(seed, k, hands=HandsSpec(2, 2)) for k in range(100 * count))
    # only pairs whose other hand reaches into the cube: apart ones would calibrate nothing new
    pairs = (f for f in pairs if np.linalg.norm(f.targets[0].mean(0) - f.targets[1].mean(0)) < 0.5 * cube_size)
    for i in range(count):
        if i % 2 == 0:
            f = render_frame(seed, i)
            depth, intr, c, removed = f.full_depth(), f.intrinsics, f.joints.mean(axis=0), None
        else:
            f = next(pairs)
            depth, intr = f.full_depth(), f.intrinsics
            c = f.targets[0].mean(axis=0)
            kept = without_hands(depth, intr, [f.targets[1]])
            depth, removed = kept, removed_depth(f.full_depth(), kept)
        u0, v0, u1, v1 = cube_footprint(intr, c, cube_size, depth.shape[1], depth.shape[0])
        grid.voxelize_depth(depth[v0:v1, u0:u1], intr, c, offset=(u0, v0), out=out[i, 0])
        if removed is not None:
            grid.voxelize_depth(removed[v0:v1, u0:u1], intr, c, offset=(u0, v0), out=out[i, OTHER_TARGETS_CHANNEL])
    return out


def synthetic_calibration_source(grid_size: int, cube_size: float, skeleton: str, channels: int = 1) -> np.ndarray:
    """A :data:`v2v_ros.core.inference.CalibrationSource`: synthetic people for body skeletons, else hands."""
    return synthetic_calibration(grid_size, cube_size, body=is_body_skeleton(skeleton), channels=channels)
