"""Synthetic hand generator: determinism, anatomy, render/label agreement, sensor model, ray casting."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from v2v_ros.core.skeletons import HAND_MSRA21
from v2v_ros.data.synthetic import (
    IDEAL_SENSOR,
    JOINT_LIMITS,
    POSE_PRESETS,
    HandModel,
    HandPose,
    SensorModel,
    SynthConfig,
    render_frame,
    sample_pose,
    sample_shape,
)
from v2v_ros.data.synthetic.hand import WRIST_LIMITS, rot_y, rot_z
from v2v_ros.data.synthetic.primitives import Box, Cylinder, Ellipsoid, RoundCone, Sphere
from v2v_ros.data.synthetic.render import apply_sensor, render_zbuffer

TIPS = [HAND_MSRA21.index(f"{f}_tip") for f in ("index", "middle", "ring", "little", "thumb")]
CLEAN = SynthConfig(clutter=False, sensor=IDEAL_SENSOR)


def test_same_seed_and_index_give_identical_frames() -> None:
    a, b = render_frame(11, 5), render_frame(11, 5)
    np.testing.assert_array_equal(a.depth, b.depth)
    np.testing.assert_array_equal(a.joints, b.joints)
    assert a.info == b.info
    c = render_frame(11, 6)
    assert not np.array_equal(a.joints, c.joints)
    assert not np.array_equal(render_frame(12, 5).joints, a.joints)


def test_sequences_move_one_hand_smoothly_within_a_clip() -> None:
    cfg = SynthConfig(sequence_length=8, width=320, height=240, cx=159.5, cy=119.5, fx=300.0, fy=300.0)
    frames = [render_frame(4, i, cfg) for i in range(16)]
    assert [f.info["clip"] for f in frames] == [0] * 8 + [1] * 8
    # same hand (size, side, scene) through a clip; different noise per frame
    assert len({(f.info["scale"], f.info["handedness"], tuple(f.info["clutter"])) for f in frames[:8]}) == 1
    # the clip's bones keep their lengths while the hand moves (one rigid skeleton, interpolated angles)
    bones = [np.linalg.norm(f.joints[1] - f.joints[0]) for f in frames[:8]]
    np.testing.assert_allclose(bones, bones[0], rtol=1e-4)
    centres = np.array([f.joints.mean(axis=0) for f in frames])
    steps = np.linalg.norm(np.diff(centres, axis=0), axis=1)
    within, across = np.delete(steps, 7), steps[7]
    assert within.max() < 40.0 and across > within.max()  # smooth inside, a cut between clips
    assert within[0] < within[3]  # eases in: slow at the keyframe, faster mid-clip
    # deterministic in (seed, index) alone, whatever order frames are made in
    again = render_frame(4, 5, cfg)
    np.testing.assert_array_equal(again.depth, frames[5].depth)
    np.testing.assert_array_equal(again.joints, frames[5].joints)


def test_frame_format() -> None:
    f = render_frame(0, 1)
    assert f.depth.shape == (480, 640) and f.depth.dtype == np.float32
    assert f.joints.shape == (21, 3) and f.joints.dtype == np.float32
    assert f.offset == (0, 0) and f.image_size == (640, 480)
    valid = f.depth[f.depth > 0]
    np.testing.assert_array_equal(valid, np.round(valid))  # 1 mm quantisation
    assert f.info["handedness"] in ("left", "right")


def test_sampled_poses_obey_joint_limits_and_bones_keep_their_length() -> None:
    for i in range(300):
        rng = np.random.default_rng([1, i])
        pose = sample_pose(rng)
        assert pose.within_limits(), (pose.name, pose.angles)
        assert np.all(pose.wrist >= WRIST_LIMITS[:, 0]) and np.all(pose.wrist <= WRIST_LIMITS[:, 1])
    for name, angles in POSE_PRESETS.items():
        assert HandPose(angles.astype(float)).within_limits(), name
    rng = np.random.default_rng(3)
    shape = sample_shape(rng)
    model = HandModel(shape)
    for _ in range(20):
        j = model.joints(sample_pose(rng))
        for f in range(5):
            chain = j[1 + 4 * f: 5 + 4 * f]
            np.testing.assert_allclose(np.linalg.norm(np.diff(chain, axis=0), axis=1), shape.lengths[f], rtol=1e-9)
    assert JOINT_LIMITS.shape == (5, 4, 2)


def test_joints_project_inside_the_image_at_the_requested_depth() -> None:
    for cfg in (SynthConfig(), SynthConfig.preset("msra")):
        for i in range(25):
            f = render_frame(2, i, cfg)
            uvd = f.intrinsics.to_uvd(f.joints.astype(np.float64))
            assert np.all(uvd[:, 0] >= 0) and np.all(uvd[:, 0] <= f.image_size[0] - 1)
            assert np.all(uvd[:, 1] >= 0) and np.all(uvd[:, 1] <= f.image_size[1] - 1)
            assert 250.0 <= f.joints[:, 2].mean() <= 1000.0


def test_rendered_depth_agrees_with_the_joints() -> None:
    """Every joint lies inside the hand's surface, so the ray through it hits at or before its depth;
    and a fingertip that is not hidden shows up within a finger's thickness of its label."""
    visible_close = total = 0
    for i in range(20):
        f = render_frame(4, i, CLEAN)
        uvd = f.intrinsics.to_uvd(f.joints.astype(np.float64))
        u = np.clip(np.rint(uvd[:, 0]).astype(int), 0, f.image_size[0] - 1)
        v = np.clip(np.rint(uvd[:, 1]).astype(int), 0, f.image_size[1] - 1)
        d = f.depth[v, u]
        assert np.all(d > 0)
        assert np.all(d <= uvd[:, 2] + 3.0), (i, d - uvd[:, 2])
        gap = uvd[TIPS, 2] - d[TIPS]
        visible_close += int(np.sum(gap < 15.0))  # tip radius <= ~8 mm, plus quantisation and pixel offset
        total += len(TIPS)
    assert visible_close / total > 0.6  # the rest are tips hidden behind the hand itself


