"""Synthetic people: an articulated ITOP-15 body in a room, seen by an ITOP-like front or top camera.

Why: the ITOP results of the paper (Table 5) need a body model, and a robot
that works beside people needs one trained on data whose labels are exact. The
body is built from the same analytic primitives as the synthetic hands (capsules
for limbs, ellipsoids for torso and head), rendered by the same z-buffer and the
same sensor model, and written through the same shards / rosbag writers.

Body frame: origin at the pelvis centre, +y up, +z the direction the person
faces, +x the person's *left* (right-handed). Joints come out in the ITOP order of
:data:`v2v_ros.core.skeletons.BODY_ITOP15`. Angles are degrees; the degrees of
freedom and their limits are :data:`BODY_DOFS`. World frame: floor is y = 0, y up.

Public API::

    from v2v_ros.data.synthetic.body import BodyConfig, render_body_frame
    frame = render_body_frame(seed=0, index=3, config=BodyConfig(view="top"))

Sample ``index`` of ``seed`` depends on nothing else (``np.random.default_rng([seed, index])``).
"""

from __future__ import annotations

import functools
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from v2v_ros.core.camera import Intrinsics
from v2v_ros.core.skeletons import BODY_ITOP15
from v2v_ros.data.datasets import get_dataset
from v2v_ros.data.shards import Frame
from v2v_ros.data.synthetic.hand import rot_x, rot_y, rot_z
from v2v_ros.data.synthetic.primitives import Box, Cylinder, Ellipsoid, Plane, Primitive, RoundCone, Sphere
from v2v_ros.data.synthetic.render import SensorModel, apply_sensor, render_zbuffer

NUM_JOINTS = BODY_ITOP15.num_joints
J = {name: i for i, name in enumerate(BODY_ITOP15.joint_names)}

# (name, lo, hi) in degrees. Shoulder/hip abduction and twist are "outwards positive" on both
# sides, so mirroring a pose is swapping r_ and l_ (and negating the trunk's sideways terms).
BODY_DOFS: tuple[tuple[str, float, float], ...] = (
    ("spine_flex", -20.0, 95.0),  # forward bend at the lumbar spine
    ("spine_side", -30.0, 30.0),  # lean to the person's right (+)
    ("spine_twist", -45.0, 45.0),
    ("neck_flex", -40.0, 60.0),
    ("neck_turn", -70.0, 70.0),
    ("r_shoulder_flex", -60.0, 175.0),  # forward raise of the arm
    ("r_shoulder_abd", -20.0, 165.0),  # sideways raise
    ("r_shoulder_twist", -60.0, 90.0),
    ("r_elbow", 0.0, 150.0),
    ("l_shoulder_flex", -60.0, 175.0),
    ("l_shoulder_abd", -20.0, 165.0),
    ("l_shoulder_twist", -60.0, 90.0),
    ("l_elbow", 0.0, 150.0),
    ("r_hip_flex", -30.0, 125.0),  # forward raise of the thigh
    ("r_hip_abd", -20.0, 45.0),
    ("r_hip_twist", -40.0, 40.0),
    ("r_knee", 0.0, 150.0),
    ("l_hip_flex", -30.0, 125.0),
    ("l_hip_abd", -20.0, 45.0),
    ("l_hip_twist", -40.0, 40.0),
    ("l_knee", 0.0, 150.0),
)
DOF = {name: i for i, (name, _, _) in enumerate(BODY_DOFS)}
BODY_LIMITS = np.array([[lo, hi] for _, lo, hi in BODY_DOFS], dtype=np.float64)
_SWAP = {"r_": "l_", "l_": "r_"}
_MIRROR_PERM = np.array([DOF[_SWAP.get(n[:2], n[:2]) + n[2:]] for n, _, _ in BODY_DOFS])
_MIRROR_SIGN = np.array([-1.0 if n in ("spine_side", "spine_twist", "neck_turn") else 1.0 for n, _, _ in BODY_DOFS])


def _pose(**angles: float) -> np.ndarray:
    v = np.zeros(len(BODY_DOFS))
    for k, a in angles.items():
        v[DOF[k]] = a
    return v


