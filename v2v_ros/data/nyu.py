"""NYU Hand Pose dataset reader (Tompson et al., 2014), frontal Kinect only.

Layout: ``root/{train,test}/joint_data.mat`` and ``depth_1_%07d.png`` (1-based).
Depth is packed into an RGB PNG: ``depth_mm = (G << 8) | B`` (R is unused).
``joint_xyz`` has shape (kinects, frames, 36, 3) in mm with y *up*; we return
``(x, -y, z)`` so joints are in the optical frame and project with the real
camera (fy > 0). Frames carry the 14 evaluated joints unless ``all_joints``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from v2v_ros.data.datasets import DatasetFrame, get_dataset

SPEC = get_dataset("nyu")
KINECT = 0  # the frontal view; the only one the community evaluates
FILE_TO_OPTICAL = np.array([1.0, -1.0, 1.0], dtype=np.float32)


def decode_depth(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 NYU image -> (H, W) float32 depth in mm (0 = invalid)."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] < 3:
        raise ValueError(f"NYU depth PNG must be RGB, got shape {rgb.shape}")
    g = rgb[..., 1].astype(np.uint16)
    b = rgb[..., 2].astype(np.uint16)
    return ((g << 8) | b).astype(np.float32)


def encode_depth(depth_mm: np.ndarray) -> np.ndarray:
    """Inverse of :func:`decode_depth` (for tests and tools that write NYU-format data)."""
    d = np.clip(np.rint(np.nan_to_num(np.asarray(depth_mm, dtype=np.float64))), 0, 65535).astype(np.uint16)
    rgb = np.zeros(d.shape + (3,), dtype=np.uint8)
    rgb[..., 1] = (d >> 8).astype(np.uint8)
    rgb[..., 2] = (d & 0xFF).astype(np.uint8)
    return rgb


def read_depth(path: str | Path) -> np.ndarray:
    """Read one ``depth_1_%07d.png`` into (H, W) float32 mm."""
    from PIL import Image

    with Image.open(path) as img:
        return decode_depth(np.asarray(img.convert("RGB")))


def read_joints(mat_path: str | Path, kinect: int = KINECT) -> np.ndarray:
    """All 36 joints of one Kinect from ``joint_data.mat``: (N, 36, 3) float32 mm, optical frame."""
    from scipy.io import loadmat

    data = loadmat(str(mat_path), variable_names=["joint_xyz"])
    if "joint_xyz" not in data:
        raise KeyError(f"{mat_path}: no 'joint_xyz' variable")
    xyz = np.asarray(data["joint_xyz"], dtype=np.float32)
    if xyz.ndim == 3:  # a file saved with the kinect axis squeezed away
        xyz = xyz[None]
    if xyz.ndim != 4 or xyz.shape[2:] != (SPEC.num_joints, 3):
        raise ValueError(f"{mat_path}: joint_xyz must be (kinects, frames, 36, 3), got {xyz.shape}")
    return xyz[kinect] * FILE_TO_OPTICAL


class NYUDataset:
    """Frames of the NYU train or test split (frontal Kinect)."""

    def __init__(self, root: str | Path, split: str = "test", all_joints: bool = False) -> None:
        root = Path(root)
        folder = root / split if (root / split / "joint_data.mat").is_file() else root
        if not (folder / "joint_data.mat").is_file():
            raise FileNotFoundError(f"no joint_data.mat in {root / split} or {root}")
        self.root = folder
        self.spec = SPEC
        self.split = split
        joints = read_joints(folder / "joint_data.mat")
        self.joints = joints if all_joints else SPEC.select_eval(joints)

    def depth_path(self, index: int) -> Path:
        return self.root / f"depth_{KINECT + 1}_{index + 1:07d}.png"

    def __len__(self) -> int:
        return len(self.joints)

    def __getitem__(self, index: int) -> DatasetFrame:
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        index %= len(self)
        path = self.depth_path(index)
        return DatasetFrame(
            depth=read_depth(path), intrinsics=SPEC.intrinsics, joints=self.joints[index].copy(),
            name=f"{self.split}/{path.name}",
        )
