"""The one table of dataset facts: cameras, image sizes, cubes, joint orders, evaluation subsets.

Every number that describes a public dataset lives here and nowhere else, so the
readers, the synthetic generator, training and evaluation cannot drift apart.

Coordinate convention of everything a reader returns (see ``v2v_ros.core.camera``):
millimetres in the ROS optical frame, x right, y down, z forward, so that
``spec.intrinsics.to_uvd(joints)`` lands on the hand in the depth image. Datasets
that store their labels with y up (NYU, MSRA, ITOP) or z backwards (MSRA) are
converted by their reader; the conversion is documented there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from v2v_ros.core.camera import Intrinsics
from v2v_ros.core.skeletons import BODY_ITOP15, HAND_MSRA21

Kind = Literal["hand", "body"]


@dataclass(frozen=True)
class DatasetSpec:
    """Facts about one dataset (or one track of it, e.g. ITOP front view).

    ``joint_names`` are all annotated joints in the dataset's own order;
    ``eval_joints`` indexes the subset the community evaluates (NYU: 14 of 36), and
    ``bones`` are pairs of indices into that *evaluated* subset, for drawing.
    ``eval_intrinsics`` is the camera used by the community's ``u v d`` text files,
    which differs from the real camera only for NYU (fy < 0 flips the image y axis).
    ``centers_to_optical`` multiplies, axis by axis, a point of the V2V release's
    refined-centre files (``v2v_ros.data.centers``) into our optical-frame mm: the
    release wrote them in its own per-dataset frame (y up for MSRA, NYU and ITOP, and
    metres for ITOP), so a file read as-is would put the cube on the mirror image.
    """

    name: str
    kind: Kind
    intrinsics: Intrinsics
    image_size: tuple[int, int]  # (width, height) in pixels
    cube_mm: float  # edge of the cube cropped around the reference point
    joint_names: tuple[str, ...]
    eval_joints: tuple[int, ...]
    bones: tuple[tuple[int, int], ...]
    depth_format: str
    eval_intrinsics: Intrinsics | None = None
    skeleton: str | None = None  # name in v2v_ros.core.skeletons when the layout is a preset
    centers_to_optical: tuple[float, float, float] = (1.0, 1.0, 1.0)
    notes: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        n = len(self.joint_names)
        if any(not 0 <= j < n for j in self.eval_joints):
            raise ValueError(f"{self.name}: eval_joints out of range for {n} joints")
        m = len(self.eval_joints)
        if any(not (0 <= a < m and 0 <= b < m) for a, b in self.bones):
            raise ValueError(f"{self.name}: bones must index the {m} evaluated joints")
        if self.eval_intrinsics is None:
            object.__setattr__(self, "eval_intrinsics", self.intrinsics)

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    @property
    def num_eval_joints(self) -> int:
        return len(self.eval_joints)

    @property
    def eval_joint_names(self) -> tuple[str, ...]:
        return tuple(self.joint_names[j] for j in self.eval_joints)

    @property
    def width(self) -> int:
        return self.image_size[0]

    @property
    def height(self) -> int:
        return self.image_size[1]

    def select_eval(self, joints: Any) -> np.ndarray:
        """(..., num_joints, 3) -> (..., num_eval_joints, 3); a no-op if already the subset."""
        joints = np.asarray(joints)
        if joints.shape[-2] == self.num_eval_joints:
            return joints
        if joints.shape[-2] != self.num_joints:
            raise ValueError(
                f"{self.name}: expected {self.num_joints} or {self.num_eval_joints} joints, got {joints.shape[-2]}"
            )
        return joints[..., list(self.eval_joints), :]


@dataclass
class DatasetFrame:
    """One labelled depth frame as every reader yields it.

    ``depth`` is the whole image (H, W) float32 in mm with 0 = invalid, and
    ``joints`` the evaluated joints (J, 3) in mm, camera optical frame.
    """

    depth: np.ndarray
    intrinsics: Intrinsics
    joints: np.ndarray
    name: str = ""
    valid: bool = True

    @property
    def image_size(self) -> tuple[int, int]:
        return (int(self.depth.shape[1]), int(self.depth.shape[0]))

    def full_depth(self) -> np.ndarray:
        """Same accessor as the synthetic shards', so evaluation treats both alike."""
        return self.depth