def test_noise_grows_with_distance() -> None:
    model = SensorModel(edge_drop=0.0, flying=0.0)
    rng = np.random.default_rng(0)
    stds = []
    for z0 in (400.0, 1000.0, 2000.0):
        z = np.full((120, 160), z0, dtype=np.float32)
        d = apply_sensor(z, np.ones_like(z), rng, model)
        assert np.all(d > 0)
        err = d - z0
        stds.append(float(err.std()))
        expect = float(np.sqrt(model.sigma(np.float32(z0)) ** 2 + 1 / 12))  # + 1 mm quantisation
        assert abs(stds[-1] - expect) < 0.2 * expect + 0.05
        assert abs(err.mean()) < 0.1 + 0.05 * expect
    assert stds[0] < stds[1] < stds[2]


def test_grazing_angles_and_edges_lose_pixels() -> None:
    model = SensorModel(noise_base=0.0, noise_quadratic=0.0)
    rng = np.random.default_rng(1)
    z = np.full((100, 100), 800.0, dtype=np.float32)
    cos = np.ones_like(z)
    cos[:, :50] = 0.05  # left half seen edge-on
    z[40:60, 60:80] = 500.0  # an object in front: depth edges around it
    d = apply_sensor(z, cos, rng, model)
    assert np.mean(d[:, :50] == 0) > 0.95
    assert np.mean(d[:, 85:] == 0) == 0.0
    ring = np.zeros_like(z, dtype=bool)
    ring[39:61, [59, 80]] = True
    ring[[39, 60], 59:81] = True
    assert 0.1 < np.mean(d[ring] == 0) < 0.9
    assert np.all((d[d > 0] >= 500) & (d[d > 0] <= 800))


