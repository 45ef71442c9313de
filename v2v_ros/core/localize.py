"""Initial localisation of the target from depth alone (paper sec. 4, before refinement).

The hand is taken to be the nearest object: pixels within ``depth_band_mm`` behind
the nearest valid depth are back-projected and their centre of mass is refined by
a few mean-shift steps restricted to the cube. This is the classic baseline the
refinement CNN improves on (paper Table 2).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from v2v_ros.core.camera import Intrinsics
from v2v_ros.core.skeletons import is_body_skeleton


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


@dataclass(frozen=True)
class BodyLocalizer:
    """A person's centre from depth alone: remove floor and walls, keep the nearest large object.

    Why not :class:`Localizer`: the nearest surface in a room is often the floor in
    front of the person, and a body is up to 2 m deep along the ray (top view), so
    no fixed depth band isolates it. Instead, large planes (floor, walls) are found
    by RANSAC and removed, the rest is cut into connected components on the image
    grid (broken at depth jumps), and the nearest of the largest components is the
    person. The visible surface is only the camera's side of the body, so when a
    floor is found the centre is placed by the body's height above it (half-way up,
    the vertical middle the joints' mean sits near) rather than at the surface's
    centre of mass; otherwise the centre of mass is pushed back along the ray by
    ``surface_offset_mm``. The refinement CNN trained for bodies removes what bias remains.

    ``depth_band_mm`` keeps the points of the chosen object within this depth of
    its nearest point (a leak into a far background cannot drag the centre);
    ``view`` is ``'auto'`` (decide from the floor's orientation), ``'front'`` or ``'top'``.
    Deterministic: RANSAC draws from a generator seeded with ``seed``.
    """

    cube_size: float = 2000.0
    depth_band_mm: float = 2000.0
    min_depth_mm: float = 400.0
    max_depth_mm: float = 6000.0
    step: int = 2
    view: str = "auto"
    plane_tol_mm: float = 30.0
    plane_tol_quadratic: float = 4e-6  # per mm: the tolerance grows like the sensor noise (z²)
    max_planes: int = 6
    min_plane_fraction: float = 0.02  # of the valid pixels
    min_plane_fill: float = 0.45  # fraction of its extent (200 mm cells) a floor or wall covers
    min_plane_extent_mm: float = 400.0  # in both directions (a wall seen as a strip at the image edge)
    min_plane_distance_mm: float = 400.0  # from the camera centre
    min_plane_incidence: float = 0.12  # median |cos| between the plane's normal and the rays to it
    max_behind_fraction: float = 0.03  # of the valid points, seen through the plane (doors, windows)
    ransac_iterations: int = 96
    jump_mm: float = 200.0  # depth jump (grows with 0.1·z) that separates two objects
    merge_jump_mm: float = 500.0  # ... but pieces this close in depth that touch the person join it
    min_area_mm2: float = 3.0e4  # smallest object (metric area on screen) that can be a person
    surface_offset_mm: float = 20.0  # the visible surface's centre lies this much in front of the joints' mean
    min_points: int = 30
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.min_depth_mm < self.max_depth_mm:
            raise ValueError(f"need 0 <= min_depth_mm < max_depth_mm, got {self.min_depth_mm}, {self.max_depth_mm}")
        if self.step < 1:
            raise ValueError(f"step must be >= 1, got {self.step}")
        if self.view not in ("auto", "front", "top"):
            raise ValueError(f"view must be auto, front or top, got {self.view!r}")
        if not self.depth_band_mm > 0:
            raise ValueError(f"depth_band_mm must be positive, got {self.depth_band_mm}")

    # -- stages ------------------------------------------------------------------------------
    def _points(self, depth_mm: np.ndarray, intrinsics: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
        """Subsampled depth (h, w) with invalid = 0, and its (h, w, 3) back-projection in mm."""
        s = self.step
        sub = np.asarray(depth_mm[::s, ::s], dtype=np.float64)
        sub = np.where((sub > self.min_depth_mm) & (sub < self.max_depth_mm), sub, 0.0)
        h, w = sub.shape
        u = (np.arange(w) * s - intrinsics.cx) / intrinsics.fx
        v = (np.arange(h) * s - intrinsics.cy) / intrinsics.fy
        pts = np.stack([sub * u[None, :], sub * v[:, None], sub], axis=-1)
        return sub, pts

    def _tolerance(self, z: np.ndarray) -> np.ndarray:
        return self.plane_tol_mm + self.plane_tol_quadratic * z * z

    def find_planes(self, pts: np.ndarray, pix: np.ndarray | None = None
                    ) -> tuple[list[tuple[np.ndarray, float]], np.ndarray]:
        """Large planes among (N, 3) points: [(unit normal facing the camera, offset d)] with
        n·x = d (d < 0), and a (N,) bool mask of their inliers.

        With the points' (N, 2) grid positions ``pix`` (row, col), half the RANSAC
        triplets are drawn from small image neighbourhoods: a wall seen as a thin
        strip at the image edge is a few percent of the points, and three global
        draws would almost never all land on it.
        """
        rng = np.random.default_rng(self.seed)
        n_all = len(pts)
        removed = np.zeros(n_all, dtype=bool)
        planes: list[tuple[np.ndarray, float]] = []
        tol_all = self._tolerance(pts[:, 2])
        for _ in range(self.max_planes):
            rest = np.flatnonzero(~removed)
            if rest.size < max(3, self.min_plane_fraction * n_all):
                break
            sample = rest[rng.choice(rest.size, size=min(rest.size, 3000), replace=False)]
            sp, st = pts[sample], tol_all[sample]
            tri = sp[rng.integers(0, len(sp), size=(self.ransac_iterations, 3))]
            if pix is not None:
                tri = np.concatenate([tri, self._local_triplets(rng, pts, pix, rest)])
            normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
            norm = np.linalg.norm(normals, axis=1)
            ok = norm > 1e-6
            if not ok.any():
                break
            normals = normals[ok] / norm[ok, None]
            offsets = np.einsum("kj,kj->k", normals, tri[ok, 0])
            counts = (np.abs(sp @ normals.T - offsets[None, :]) < st[:, None]).sum(axis=0)
            counts[np.abs(offsets) < self.min_plane_distance_mm] = 0  # through the camera: edge-on
            found = None
            tried: list[np.ndarray] = []
            for best in np.argsort(-counts)[:16]:  # the largest candidates that look like a floor or a wall
                if counts[best] < self.min_plane_fraction * len(sp):
                    break
                if any(abs(float(t @ normals[best])) > 0.98 for t in tried):
                    continue  # a near-duplicate of a rejected candidate
                tried.append(normals[best])
                found = self._accept_plane(pts, rest, tol_all, normals[best], float(offsets[best]), n_all)
                if found is not None:
                    break
            if found is None:
                break
            n, d, inl = found
            planes.append((n, d))
            removed[inl] = True
        return planes, removed

    def _local_triplets(self, rng: np.random.Generator, pts: np.ndarray, pix: np.ndarray, rest: np.ndarray,
                        radius: int = 10) -> np.ndarray:
        """(K, 3, 3) point triplets whose partners lie within ``radius`` grid pixels of a random seed."""
        shape = pix.max(axis=0) + 1
        lookup = np.full(tuple(shape), -1, dtype=np.int64)
        lookup[pix[rest, 0], pix[rest, 1]] = rest
        seeds = rest[rng.integers(0, rest.size, self.ransac_iterations)]
        off = rng.integers(-radius, radius + 1, size=(self.ransac_iterations, 2, 2))
        where = np.clip(pix[seeds][:, None, :] + off, 0, shape - 1)
        partners = lookup[where[..., 0], where[..., 1]]
        ok = np.all(partners >= 0, axis=1)
        idx = np.concatenate([seeds[ok, None], partners[ok]], axis=1)
        return pts[idx]

    def _accept_plane(self, pts: np.ndarray, rest: np.ndarray, tol: np.ndarray, n: np.ndarray, d: float,
                      n_all: int) -> tuple[np.ndarray, float, np.ndarray] | None:
        """Refit a RANSAC candidate by least squares; (normal, offset, inlier indices) if it is a floor or wall.

        A wall is large in both directions *and* fills its extent: a person in a
        T-pose is flat to within the noise tolerance but covers a fifth of its box.
        """
        inl = rest[np.abs(pts[rest] @ n - d) < tol[rest]]
        if inl.size < 3:
            return None
        c = pts[inl].mean(axis=0)
        _, _, vt = np.linalg.svd(pts[inl] - c, full_matrices=False)
        n = vt[2]
        d = float(n @ c)
        inl = rest[np.abs(pts[rest] @ n - d) < tol[rest]]
        if inl.size < self.min_plane_fraction * n_all or abs(d) < self.min_plane_distance_mm:
            return None
        # a plane seen edge-on (through or near the camera centre) gathers whole image rows at any depth
        p_in = pts[inl]
        if np.median(np.abs(p_in @ n) / np.linalg.norm(p_in, axis=1)) < self.min_plane_incidence:
            return None
        q = (p_in - c) @ vt[:2].T
        lo, hi = np.percentile(q, 5, axis=0), np.percentile(q, 95, axis=0)
        if (hi - lo).min() < self.min_plane_extent_mm:
            return None
        cell = 200.0
        shape = np.maximum(np.ceil((hi - lo) / cell).astype(int), 1)
        inside = np.all((q >= lo) & (q < hi), axis=1)
        cells = np.floor((q[inside] - lo) / cell).astype(int)
        filled = np.unique(cells[:, 0] * shape[1] + cells[:, 1]).size / float(shape[0] * shape[1])
        if filled < self.min_plane_fill:
            return None
        if d > 0:
            n, d = -n, -d
        # nothing is seen through a floor or a wall: a plane with much behind it runs through an object
        if np.mean(pts @ n - d < -2.0 * tol) > self.max_behind_fraction:
            return None
        return n, d, inl

    def segment(self, depth_mm: np.ndarray, intrinsics: Intrinsics
                ) -> tuple[np.ndarray | None, np.ndarray, list[tuple[np.ndarray, float]]]:
        """(points (M, 3) mm of the person or None, subsampled mask of them, planes found)."""
        scene = self._scene(depth_mm, intrinsics)
        if not scene.order:
            return None, np.zeros(scene.sub.shape, dtype=bool), scene.planes
        pts, mask = self._object(scene, scene.order[0])
        return pts, mask, scene.planes

    def _scene(self, depth_mm: np.ndarray, intrinsics: Intrinsics) -> _Scene:
        """Floor and walls removed, the rest cut into objects, the objects ranked as people."""
        from scipy import ndimage  # noqa: PLC0415

        sub, grid = self._points(depth_mm, intrinsics)
        valid = sub > 0
        if valid.sum() < self.min_points:
            return _Scene(sub, grid, sub, np.zeros(sub.shape, dtype=np.int32), [], [])
        planes, on_plane = self.find_planes(grid[valid], np.argwhere(valid))
        fg = valid.copy()
        fg[valid] = ~on_plane
        # cut the image grid at depth jumps so objects at different depths separate
        z = np.where(fg, sub, np.nan)
        thr = np.maximum(self.jump_mm, 0.1 * np.nan_to_num(z, nan=0.0))
        cut = np.zeros_like(fg)
        with np.errstate(invalid="ignore"):
            dv = np.abs(np.diff(z, axis=0)) > np.minimum(thr[1:], thr[:-1])
            dh = np.abs(np.diff(z, axis=1)) > np.minimum(thr[:, 1:], thr[:, :-1])
        nearer_v = np.nan_to_num(z[1:], nan=np.inf) > np.nan_to_num(z[:-1], nan=np.inf)
        nearer_h = np.nan_to_num(z[:, 1:], nan=np.inf) > np.nan_to_num(z[:, :-1], nan=np.inf)
        # the farther pixel of a jump is cut: the near object keeps its silhouette
        cut[1:] |= dv & nearer_v
        cut[:-1] |= dv & ~nearer_v
        cut[:, 1:] |= dh & nearer_h
        cut[:, :-1] |= dh & ~nearer_h
        labels, n = ndimage.label(fg & ~cut)
        if n == 0:
            return _Scene(sub, grid, z, labels, [], planes)
        idx = np.arange(1, n + 1)
        s = self.step
        area = ndimage.sum(np.where(fg, sub * sub, 0.0), labels, idx) * (s * s / abs(intrinsics.fx * intrinsics.fy))
        count = ndimage.sum(np.ones_like(sub), labels, idx)
        mean_z = ndimage.sum(np.where(fg, sub, 0.0), labels, idx) / np.maximum(count, 1)
        ok = (area >= self.min_area_mm2) & (count >= self.min_points)
        if not ok.any():
            return _Scene(sub, grid, z, labels, [], planes)
        score = area.copy()
        floor = self._floor_plane(planes)
        if floor is not None:  # people are taller than most furniture: weigh by the top's height above the floor
            _, n_f, d_f = floor
            height = np.where(fg, grid @ n_f - d_f, -np.inf)
            top = np.asarray(ndimage.maximum(height, labels, idx), dtype=np.float64)
            score *= np.clip((top - 500.0) / 1000.0, 0.1, 1.0) ** 2
        big = ok & (score >= 0.6 * score[ok].max())
        pick = int(idx[big][np.argmin(mean_z[big])])
        # The person first (nearest of the large objects), then the other objects by score:
        # the hypotheses a pose network can verify when the first one is doubtful.
        rest = [int(i) for i in idx[ok][np.argsort(-score[ok], kind="stable")] if i != pick]
        return _Scene(sub, grid, z, labels, [pick, *rest], planes)

    def _object(self, scene: _Scene, label: int) -> tuple[np.ndarray, np.ndarray]:
        """Points (M, 3) mm and subsampled mask of object ``label`` with the pieces cut off it."""
        mask = self._grow(scene.labels == label, scene.labels, scene.z)
        pts = scene.grid[mask]
        near = float(np.percentile(pts[:, 2], 2))
        keep = pts[:, 2] <= near + self.depth_band_mm
        mask[mask] = keep
        return pts[keep], mask

    def _grow(self, mask: np.ndarray, labels: np.ndarray, z: np.ndarray, rounds: int = 4) -> np.ndarray:
        """Add the components that touch ``mask`` across a moderate depth step (a head or an arm in
        front of the torso is cut off by the jump test, but it is part of the same person)."""
        from scipy import ndimage  # noqa: PLC0415

        zf = np.nan_to_num(z, nan=np.inf)
        for _ in range(rounds):
            zmin = ndimage.minimum_filter(np.where(mask, zf, np.inf), size=5)
            zmax = ndimage.maximum_filter(np.where(mask, zf, -np.inf), size=5)
            ring = (labels > 0) & ~mask & np.isfinite(zmin)
            close = ring & (zf > zmin - self.merge_jump_mm) & (zf < zmax + self.merge_jump_mm)
            add = np.unique(labels[close])
            if add.size == 0:
                break
            mask = mask | np.isin(labels, add)
        return mask

    def _floor_plane(self, planes: list[tuple[np.ndarray, float]]) -> tuple[str, np.ndarray, float] | None:
        """(view, normal, offset) of the plane most likely to be the floor, judged by orientation alone."""
        for n, d in planes:  # a floor seen by a roughly horizontal camera: its normal is image-up (-y)
            if self.view in ("auto", "front") and -n[1] > np.cos(np.radians(50.0)):
                return "front", n, d
        for n, d in planes:  # a floor seen from above faces the camera
            if self.view in ("auto", "top") and -n[2] > np.cos(np.radians(40.0)):
                return "top", n, d
        return None

    def _floor(self, pts: np.ndarray, planes: list[tuple[np.ndarray, float]]) -> tuple[str, np.ndarray, float] | None:
        """The floor the person stands on: a plane of the right orientation with the person's height range above it."""
        floor = self._floor_plane(planes)
        if floor is None or floor[0] == "front":
            return floor
        _, n, d = floor
        h = pts @ n - d
        if np.percentile(h, 2) > -100.0 and 700.0 < np.percentile(h, 98) < 2600.0:
            return floor
        return None

    def locate(self, depth_mm: np.ndarray, intrinsics: Intrinsics) -> np.ndarray | None:
        """Centre (3,) mm of the person nearest the camera, or None when there is none."""
        pts, _, planes = self.segment(depth_mm, intrinsics)
        if pts is None or len(pts) < self.min_points:
            return None
        return self._centre(pts, planes)

    def hypotheses(self, depth_mm: np.ndarray, intrinsics: Intrinsics, k: int,
                   min_separation_mm: float = 300.0) -> Iterator[np.ndarray]:
        """Up to ``k`` person centres (mm), the :meth:`locate` answer first, computed on demand.

        The others are the next objects of the scene by size and height: when the pose
        network is unsure of the first (a cabinet picked instead of the person), the
        estimator tries these (``PoseEstimator._estimate_verified``).
        """
        scene = self._scene(depth_mm, intrinsics)
        given: list[np.ndarray] = []
        for label in scene.order:
            if len(given) >= k:
                return
            pts, _ = self._object(scene, label)
            if len(pts) < self.min_points:
                continue
            c = self._centre(pts, scene.planes)
            if all(np.linalg.norm(c - g) >= min_separation_mm for g in given):  # grown into one already given
                given.append(c)
                yield c

    def _centre(self, pts: np.ndarray, planes: list[tuple[np.ndarray, float]]) -> np.ndarray:
        """The joints' mean estimated from the visible surface of one person (see the class docstring)."""
        com = pts.mean(axis=0)
        floor = self._floor(pts, planes)
        if floor is None:
            return com + com / np.linalg.norm(com) * self.surface_offset_mm
        view, n, d = floor
        h = pts @ n - d
        foot = com - (com @ n - d) * n  # the centre of mass dropped onto the floor
        if view == "front":
            height = 0.5 * (0.55 * np.percentile(h, 98) + h.mean())
            ahead = foot - d * n  # horizontal direction from the camera to the person
            foot = foot + ahead / max(np.linalg.norm(ahead), 1e-6) * self.surface_offset_mm
        else:
            height = 0.53 * np.percentile(h, 98)
        return foot + n * height


@dataclass
class _Scene:
    """One depth image taken apart by :class:`BodyLocalizer` (subsampled grid)."""

    sub: np.ndarray  # (h, w) depth mm, 0 = invalid
    grid: np.ndarray  # (h, w, 3) back-projected points mm
    z: np.ndarray  # (h, w) depth of the foreground (NaN elsewhere)
    labels: np.ndarray  # (h, w) object labels, 0 = none
    order: list[int]  # candidate people, best first
    planes: list[tuple[np.ndarray, float]]


def localizer_for(meta: Any) -> Localizer | BodyLocalizer:
    """The localiser that suits a model: :class:`BodyLocalizer` for body skeletons, else the hand's.

    ``meta`` is a ``ModelMeta`` (or anything with ``skeleton`` and ``cube_size``), so
    an estimator picks the right one from its checkpoint alone.
    """
    cube = float(getattr(meta, "cube_size", 200.0))
    if is_body_skeleton(getattr(meta, "skeleton", None)):
        return BodyLocalizer(cube_size=cube)
    return Localizer(cube_size=cube)