_RELAXED_ARMS = {"r_shoulder_abd": 8, "l_shoulder_abd": 8, "r_elbow": 12, "l_elbow": 12}
# Named poses; the sampler mirrors them (left/right) and blends pairs, so one side is enough.
POSE_PRESETS: dict[str, np.ndarray] = {
    "stand": _pose(**_RELAXED_ARMS, r_hip_abd=4, l_hip_abd=4),
    "walk": _pose(r_hip_flex=28, r_knee=12, l_hip_flex=-18, l_knee=38, r_shoulder_flex=-22, l_shoulder_flex=26,
                  r_elbow=20, l_elbow=30, r_shoulder_abd=6, l_shoulder_abd=6, spine_flex=4),
    "reach_forward": _pose(r_shoulder_flex=85, r_shoulder_abd=10, r_elbow=10, l_shoulder_abd=8, l_elbow=12,
                           spine_flex=10, r_hip_abd=5, l_hip_abd=5),
    "reach_up": _pose(r_shoulder_flex=155, r_shoulder_abd=25, r_elbow=15, l_shoulder_abd=10, l_elbow=15,
                      spine_side=-8, l_hip_abd=4),
    "reach_side": _pose(l_shoulder_abd=88, l_elbow=8, r_shoulder_abd=8, r_elbow=15, spine_side=-10, l_hip_abd=8),
    "arms_out": _pose(r_shoulder_abd=85, l_shoulder_abd=90, r_elbow=10, l_elbow=5),
    "sit": _pose(r_hip_flex=88, l_hip_flex=92, r_knee=88, l_knee=95, r_hip_abd=8, l_hip_abd=10, spine_flex=8,
                 r_shoulder_flex=30, l_shoulder_flex=35, r_elbow=65, l_elbow=60, neck_flex=10),
    "bend": _pose(spine_flex=75, r_shoulder_flex=70, l_shoulder_flex=75, r_elbow=10, l_elbow=15, r_knee=12,
                  l_knee=10, r_hip_abd=6, l_hip_abd=6, neck_flex=-20),
    "crouch": _pose(r_hip_flex=110, l_hip_flex=115, r_knee=125, l_knee=130, spine_flex=35, r_shoulder_flex=50,
                    l_shoulder_flex=45, r_elbow=40, l_elbow=45, r_hip_abd=15, l_hip_abd=15),
}
SEATED_PRESETS = ("sit",)


@dataclass
class BodyPose:
    """Joint angles (degrees, :data:`BODY_DOFS` order) and whether the person sits on a chair."""

    angles: np.ndarray
    name: str = "custom"
    seated: bool = False

    def within_limits(self, tol: float = 1e-9) -> bool:
        a = self.angles
        return bool(np.all(a >= BODY_LIMITS[:, 0] - tol) and np.all(a <= BODY_LIMITS[:, 1] + tol))

    def get(self, dof: str) -> float:
        return float(self.angles[DOF[dof]])


def mirror_pose(angles: np.ndarray) -> np.ndarray:
    """The same pose with left and right exchanged."""
    return np.asarray(angles)[_MIRROR_PERM] * _MIRROR_SIGN


def clip_pose(angles: np.ndarray) -> np.ndarray:
    return np.clip(angles, BODY_LIMITS[:, 0], BODY_LIMITS[:, 1])


def sample_body_pose(rng: np.random.Generator, jitter_deg: float = 8.0) -> BodyPose:
    """A plausible pose: a preset, a blend of two presets, or a preset with freely placed arms.

    Blends give the in-between poses people pass through (half-sitting, walking
    while reaching); the free-arm branch covers gestures no preset names. Each is
    mirrored with probability 1/2 so neither side is favoured.
    """
    names = list(POSE_PRESETS)
    mode = rng.random()
    seated = False
    if mode < 0.35:
        name = names[int(rng.integers(len(names)))]
        angles = POSE_PRESETS[name].copy()
        seated = name in SEATED_PRESETS
    elif mode < 0.8:
        i, j = rng.choice(len(names), size=2, replace=False)
        w = float(rng.random())
        angles = (1 - w) * POSE_PRESETS[names[i]] + w * POSE_PRESETS[names[j]]
        name = f"blend:{names[i]}+{names[j]}"
        seated = (names[i] in SEATED_PRESETS and w < 0.35) or (names[j] in SEATED_PRESETS and w > 0.65)
    else:
        base = names[int(rng.integers(len(names)))]
        angles = POSE_PRESETS[base].copy()
        for side in ("r_", "l_"):
            if rng.random() < 0.7:
                for dof in ("shoulder_flex", "shoulder_abd", "shoulder_twist", "elbow"):
                    lo, hi = BODY_LIMITS[DOF[side + dof]]
                    angles[DOF[side + dof]] = rng.uniform(lo, hi) if dof != "shoulder_abd" else rng.uniform(lo, 120.0)
        name = f"free_arms:{base}"
        seated = base in SEATED_PRESETS
    if rng.random() < 0.5:
        angles = mirror_pose(angles)
    angles = clip_pose(angles + rng.normal(0.0, jitter_deg, size=angles.shape))
    if seated:  # keep the thighs on the seat
        for side in ("r_", "l_"):
            angles[DOF[side + "hip_flex"]] = max(angles[DOF[side + "hip_flex"]], 70.0)
            angles[DOF[side + "knee"]] = max(angles[DOF[side + "knee"]], 60.0)
    return BodyPose(angles=angles, name=name, seated=seated)


