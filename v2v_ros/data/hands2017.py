"""HANDS 2017 frame-based challenge dataset reader (BigHand2.2M + First-Person Hand Action).

Layout: ``root/Training_Annotation.txt`` (image name then 21 x (x y z) world mm
per line) and ``root/images/image_D%08d.png`` (16-bit depth, mm). The annotation's
frame already is the optical frame (u = x*fx/z + cx, v = y*fy/z + cy), so joints
are used as they are.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from v2v_ros.data.datasets import DatasetFrame, get_dataset
from v2v_ros.data.icvl import read_png16
from v2v_ros.data.labels import read_named_joint_rows

SPEC = get_dataset("hands2017")
ANNOTATION = "Training_Annotation.txt"

read_depth = read_png16


def image_name(index: int) -> str:
    """File name of frame ``index`` (0-based; the files are numbered from 1)."""
    return f"image_D{index + 1:08d}.png"


def read_annotation(path: str | Path) -> tuple[list[str], np.ndarray]:
    """Annotation file -> (image names, (N, 21, 3) float32 mm)."""
    return read_named_joint_rows(path, SPEC.num_joints)


class Hands2017Dataset:
    """Frames listed in an annotation file (the training annotation by default)."""

    def __init__(self, root: str | Path, annotation: str = ANNOTATION, images: str = "images") -> None:
        self.root = Path(root)
        path = self.root / annotation
        if not path.is_file():
            raise FileNotFoundError(f"HANDS2017 annotation {path} not found")
        self.spec = SPEC
        self.images = self.root / images
        self.names, self.joints = read_annotation(path)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> DatasetFrame:
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        index %= len(self)
        return DatasetFrame(
            depth=read_depth(self.images / self.names[index]), intrinsics=SPEC.intrinsics,
            joints=self.joints[index].copy(), name=self.names[index],
        )