def _chain_bones(root: int, chains: list[list[int]]) -> tuple[tuple[int, int], ...]:
    """Bones of fingers/limbs given as joint chains hanging off ``root``."""
    bones: list[tuple[int, int]] = []
    for chain in chains:
        full = [root, *chain]
        bones.extend(zip(full[:-1], full[1:], strict=True))
    return tuple(bones)


# --- NYU: 36 joints, 6 per finger (F1 = little ... F4 = index; KNU3_A = tip), 6 for the thumb, 6 on the palm.
_NYU_FINGERS = ("F1", "F2", "F3", "F4", "TH")
_NYU_NAMES = tuple(
    f"{f}_KNU{k}_{s}" for f in _NYU_FINGERS for k in (3, 2, 1) for s in ("A", "B")
) + tuple(f"PALM_{i}" for i in range(1, 7))
_NYU_EVAL = (0, 3, 6, 9, 12, 15, 18, 21, 24, 25, 27, 30, 31, 32)
# In the 14-joint order: little tip, little mid, ring tip, ring mid, middle tip, middle mid,
# index tip, index mid, thumb tip, thumb mid, thumb root, wrist (back), wrist, palm.
_NYU_BONES = ((13, 1), (1, 0), (13, 3), (3, 2), (13, 5), (5, 4), (13, 7), (7, 6),
              (13, 10), (10, 9), (9, 8), (13, 11), (13, 12))

# --- ICVL: palm, then thumb, index, middle, ring, little (root, mid, tip each).
_ICVL_NAMES = ("palm",) + tuple(
    f"{f}_{j}" for f in ("thumb", "index", "middle", "ring", "little") for j in ("root", "mid", "tip")
)
_ICVL_BONES = _chain_bones(0, [[1 + 3 * f, 2 + 3 * f, 3 + 3 * f] for f in range(5)])

# --- HANDS2017 (BigHand2.2M order): wrist, 5 MCPs (T I M R P), then PIP, DIP, TIP per finger T I M R P.
_H17_FINGERS = ("thumb", "index", "middle", "ring", "little")
_H17_NAMES = ("wrist",) + tuple(f"{f}_mcp" for f in _H17_FINGERS) + tuple(
    f"{f}_{j}" for f in _H17_FINGERS for j in ("pip", "dip", "tip")
)
_H17_BONES = _chain_bones(0, [[1 + f, 6 + 3 * f, 7 + 3 * f, 8 + 3 * f] for f in range(5)])

_MSRA_INTR = Intrinsics(fx=241.42, fy=241.42, cx=160.0, cy=120.0)
_ITOP_INTR = Intrinsics(fx=285.71, fy=285.71, cx=160.0, cy=120.0)
_ITOP_DEPTH = "HDF5 'ITOP_{view}_{split}_depth_map.h5', dataset 'data' (N, 240, 320) float metres; labels in '*_labels.h5'"


# The V2V release's centre files: MSRA (z already made positive there) and NYU have
# y up (its pixel2world is y = (cy - v) z / f); ITOP has y up and is in metres.
# ICVL and HANDS2017 already use y down. See DatasetSpec.centers_to_optical.
_Y_UP = (1.0, -1.0, 1.0)
_ITOP_CENTERS = (1000.0, -1000.0, 1000.0)