# Segment lengths as fractions of the standing height (anthropometric tables, Drillis & Contini).
_LENGTHS = {
    "hip_half": 0.085, "hip_drop": 0.02, "spine": 0.30, "torso_at": 0.45, "shoulder_half": 0.125,
    "shoulder_drop": 0.03, "head": 0.085, "upper_arm": 0.175, "forearm": 0.15, "hand": 0.04,
    "thigh": 0.245, "shin": 0.245, "ankle": 0.04, "foot": 0.11,
}


@dataclass
class BodyShape:
    """Size and build of one person: standing ``height`` (mm), ``girth`` (width/depth factor), length jitter."""

    height: float = 1750.0
    girth: float = 1.0
    lengths: dict[str, float] = field(default_factory=lambda: dict(_LENGTHS))

    def mm(self, key: str) -> float:
        return self.lengths[key] * self.height


def sample_body_shape(rng: np.random.Generator, height_range: tuple[float, float] = (1500.0, 1950.0),
                      girth_range: tuple[float, float] = (0.85, 1.3), length_jitter: float = 0.05) -> BodyShape:
    """Random height, girth and per-segment proportions (±``length_jitter``)."""
    lengths = {k: v * float(rng.uniform(1 - length_jitter, 1 + length_jitter)) for k, v in _LENGTHS.items()}
    return BodyShape(float(rng.uniform(*height_range)), float(rng.uniform(*girth_range)), lengths)


@dataclass
class _Rig:
    """Everything forward kinematics yields (body frame, mm): joints plus the extra points the surface needs."""

    joints: np.ndarray
    spine_rot: np.ndarray
    head_rot: np.ndarray
    wrists: tuple[np.ndarray, np.ndarray]
    hand_dirs: tuple[np.ndarray, np.ndarray]
    feet: tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]  # (heel, toe) per side


