"""The hand-pose community's prediction/ground-truth text format.

One frame per line, ``u v d`` per joint (pixels, pixels, mm), whitespace
separated, as in X. Chen's evaluation collection. Conversion to mm uses the
dataset's *evaluation* intrinsics from :mod:`v2v_ros.data.datasets` (NYU's files
assume fy < 0, i.e. y up), which is what makes our numbers comparable to the
published ones. 'nan' entries are allowed and mark an invalid prediction.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from v2v_ros.data.datasets import DatasetSpec, get_dataset


def read_uvd_file(path: str | Path, num_joints: int | None = None) -> np.ndarray:
    """Read a community text file -> (N, J, 3) float64 ``u v d``.

    ``num_joints`` is checked when given, otherwise inferred from the first line.
    Blank lines are ignored.
    """
    rows = [line.split() for line in Path(path).read_text().splitlines() if line.strip()]
    if not rows:
        return np.zeros((0, num_joints or 0, 3))
    width = len(rows[0])
    bad = next((i for i, r in enumerate(rows) if len(r) != width), None)
    if bad is not None:
        raise ValueError(f"{path}:{bad + 1}: {len(rows[bad])} values, the first line has {width}")
    if width % 3:
        raise ValueError(f"{path}: {width} values per line is not a multiple of 3 (u v d per joint)")
    if num_joints is not None and width != 3 * num_joints:
        raise ValueError(f"{path}: {width // 3} joints per line, expected {num_joints}")
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), width // 3, 3)


def write_uvd_file(path: str | Path, uvd: Any) -> None:
    """Write (N, J, 3) ``u v d`` in the community format (3 decimals, like the published files)."""
    uvd = np.asarray(uvd, dtype=np.float64)
    lines = [" ".join(f"{v:.3f}" for v in frame.ravel()) for frame in uvd]
    Path(path).write_text("\n".join(lines) + ("\n" if lines else ""))


def _spec(dataset: str | DatasetSpec) -> DatasetSpec:
    return dataset if isinstance(dataset, DatasetSpec) else get_dataset(dataset)


def uvd_to_xyz(uvd: Any, dataset: str | DatasetSpec) -> np.ndarray:
    """Community ``u v d`` -> mm with the dataset's evaluation camera."""
    return np.asarray(_spec(dataset).eval_intrinsics.to_xyz(np.asarray(uvd, dtype=np.float64)))


def xyz_to_uvd(xyz: Any, dataset: str | DatasetSpec) -> np.ndarray:
    """Our optical-frame mm -> community ``u v d`` (pixels on the real image).

    Uses the real camera, so the pixels are where the joints appear in the depth
    image; that is also what the community files hold (only their metric
    conversion differs, by a sign, for NYU).
    """
    return np.asarray(_spec(dataset).intrinsics.to_uvd(np.asarray(xyz, dtype=np.float64)))


def load_xyz(path: str | Path, dataset: str | DatasetSpec) -> np.ndarray:
    """Read a community file of ``dataset`` straight to (N, J, 3) mm (evaluation frame)."""
    spec = _spec(dataset)
    return uvd_to_xyz(read_uvd_file(path, spec.num_eval_joints), spec)
