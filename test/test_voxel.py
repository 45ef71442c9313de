"""VoxelGrid conventions: grid transforms, occupancy, Gaussian targets and decoding."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from v2v_ros.core.arrays import cupy_available
from v2v_ros.core.voxel import VoxelGrid

coord = st.floats(-1000, 1000, allow_nan=False)
grids = st.builds(VoxelGrid, cube_size=st.floats(50, 3000), size=st.sampled_from([16, 32, 48, 88]), stride=st.just(2))


@given(grid=grids, p=arrays(np.float64, (5, 3), elements=coord), c=arrays(np.float64, (3,), elements=coord))
def test_to_grid_to_world_round_trip(grid: VoxelGrid, p: np.ndarray, c: np.ndarray) -> None:
    np.testing.assert_allclose(grid.to_world(grid.to_grid(p, c), c), p, atol=1e-6 * max(1.0, np.abs(p).max()))


depth_px = st.one_of(st.floats(300, 700, width=32), st.sampled_from([0.0, -5.0, np.nan, np.inf, -np.inf, 1e30]))


@settings(max_examples=150, deadline=None)
@given(
    grid=st.builds(VoxelGrid, cube_size=st.floats(50, 400), size=st.sampled_from([8, 16, 32]), stride=st.just(2)),
    depth=arrays(np.float32, st.tuples(st.integers(1, 24), st.integers(1, 24)), elements=depth_px),
    f=st.tuples(st.floats(20, 900), st.floats(20, 900), st.sampled_from([1.0, -1.0])),
    pp=st.tuples(st.floats(-50, 50), st.floats(-50, 50)),
    offset=st.tuples(st.integers(0, 400), st.integers(0, 300)),
    c=st.tuples(st.floats(-100, 100), st.floats(-100, 100), st.floats(250, 750)),
)
def test_voxelize_depth_is_backproject_then_voxelize_bit_for_bit(grid: VoxelGrid, depth: np.ndarray, f: tuple,
                                                                  pp: tuple, offset: tuple, c: tuple) -> None:
    """The estimator's one-pass voxeliser gives the volume of the two-step definition exactly,
    for any crop position, focal sign (NYU's fy < 0) and invalid pixels (0, negative, NaN, inf)."""
    from v2v_ros.core.camera import Intrinsics

    intr = Intrinsics(f[0], f[1] * f[2], pp[0] + offset[0], pp[1] + offset[1])
    centre = np.array(c)
    half = 0.5 * grid.cube_size
    ref = grid.voxelize(intr.backproject(depth, offset=offset, z_range=(c[2] - half, c[2] + half)), centre)
    np.testing.assert_array_equal(grid.voxelize_depth(depth, intr, centre, offset=offset), ref)


def test_voxelize_depth_of_a_real_frame_matches_and_is_not_empty() -> None:
    """A synthetic hand frame (hand + clutter) through both paths, cube at the hand: same volume, hand inside."""
    from v2v_ros.core.camera import cube_footprint
    from v2v_ros.data.synthetic import render_frame

    f = render_frame(3, 0)
    depth, intr = f.full_depth(), f.intrinsics
    g = VoxelGrid(200.0, 32)
    c = f.joints.mean(axis=0)
    u0, v0, u1, v1 = cube_footprint(intr, c, g.cube_size, depth.shape[1], depth.shape[0])
    crop = depth[v0:v1, u0:u1]
    ref = g.voxelize(intr.backproject(crop, offset=(u0, v0), z_range=(c[2] - 100.0, c[2] + 100.0)), c)
    out = np.ones((32, 32, 32), np.float32)  # stale content is cleared
    np.testing.assert_array_equal(g.voxelize_depth(crop, intr, c, offset=(u0, v0), out=out), ref)
    assert ref.sum() > 100
    with pytest.raises(ValueError, match="2-D"):
        g.voxelize_depth(crop[None], intr, c)


def test_center_maps_to_grid_middle_and_voxel_edges() -> None:
    g = VoxelGrid(200.0, 88)
    c = np.array([1.0, 2.0, 500.0])
    np.testing.assert_allclose(g.to_grid(c, c), [44.0, 44.0, 44.0])
    # The cube's low corner is coordinate 0 and its high corner is `size`.
    np.testing.assert_allclose(g.to_grid(c - 100.0, c), [0.0, 0.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(g.to_grid(c + 100.0, c), [88.0, 88.0, 88.0])


@settings(max_examples=60)
@given(
    grid=st.builds(VoxelGrid, cube_size=st.floats(50, 500), size=st.sampled_from([16, 32, 88])),
    g=arrays(np.float64, (20, 3), elements=st.floats(-10, 100, allow_nan=False)),
)
def test_voxelize_puts_each_point_in_its_voxel(grid: VoxelGrid, g: np.ndarray) -> None:
    c = np.array([10.0, -20.0, 600.0])
    pts = grid.to_world(g, c).astype(np.float32)
    vol = grid.voxelize(pts, c)
    assert vol.shape == (grid.size,) * 3 and vol.dtype == np.float32
    gf = np.floor(grid.to_grid(pts, c.astype(np.float32)))  # the float32 path voxelize uses
    inside = np.all((gf >= 0) & (gf < grid.size), axis=1)
    idx = gf[inside].astype(int)
    assert np.all(vol[idx[:, 0], idx[:, 1], idx[:, 2]] == 1.0)
    assert vol.sum() == len({tuple(i) for i in idx})  # nothing else is set, outside points dropped


@given(bad=st.sampled_from([np.nan, np.inf, -np.inf, 1e30, -1e30, 3e9, -3e9]), axis=st.integers(0, 2))
def test_voxelize_drops_non_finite_and_huge_coordinates(bad: float, axis: int) -> None:
    # float -> int casts of these are undefined (x86 gives INT_MIN, ARM saturates, NaN -> 0)
    g = VoxelGrid(200.0, 32)
    p = np.array([[0.0, 0.0, 500.0], [0.0, 0.0, 500.0]], dtype=np.float32)
    p[1, axis] = bad
    vol = g.voxelize(p, np.array([0.0, 0.0, 500.0]))
    assert vol.sum() == 1.0 and vol[16, 16, 16] == 1.0


def test_voxelize_axis_order_is_x_y_z() -> None:
    g = VoxelGrid(88.0, 88)  # 1 mm voxels
    c = np.zeros(3)
    vol = g.voxelize(np.array([[10.5, -20.5, 30.5]], dtype=np.float32), c)
    assert vol[54, 23, 74] == 1.0 and vol.sum() == 1.0


def test_heatmap_peak_and_shape() -> None:
    g = VoxelGrid(200.0, 88)
    c = np.array([0.0, 0.0, 400.0])
    # A joint exactly at the centre of output voxel (10, 20, 30): input coord 2*(k+0.5).
    j = g.to_world(np.array([[21.0, 41.0, 61.0]]), c)
    hm = g.heatmaps(j, c)
    assert hm.shape == (1, 44, 44, 44) and hm.dtype == np.float32
    assert np.unravel_index(hm[0].argmax(), hm[0].shape) == (10, 20, 30)
    assert hm[0, 10, 20, 30] == pytest.approx(1.0)
    assert hm[0, 11, 20, 30] == pytest.approx(np.exp(-1 / (2 * 1.7**2)), rel=1e-5)


@settings(max_examples=40)
@given(
    grid=st.builds(VoxelGrid, cube_size=st.floats(100, 2000), size=st.sampled_from([32, 48, 88])),
    off=arrays(np.float64, (21, 3), elements=st.floats(-0.4, 0.4)),
)
def test_encode_decode_round_trip_is_unbiased(grid: VoxelGrid, off: np.ndarray) -> None:
    c = np.array([5.0, -7.0, 650.0])
    joints = c + off * grid.cube_size
    dec, conf = grid.decode(grid.heatmaps(joints, c), c)
    err = (dec - joints) / grid.voxel_size
    assert np.abs(err).max() < 1e-3  # in input voxels: no quantisation error, no bias
    assert np.all(conf > 0.5)


def test_decode_without_subvoxel_quantises_to_output_voxel_centres() -> None:
    g = VoxelGrid(200.0, 88)
    c = np.zeros(3) + [0, 0, 500]
    rng = np.random.default_rng(1)
    joints = c + rng.uniform(-80, 80, (500, 3))
    dec, _ = g.decode(g.heatmaps(joints, c), c, subvoxel=False)
    err = (dec - joints) / g.voxel_size
    assert np.abs(err).max() <= g.stride / 2 + 1e-6  # half an output voxel
    assert np.abs(err.mean(axis=0)).max() < 0.1  # still unbiased on average


def test_batched_decode_matches_single() -> None:
    g = VoxelGrid(250.0, 32)
    rng = np.random.default_rng(2)
    centers = rng.uniform(-100, 100, (3, 3)) + [0, 0, 800]
    joints = centers[:, None, :] + rng.uniform(-100, 100, (3, 14, 3))
    hms = np.stack([g.heatmaps(j, c) for j, c in zip(joints, centers, strict=False)])
    dec, conf = g.decode(hms, centers)
    assert dec.shape == (3, 14, 3) and conf.shape == (3, 14)
    for i in range(3):
        np.testing.assert_allclose(dec[i], g.decode(hms[i], centers[i])[0])


def test_decode_robust_to_noise() -> None:
    g = VoxelGrid(200.0, 88)
    c = np.array([0.0, 0.0, 500.0])
    rng = np.random.default_rng(3)
    joints = c + rng.uniform(-80, 80, (21, 3))
    hm = g.heatmaps(joints, c) + rng.normal(0, 0.02, (21, 44, 44, 44)).astype(np.float32)
    dec, _ = g.decode(hm, c)
    assert np.abs(dec - joints).max() < g.voxel_size * 1.0


@pytest.mark.parametrize("kwargs", [dict(cube_size=0), dict(cube_size=200, size=30), dict(cube_size=200, stride=3)])
def test_bad_grid_parameters_are_named(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="VoxelGrid"):
        VoxelGrid(**kwargs)


@pytest.mark.gpu
@pytest.mark.skipif(not cupy_available(), reason="CuPy with a CUDA device is not available on this machine")
def test_cupy_voxelize_matches_numpy_and_shares_memory_with_torch() -> None:
    import cupy
    import torch

    from v2v_ros.core.arrays import to_torch

    g = VoxelGrid(200.0, 88)
    rng = np.random.default_rng(4)
    pts = rng.uniform(-120, 120, (20000, 3)).astype(np.float32) + [0, 0, 500]
    c = np.array([0.0, 0.0, 500.0])
    ref = g.voxelize(pts, c)
    vol = g.voxelize(cupy.asarray(pts), cupy.asarray(c))
    np.testing.assert_array_equal(vol.get(), ref)
    t = to_torch(vol)
    assert t.device.type == "cuda" and t.data_ptr() == vol.data.ptr
    from v2v_ros.core.camera import Intrinsics

    intr = Intrinsics(300.0, 300.0, 40.0, 30.0)
    depth = rng.uniform(420, 580, (60, 80)).astype(np.float32)
    depth[::7, ::5] = 0.0
    np.testing.assert_array_equal(g.voxelize_depth(cupy.asarray(depth), intr, c, offset=(3, 2)).get(),
                                  g.voxelize_depth(depth, intr, c, offset=(3, 2)))
    hm = g.heatmaps(cupy.asarray(pts[:5]), cupy.asarray(c))
    dec, _ = g.decode(hm, cupy.asarray(c))
    np.testing.assert_allclose(dec.get(), pts[:5], atol=1e-2)
    assert torch.cuda.is_available()


def test_voxelize_into_a_batch_slice_and_refuses_layouts_it_cannot_fill() -> None:
    """A non-contiguous ``out`` used to come back empty: the flat write landed in a reshape copy."""
    g = VoxelGrid(200.0, 16)
    c = np.array([0.0, 0.0, 500.0])
    pts = np.array([[10.0, -20.0, 530.0], [0.0, 0.0, 500.0]], np.float32)
    ref = g.voxelize(pts, c)
    batch = np.ones((2, 1, 16, 16, 16), np.float32)
    np.testing.assert_array_equal(g.voxelize(pts, c, out=batch[1, 0]), ref)
    np.testing.assert_array_equal(batch[1, 0], ref)  # filled in place (and zeroed first)
    for bad in (np.zeros((16, 16, 16), np.float32, order="F"), np.zeros((16, 16, 32), np.float32)[..., ::2],
                np.zeros((8, 16, 16), np.float32), np.zeros((16, 16, 16), np.float64)):
        with pytest.raises(ValueError, match="voxelize out"):
            g.voxelize(pts, c, out=bad)


@pytest.mark.parametrize("sigma", [0.0, -1.0, np.nan])
def test_heatmap_sigma_must_be_positive(sigma: float) -> None:
    with pytest.raises(ValueError, match="sigma"):
        VoxelGrid(200.0, 16).heatmaps(np.zeros((1, 3)), np.zeros(3), sigma=sigma)