class BodyModel:
    """Forward kinematics and surface primitives of one :class:`BodyShape`."""

    def __init__(self, shape: BodyShape) -> None:
        self.shape = shape

    def _rig(self, pose: BodyPose) -> _Rig:
        s, a = self.shape, pose.get
        out = np.zeros((NUM_JOINTS, 3))
        r_sp = rot_y(a("spine_twist")) @ rot_x(a("spine_flex")) @ rot_z(a("spine_side"))
        up = np.array([0.0, 1.0, 0.0])
        out[J["neck"]] = r_sp @ (up * s.mm("spine"))
        out[J["torso"]] = r_sp @ (up * s.mm("spine") * s.lengths["torso_at"])
        r_head = r_sp @ rot_y(a("neck_turn")) @ rot_x(a("neck_flex"))
        out[J["head"]] = out[J["neck"]] + r_head @ np.array([0.0, s.mm("head"), 0.012 * s.height])
        down = np.array([0.0, -1.0, 0.0])
        wrists, hand_dirs, feet = [], [], []
        for side, sign in (("r_", -1.0), ("l_", 1.0)):
            sh = r_sp @ np.array([sign * s.mm("shoulder_half"), s.mm("spine") - s.mm("shoulder_drop"), 0.0])
            r_arm = r_sp @ rot_z(sign * a(side + "shoulder_abd")) @ rot_x(-a(side + "shoulder_flex")) @ rot_y(
                sign * a(side + "shoulder_twist"))
            el = sh + r_arm @ (down * s.mm("upper_arm"))
            r_fore = r_arm @ rot_x(-a(side + "elbow"))
            wr = el + r_fore @ (down * s.mm("forearm"))
            out[J[side + "shoulder"]], out[J[side + "elbow"]] = sh, el
            out[J[side + "hand"]] = wr + r_fore @ (down * s.mm("hand"))
            wrists.append(wr)
            hand_dirs.append(r_fore @ down)
            hip = np.array([sign * s.mm("hip_half"), -s.mm("hip_drop"), 0.0])
            r_leg = rot_z(sign * a(side + "hip_abd")) @ rot_x(-a(side + "hip_flex")) @ rot_y(sign * a(side + "hip_twist"))
            kn = hip + r_leg @ (down * s.mm("thigh"))
            r_shin = r_leg @ rot_x(a(side + "knee"))
            an = kn + r_shin @ (down * s.mm("shin"))
            out[J[side + "hip"]], out[J[side + "knee"]], out[J[side + "foot"]] = hip, kn, an
            # the ankle keeps the foot level while it can (shin pitch within the ankle's range)
            pitch = a(side + "hip_flex") - a(side + "knee")
            r_foot = r_shin @ rot_x(float(np.clip(pitch, -45.0, 30.0)))
            fwd, dn = r_foot @ np.array([0.0, 0.0, 1.0]), r_foot @ down
            heel = an + dn * (0.5 * s.mm("ankle")) - fwd * (0.02 * s.height)
            toe = an + dn * (0.72 * s.mm("ankle")) + fwd * s.mm("foot")
            feet.append((heel, toe))
        return _Rig(out, r_sp, r_head, (wrists[0], wrists[1]), (hand_dirs[0], hand_dirs[1]),
                    ((feet[0][0], feet[0][1]), (feet[1][0], feet[1][1])))

    def joints(self, pose: BodyPose) -> np.ndarray:
        """(15, 3) joints in the body frame (pelvis at the origin), ITOP order."""
        return self._rig(pose).joints

    def _parts(self, pose: BodyPose) -> list[tuple[str, Primitive]]:
        """Surface in the body frame: (name, primitive) pairs."""
        s, rig = self.shape, self._rig(pose)
        h, g = s.height, s.girth
        jt = rig.joints
        r_sp = rig.spine_rot
        parts: list[tuple[str, Primitive]] = []
        spine = s.mm("spine")

        def on_spine(frac: float, fwd: float = 0.0) -> np.ndarray:
            return r_sp @ np.array([0.0, frac * spine, fwd * h])

        parts.append(("head", Ellipsoid(jt[J["head"]] + rig.head_rot @ np.array([0.0, 0.01 * h, 0.0]),
                                        np.array([0.046, 0.064, 0.055]) * h * g**0.25, rig.head_rot)))
        parts.append(("neck", RoundCone(jt[J["neck"]] - r_sp @ np.array([0.0, 0.02 * h, 0.0]), jt[J["head"]],
                                        0.034 * h * g**0.5, 0.03 * h * g**0.5)))
        parts.append(("chest", Ellipsoid(on_spine(0.68), np.array([0.104 * g, 0.115, 0.064 * g]) * h, r_sp)))
        parts.append(("belly", Ellipsoid(on_spine(0.3, 0.005 * (g - 1.0)), np.array([0.094 * g, 0.1, 0.062 * g**1.4]) * h,
                                         r_sp)))
        parts.append(("pelvis", Ellipsoid(np.array([0.0, -0.01 * h, -0.005 * h]),
                                          np.array([0.106 * g, 0.068, 0.07 * g]) * h, np.eye(3))))
        for k, side in enumerate(("r_", "l_")):
            sh, el, hd = jt[J[side + "shoulder"]], jt[J[side + "elbow"]], jt[J[side + "hand"]]
            wr = rig.wrists[k]
            parts.append((side + "upper_arm", RoundCone(sh, el, 0.027 * h * g, 0.021 * h * g)))
            parts.append((side + "forearm", RoundCone(el, wr, 0.02 * h * g, 0.015 * h * g**0.5)))
            parts.append((side + "hand", RoundCone(wr, hd + rig.hand_dirs[k] * 0.035 * h, 0.016 * h, 0.012 * h)))
            hip, kn, an = jt[J[side + "hip"]], jt[J[side + "knee"]], jt[J[side + "foot"]]
            parts.append((side + "thigh", RoundCone(hip, kn, 0.05 * h * g, 0.031 * h * g)))
            parts.append((side + "shin", RoundCone(kn, an, 0.03 * h * g, 0.02 * h * g**0.5)))
            heel, toe = rig.feet[k]
            parts.append((side + "foot", RoundCone(heel, toe, 0.02 * h, 0.013 * h)))
        return parts

    def primitives(self, pose: BodyPose, rot: np.ndarray, trans: np.ndarray) -> list[Primitive]:
        """Surface placed by ``x = rot @ x_body + trans``."""
        return [transform_primitive(p, rot, trans) for _, p in self._parts(pose)]

    def lowest_point(self, pose: BodyPose) -> float:
        """Smallest y of the surface (body frame): where the floor goes when nothing else supports the body."""
        lows = []
        for _, p in self._parts(pose):
            lo, _ = p.aabb()
            lows.append(lo[1])
        return float(min(lows))


def transform_primitive(p: Primitive, rot: np.ndarray, trans: np.ndarray) -> Primitive:
    """The primitive moved by the rigid motion ``x -> rot @ x + trans`` (rot proper)."""
    if isinstance(p, RoundCone):
        return RoundCone(rot @ p.a + trans, rot @ p.b + trans, p.ra, p.rb)
    if isinstance(p, Ellipsoid):
        return Ellipsoid(rot @ p.centre + trans, p.radii, rot @ p.rot)
    if isinstance(p, Box):
        return Box(rot @ p.centre + trans, p.half, rot @ p.rot)
    if isinstance(p, Sphere):
        return Sphere(rot @ p.centre + trans, p.radius)
    if isinstance(p, Cylinder):
        return Cylinder(rot @ p.a + trans, rot @ p.b + trans, p.radius)
    if isinstance(p, Plane):
        return Plane(rot @ p.point + trans, rot @ p.normal)
    raise TypeError(f"cannot transform {type(p).__name__}")


