"""ICVL Hand Posture dataset reader (Tang et al., CVPR 2014).

Labels are text files, one frame per line: an image path then 16 x (u v d)
(pixels, pixels, mm): ``Training/labels.txt`` for training and
``Testing/test_seq_1.txt``, ``Testing/test_seq_2.txt`` for the test set. Images
are 16-bit PNGs in mm, normally under a ``Depth/`` folder next to the label file.
ICVL's image axes already match the optical frame, so xyz = intrinsics.to_xyz(uvd).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from v2v_ros.data.datasets import DatasetFrame, get_dataset
from v2v_ros.data.labels import read_named_joint_rows

SPEC = get_dataset("icvl")
TEST_FILES = ("test_seq_1.txt", "test_seq_2.txt")


def read_png16(path: str | Path) -> np.ndarray:
    """A single-channel 16-bit PNG (depth in mm) -> (H, W) float32 mm; shared by the PNG datasets.

    ValueError for colour or 8-bit PNGs (naming the mode), which are never depth in mm.
    """
    from PIL import Image

    with Image.open(path) as img:
        mode = img.mode
        arr = np.asarray(img)
    if arr.ndim != 2:
        raise ValueError(f"{path}: expected a single-channel depth PNG, got shape {arr.shape}")
    if arr.dtype.itemsize < 2:
        # 0-255 read as millimetres would put every hand within 25 cm of the camera: refuse, don't guess.
        raise ValueError(f"{path}: {arr.dtype.itemsize * 8}-bit PNG (mode {mode!r}): depth PNGs hold 16-bit "
                         "millimetres; this is probably a visualisation or a colour/IR image, not depth")
    return arr.astype(np.float32)


def write_png16(path: str | Path, depth_mm: np.ndarray) -> None:
    """Write (H, W) mm as a 16-bit PNG (for tests and tools)."""
    from PIL import Image

    d = np.clip(np.rint(np.nan_to_num(np.asarray(depth_mm, dtype=np.float64))), 0, 65535).astype(np.uint16)
    Image.fromarray(d).save(path, format="PNG")


read_depth = read_png16


def read_labels(path: str | Path) -> tuple[list[str], np.ndarray]:
    """A label file -> (image paths, (N, 16, 3) uvd). Blank lines are ignored."""
    return read_named_joint_rows(path, SPEC.num_joints)


class ICVLDataset:
    """ICVL train (``labels.txt``) or test (``test_seq_1.txt`` + ``test_seq_2.txt``) frames.

    ``root`` may be the dataset root (containing ``Training/`` and ``Testing/``)
    or the folder holding the label file(s) itself.
    """

    def __init__(self, root: str | Path, split: str = "test") -> None:
        root = Path(root)
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        self.spec = SPEC
        self.split = split
        sub = "Training" if split == "train" else "Testing"
        files = ("labels.txt",) if split == "train" else TEST_FILES
        folder = next((d for d in (root / sub, root) if all((d / f).is_file() for f in files)), None)
        if folder is None:
            raise FileNotFoundError(f"ICVL {split} labels {files} not found in {root / sub} or {root}")
        self.root = folder
        self.names: list[str] = []
        self._label_dirs: list[str] = []
        uvds = []
        for f in files:
            names, uvd = read_labels(folder / f)
            self.names.extend(names)
            self._label_dirs.extend([Path(f).stem] * len(names))
            uvds.append(uvd)
        self.uvd = np.concatenate(uvds)
        self.joints = SPEC.intrinsics.to_xyz(self.uvd).astype(np.float32)

    def depth_path(self, index: int) -> Path:
        """Resolve a label's image path: tried under ``Depth/``, the label folder, and a per-sequence folder."""
        name = self.names[index]
        candidates = [
            self.root / "Depth" / name,
            self.root / name,
            self.root / "Depth" / self._label_dirs[index] / name,
            self.root / self._label_dirs[index] / name,
        ]
        for path in candidates:
            if path.is_file():
                return path
        raise FileNotFoundError(f"ICVL image {name!r} not found; tried {[str(c) for c in candidates]}")

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> DatasetFrame:
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        index %= len(self)
        return DatasetFrame(
            depth=read_depth(self.depth_path(index)), intrinsics=SPEC.intrinsics,
            joints=self.joints[index].copy(), name=self.names[index],
        )
