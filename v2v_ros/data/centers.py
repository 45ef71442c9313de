"""V2V-PoseNet refined reference points ("centers") text files.

The original V2V release ships, per dataset and split, a text file with one line
per frame: ``x y z`` in the release's own frame of that dataset, or a marker for
frames where the localisation failed. That frame is not ours: its MSRA, NYU and
ITOP files have y up (and ITOP's are in metres), so pass the dataset to
:func:`read_centers` to get optical-frame mm (``DatasetSpec.centers_to_optical``);
without it the numbers come back as written. Releases mark those lines
differently ('invalid invalid invalid', a single 'invalid', or NaN), so all are
accepted. A centre with z <= 0 lies behind the camera and is treated as invalid
too. Invalid frames come back as a NaN row plus ``valid = False``, so callers can
skip them or fall back to their own reference point.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from v2v_ros.data.datasets import DatasetSpec

INVALID_TOKENS = frozenset({"invalid", "nan", "none", "-"})


def parse_center_line(line: str) -> tuple[float, float, float] | None:
    """One line -> (x, y, z) mm, or None when the line marks an invalid frame."""
    parts = line.replace(",", " ").split()
    if not parts or any(p.lower() in INVALID_TOKENS for p in parts):
        return None
    if len(parts) != 3:
        raise ValueError(f"a centre line needs 3 numbers or an 'invalid' marker, got {line!r}")
    x, y, z = (float(p) for p in parts)
    if not all(math.isfinite(v) for v in (x, y, z)) or z <= 0:
        return None
    return x, y, z


def _to_optical(dataset: "str | DatasetSpec | None") -> np.ndarray:
    """Per-axis factor from a centre file's frame to optical-frame mm (ones without a dataset)."""
    if dataset is None:
        return np.ones(3)
    from v2v_ros.data.datasets import DatasetSpec, get_dataset

    spec = dataset if isinstance(dataset, DatasetSpec) else get_dataset(dataset)
    return np.asarray(spec.centers_to_optical, dtype=np.float64)


def read_centers(path: str | Path, dataset: "str | DatasetSpec | None" = None) -> tuple[np.ndarray, np.ndarray]:
    """Read a centre file -> ((N, 3) float64 with NaN rows, (N,) bool valid mask).

    With ``dataset`` (a name or spec) the V2V release's frame is converted to
    optical-frame mm; without it the values are returned as written. Trailing blank
    lines are ignored; a blank line inside the file is a frame without a centre
    (invalid) so that line numbers keep matching frame indices.
    """
    lines = Path(path).read_text().splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    centers = np.full((len(lines), 3), np.nan, dtype=np.float64)
    for i, line in enumerate(lines):
        try:
            value = parse_center_line(line)
        except ValueError as exc:
            raise ValueError(f"{path}:{i + 1}: {exc}") from None
        if value is not None:
            centers[i] = value
    return centers * _to_optical(dataset), np.isfinite(centers).all(axis=1)


def write_centers(path: str | Path, centers: np.ndarray, dataset: "str | DatasetSpec | None" = None) -> None:
    """Write (N, 3) centres, NaN rows as 'invalid invalid invalid' (the V2V release's marker).

    With ``dataset`` the centres are optical-frame mm and are written in the release's
    frame of that dataset (the inverse of :func:`read_centers`).
    """
    lines = []
    for row in np.asarray(centers, dtype=np.float64).reshape(-1, 3) / _to_optical(dataset):
        lines.append(" ".join(f"{v:.6f}" for v in row) if np.isfinite(row).all() else "invalid invalid invalid")
    Path(path).write_text("\n".join(lines) + ("\n" if lines else ""))
