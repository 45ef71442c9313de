"""RViz markers for skeletons: joint spheres, one bone line list per finger/limb, cube wireframe.

Colours are RGBA in [0, 1] (what RViz expects, not 0..255); a joint's alpha is its
confidence (floored so that a low-confidence joint stays visible). Markers carry a
lifetime so they vanish when the node stops, and a DELETEALL is sent when the hand
disappears so RViz does not keep showing the last pose.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Point
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from v2v_ros.core.skeletons import SKELETONS, Skeleton

# Colour per bone group (fingers, limbs), RGB in [0, 1].
GROUP_COLORS: dict[str, tuple[float, float, float]] = {
    "thumb": (0.90, 0.10, 0.10), "index": (0.95, 0.60, 0.05), "middle": (0.95, 0.90, 0.10),
    "ring": (0.15, 0.75, 0.20), "little": (0.15, 0.45, 0.95),
    "head": (0.9, 0.9, 0.9), "torso": (0.7, 0.7, 0.7),
    "right_arm": (0.9, 0.2, 0.2), "left_arm": (0.2, 0.4, 0.95),
    "right_leg": (0.95, 0.6, 0.1), "left_leg": (0.2, 0.8, 0.3),
}
DEFAULT_COLOR = (0.8, 0.8, 0.8)
# Joint colour per target id (max_targets > 1), so two hands can be told apart in RViz; the bones keep the
# finger colours. Ids beyond the palette reuse it.
ID_COLORS: tuple[tuple[float, float, float], ...] = (
    (0.10, 0.85, 0.95), (0.95, 0.25, 0.85), (0.55, 0.95, 0.25), (0.98, 0.55, 0.15), (0.55, 0.45, 0.98),
    (0.95, 0.95, 0.95),
)
JOINT_COLOR = (1.0, 1.0, 1.0)
MIN_ALPHA = 0.2


@dataclass
class MarkerOptions:
    """Runtime marker settings (node parameters markers.*)."""

    joint_radius: float = 0.008
    line_width: float = 0.004
    lifetime: float = 0.5
    show_cube: bool = False


def delete_all(header: Header) -> MarkerArray:
    """A MarkerArray that clears every marker of this publisher in RViz."""
    m = Marker(header=header, action=Marker.DELETEALL)
    return MarkerArray(markers=[m])


def skeleton_markers(
    header: Header, joints_m: np.ndarray, confidence: np.ndarray, skeleton: str | Skeleton,
    options: MarkerOptions, skeleton_id: int = 0, reference_point_m: np.ndarray | None = None,
    cube_size_m: float = 0.0, joint_color: tuple[float, float, float] = JOINT_COLOR,
) -> MarkerArray:
    """Markers of one skeleton given joints in metres (J, 3) and confidences (J,); ``joint_color``: the
    joints' colour (white, or the target's :func:`id_color` when several targets are shown)."""
    sk = SKELETONS.get(skeleton) if isinstance(skeleton, str) else skeleton
    lifetime = _duration(options.lifetime)
    base = 1000 * int(skeleton_id)
    markers: list[Marker] = []
    alpha = np.clip(np.nan_to_num(np.asarray(confidence, dtype=np.float64)), MIN_ALPHA, 1.0)

    joints = Marker(header=header, ns="joints", id=base, type=Marker.SPHERE_LIST, action=Marker.ADD,
                    lifetime=lifetime)
    joints.pose.orientation.w = 1.0
    joints.scale.x = joints.scale.y = joints.scale.z = float(options.joint_radius)
    joints.points = [_pt(p) for p in joints_m]
    joints.colors = [_rgba(joint_color, a) for a in alpha]
    markers.append(joints)

    if sk is not None:
        groups: dict[str, list[tuple[int, int]]] = {}
        for bone, group in zip(sk.bones, sk.bone_groups, strict=False):
            groups.setdefault(group, []).append(bone)
        for k, (group, bones) in enumerate(groups.items()):
            line = Marker(header=header, ns=f"bones/{group}", id=base + 1 + k, type=Marker.LINE_LIST,
                          action=Marker.ADD, lifetime=lifetime)
            line.pose.orientation.w = 1.0
            line.scale.x = float(options.line_width)
            rgb = GROUP_COLORS.get(group, DEFAULT_COLOR)
            for a, b in bones:
                if a < len(joints_m) and b < len(joints_m):
                    line.points += [_pt(joints_m[a]), _pt(joints_m[b])]
                    line.colors += [_rgba(rgb, alpha[a]), _rgba(rgb, alpha[b])]
            markers.append(line)

    if options.show_cube and reference_point_m is not None and cube_size_m > 0:
        markers.append(cube_marker(header, np.asarray(reference_point_m, float), cube_size_m, base + 999, lifetime))
    return MarkerArray(markers=markers)


def id_color(target_id: int) -> tuple[float, float, float]:
    """Joint colour of target ``target_id`` (a fixed palette, so an id keeps its colour)."""
    return ID_COLORS[int(target_id) % len(ID_COLORS)]


def cube_marker(header: Header, center_m: np.ndarray, size_m: float, marker_id: int, lifetime: Duration) -> Marker:
    """Wireframe of the voxelised cube (12 edges as a LINE_LIST)."""
    m = Marker(header=header, ns="cube", id=marker_id, type=Marker.LINE_LIST, action=Marker.ADD, lifetime=lifetime)
    m.pose.orientation.w = 1.0
    m.scale.x = 0.002
    m.color = _rgba((0.3, 0.9, 0.9), 0.6)
    h = size_m / 2.0
    corners = [center_m + h * np.array([sx, sy, sz]) for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)]
    edges = [(a, b) for a in range(8) for b in range(a + 1, 8) if bin(a ^ b).count("1") == 1]
    for a, b in edges:
        m.points += [_pt(corners[a]), _pt(corners[b])]
    return m


def bone_groups(skeleton: str) -> Sequence[str]:
    """Distinct bone groups of a preset, in order (one LINE_LIST marker each)."""
    sk = SKELETONS.get(skeleton)
    return list(dict.fromkeys(sk.bone_groups)) if sk else []


def _duration(seconds: float) -> Duration:
    ns = int(round(max(seconds, 0.0) * 1e9))
    return Duration(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def _pt(p: np.ndarray) -> Point:
    return Point(x=float(p[0]), y=float(p[1]), z=float(p[2]))


def _rgba(rgb: tuple[float, float, float], a: float) -> ColorRGBA:
    return ColorRGBA(r=float(rgb[0]), g=float(rgb[1]), b=float(rgb[2]), a=float(a))