# Asus Xtion / Kinect-v1-like structured light as in ITOP: sigma ~ 1.5e-6 z^2 (about 4 cm at
# 5 m, Khoshelham & Elberink 2012), usable to ~6 m, larger depth steps at silhouettes.
BODY_SENSOR = SensorModel(noise_base=1.0, noise_quadratic=1.5e-6, min_range=400.0, max_range=6000.0,
                          grazing_cos=0.2, grazing_cos_full=0.05, edge_threshold=60.0, edge_drop=0.5, flying=0.2)

_ITOP = get_dataset("itop_front")


@dataclass(frozen=True)
class BodyConfig:
    """Everything that defines a synthetic body dataset besides (seed, index).

    ``view``: 'front' (camera 1.5-4 m in front, roughly horizontal), 'top' (camera
    2.5-3.5 m above the floor looking down) or 'both' (even indices front, odd top).
    The camera defaults to ITOP's (320x240, f = 285.71 px) from the dataset table.
    """

    view: str = "front"
    width: int = _ITOP.width
    height: int = _ITOP.height
    fx: float = _ITOP.intrinsics.fx
    fy: float = _ITOP.intrinsics.fy
    cx: float = _ITOP.intrinsics.cx
    cy: float = _ITOP.intrinsics.cy
    front_distance: tuple[float, float] = (1500.0, 4000.0)  # camera to the person, horizontal, mm
    front_camera_height: tuple[float, float] = (800.0, 1800.0)
    top_camera_height: tuple[float, float] = (2500.0, 3500.0)  # above the floor
    top_offset: float = 700.0  # largest horizontal offset of the top camera from the person, mm
    height_range: tuple[float, float] = (1500.0, 1950.0)
    girth_range: tuple[float, float] = (0.85, 1.3)
    walls: bool = True
    clutter: bool = True
    margin_px: float = 3.0
    sensor: SensorModel = field(default_factory=lambda: BODY_SENSOR)
    # Camera streams: clips of this many frames of one person moving smoothly (0 = independent frames).
    sequence_length: int = 0
    sequence_walk_mm: float = 600.0  # largest distance walked over a clip
    sequence_turn_deg: float = 30.0  # std of the turn over a clip

    def __post_init__(self) -> None:
        if self.view not in ("front", "top", "both"):
            raise ValueError(f"view must be 'front', 'top' or 'both', got {self.view!r}")
        if self.sequence_length < 0:
            raise ValueError(f"sequence_length must be >= 0, got {self.sequence_length}")

    @property
    def intrinsics(self) -> Intrinsics:
        return Intrinsics(self.fx, self.fy, self.cx, self.cy)

    @property
    def size(self) -> tuple[int, int]:
        return (int(self.width), int(self.height))

    def view_of(self, index: int) -> str:
        """The view of frame ``index`` ('both' alternates per frame, or per clip for sequences)."""
        k = index // self.sequence_length if self.sequence_length > 0 else index
        return self.view if self.view != "both" else ("front" if k % 2 == 0 else "top")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready parameters (stored in meta.json under "generator")."""
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d


def look_at(position: np.ndarray, target: np.ndarray, image_down: np.ndarray) -> np.ndarray:
    """World->camera rotation (rows = camera x right, y down, z forward) of a camera at ``position``
    looking at ``target``, with ``image_down`` (world) as close to the image's +y as possible."""
    z = np.asarray(target, float) - np.asarray(position, float)
    z /= np.linalg.norm(z)
    y = np.asarray(image_down, float) - (np.asarray(image_down, float) @ z) * z
    y /= np.linalg.norm(y)
    return np.stack([np.cross(y, z), y, z])


