"""Masks drawn from hand poses: which pixels are another hand's (v2v_ros.core.hand_masks)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import v2v_ros.core.hand_masks as hand_masks
from v2v_ros.core.camera import Intrinsics
from v2v_ros.core.hand_masks import FOREARM_LENGTH_MM, skeleton_points, without_nearer_hands


def _hand(at: np.ndarray, tilt: float = 0.0) -> np.ndarray:
    """A flat open hand pose (MSRA order) around ``at``, fingers up (-y); ``tilt`` turns it about y (rad)."""
    j = np.zeros((21, 3))
    j[0] = [0.0, 60.0, 0.0]
    for f, x in enumerate((-25.0, -8.0, 8.0, 25.0, -50.0)):  # index, middle, ring, little, thumb
        for k in range(4):
            j[1 + 4 * f + k] = [x, 10.0 - 22.0 * k, 0.0] if f < 4 else [x + 8.0 * k, 40.0 - 15.0 * k, 0.0]
    c, s = np.cos(tilt), np.sin(tilt)
    return j @ np.array([[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]]) + at


def _points_of(intr: Intrinsics, depth: np.ndarray) -> np.ndarray:
    v, u = np.mgrid[0: depth.shape[0], 0: depth.shape[1]]
    z = depth.astype(np.float64)
    return np.stack(((u - intr.cx) * z / intr.fx, (v - intr.cy) * z / intr.fy, z), axis=-1)


def _distance(points: np.ndarray, skeleton: np.ndarray) -> np.ndarray:
    flat = points.reshape(-1, 3)
    d = np.full(len(flat), np.inf)
    for k in range(0, len(skeleton), 16):
        d = np.minimum(d, np.linalg.norm(flat[:, None] - skeleton[None, k: k + 16], axis=-1).min(axis=1))
    return d.reshape(points.shape[:-1])


def _scene(fx: float, gap: float, z: float, bump: float) -> tuple[Intrinsics, np.ndarray, np.ndarray, np.ndarray]:
    """Two hands side by side ``gap`` mm apart at depth ``z`` on a surface whose depth varies (a ramp
    with ``bump`` mm of relief), seen by a 160 x 120 camera: the image, the cube's own and the other pose."""
    intr = Intrinsics(fx, fx, 79.5, 59.5)
    v, u = np.mgrid[0:120, 0:160]
    depth = (z + bump * np.sin(u / 7.0) * np.cos(v / 5.0)).astype(np.float32)
    depth[::9, ::11] = 0.0  # pixels without a reading stay without one
    own, other = _hand(np.array([-gap / 2, 0.0, z])), _hand(np.array([gap / 2, 0.0, z]), tilt=0.3)
    return intr, depth, own, other


@settings(max_examples=25, deadline=None)
@given(fx=st.floats(60.0, 220.0), gap=st.floats(40.0, 200.0), z=st.floats(300.0, 800.0),
       bump=st.floats(0.0, 40.0), radius=st.floats(20.0, 90.0))
def test_a_pixel_goes_when_it_is_within_reach_of_the_other_skeleton_and_nearer_to_it(
        fx: float, gap: float, z: float, bump: float, radius: float) -> None:
    """Pixel by pixel (no sampling) the mask is exactly the rule it states, checked by brute force."""
    intr, depth, own, other = _scene(fx, gap, z, bump)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(hand_masks, "SAMPLE_MM", 1e-6)  # every pixel decides alone
        out = without_nearer_hands(depth, intr, own, [other], radius)
    pts = _points_of(intr, depth)
    d_other, d_own = _distance(pts, skeleton_points(other)), _distance(pts, skeleton_points(own))
    rule = (depth > 0) & (d_other < radius) & (d_other < d_own)
    near_tie = np.abs(d_other - d_own) < 1e-6  # ties or the radius itself: float rounding decides
    at_radius = np.abs(d_other - radius) < 1e-6
    removed = (out == 0) & (depth > 0)
    assert np.all((removed == rule) | near_tie | at_radius)
    assert np.array_equal(out[~removed], depth[~removed])


@settings(max_examples=15, deadline=None)
@given(fx=st.floats(150.0, 450.0), gap=st.floats(40.0, 200.0), z=st.floats(250.0, 700.0),
       bump=st.floats(0.0, 40.0))