def test_left_hand_is_the_mirror_image_of_the_right() -> None:
    rng = np.random.default_rng(5)
    shape = sample_shape(rng, left_probability=0.0)
    pose = sample_pose(rng)
    right, left = HandModel(shape), HandModel(replace(shape, handedness="left"))
    m = np.diag([-1.0, 1.0, 1.0])
    np.testing.assert_allclose(left.joints(pose), right.joints(pose) @ m, atol=1e-12)
    # Same scene mirrored about the camera's y-z plane renders as the horizontally flipped image.
    cfg = SynthConfig(width=160, height=120, fx=150.0, fy=150.0, cx=79.5, cy=59.5)
    rot = rot_y(30.0) @ rot_z(-20.0) @ np.diag([1.0, -1.0, -1.0])
    trans = np.array([15.0, -10.0, 450.0])
    zr, _ = render_zbuffer(right.primitives(pose, rot, trans), cfg.intrinsics, cfg.size)
    zl, _ = render_zbuffer(left.primitives(pose, m @ rot @ m, m @ trans), cfg.intrinsics, cfg.size)
    both = np.isfinite(zr[:, ::-1]) & np.isfinite(zl)
    assert np.array_equal(np.isfinite(zr[:, ::-1]), np.isfinite(zl)) or np.mean(both) > 0.99 * np.mean(np.isfinite(zl))
    np.testing.assert_allclose(zl[both], zr[:, ::-1][both], atol=1e-2)


def test_clutter_flag_and_left_right_mix() -> None:
    sides = {render_frame(9, i).info["handedness"] for i in range(12)}
    assert sides == {"left", "right"}
    assert all(not render_frame(9, i, replace(SynthConfig(), clutter=False)).info["clutter"] for i in range(3))


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


coord = st.floats(-80.0, 80.0)


@settings(max_examples=60, deadline=None)
@given(
    a=st.tuples(coord, coord, st.floats(200.0, 600.0)),
    b=st.tuples(coord, coord, st.floats(200.0, 600.0)),
    ra=st.floats(2.0, 30.0),
    rb=st.floats(2.0, 30.0),
    seed=st.integers(0, 2**31 - 1),
)
def test_round_cone_hits_lie_on_its_surface(a, b, ra, rb, seed) -> None:
    cone = RoundCone(np.array(a), np.array(b), ra, rb)
    rng = np.random.default_rng(seed)
    # rays towards points scattered around the shape: some hit, some miss
    w = rng.random(200)[:, None]
    targets = (1 - w) * cone.a + w * cone.b + rng.normal(0.0, max(ra, rb) * 1.2, (200, 3))
    d = _unit(targets)
    t, cos = cone.intersect(d[:, 0], d[:, 1], d[:, 2])
    hit = np.isfinite(t)
    pts = t[hit, None] * d[hit]
    assert np.all(np.abs(cone.sdf(pts)) < 1e-6 * (1 + np.linalg.norm(pts, axis=1)))
    assert np.all((cos[hit] >= 0) & (cos[hit] <= 1 + 1e-9))
    # a ray through an interior point (on the axis) always hits, before that point
    m = 0.5 * (cone.a + cone.b)
    dm = _unit(m)
    tm, _ = cone.intersect(dm[0:1], dm[1:2], dm[2:3])
    assert np.isfinite(tm[0]) and tm[0] <= np.linalg.norm(m) + 1e-9
    # rays that miss the whole shape's bounding test never hit
    cand = cone.candidates(d[:, 0], d[:, 1], d[:, 2])
    assert not np.any(hit & ~cand)


