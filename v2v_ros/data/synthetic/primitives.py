"""Analytic ray casting of the shapes the synthetic scenes are made of.

Every ray starts at the camera centre (the origin of the optical frame), so each
intersection routine takes only the unit ray directions ``(dx, dy, dz)`` of the
pixels it is asked about (arrays of any one shape) and returns

* ``t``: distance along the ray to the first hit in mm (``inf`` where missed), and
* ``cos``: |cosine| between the surface normal and the ray at the hit (used by the
  sensor model to drop pixels seen at grazing angles).

Closed-form intersections (after Inigo Quilez's formulas) keep a frame at a few
milliseconds: no meshes, no BVH, one NumPy expression per primitive over the
pixels of its projected bounding box only. Arithmetic is float64 because the
quadratics of mm-scale shapes seen from up to a few metres cancel badly in float32.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Vec = np.ndarray
_INF = np.inf


def _dot(v: Vec, dx: Vec, dy: Vec, dz: Vec) -> Vec:
    return v[0] * dx + v[1] * dy + v[2] * dz


def _finish(t: Vec, hit: Vec, cos: Vec) -> tuple[Vec, Vec]:
    """Misses and hits behind the camera become ``t = inf``; ``cos`` is only meaningful where t is finite."""
    return np.where(hit & (t > 0), t, _INF), np.abs(cos)


class Primitive:
    """A ray-castable shape.

    ``aabb`` lets the renderer limit the pixels it tests to the projection of the
    shape's box; ``candidates`` (optional) is a cheaper necessary test whose
    survivors alone get the full intersection, which matters for long thin
    shapes (a diagonal forearm covers little of its box).
    """

    def bounding_sphere(self) -> tuple[Vec, float]:  # pragma: no cover - interface
        raise NotImplementedError

    def aabb(self) -> tuple[Vec, Vec]:
        c, r = self.bounding_sphere()
        return c - r, c + r

    def candidates(self, dx: Vec, dy: Vec, dz: Vec) -> Vec | None:
        """Boolean mask that is True for every ray that may hit (None: test all)."""
        return None

    def intersect(self, dx: Vec, dy: Vec, dz: Vec) -> tuple[Vec, Vec]:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass
class RoundCone(Primitive):
    """Tapered capsule: the convex hull of a sphere of radius ``ra`` at ``a`` and ``rb`` at ``b``.

    This is the standard stand-in for a phalanx (thick at the knuckle, thinner at the
    tip); with ``ra == rb`` it is an ordinary capsule.
    """

    a: Vec
    b: Vec
    ra: float
    rb: float

    def __post_init__(self) -> None:
        self.a = np.asarray(self.a, dtype=np.float64)
        self.b = np.asarray(self.b, dtype=np.float64)
        length = float(np.linalg.norm(self.b - self.a))
        if abs(self.ra - self.rb) >= length - 1e-6:
            # One sphere contains the other: the hull is just the bigger sphere (kept as a tiny capsule).
            centre, r = (self.a, self.ra) if self.ra >= self.rb else (self.b, self.rb)
            self.a, self.b = centre.copy(), centre + np.array([0.0, 0.0, 1e-3])
            self.ra = self.rb = float(r)

    def bounding_sphere(self) -> tuple[Vec, float]:
        centre = 0.5 * (self.a + self.b)
        return centre, 0.5 * float(np.linalg.norm(self.b - self.a)) + max(self.ra, self.rb)

    def aabb(self) -> tuple[Vec, Vec]:
        return np.minimum(self.a - self.ra, self.b - self.rb), np.maximum(self.a + self.ra, self.b + self.rb)

    def candidates(self, dx: Vec, dy: Vec, dz: Vec) -> Vec:
        # The solid (double) cone tangent to both spheres contains the hull: its discriminant is necessary.
        ra, rr = float(self.ra), float(self.ra - self.rb)
        ba, oa = self.b - self.a, -self.a
        m0, m1, m5 = ba @ ba, ba @ oa, oa @ oa
        d2 = m0 - rr * rr
        k0 = d2 * m5 - m1 * m1 + 2.0 * m1 * rr * ra - m0 * ra * ra
        m2 = _dot(ba, dx, dy, dz)
        k1 = _dot(d2 * oa, dx, dy, dz) + m2 * (rr * ra - m1)
        return k1 * k1 >= k0 * (d2 - m2 * m2)

    def intersect(self, dx: Vec, dy: Vec, dz: Vec) -> tuple[Vec, Vec]:
        ra, rb = float(self.ra), float(self.rb)
        ba = self.b - self.a
        oa, ob = -self.a, -self.b
        rr = ra - rb
        m0, m1, m5, m7 = ba @ ba, ba @ oa, oa @ oa, ob @ ob
        m2 = _dot(ba, dx, dy, dz)
        m3 = _dot(oa, dx, dy, dz)
        m6 = _dot(ob, dx, dy, dz)
        d2 = m0 - rr * rr
        k2 = d2 - m2 * m2
        k1 = d2 * m3 - m1 * m2 + m2 * (rr * ra)
        k0 = d2 * m5 - m1 * m1 + 2.0 * m1 * rr * ra - m0 * ra * ra
        with np.errstate(invalid="ignore", divide="ignore"):
            h = k1 * k1 - k0 * k2
            tb = (-np.sqrt(h) - k1) / k2
            y = (m1 - ra * rr) + tb * m2
            body = (h >= 0) & (y > 0) & (y < d2)
            h1 = m3 * m3 - m5 + ra * ra
            h2 = m6 * m6 - m7 + rb * rb
            t1 = np.where(h1 > 0, -m3 - np.sqrt(h1), _INF)
            t2 = np.where(h2 > 0, -m6 - np.sqrt(h2), _INF)
            cap_b = t2 < t1
            t = np.where(body, tb, np.minimum(t1, t2))
            hit = np.isfinite(t)
            # Normal·ray without normalising vectors we do not need: body normal is
            # d2·(P - a) - ba·y, cap normals are (P - a)/ra or (P - b)/rb with P = t·ray.
            px, py, pz = t * dx, t * dy, t * dz
            cx = np.where(body, d2 * (px + oa[0]) - ba[0] * y, np.where(cap_b, px + ob[0], px + oa[0]))
            cy = np.where(body, d2 * (py + oa[1]) - ba[1] * y, np.where(cap_b, py + ob[1], py + oa[1]))
            cz = np.where(body, d2 * (pz + oa[2]) - ba[2] * y, np.where(cap_b, pz + ob[2], pz + oa[2]))
            cos = (cx * dx + cy * dy + cz * dz) / np.sqrt(cx * cx + cy * cy + cz * cz)
        return _finish(t, hit, cos)

    def sdf(self, points: Vec) -> Vec:
        """Signed distance of (N, 3) points to the surface (negative inside); for tests and clearances."""
        p = np.asarray(points, dtype=np.float64)
        ba = self.b - self.a
        l2 = ba @ ba
        rr = self.ra - self.rb
        a2 = l2 - rr * rr
        il2 = 1.0 / l2
        pa = p - self.a
        y = pa @ ba
        z = y - l2
        x2 = np.sum((pa * l2 - np.outer(y, ba)) ** 2, axis=1)
        y2 = y * y * l2
        z2 = z * z * l2
        k = np.sign(rr) * rr * rr * x2
        with np.errstate(invalid="ignore"):
            d_b = np.sqrt(x2 + z2) * il2 - self.rb
            d_a = np.sqrt(x2 + y2) * il2 - self.ra
            d_body = (np.sqrt(x2 * a2 * il2) + y * rr) * il2 - self.ra
        return np.where(np.sign(z) * a2 * z2 > k, d_b, np.where(np.sign(y) * a2 * y2 < k, d_a, d_body))


@dataclass
class Ellipsoid(Primitive):
    """Ellipsoid with semi-axes ``radii`` along the columns of rotation ``rot`` (palm, torso)."""

    centre: Vec
    radii: Vec
    rot: Vec  # (3, 3), columns = axes in camera frame; may be improper (mirrored hands)

    def __post_init__(self) -> None:
        self.centre = np.asarray(self.centre, dtype=np.float64)
        self.radii = np.asarray(self.radii, dtype=np.float64)
        self.rot = np.asarray(self.rot, dtype=np.float64)

    def bounding_sphere(self) -> tuple[Vec, float]:
        return self.centre, float(self.radii.max())

    def aabb(self) -> tuple[Vec, Vec]:
        half = np.sqrt(np.square(self.rot * self.radii).sum(axis=1))
        return self.centre - half, self.centre + half

    def candidates(self, dx: Vec, dy: Vec, dz: Vec) -> Vec:
        # exact hit test (discriminant >= 0); normals are then computed only for the hits
        m = self.rot / self.radii
        o = m.T @ (-self.centre)
        ex, ey, ez = _dot(m[:, 0], dx, dy, dz), _dot(m[:, 1], dx, dy, dz), _dot(m[:, 2], dx, dy, dz)
        b = o[0] * ex + o[1] * ey + o[2] * ez
        return b * b >= (ex * ex + ey * ey + ez * ez) * (o @ o - 1.0)

    def intersect(self, dx: Vec, dy: Vec, dz: Vec) -> tuple[Vec, Vec]:
        m = self.rot / self.radii  # column i = axis_i / r_i; local = m.T @ world
        o = m.T @ (-self.centre)
        ex = _dot(m[:, 0], dx, dy, dz)
        ey = _dot(m[:, 1], dx, dy, dz)
        ez = _dot(m[:, 2], dx, dy, dz)
        a = ex * ex + ey * ey + ez * ez
        b = o[0] * ex + o[1] * ey + o[2] * ez
        c0 = o @ o - 1.0
        with np.errstate(invalid="ignore"):
            h = b * b - a * c0
            t = (-b - np.sqrt(h)) / a
            hit = h >= 0
            # gradient of |local|^2 in world: m @ (local / 1) -> dot with ray
            qx, qy, qz = o[0] + t * ex, o[1] + t * ey, o[2] + t * ez
            gx = m[0, 0] * qx + m[0, 1] * qy + m[0, 2] * qz
            gy = m[1, 0] * qx + m[1, 1] * qy + m[1, 2] * qz
            gz = m[2, 0] * qx + m[2, 1] * qy + m[2, 2] * qz
            cos = (gx * dx + gy * dy + gz * dz) / np.sqrt(gx * gx + gy * gy + gz * gz)
        return _finish(t, hit, cos)


@dataclass
class Sphere(Primitive):
    """Sphere (distractor objects, heads)."""

    centre: Vec
    radius: float

    def __post_init__(self) -> None:
        self.centre = np.asarray(self.centre, dtype=np.float64)

    def bounding_sphere(self) -> tuple[Vec, float]:
        return self.centre, float(self.radius)

    def intersect(self, dx: Vec, dy: Vec, dz: Vec) -> tuple[Vec, Vec]:
        b = _dot(self.centre, dx, dy, dz)
        with np.errstate(invalid="ignore"):
            h = b * b - (self.centre @ self.centre - self.radius**2)
            s = np.sqrt(h)
            hit = h >= 0
            return _finish(b - s, hit, s / self.radius)


@dataclass
class Box(Primitive):
    """Oriented box with half extents ``half`` along the columns of ``rot``."""

    centre: Vec
    half: Vec
    rot: Vec

    def __post_init__(self) -> None:
        self.centre = np.asarray(self.centre, dtype=np.float64)
        self.half = np.asarray(self.half, dtype=np.float64)
        self.rot = np.asarray(self.rot, dtype=np.float64)

    def bounding_sphere(self) -> tuple[Vec, float]:
        return self.centre, float(np.linalg.norm(self.half))

    def aabb(self) -> tuple[Vec, Vec]:
        half = np.abs(self.rot) @ self.half
        return self.centre - half, self.centre + half

    def intersect(self, dx: Vec, dy: Vec, dz: Vec) -> tuple[Vec, Vec]:
        o = self.rot.T @ (-self.centre)
        tnear = np.full(np.shape(dx), -_INF)
        tfar = np.full(np.shape(dx), _INF)
        cos = np.zeros(np.shape(dx))
        with np.errstate(divide="ignore", invalid="ignore"):
            for i in range(3):
                d = _dot(self.rot[:, i], dx, dy, dz)
                inv = 1.0 / d
                t1 = (-self.half[i] - o[i]) * inv
                t2 = (self.half[i] - o[i]) * inv
                lo = np.minimum(t1, t2)
                better = lo > tnear
                tnear = np.where(better, lo, tnear)
                cos = np.where(better, d, cos)
                tfar = np.minimum(tfar, np.maximum(t1, t2))
        hit = (tnear <= tfar) & np.isfinite(tnear)
        return _finish(tnear, hit, cos)


@dataclass
class Cylinder(Primitive):
    """Capped cylinder from ``a`` to ``b`` (cans, bottles, mugs)."""

    a: Vec
    b: Vec
    radius: float

    def __post_init__(self) -> None:
        self.a = np.asarray(self.a, dtype=np.float64)
        self.b = np.asarray(self.b, dtype=np.float64)

    def bounding_sphere(self) -> tuple[Vec, float]:
        return 0.5 * (self.a + self.b), float(np.hypot(0.5 * np.linalg.norm(self.b - self.a), self.radius))

    def aabb(self) -> tuple[Vec, Vec]:
        e = (self.b - self.a) / max(float(np.linalg.norm(self.b - self.a)), 1e-9)
        r = self.radius * np.sqrt(np.clip(1.0 - e * e, 0.0, 1.0))
        return np.minimum(self.a, self.b) - r, np.maximum(self.a, self.b) + r

    def intersect(self, dx: Vec, dy: Vec, dz: Vec) -> tuple[Vec, Vec]:
        ba = self.b - self.a
        oc = -self.a
        baba, baoc = ba @ ba, ba @ oc
        bard = _dot(ba, dx, dy, dz)
        ocrd = _dot(oc, dx, dy, dz)
        k2 = baba - bard * bard
        k1 = baba * ocrd - baoc * bard
        k0 = baba * (oc @ oc) - baoc * baoc - self.radius**2 * baba
        with np.errstate(invalid="ignore", divide="ignore"):
            h = k1 * k1 - k2 * k0
            sh = np.sqrt(h)
            t_body = (-k1 - sh) / k2
            y = baoc + t_body * bard
            body = (h >= 0) & (y > 0) & (y < baba)
            t_cap = (np.where(y < 0, 0.0, baba) - baoc) / bard
            cap = (h >= 0) & ~body & (np.abs(k1 + k2 * t_cap) < sh)
            t = np.where(body, t_body, t_cap)
            # body normal ∝ (P - a) - ba·y/baba; cap normal = ±ba
            nx = t * dx + oc[0] - ba[0] * y / baba
            ny = t * dy + oc[1] - ba[1] * y / baba
            nz = t * dz + oc[2] - ba[2] * y / baba
            cos_body = (nx * dx + ny * dy + nz * dz) / np.sqrt(nx * nx + ny * ny + nz * nz)
            cos = np.where(body, cos_body, bard / np.sqrt(baba))
        return _finish(t, body | cap, cos)


@dataclass
class Plane(Primitive):
    """Infinite plane through ``point`` with unit ``normal`` (tables, walls); covers the whole image."""

    point: Vec
    normal: Vec

    def __post_init__(self) -> None:
        self.point = np.asarray(self.point, dtype=np.float64)
        n = np.asarray(self.normal, dtype=np.float64)
        self.normal = n / np.linalg.norm(n)

    def bounding_sphere(self) -> tuple[Vec, float]:
        return self.point, _INF

    def intersect(self, dx: Vec, dy: Vec, dz: Vec) -> tuple[Vec, Vec]:
        denom = _dot(self.normal, dx, dy, dz)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (self.normal @ self.point) / denom
        return _finish(t, np.isfinite(t), denom)
