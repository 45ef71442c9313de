"""Intrinsics: the pixel <-> millimetre conventions every other module relies on."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from v2v_ros.core.camera import Intrinsics

finite = st.floats(-1e3, 1e3, allow_nan=False)
focal = st.floats(50, 2000).flatmap(lambda f: st.sampled_from([f, -f]))


@given(fx=focal, fy=focal, cx=finite, cy=finite, u=finite, v=finite, d=st.floats(10, 1e4))
def test_uvd_xyz_round_trip(fx: float, fy: float, cx: float, cy: float, u: float, v: float, d: float) -> None:
    cam = Intrinsics(fx, fy, cx, cy)
    uvd = np.array([u, v, d])
    back = cam.to_uvd(cam.to_xyz(uvd))
    np.testing.assert_allclose(back, uvd, rtol=1e-9, atol=1e-6)


def test_formula_matches_the_documented_convention() -> None:
    cam = Intrinsics(500.0, 400.0, 320.0, 240.0)
    x, y, z = cam.to_xyz(np.array([420.0, 140.0, 1000.0]))
    assert (x, y, z) == pytest.approx((100.0 * 1000 / 500, -100.0 * 1000 / 400, 1000.0))


def test_backproject_skips_invalid_pixels_and_honours_offset() -> None:
    cam = Intrinsics(500.0, 500.0, 10.0, 20.0)
    depth = np.array([[0.0, 1000.0], [np.nan, np.inf]], dtype=np.float32)
    pts = cam.backproject(depth, offset=(5, 7))
    assert pts.shape == (1, 3)
    # pixel (u=1+5, v=0+7)
    np.testing.assert_allclose(pts[0], [(6 - 10) * 2.0, (7 - 20) * 2.0, 1000.0], rtol=1e-6)


@given(st.integers(0, 30), st.integers(0, 30))
def test_backproject_then_project_lands_on_the_pixel(u: int, v: int) -> None:
    cam = Intrinsics(300.0, 310.0, 15.5, 14.5)
    depth = np.zeros((31, 31), dtype=np.float32)
    depth[v, u] = 750.0
    uvd = cam.to_uvd(cam.backproject(depth))
    np.testing.assert_allclose(uvd[0], [u, v, 750.0], atol=1e-3)


@pytest.mark.parametrize(
    "k, match",
    [
        ([0, 0, 320, 0, 500, 240, 0, 0, 1], "focal"),
        ([500, 0, 320, 0, 500, 240, 0, 0], "9 elements"),
        ([math.nan, 0, 320, 0, 500, 240, 0, 0, 1], "finite"),
        ([-500, 0, 320, 0, 500, 240, 0, 0, 1], "positive"),
    ],
)
def test_from_k_rejects_bad_matrices(k: list[float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Intrinsics.from_k(k)


def test_zero_focal_length_is_rejected_by_name() -> None:
    with pytest.raises(ValueError, match="fy"):
        Intrinsics(500.0, 0.0, 1.0, 1.0)


def test_from_k_round_trip() -> None:
    cam = Intrinsics(615.0, 616.0, 319.5, 239.5)
    assert Intrinsics.from_k(cam.to_k()) == cam
