"""Parsing of the 'name followed by J×3 numbers' label files several hand datasets use."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def read_named_joint_rows(path: str | Path, num_joints: int) -> tuple[list[str], np.ndarray]:
    """Lines ``NAME v1 ... v{3J}`` -> (names, (N, J, 3) float32). Blank lines are skipped.

    A line with another field count raises ValueError naming the file and the count,
    because a silently shifted row would mislabel every joint after it.
    """
    names: list[str] = []
    rows: list[list[float]] = []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 1 + num_joints * 3:
            raise ValueError(f"{path}:{number}: expected a name and {num_joints * 3} numbers, got {len(parts)} fields")
        try:
            rows.append([float(v) for v in parts[1:]])
        except ValueError as exc:
            raise ValueError(f"{path}:{number}: {exc}") from None
        names.append(parts[0])
    return names, np.asarray(rows, dtype=np.float32).reshape(len(rows), num_joints, 3)