@pytest.mark.parametrize(
    "prim, inside",
    [
        (Sphere(np.array([10.0, -5.0, 400.0]), 30.0), lambda p: np.linalg.norm(p - [10.0, -5.0, 400.0], axis=1) - 30.0),
        (
            Ellipsoid(np.array([0.0, 0.0, 500.0]), np.array([60.0, 30.0, 20.0]), rot_y(25.0) @ rot_z(40.0)),
            lambda p: np.linalg.norm(((p - [0.0, 0.0, 500.0]) @ (rot_y(25.0) @ rot_z(40.0))) / [60.0, 30.0, 20.0],
                                     axis=1) - 1.0,
        ),
        (
            Box(np.array([20.0, 10.0, 450.0]), np.array([40.0, 25.0, 15.0]), rot_z(30.0) @ rot_y(20.0)),
            lambda p: np.max(np.abs((p - [20.0, 10.0, 450.0]) @ (rot_z(30.0) @ rot_y(20.0))) / [40.0, 25.0, 15.0],
                             axis=1) - 1.0,
        ),
    ],
)
def test_other_primitives_hit_their_surface(prim, inside) -> None:
    rng = np.random.default_rng(0)
    c, r = prim.bounding_sphere()
    d = _unit(c + rng.normal(0.0, r, (2000, 3)))
    t, _ = prim.intersect(d[:, 0], d[:, 1], d[:, 2])
    hit = np.isfinite(t)
    assert 50 < hit.sum() < 2000
    np.testing.assert_allclose(inside(t[hit, None] * d[hit]), 0.0, atol=1e-6)


def test_cylinder_hits_lie_on_body_or_caps() -> None:
    a, b, r = np.array([0.0, -40.0, 500.0]), np.array([30.0, 40.0, 520.0]), 20.0
    cyl = Cylinder(a, b, r)
    rng = np.random.default_rng(1)
    d = _unit(0.5 * (a + b) + rng.normal(0.0, 40.0, (2000, 3)))
    t, _ = cyl.intersect(d[:, 0], d[:, 1], d[:, 2])
    p = t[np.isfinite(t), None] * d[np.isfinite(t)]
    axis = (b - a) / np.linalg.norm(b - a)
    s = (p - a) @ axis
    radial = np.linalg.norm((p - a) - np.outer(s, axis), axis=1)
    on_body = (np.abs(radial - r) < 1e-6) & (s > -1e-6) & (s < np.linalg.norm(b - a) + 1e-6)
    on_cap = ((np.abs(s) < 1e-6) | (np.abs(s - np.linalg.norm(b - a)) < 1e-6)) & (radial <= r + 1e-6)
    assert len(p) > 100 and np.all(on_body | on_cap)


def test_plane_fast_path_matches_generic_ray_cast() -> None:
    from v2v_ros.data.synthetic.primitives import Plane
    from v2v_ros.data.synthetic.render import camera_rays

    cfg = SynthConfig(width=80, height=60, fx=70.0, fy=72.0, cx=39.5, cy=29.5)
    plane = Plane(np.array([0.0, 300.0, 900.0]), np.array([0.1, -0.6, -0.8]))
    z, cos = render_zbuffer([plane], cfg.intrinsics, cfg.size)
    dx, dy, dz = camera_rays(cfg.intrinsics, cfg.size)
    t, c = plane.intersect(dx, dy, dz)
    np.testing.assert_array_equal(np.isfinite(z), np.isfinite(t))
    hit = np.isfinite(t)
    np.testing.assert_allclose(z[hit], (t * dz)[hit], rtol=1e-5)
    np.testing.assert_allclose(cos[hit], c[hit], atol=1e-5)


def test_camera_presets_are_the_dataset_table_cameras() -> None:
    """`v2v synth --preset NAME` renders with the camera of the one dataset table (ICVL: 240.99 / 240.96)."""
    from v2v_ros.data.datasets import get_dataset
    from v2v_ros.data.synthetic import CAMERA_PRESETS

    assert set(CAMERA_PRESETS) == {"realsense", "msra", "icvl", "nyu"}
    for preset, name in (("realsense", "synthetic"), ("msra", "msra"), ("icvl", "icvl"), ("nyu", "nyu")):
        spec = get_dataset(name)
        cfg = SynthConfig.preset(preset)
        assert cfg.size == spec.image_size, preset
        assert cfg.intrinsics == spec.intrinsics, preset