def _project(pts_cam: np.ndarray, intr: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
    z = np.maximum(pts_cam[:, 2], 1e-6)
    return intr.fx * pts_cam[:, 0] / z + intr.cx, intr.fy * pts_cam[:, 1] / z + intr.cy


def _inside(pts_cam: np.ndarray, intr: Intrinsics, size: tuple[int, int], margin: float, near: float) -> bool:
    u, v = _project(pts_cam, intr)
    w, h = size
    return bool(np.all(pts_cam[:, 2] > near) and np.all((u >= margin) & (u <= w - 1 - margin))
                and np.all((v >= margin) & (v <= h - 1 - margin)))


def _place_camera(rng: np.random.Generator, view: str, joints_w: np.ndarray, cfg: BodyConfig
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(R world->camera, camera position) with every joint inside the image; retries move the camera away."""
    intr, size = cfg.intrinsics, cfg.size
    centre = joints_w.mean(axis=0)
    for attempt in range(60):
        if view == "front":
            lo, hi = cfg.front_distance
            d = rng.uniform(lo, hi) + 100.0 * max(attempt - 20, 0)
            pos = np.array([centre[0] + rng.normal(0, 150.0), rng.uniform(*cfg.front_camera_height), centre[2] + d])
            target = centre + rng.normal(0.0, [120.0, 120.0, 60.0])
            rot = look_at(pos, target, np.array([0.0, -1.0, 0.0]))
            rot = rot_z(rng.normal(0.0, 3.0)).T @ rot  # small roll
        else:
            lo, hi = cfg.top_camera_height
            r = cfg.top_offset * np.sqrt(rng.random()) * (0.97 ** attempt)
            phi = rng.uniform(0, 2 * np.pi)
            hc = rng.uniform(lo, hi) + 50.0 * max(attempt - 20, 0)
            pos = np.array([centre[0] + r * np.cos(phi), hc, centre[2] + r * np.sin(phi)])
            target = np.array([centre[0], 0.0, centre[2]]) + np.append(rng.normal(0.0, 150.0, 2), 0.0)[[0, 2, 1]]
            heading = rng.uniform(0, 2 * np.pi)
            rot = look_at(pos, target, np.array([np.cos(heading), 0.0, np.sin(heading)]))
        if _inside((joints_w - pos) @ rot.T, intr, size, cfg.margin_px, near=500.0):
            return rot, pos
    raise RuntimeError("could not place the camera so that the whole body is in the image; check the config")


def _room(rng: np.random.Generator, view: str, centre: np.ndarray, cam_pos: np.ndarray, walls: bool
          ) -> tuple[list[Primitive], list[str]]:
    """Floor and walls (world frame); walls keep the camera and the person inside the room."""
    prims: list[Primitive] = [Plane(np.zeros(3), np.array([0.0, 1.0, 0.0]))]
    names = ["floor"]
    if not walls:
        return prims, names
    if view == "front":
        # back wall behind the person (seen from the camera at +z), side walls left/right
        yaw = np.radians(rng.uniform(-15.0, 15.0))
        n = np.array([np.sin(yaw), 0.0, np.cos(yaw)])
        prims.append(Plane(centre - n * rng.uniform(600.0, 2500.0) * np.array([1, 0, 1]), n))
        names.append("back_wall")
        for sgn in (-1.0, 1.0):
            if rng.random() < 0.5:
                x = centre[0] + sgn * rng.uniform(1500.0, 3500.0)
                if sgn * (cam_pos[0] - x) < -300.0:
                    prims.append(Plane(np.array([x, 0.0, 0.0]), np.array([-sgn, 0.0, 0.0])))
                    names.append("side_wall")
    else:
        for _ in range(2):
            if rng.random() < 0.5:
                phi = rng.uniform(0, 2 * np.pi)
                d = np.array([np.cos(phi), 0.0, np.sin(phi)])
                dist = rng.uniform(1000.0, 3000.0)
                if (cam_pos - centre) @ d < dist - 300.0:
                    prims.append(Plane(centre * np.array([1, 0, 1]) + d * dist, -d))
                    names.append("wall")
    return prims, names


def _chair(rng: np.random.Generator, model: BodyModel, pose: BodyPose, body_rot: np.ndarray, body_t: np.ndarray
           ) -> list[Primitive]:
    """Seat (and maybe a backrest) under a seated person's pelvis, world frame."""
    h = model.shape.height
    seat_top = body_t[1] - 0.068 * h * 0.95
    if seat_top < 150.0:
        return []
    half = np.array([0.11 * h, seat_top / 2.0, 0.1 * h])
    c = body_t + body_rot @ np.array([0.0, 0.0, -0.03 * h])
    prims: list[Primitive] = [Box(np.array([c[0], seat_top / 2.0, c[2]]), half, body_rot)]
    if rng.random() < 0.5:
        back_h = rng.uniform(300.0, 500.0)
        c = body_t + body_rot @ np.array([0.0, 0.0, -0.13 * h - 20.0])
        c = np.array([c[0], seat_top + back_h / 2.0, c[2]])
        prims.append(Box(c, np.array([0.11 * h, back_h / 2.0, 15.0]), body_rot))
    return prims


def _clutter(rng: np.random.Generator, joints_w: np.ndarray, rot: np.ndarray, cam: np.ndarray, intr: Intrinsics,
             max_objects: int = 2) -> tuple[list[Primitive], list[str]]:
    """Furniture-like boxes and cylinders on the floor, clear of the person and never in front of them on screen."""
    prims: list[Primitive] = []
    names: list[str] = []
    jc = (joints_w - cam) @ rot.T
    u, v = _project(jc, intr)
    pbox = (u.min() - 8, v.min() - 8, u.max() + 8, v.max() + 8)
    centre = joints_w.mean(axis=0)
    for _ in range(int(rng.integers(0, max_objects + 1))):
        kind = ("box", "cylinder")[int(rng.integers(2))]
        for _try in range(10):
            phi, dist = rng.uniform(0, 2 * np.pi), rng.uniform(700.0, 2500.0)
            base = np.array([centre[0] + dist * np.cos(phi), 0.0, centre[2] + dist * np.sin(phi)])
            height = rng.uniform(300.0, 1000.0)
            if kind == "box":
                half = np.array([rng.uniform(150.0, 450.0), height / 2.0, rng.uniform(150.0, 350.0)])
                prim: Primitive = Box(base + np.array([0.0, height / 2.0, 0.0]), half, rot_y(rng.uniform(0, 90)))
            else:
                prim = Cylinder(base, base + np.array([0.0, height, 0.0]), rng.uniform(100.0, 220.0))
            lo, hi = prim.aabb()
            xz = np.array([[lo[0], hi[0]], [lo[2], hi[2]]])
            if np.all((joints_w[:, [0, 2]] >= xz[:, 0] - 300.0) & (joints_w[:, [0, 2]] <= xz[:, 1] + 300.0), axis=1).any():
                continue
            corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
            cc = (corners - cam) @ rot.T
            if np.any(cc[:, 2] < 300.0) and not np.all(cc[:, 2] < 300.0):
                continue  # straddles the camera plane: skip rather than clip
            cu, cv = _project(cc, intr)
            overlaps = cu.max() > pbox[0] and cu.min() < pbox[2] and cv.max() > pbox[1] and cv.min() < pbox[3]
            if overlaps and cc[:, 2].min() < jc[:, 2].max() + 100.0:
                continue
            prims.append(prim)
            names.append(kind)
            break
    return prims, names


def render_body_frame(seed: int, index: int, config: BodyConfig | None = None) -> Frame:
    """Sample ``index`` of dataset ``seed``: the full depth image and the 15 ITOP joints (mm, camera frame)."""
    cfg = config or BodyConfig()
    rng = np.random.default_rng([int(seed), int(index)])
    view = cfg.view_of(index)
    if cfg.sequence_length > 0:
        # The clip's person, motion, camera and room come from the clip's generator; only
        # the sensor noise is drawn per frame, from the frame's own.
        st = _sequence_body(int(seed), int(index), cfg)
        shape, pose, yaw, body_t, rot, cam, scene_rng = (st[k] for k in ("shape", "pose", "yaw", "body_t", "rot",
                                                                         "cam", "scene_rng"))
        model = BodyModel(shape)
        body_rot = rot_y(yaw)
        body_t = body_t + np.array([0.0, -model.lowest_point(pose), 0.0])
        if pose.seated:
            body_t[1] = max(body_t[1], 0.0)
        joints_w = model.joints(pose) @ body_rot.T + body_t
        room_centre = st["room_centre"]
    else:
        shape = sample_body_shape(rng, cfg.height_range, cfg.girth_range)
        pose = sample_body_pose(rng)
        model = BodyModel(shape)
        # facing: mostly towards the front camera (ITOP's actors face it), sometimes any direction
        yaw = _sample_yaw(rng)
        body_rot = rot_y(yaw)
        body_t = _standing_offset(model, pose)
        joints_w = model.joints(pose) @ body_rot.T + body_t
        rot, cam = _place_camera(rng, view, joints_w, cfg)
        scene_rng, room_centre = rng, joints_w.mean(axis=0)
    world: list[Primitive] = model.primitives(pose, body_rot, body_t)
    room, room_names = _room(scene_rng, view, room_centre, cam, cfg.walls)
    world += room
    extras: list[str] = []
    if pose.seated:
        chair = _chair(scene_rng, model, pose, body_rot, body_t)
        world += chair
        extras += ["chair"] * bool(chair)
    if cfg.clutter:
        objs, extras_c = _clutter(scene_rng, joints_w if cfg.sequence_length == 0 else st["clutter_anchor"], rot,
                                  cam, cfg.intrinsics)
        world += objs
        extras += extras_c
    t = -rot @ cam
    prims = [transform_primitive(p, rot, t) for p in world]
    zbuf, cos = render_zbuffer(prims, cfg.intrinsics, cfg.size)
    depth = apply_sensor(zbuf, cos, rng, cfg.sensor)
    joints = joints_w @ rot.T + t
    info = {
        "seed": int(seed), "index": int(index), "view": view, "pose": pose.name, "seated": bool(pose.seated),
        "height_mm": round(shape.height, 1), "girth": round(shape.girth, 3), "yaw_deg": round(float(yaw), 2),
        "angles": np.round(pose.angles, 2).tolist(), "camera_position_mm": np.round(cam, 1).tolist(),
        "scene": room_names + extras, "skeleton": BODY_ITOP15.name,
    }
    if cfg.sequence_length > 0:
        info["clip"] = int(index) // cfg.sequence_length
    return Frame(depth, (0, 0), cfg.intrinsics, cfg.size, joints.astype(np.float32), info)


def _sample_yaw(rng: np.random.Generator) -> float:
    """Facing: mostly towards a front camera (ITOP's actors face it), sometimes any direction (degrees)."""
    return float(rng.normal(0.0, 35.0) if rng.random() < 0.85 else rng.uniform(-180.0, 180.0))


def _standing_offset(model: BodyModel, pose: BodyPose) -> np.ndarray:
    """Pelvis position that puts the lowest point on the floor (a seated pelvis rests on the seat)."""
    body_t = np.array([0.0, -model.lowest_point(pose), 0.0])
    if pose.seated:  # the seat carries the pelvis; feet on the floor are nice but not required
        body_t[1] = max(body_t[1], 0.0)
    return body_t


@functools.lru_cache(maxsize=16)
def _body_clip(seed: int, clip: int, cfg: BodyConfig) -> dict[str, Any]:
    """One clip of a body stream: the person, two keyframe poses, the walk and turn, the camera
    (placed so both keyframes are in view) and the room's generator state (cached: read-only)."""
    rng = np.random.default_rng([seed, clip, 1])
    view = cfg.view_of(clip * cfg.sequence_length)
    shape = sample_body_shape(rng, cfg.height_range, cfg.girth_range)
    model = BodyModel(shape)
    pose_a = sample_body_pose(rng)
    yaw = _sample_yaw(rng)
    if pose_a.seated:  # seated people stay on their chair: the arms and trunk move, the pelvis does not
        pose_b = BodyPose(clip_pose(pose_a.angles + rng.normal(0.0, 12.0, len(BODY_DOFS))), pose_a.name, True)
        turn, move = 0.0, np.zeros(3)
    else:
        other = sample_body_pose(rng)
        while other.seated:
            other = sample_body_pose(rng)
        pose_b = BodyPose(clip_pose(0.5 * (pose_a.angles + other.angles)), f"{pose_a.name}->{other.name}")
        turn = float(rng.normal(0.0, cfg.sequence_turn_deg))
        heading = np.radians(yaw + rng.uniform(-90.0, 90.0))  # roughly where the person faces
        move = rng.uniform(0.0, cfg.sequence_walk_mm) * np.array([np.sin(heading), 0.0, np.cos(heading)])
    ends = []
    for pose, y, m in ((pose_a, yaw, np.zeros(3)), (pose_b, yaw + turn, move)):
        ends.append(model.joints(pose) @ rot_y(y).T + _standing_offset(model, pose) + m)
    rot, cam = _place_camera(rng, view, np.vstack(ends), cfg)
    return {"shape": shape, "pose_a": pose_a, "pose_b": pose_b, "yaw": yaw, "turn": turn, "move": move,
            "rot": rot, "cam": cam, "room_centre": ends[0].mean(axis=0), "clutter_anchor": np.vstack(ends),
            "scene_seed": int(rng.integers(2**31))}


def _sequence_body(seed: int, index: int, cfg: BodyConfig) -> dict[str, Any]:
    """Frame ``index`` of its clip: keyframes blended with ease-in/ease-out (zero speed at both ends)."""
    length = cfg.sequence_length
    k = _body_clip(seed, index // length, cfg)
    t = (index % length) / max(length - 1, 1)
    s = 0.5 - 0.5 * np.cos(np.pi * t)
    a, b = k["pose_a"], k["pose_b"]
    pose = BodyPose((1 - s) * a.angles + s * b.angles, f"seq:{b.name}" if s > 0.5 else f"seq:{a.name}", a.seated)
    return {"shape": k["shape"], "pose": pose, "yaw": k["yaw"] + s * k["turn"], "body_t": s * k["move"],
            "rot": k["rot"], "cam": k["cam"], "room_centre": k["room_centre"],
            "clutter_anchor": k["clutter_anchor"], "scene_rng": np.random.default_rng(k["scene_seed"])}


def render_body_ideal(seed: int, index: int, config: BodyConfig | None = None) -> Frame:
    """The same sample without sensor artefacts (exact z-buffer, 0 where nothing is hit); for tests."""
    from v2v_ros.data.synthetic.render import IDEAL_SENSOR  # noqa: PLC0415

    cfg = config or BodyConfig()
    return render_body_frame(seed, index, replace(cfg, sensor=replace(IDEAL_SENSOR, max_range=1e9)))


def measure_body_fps(n: int = 100, config: BodyConfig | None = None, seed: int = 0) -> dict[str, float]:
    """Speed of :func:`render_body_frame` in this process (one core), after one warm-up frame."""
    render_body_frame(seed, 0, config)
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(1, n + 1):
        render_body_frame(seed, i, config)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"frames": float(n), "fps_wall": n / wall, "fps_cpu": n / max(cpu, 1e-9)}
