"""ITOP human pose dataset reader (Haque et al., ECCV 2016), front or top view.

Files: ``ITOP_{view}_{split}_depth_map.h5`` (dataset ``data``: (N, 240, 320) float
metres; ``id``) and ``ITOP_{view}_{split}_labels.h5`` (``id``, ``is_valid``,
``real_world_coordinates`` (N, 15, 3) metres, ``image_coordinates``,
``visible_joints``). ITOP's world frame has y *up* (v = cy - y*f/z), so joints
become ``(x, -y, z) * 1000`` mm in the optical frame. Invalid frames are skipped
unless ``skip_invalid=False`` (they are then yielded with ``valid=False``).
Depth maps are read one frame at a time: a split is several GB.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from v2v_ros.data.datasets import DatasetFrame, get_dataset

FILE_TO_OPTICAL_MM = np.array([1000.0, -1000.0, 1000.0], dtype=np.float32)


def file_names(view: str, split: str) -> tuple[str, str]:
    """(depth file, labels file) names of one view and split."""
    return f"ITOP_{view}_{split}_depth_map.h5", f"ITOP_{view}_{split}_labels.h5"


def to_depth_mm(data: np.ndarray) -> np.ndarray:
    """ITOP metres (float16/32) -> float32 mm with 0 (and non-finite) = invalid."""
    depth = np.asarray(data, dtype=np.float32) * 1000.0
    depth[~np.isfinite(depth) | (depth < 0)] = 0.0
    return depth


def _ids(values: Any) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in np.asarray(values).ravel()]


class ITOPDataset:
    """Frames of one ITOP view ('front' or 'top') and split ('train' or 'test')."""

    def __init__(self, root: str | Path, view: str = "front", split: str = "test", skip_invalid: bool = True) -> None:
        import h5py

        if view not in ("front", "top"):
            raise ValueError(f"view must be 'front' or 'top', got {view!r}")
        self.root = Path(root)
        self.spec = get_dataset(f"itop_{view}")
        self.view, self.split = view, split
        depth_name, label_name = file_names(view, split)
        self.depth_file = self.root / depth_name
        for path in (self.depth_file, self.root / label_name):
            if not path.is_file():
                raise FileNotFoundError(f"ITOP file {path} not found")
        with h5py.File(self.root / label_name, "r") as f:
            ids = _ids(f["id"][()])
            is_valid = np.asarray(f["is_valid"][()]).astype(bool).ravel()
            joints = np.asarray(f["real_world_coordinates"][()], dtype=np.float32) * FILE_TO_OPTICAL_MM
            self.visible = np.asarray(f["visible_joints"][()]).astype(bool) if "visible_joints" in f else None
        with h5py.File(self.depth_file, "r") as f:
            depth_ids = _ids(f["id"][()]) if "id" in f else ids
            n_depth = f["data"].shape[0]
        if n_depth != len(ids) or depth_ids != ids:
            raise ValueError(f"ITOP {view}/{split}: depth and label files list different frames")
        self.ids = ids
        self.is_valid = is_valid
        self.all_joints = joints
        self.indices = np.flatnonzero(is_valid) if skip_invalid else np.arange(len(ids))
        self._h5: Any = None

    @property
    def joints(self) -> np.ndarray:
        """(len, 15, 3) mm of the frames this dataset yields."""
        return self.all_joints[self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> DatasetFrame:
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        k = int(self.indices[index])
        if self._h5 is None:
            import h5py

            self._h5 = h5py.File(self.depth_file, "r")
        return DatasetFrame(
            depth=to_depth_mm(self._h5["data"][k]), intrinsics=self.spec.intrinsics,
            joints=self.all_joints[k].copy(), name=self.ids[k], valid=bool(self.is_valid[k]),
        )

    def close(self) -> None:
        if self._h5 is not None:
            self._h5.close()
            self._h5 = None

    def __getstate__(self) -> dict[str, Any]:
        """Picklable for DataLoader workers: each process reopens the HDF5 file."""
        state = self.__dict__.copy()
        state["_h5"] = None
        return state

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: h5py may already be gone
            pass
