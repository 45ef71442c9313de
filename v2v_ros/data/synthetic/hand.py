"""Articulated hand: shape sampling, joint limits, pose sampling and forward kinematics.

Hand frame (right hand; a left hand is its mirror image x -> -x): origin at the
wrist joint, +y from the wrist towards the middle finger, +z out of the palm
(the palm normal), +x towards the thumb. Joints come out in the MSRA 21 order of
:data:`v2v_ros.core.skeletons.HAND_MSRA21` (wrist, then index, middle, ring,
little, thumb; mcp, pip, dip, tip each). For the thumb the MSRA names are kept
but they sit on the thumb's CMC, MCP and IP joints and its tip, as in MSRA's labels.

Angles are in degrees. A finger's 4 numbers are (MCP flexion, MCP abduction, PIP
flexion, DIP flexion); the thumb's are (CMC flexion, CMC palmar abduction, MCP
flexion, IP flexion). Flexion curls towards the palm; finger abduction is positive
towards the thumb side; thumb flexion swings the thumb across the palm and
abduction lifts it away from the palm plane.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from v2v_ros.core.skeletons import HAND_MSRA21
from v2v_ros.data.synthetic.primitives import Ellipsoid, Primitive, RoundCone

NUM_JOINTS = HAND_MSRA21.num_joints

# (finger, dof, [lo, hi]) in degrees; thumb row is (CMC flex, CMC abd, MCP flex, IP flex).
JOINT_LIMITS = np.array(
    [
        [[-20, 90], [-20, 20], [0, 110], [0, 80]],  # index
        [[-20, 90], [-20, 20], [0, 110], [0, 80]],  # middle
        [[-20, 90], [-20, 20], [0, 110], [0, 80]],  # ring
        [[-20, 90], [-20, 20], [0, 110], [0, 80]],  # little
        [[-20, 50], [-10, 60], [-10, 60], [-15, 80]],  # thumb
    ],
    dtype=np.float64,
)
WRIST_LIMITS = np.array([[-60.0, 60.0], [-25.0, 30.0]])  # (flexion, radial/ulnar deviation)

# Named poses (5, 4) degrees; random poses blend two of them and add jitter. The thumb angles of
# fist and pinch were fitted so its tip rests on the curled fingers / touches the index tip.
POSE_PRESETS: dict[str, np.ndarray] = {
    "open": np.array([[2, 4, 5, 3], [2, 0, 5, 3], [2, -4, 5, 3], [3, -8, 5, 3], [0, 20, 5, 5]]),
    "fist": np.array([[85, 0, 100, 55], [88, 0, 102, 55], [88, 0, 100, 55], [85, 0, 95, 50], [11, 29, 57, 66]]),
    "pinch": np.array([[40, 0, 50, 30], [15, 0, 20, 10], [12, -4, 15, 8], [10, -8, 12, 6], [41, 13, 5, 8]]),
    "point": np.array([[0, 2, 3, 2], [88, 0, 100, 55], [88, 0, 100, 55], [85, 0, 95, 50], [11, 29, 57, 66]]),
    "spread": np.array([[0, 18, 0, 0], [0, 3, 0, 0], [0, -12, 0, 0], [-5, -20, 0, 0], [-15, 10, -5, -5]]),
    "victory": np.array([[0, 14, 3, 2], [0, -8, 3, 2], [85, 0, 100, 55], [85, 0, 95, 50], [20, 35, 50, 50]]),
    "claw": np.array([[15, 5, 75, 60], [15, 0, 80, 60], [15, -5, 80, 60], [15, -10, 75, 55], [10, 40, 30, 50]]),
}

# Right-hand, scale-1 geometry in mm (an adult hand of ~185 mm).
_MCP = np.array([[27.0, 86.0, 0.0], [7.0, 90.0, 0.0], [-12.0, 85.0, 0.0], [-30.0, 76.0, 0.0], [20.0, 20.0, 4.0]])
_LENGTHS = np.array([[40.0, 23.0, 20.0], [45.0, 27.0, 21.0], [42.0, 26.0, 21.0], [32.0, 19.0, 18.0], [46.0, 32.0, 27.0]])
# Radii at (base of proximal, base of middle, base of distal, tip) per finger.
_RADII = np.array(
    [[9.5, 8.5, 7.5, 6.5], [10.0, 9.0, 8.0, 6.8], [9.5, 8.5, 7.5, 6.5], [8.5, 7.5, 6.8, 6.0], [13.0, 10.5, 9.0, 7.5]]
)
_REST_SPLAY = np.array([8.0, 0.0, -7.0, -15.0])  # rest direction of each finger in the palm plane
_THUMB_SPREAD, _THUMB_ROLL = 40.0, 35.0  # thumb rest direction: from +y towards +x, then out of the palm


def rot_x(deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rot_y(deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rot_z(deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _thumb_rest() -> np.ndarray:
    """Thumb base frame (columns x, y, z): y along the thumb, flexion about x swings y towards z."""
    a, b = np.radians(_THUMB_SPREAD), np.radians(_THUMB_ROLL)
    y = np.array([np.sin(a), np.cos(a), 0.0])
    z = np.array([-np.cos(a), np.sin(a), 0.0]) * np.cos(b) + np.array([0.0, 0.0, 1.0]) * np.sin(b)
    return np.stack([np.cross(y, z), y, z], axis=1)


_THUMB_REST = _thumb_rest()


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """Uniformly distributed 3x3 rotation (normalised Gaussian quaternion)."""
    w, x, y, z = rng.standard_normal(4)
    n = np.sqrt(w * w + x * x + y * y + z * z)
    w, x, y, z = w / n, x / n, y / n, z / n
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


@dataclass
class HandPose:
    """Joint angles in degrees: ``angles`` (5, 4) per finger (see module doc) and ``wrist`` (flex, deviation)."""

    angles: np.ndarray
    wrist: np.ndarray = field(default_factory=lambda: np.zeros(2))
    name: str = "custom"

    def within_limits(self, tol: float = 1e-9) -> bool:
        a = self.angles
        w = self.wrist
        return bool(
            np.all(a >= JOINT_LIMITS[..., 0] - tol)
            and np.all(a <= JOINT_LIMITS[..., 1] + tol)
            and np.all(w >= WRIST_LIMITS[:, 0] - tol)
            and np.all(w <= WRIST_LIMITS[:, 1] + tol)
        )


def clip_pose(angles: np.ndarray) -> np.ndarray:
    return np.clip(angles, JOINT_LIMITS[..., 0], JOINT_LIMITS[..., 1])


def sample_pose(rng: np.random.Generator, jitter_deg: float = 7.0) -> HandPose:
    """A random but plausible pose: a preset, a blend of two presets, or a coupled uniform draw.

    Blends cover the space between the grasps people actually make; the uniform
    branch ties DIP to PIP (the two tendons are coupled in real fingers) so it does
    not produce hooked fingertips on straight fingers.
    """
    names = list(POSE_PRESETS)
    mode = rng.random()
    if mode < 0.25:
        name = names[rng.integers(len(names))]
        angles = POSE_PRESETS[name].astype(np.float64)
    elif mode < 0.85:
        i, j = rng.choice(len(names), size=2, replace=False)
        w = rng.random()
        # each finger may follow either preset more closely: per-finger weights around w
        wf = np.clip(w + rng.normal(0.0, 0.25, size=(5, 1)), 0.0, 1.0)
        angles = (1 - wf) * POSE_PRESETS[names[i]] + wf * POSE_PRESETS[names[j]]
        name = f"blend:{names[i]}+{names[j]}"
    else:
        lo, hi = JOINT_LIMITS[..., 0], JOINT_LIMITS[..., 1]
        angles = lo + rng.random((5, 4)) * (hi - lo)
        angles[:4, 3] = angles[:4, 2] * (2.0 / 3.0) + rng.normal(0.0, 8.0, size=4)
        angles[:4, 1] *= 0.6  # extreme abduction of every finger at once is rare
        name = "random"
    angles = clip_pose(angles + rng.normal(0.0, jitter_deg, size=(5, 4)))
    wrist = np.clip(rng.normal(0.0, [25.0, 12.0]), WRIST_LIMITS[:, 0], WRIST_LIMITS[:, 1])
    return HandPose(angles=angles, wrist=wrist, name=name)


@dataclass
class HandShape:
    """Per-sample size and proportions of one hand (mm), plus its side."""

    mcp: np.ndarray  # (5, 3) base joint of each finger (thumb: CMC) in the hand frame
    lengths: np.ndarray  # (5, 3) bone lengths
    radii: np.ndarray  # (5, 4) finger radii at each joint
    scale: float = 1.0
    handedness: str = "right"
    forearm_length: float = 260.0

    @classmethod
    def default(cls, handedness: str = "right", scale: float = 1.0) -> "HandShape":
        return cls(_MCP * scale, _LENGTHS * scale, _RADII * scale, scale, handedness, 260.0 * scale)


def sample_shape(
    rng: np.random.Generator,
    scale_range: tuple[float, float] = (0.8, 1.2),
    length_jitter: float = 0.08,
    left_probability: float = 0.5,
) -> HandShape:
    """Random hand size (uniform ``scale_range``) and proportions (per-bone length jitter)."""
    scale = float(rng.uniform(*scale_range))
    lengths = _LENGTHS * scale * rng.uniform(1 - length_jitter, 1 + length_jitter, size=_LENGTHS.shape)
    mcp = _MCP * scale * rng.uniform(0.96, 1.04, size=_MCP.shape)
    radii = _RADII * scale * rng.uniform(0.9, 1.1) * rng.uniform(0.96, 1.04, size=_RADII.shape)
    side = "left" if rng.random() < left_probability else "right"
    return HandShape(mcp, lengths, radii, scale, side, 260.0 * scale * rng.uniform(0.9, 1.1))


class HandModel:
    """Forward kinematics and surface primitives of one :class:`HandShape`."""

    def __init__(self, shape: HandShape) -> None:
        self.shape = shape
        self.mirror = np.diag([-1.0, 1.0, 1.0]) if shape.handedness == "left" else np.eye(3)

    def _chains(self, pose: HandPose) -> list[list[np.ndarray]]:
        """Joint positions of each finger (4 points each) in the right-hand frame."""
        s = self.shape
        chains = []
        for f in range(5):
            a = pose.angles[f]
            if f < 4:
                frame = rot_z(-(_REST_SPLAY[f] + a[1])) @ rot_x(a[0])  # +abduction: towards +x
                bends = (a[2], a[3])
            else:
                frame = _THUMB_REST @ rot_x(a[0]) @ rot_z(-a[1])
                bends = (a[2], a[3])
            p = s.mcp[f].copy()
            pts = [p]
            for k in range(3):
                p = p + frame[:, 1] * s.lengths[f, k]
                pts.append(p)
                if k < 2:
                    frame = frame @ rot_x(bends[k])
            chains.append(pts)
        return chains

    def joints(self, pose: HandPose) -> np.ndarray:
        """(21, 3) joints in the hand frame (mirrored for a left hand), MSRA order."""
        out = np.zeros((NUM_JOINTS, 3))
        for f, pts in enumerate(self._chains(pose)):
            out[1 + 4 * f : 5 + 4 * f] = pts
        return out @ self.mirror.T

    def forearm_direction(self, pose: HandPose) -> np.ndarray:
        """Unit vector from the wrist towards the elbow, in the hand frame (mirrored for a left hand)."""
        d = rot_x(-pose.wrist[0]) @ rot_z(pose.wrist[1]) @ np.array([0.0, -1.0, 0.0])
        return self.mirror @ d

    def primitives(self, pose: HandPose, rot: np.ndarray, trans: np.ndarray) -> list[Primitive]:
        """Surface of the hand placed by ``x_cam = rot @ x_hand + trans``: phalanges, palm, wrist, forearm."""
        s = self.shape
        m = rot @ self.mirror

        def tf(p: np.ndarray) -> np.ndarray:
            return m @ p + trans

        prims: list[Primitive] = []
        for f, pts in enumerate(self._chains(pose)):
            r = s.radii[f]
            for k in range(3):
                a, b = pts[k], pts[k + 1]
                if k == 2:  # keep the fingertip surface just past the labelled tip joint
                    d = (b - a) / max(np.linalg.norm(b - a), 1e-6)
                    b = b - d * 0.8 * r[3]
                prims.append(RoundCone(tf(a), tf(b), r[k], r[k + 1]))
            if f < 4:  # metacarpal: fills the palm between wrist and knuckle
                base = np.array([s.mcp[f, 0] * 0.45, 0.2 * s.mcp[f, 1], -1.0 * s.scale])
                prims.append(RoundCone(tf(base), tf(s.mcp[f]), 11.0 * s.scale, r[0] * 1.05))
        sc = s.scale
        prims.append(Ellipsoid(tf(np.array([-1.0, 47.0, -1.5]) * sc), np.array([41.0, 48.0, 14.0]) * sc, m))
        prims.append(Ellipsoid(tf(np.array([0.0, 8.0, -2.0]) * sc), np.array([30.0, 20.0, 17.0]) * sc, m))
        elbow = self.mirror @ (self.forearm_direction(pose) * s.forearm_length)  # back to right-hand frame
        prims.append(RoundCone(tf(np.zeros(3)), tf(elbow), 24.0 * sc, 36.0 * sc))
        return prims
