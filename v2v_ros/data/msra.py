"""MSRA Hand Gesture dataset reader (Sun et al., CVPR 2015), as used by V2V-PoseNet.

Layout: ``root/P0 .. P8/<gesture>/`` with ``joint.txt`` and ``%06d_depth.bin``.
A ``.bin`` holds 6 uint32 (image width, image height, left, top, right, bottom)
followed by the float32 depth (mm) of the crop ``[top:bottom, left:right]``
(right and bottom exclusive); the rest of the image is background (0).

``joint.txt``: first line = frame count, then one line of 21 x (x y z) per frame.
The file's frame has y up and z pointing backwards (z < 0 in front of the camera),
i.e. the community code uses ``(x, y, -z)`` with ``v = cy - y*f/z``. In our optical
frame (y down, z forward) a joint is therefore ``(x, -y, -z)`` -- a 180 degree
rotation about x, so the handedness is kept and ``to_uvd`` lands on the hand.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from v2v_ros.data.datasets import DatasetFrame, get_dataset

SPEC = get_dataset("msra")
SUBJECTS = tuple(f"P{i}" for i in range(9))
# The 17 gesture folders in the order the community code walks them.
GESTURES = ("1", "2", "3", "4", "5", "6", "7", "8", "9", "I", "IP", "L", "MP", "RP", "T", "TIP", "Y")
# Sign flips from the file's frame to ours (see the module docstring).
FILE_TO_OPTICAL = np.array([1.0, -1.0, -1.0], dtype=np.float32)


def read_depth(path: str | Path) -> np.ndarray:
    """Read one ``%06d_depth.bin`` into a full (H, W) float32 image in mm (0 = invalid)."""
    raw = Path(path).read_bytes()
    if len(raw) < 24:
        raise ValueError(f"{path}: too short for an MSRA depth header ({len(raw)} bytes)")
    width, height, left, top, right, bottom = (int(v) for v in np.frombuffer(raw[:24], dtype="<u4"))
    if not (0 <= left <= right <= width and 0 <= top <= bottom <= height):
        raise ValueError(f"{path}: bad crop box {(left, top, right, bottom)} for image {width}x{height}")
    crop_h, crop_w = bottom - top, right - left
    body = np.frombuffer(raw[24:], dtype="<f4")
    if body.size != crop_h * crop_w:
        raise ValueError(f"{path}: expected {crop_h * crop_w} depth values, found {body.size}")
    depth = np.zeros((height, width), dtype=np.float32)
    depth[top:bottom, left:right] = body.reshape(crop_h, crop_w)
    depth[~np.isfinite(depth) | (depth < 0)] = 0.0
    return depth


def write_depth(path: str | Path, depth: np.ndarray) -> None:
    """Write a full image in the ``.bin`` format, cropped to the bounding box of valid pixels.

    Used by tests and tools that produce MSRA-format data; an all-invalid image
    is written with an empty crop.
    """
    depth = np.asarray(depth, dtype=np.float32)
    height, width = depth.shape
    rows, cols = np.nonzero(depth > 0)
    if rows.size:
        top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    else:
        top = bottom = left = right = 0
    header = np.array([width, height, left, top, right, bottom], dtype="<u4")
    crop = np.ascontiguousarray(depth[top:bottom, left:right], dtype="<f4")
    Path(path).write_bytes(header.tobytes() + crop.tobytes())


def read_joints(path: str | Path) -> np.ndarray:
    """Read a ``joint.txt`` into (N, 21, 3) float32 mm in the optical frame (x, -y, -z of the file)."""
    lines = Path(path).read_text().split("\n")
    count = int(lines[0].split()[0])
    rows = [line.split() for line in lines[1:] if line.strip()]
    if len(rows) < count:
        raise ValueError(f"{path}: header says {count} frames, found {len(rows)}")
    values = np.asarray(rows[:count], dtype=np.float32)
    if values.shape[1:] != (SPEC.num_joints * 3,):
        raise ValueError(f"{path}: expected {SPEC.num_joints * 3} numbers per line, got {values.shape[1:]}")
    return values.reshape(count, SPEC.num_joints, 3) * FILE_TO_OPTICAL


def write_joints(path: str | Path, joints: np.ndarray) -> None:
    """Inverse of :func:`read_joints` (optical-frame mm in, MSRA file convention out)."""
    joints = np.asarray(joints, dtype=np.float64).reshape(len(joints), -1, 3) * FILE_TO_OPTICAL
    lines = [str(len(joints))] + [" ".join(f"{v:.6f}" for v in frame.ravel()) for frame in joints]
    Path(path).write_text("\n".join(lines) + "\n")


class MSRADataset:
    """Frames of some MSRA subjects, for leave-one-subject-out cross-validation.

    ``split='test'`` keeps only ``test_subject``; ``split='train'`` all the other
    subjects; ``split='all'`` every subject found. Subjects or gestures missing on
    disk are skipped (a partial copy of the dataset still works).
    """

    def __init__(self, root: str | Path, split: str = "test", test_subject: int = 0) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"MSRA root {self.root} is not a directory")
        if split not in ("train", "test", "all"):
            raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
        if not 0 <= test_subject < len(SUBJECTS):
            raise ValueError(f"test_subject must be 0..{len(SUBJECTS) - 1}, got {test_subject}")
        self.spec = SPEC
        self.split = split
        self.test_subject = test_subject
        if split == "test":
            subjects = [SUBJECTS[test_subject]]
        elif split == "train":
            subjects = [s for i, s in enumerate(SUBJECTS) if i != test_subject]
        else:
            subjects = list(SUBJECTS)
        self._files: list[Path] = []
        joints: list[np.ndarray] = []
        for subject in subjects:
            for gesture in self._gestures(self.root / subject):
                folder = self.root / subject / gesture
                frames = read_joints(folder / "joint.txt")
                self._files.extend(folder / f"{i:06d}_depth.bin" for i in range(len(frames)))
                joints.append(frames)
        self.joints = np.concatenate(joints) if joints else np.zeros((0, SPEC.num_joints, 3), np.float32)

    @staticmethod
    def _gestures(subject_dir: Path) -> list[str]:
        """Gesture folders of a subject: the canonical 17 first, then any other with a joint.txt."""
        if not subject_dir.is_dir():
            return []
        found = {p.parent.name for p in subject_dir.glob("*/joint.txt")}
        return [g for g in GESTURES if g in found] + sorted(found - set(GESTURES))

    def __len__(self) -> int:
        return len(self._files)

    def __getitem__(self, index: int) -> DatasetFrame:
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        path = self._files[index]
        return DatasetFrame(
            depth=read_depth(path),
            intrinsics=SPEC.intrinsics,
            joints=self.joints[index].copy(),
            name=str(path.relative_to(self.root)),
        )