def test_sampling_a_near_hand_changes_only_pixels_at_the_boundary(fx: float, gap: float, z: float,
                                                                   bump: float) -> None:
    """A near hand is classified on a coarser grid: a pixel may differ from the exact rule only within
    a sampling cell of where the rule changes its mind (the reach or the halfway surface)."""
    intr = Intrinsics(fx, fx, 159.5, 119.5)
    v, u = np.mgrid[0:240, 0:320]
    depth = (z + bump * np.sin(u / 15.0) * np.cos(v / 10.0)).astype(np.float32)
    depth[::13, ::17] = 0.0
    own, other = _hand(np.array([-gap / 2, 0.0, z])), _hand(np.array([gap / 2, 0.0, z]), tilt=0.3)
    sampled = without_nearer_hands(depth, intr, own, [other])
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(hand_masks, "SAMPLE_MM", 1e-6)
        exact = without_nearer_hands(depth, intr, own, [other])
    differ = sampled != exact
    assert differ.sum() <= 0.1 * ((exact == 0) & (depth > 0)).sum()
    pts = _points_of(intr, depth)
    d_other, d_own = _distance(pts, skeleton_points(other)), _distance(pts, skeleton_points(own))
    cell = 3.0 * hand_masks.SAMPLE_MM + bump / 5.0  # a sampling cell's reach in 3D, relief included
    margin = np.minimum(np.abs(d_other - d_own), np.abs(d_other - hand_masks.NEARER_HAND_MM))
    assert np.all(margin[differ] < cell)


def test_the_other_hands_forearm_goes_and_this_hands_fingers_stay() -> None:
    """Two hands touching side by side: the other hand's forearm, farther than a finger from its bones,
    goes; this hand's fingers next to it stay (a ball around the other pose's joints would take them)."""
    intr = Intrinsics(300.0, 300.0, 159.5, 119.5)
    depth = np.full((240, 320), 500.0, np.float32)
    own, other = _hand(np.array([-35.0, 0.0, 500.0])), _hand(np.array([35.0, 0.0, 500.0]))
    out = without_nearer_hands(depth, intr, own, [other])
    forearm = other[0] + np.array([0.0, FOREARM_LENGTH_MM * 0.8, 0.0])
    u, v = (int(round(float(c))) for c in intr.to_uvd(forearm)[:2])
    assert out[v, u] == 0
    for joint in own[1:]:  # this hand's fingers, 16 mm from the other hand's nearest ones
        u, v = (int(round(float(c))) for c in intr.to_uvd(joint)[:2])
        assert out[v, u] == 500.0
    far = np.array([150.0, 0.0, 500.0])  # beyond reach of either hand
    u, v = (int(round(float(c))) for c in intr.to_uvd(far)[:2])
    assert out[v, u] == 500.0


def test_within_changes_only_the_pixels_of_that_cube() -> None:
    intr = Intrinsics(300.0, 300.0, 159.5, 119.5)
    depth = np.full((240, 320), 500.0, np.float32)
    own, other = _hand(np.array([-35.0, 0.0, 500.0])), _hand(np.array([35.0, 0.0, 500.0]))
    full = without_nearer_hands(depth, intr, own, [other])
    centre, size = np.array([-35.0, 0.0, 500.0]), 150.0
    part = without_nearer_hands(depth, intr, own, [other], within=(centre, size))
    pts = _points_of(intr, depth)
    inside = np.all(np.abs(pts - centre) < size / 2 - 1.0, axis=-1)
    assert np.array_equal(part[inside], full[inside]) and (part[inside] == 0).any()
    outside = np.any(np.abs(pts - centre) > size / 2 + 1.0, axis=-1)
    assert np.all(part[outside] == 500.0)


def test_poses_with_missing_joints_and_hands_behind_the_camera_are_safe() -> None:
    intr = Intrinsics(300.0, 300.0, 159.5, 119.5)
    depth = np.full((240, 320), 500.0, np.float32)
    own, other = _hand(np.array([-35.0, 0.0, 500.0])), _hand(np.array([35.0, 0.0, 500.0]))
    other[5:9] = np.nan  # the middle finger without an estimate (and the forearm's direction with it)
    out = without_nearer_hands(depth, intr, own, [other])
    assert (out == 0).any() and np.isfinite(out).all()
    behind = _hand(np.array([0.0, 0.0, -400.0]))
    assert np.array_equal(without_nearer_hands(depth, intr, own, [behind]), depth)
    assert np.array_equal(without_nearer_hands(depth, intr, None, []), depth)
    pts = skeleton_points(other)
    assert np.isfinite(pts).all() and len(pts) > 21
