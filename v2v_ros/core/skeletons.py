"""Skeleton presets: joint names, order and bones for hands and bodies.

The joint order is the one of the dataset each preset comes from, because the
network's output channels and every evaluation file follow it.
"""

from __future__ import annotations

from dataclasses import dataclass

FINGERS = ("index", "middle", "ring", "little", "thumb")
FINGER_JOINTS = ("mcp", "pip", "dip", "tip")


@dataclass(frozen=True)
class Skeleton:
    """A named joint layout with the bones drawn between joints."""

    name: str
    joint_names: tuple[str, ...]
    bones: tuple[tuple[int, int], ...]
    # Group name per bone (a finger, a limb), used to colour markers consistently.
    bone_groups: tuple[str, ...]

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def index(self, joint: str) -> int:
        return self.joint_names.index(joint)


def _hand_msra21() -> Skeleton:
    """MSRA layout: wrist, then index, middle, ring, little, thumb (MCP, PIP, DIP, TIP each)."""
    names = ["wrist"] + [f"{f}_{j}" for f in FINGERS for j in FINGER_JOINTS]
    bones: list[tuple[int, int]] = []
    groups: list[str] = []
    for fi, finger in enumerate(FINGERS):
        base = 1 + 4 * fi
        chain = [0, base, base + 1, base + 2, base + 3]
        for a, b in zip(chain[:-1], chain[1:], strict=False):
            bones.append((a, b))
            groups.append(finger)
    return Skeleton("hand_msra21", tuple(names), tuple(bones), tuple(groups))


def _body_itop15() -> Skeleton:
    """ITOP layout (its label order): head, neck, shoulders, elbows, hands, torso, hips, knees, feet."""
    names = (
        "head", "neck", "r_shoulder", "l_shoulder", "r_elbow", "l_elbow", "r_hand", "l_hand",
        "torso", "r_hip", "l_hip", "r_knee", "l_knee", "r_foot", "l_foot",
    )
    bones = (
        (0, 1), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7),
        (1, 8), (8, 9), (8, 10), (9, 11), (10, 12), (11, 13), (12, 14),
    )
    groups = (
        "head", "right_arm", "left_arm", "right_arm", "left_arm", "right_arm", "left_arm",
        "torso", "right_leg", "left_leg", "right_leg", "left_leg", "right_leg", "left_leg",
    )
    return Skeleton("body_itop15", names, bones, groups)


HAND_MSRA21 = _hand_msra21()
BODY_ITOP15 = _body_itop15()

SKELETONS: dict[str, Skeleton] = {s.name: s for s in (HAND_MSRA21, BODY_ITOP15)}


def is_body_skeleton(name: str | None) -> bool:
    """Whether a preset name (``ModelMeta.skeleton``, a shard folder's layout) is a human body.

    Bodies differ from hands in how they are localised, calibrated and scored (2 m cube,
    mAP with the 10 cm rule); body presets are named ``body_*``.
    """
    return bool(name) and str(name).startswith("body")


def get_skeleton(name: str) -> Skeleton:
    """Look a preset up by name, with an error that lists the known ones."""
    try:
        return SKELETONS[name]
    except KeyError:
        raise KeyError(f"unknown skeleton {name!r}; known: {sorted(SKELETONS)}") from None