def _all(n: int) -> tuple[int, ...]:
    return tuple(range(n))


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            name="msra", kind="hand", intrinsics=_MSRA_INTR, image_size=(320, 240), cube_mm=200.0,
            joint_names=HAND_MSRA21.joint_names, eval_joints=_all(21), bones=HAND_MSRA21.bones,
            depth_format="'%06d_depth.bin': 6 uint32 (width, height, left, top, right, bottom) + float32 crop, mm",
            skeleton=HAND_MSRA21.name, centers_to_optical=_Y_UP,
            notes="9 subjects P0..P8 x 17 gestures; leave-one-subject-out.",
        ),
        DatasetSpec(
            name="nyu", kind="hand", intrinsics=Intrinsics(fx=588.03, fy=587.07, cx=320.0, cy=240.0),
            image_size=(640, 480), cube_mm=250.0, joint_names=_NYU_NAMES, eval_joints=_NYU_EVAL, bones=_NYU_BONES,
            depth_format="'depth_1_%07d.png' RGB PNG, depth mm = (G << 8) | B",
            eval_intrinsics=Intrinsics(fx=588.03, fy=-587.07, cx=320.0, cy=240.0), centers_to_optical=_Y_UP,
            notes="frontal Kinect only; 14 of 36 joints evaluated.",
        ),
        DatasetSpec(
            name="icvl", kind="hand", intrinsics=Intrinsics(fx=240.99, fy=240.96, cx=160.0, cy=120.0),
            image_size=(320, 240), cube_mm=200.0, joint_names=_ICVL_NAMES, eval_joints=_all(16), bones=_ICVL_BONES,
            depth_format="16-bit PNG, mm",
        ),
        DatasetSpec(
            name="hands2017", kind="hand",
            intrinsics=Intrinsics(fx=475.065948, fy=475.065857, cx=315.944855, cy=245.287079),
            image_size=(640, 480), cube_mm=250.0, joint_names=_H17_NAMES, eval_joints=_all(21), bones=_H17_BONES,
            depth_format="'images/image_D%08d.png' 16-bit PNG, mm",
        ),
        DatasetSpec(
            name="itop_front", kind="body", intrinsics=_ITOP_INTR, image_size=(320, 240), cube_mm=2000.0,
            joint_names=BODY_ITOP15.joint_names, eval_joints=_all(15), bones=BODY_ITOP15.bones,
            depth_format=_ITOP_DEPTH.format(view="front", split="{split}"), skeleton=BODY_ITOP15.name,
            centers_to_optical=_ITOP_CENTERS,
        ),
        DatasetSpec(
            name="itop_top", kind="body", intrinsics=_ITOP_INTR, image_size=(320, 240), cube_mm=2000.0,
            joint_names=BODY_ITOP15.joint_names, eval_joints=_all(15), bones=BODY_ITOP15.bones,
            depth_format=_ITOP_DEPTH.format(view="top", split="{split}"), skeleton=BODY_ITOP15.name,
            centers_to_optical=_ITOP_CENTERS,
        ),
        DatasetSpec(
            name="synthetic", kind="hand", intrinsics=Intrinsics(fx=615.0, fy=615.0, cx=319.5, cy=239.5),
            image_size=(640, 480), cube_mm=200.0, joint_names=HAND_MSRA21.joint_names, eval_joints=_all(21),
            bones=HAND_MSRA21.bones, depth_format="shards written by 'v2v synth' (v2v_ros.data.shards)",
            skeleton=HAND_MSRA21.name, notes="RealSense-like camera, MSRA21 layout.",
        ),
    )
}

ALIASES = {"itop": "itop_front", "hands17": "hands2017", "bighand": "hands2017"}


def get_dataset(name: str) -> DatasetSpec:
    """Look a dataset up by name (case-insensitive; 'itop' means the front view)."""
    key = ALIASES.get(name.lower(), name.lower())
    try:
        return DATASETS[key]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; known: {sorted(DATASETS)}") from None


def open_dataset(name: str, root: str, split: str = "test", **kwargs: Any) -> Any:
    """Open the reader of a real dataset stored under ``root`` (imports the reader lazily).

    Extra keyword arguments go to the reader (e.g. ``test_subject`` for MSRA).
    The synthetic dataset is not opened here: it is read through ``v2v_ros.data.shards``.
    """
    spec = get_dataset(name)
    if spec.name == "msra":
        from v2v_ros.data.msra import MSRADataset

        return MSRADataset(root, split=split, **kwargs)
    if spec.name == "nyu":
        from v2v_ros.data.nyu import NYUDataset

        return NYUDataset(root, split=split, **kwargs)
    if spec.name == "icvl":
        from v2v_ros.data.icvl import ICVLDataset

        return ICVLDataset(root, split=split, **kwargs)
    if spec.name == "hands2017":
        from v2v_ros.data.hands2017 import Hands2017Dataset

        return Hands2017Dataset(root, **kwargs)
    if spec.name.startswith("itop"):
        from v2v_ros.data.itop import ITOPDataset

        return ITOPDataset(root, view=spec.name.split("_", 1)[1], split=split, **kwargs)
    raise ValueError(f"dataset {spec.name!r} has no on-disk reader here (synthetic: use v2v_ros.data.shards)")
