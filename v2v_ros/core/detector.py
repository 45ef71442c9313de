"""Learned hand localisation on the whole (subsampled) depth image.

The paper's initial reference point is the centre of mass after depth
thresholding (sec. 4). That fails whenever the hand is not the nearest object: a
table edge, a cup, or the forearm reaching towards the camera win the threshold,
and the refinement CNN, which only looks at a crop around that wrong point, cannot
recover. This small fully convolutional 2D network looks at the whole image at
~160 px width and scores every 4×4 cell for "the hand's centre projects here"; the
3D point is then read from the depth around the best cell and averaged over the
points near it, giving the refinement CNN a start inside the hand.

Stored as ``x.detector.safetensors`` + ``x.detector.json`` next to a pose model.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from v2v_ros.core.camera import Intrinsics
from v2v_ros.core.companion import CompanionNet


@dataclass
class DetectorMeta:
    target_width: int = 160  # images are subsampled by round(W / target_width)
    max_depth_mm: float = 3000.0  # depth normalisation range
    cell: int = 4  # output stride in subsampled pixels
    surface_offset_mm: float = 15.0  # the hand's centre lies this far behind its visible surface
    gather_radius_mm: float = 80.0  # points within this radius are averaged into the centre
    kind: str = "v2v_detector"
    provenance: dict[str, Any] = field(default_factory=dict)


@dataclass
class Peaks:
    """The best cells of one score map (best first) and what is needed to place them in 3D."""

    logits: np.ndarray  # (h, w) score map
    step: int  # image subsampling of the detector input
    cells: list[tuple[int, int]]  # (row, col) in the score map
    scores: list[float]  # logits at those cells


class DetectorNet(nn.Sequential):
    """(B, 2, H, W) [normalised depth, validity] -> (B, 1, H/4, W/4) logits."""

    def __init__(self) -> None:
        def block(cin: int, cout: int, dil: int = 1) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=dil, dilation=dil), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        # Narrow on purpose: it runs on every frame next to the 3D network and trains in
        # minutes on a CPU; dilations give a receptive field of the whole hand and its context.
        super().__init__(
            *block(2, 8), *block(8, 8), nn.MaxPool2d(2),
            *block(8, 16), *block(16, 16), nn.MaxPool2d(2),
            *block(16, 32), *block(32, 32, 2), *block(32, 32, 4), *block(32, 32, 8),
            nn.Conv2d(32, 1, 1),
        )


def subsample_step(width: int, meta: DetectorMeta) -> int:
    return max(1, int(round(width / meta.target_width)))


def detector_input(depth_mm: np.ndarray, meta: DetectorMeta, step: int) -> np.ndarray:
    """(2, h, w) float32 network input from a full-resolution depth image (mm, 0 = invalid)."""
    sub = depth_mm[::step, ::step]
    valid = (sub > 0) & (sub < meta.max_depth_mm)
    d = np.where(valid, sub, 0.0).astype(np.float32) * np.float32(2.0 / meta.max_depth_mm) - 1.0
    d[~valid] = 1.0  # invalid reads as "far"
    return np.stack((d, valid.astype(np.float32)))


def target_cell(center_mm: np.ndarray, intr: Intrinsics, step: int, meta: DetectorMeta) -> tuple[float, float]:
    """Continuous output-cell coordinates (col, row) of a 3D point: cell k covers subsampled pixels [4k, 4k+4)."""
    u, v, _ = intr.to_uvd(np.asarray(center_mm, dtype=np.float64))
    return (u / step + 0.5) / meta.cell - 0.5, (v / step + 0.5) / meta.cell - 0.5


class Detector(CompanionNet):
    """Callable (depth mm, intrinsics) -> hand centre mm (3,) or None."""

    role = "detector"
    meta_cls = DetectorMeta

    @classmethod
    def make_net(cls, meta: DetectorMeta) -> nn.Module:
        return DetectorNet()

    def scores(self, depth_mm: np.ndarray) -> tuple[np.ndarray, int]:
        step = subsample_step(depth_mm.shape[1], self.meta)
        x = torch.from_numpy(detector_input(depth_mm, self.meta, step))[None].to(self.device)
        with torch.inference_mode():
            return self.fast(self.prepare(x))[0, 0].float().cpu().numpy(), step

    def __call__(self, depth_mm: np.ndarray, intr: Intrinsics) -> np.ndarray | None:
        return self.center(depth_mm, intr, self.peaks(depth_mm, 1), 0)

    def peaks(self, depth_mm: np.ndarray, k: int) -> Peaks:
        """The ``k`` best cells of the score map, each at least a hand width from the others.

        Why more than one: the few frames where the best cell is a distractor (a cup, the
        other forearm) cost more mean error than all other frames together, and the pose
        network can tell a hand from a cup (its heatmap confidence), so the estimator can
        verify a handful of peaks instead of trusting the best one. Their 3D centres are
        computed on demand (:meth:`center`), so unverified peaks cost nothing.
        """
        logits, step = self.scores(depth_mm)
        work = logits.copy()
        cells: list[tuple[int, int]] = []
        scores: list[float] = []
        while len(cells) < k:
            r, c = np.unravel_index(int(np.argmax(work)), work.shape)
            if not np.isfinite(work[r, c]):
                break
            cells.append((int(r), int(c)))
            scores.append(float(work[r, c]))
            # ±3 cells: about a hand width at arm's length (12 subsampled pixels).
            work[max(r - 3, 0):r + 4, max(c - 3, 0):c + 4] = -np.inf
        return Peaks(logits, step, cells, scores)

    def hypotheses(self, depth_mm: np.ndarray, intr: Intrinsics, k: int) -> Iterator[np.ndarray]:
        """Up to ``k`` hand centres (mm), best peak first, each placed in 3D only when asked for."""
        peaks = self.peaks(depth_mm, k)
        for i in range(len(peaks.cells)):
            c = self.center(depth_mm, intr, peaks, i)
            if c is not None:
                yield c

    def center(self, depth_mm: np.ndarray, intr: Intrinsics, peaks: Peaks, i: int) -> np.ndarray | None:
        """3D hand centre (mm) of peak ``i``, or None when there is no depth around it."""
        if i >= len(peaks.cells):
            return None
        r, c = peaks.cells[i]
        logits, step, m = peaks.logits, peaks.step, self.meta
        # Sub-cell position: softmax-weighted mean over the 3×3 neighbourhood.
        r0, r1, c0, c1 = max(r - 1, 0), min(r + 2, logits.shape[0]), max(c - 1, 0), min(c + 2, logits.shape[1])
        w = np.exp(logits[r0:r1, c0:c1] - logits[r, c])
        rows, cols = np.mgrid[r0:r1, c0:c1]
        rc, cc = float((w * rows).sum() / w.sum()), float((w * cols).sum() / w.sum())
        u = ((cc + 0.5) * m.cell - 0.5) * step
        v = ((rc + 0.5) * m.cell - 0.5) * step
        # Depth: the near surface around that pixel (a window of ~2 cells), then the centre behind it.
        h, wd = depth_mm.shape
        half = 2 * m.cell * step
        ui, vi = int(round(u)), int(round(v))
        win = depth_mm[max(vi - half, 0):min(vi + half + 1, h):step, max(ui - half, 0):min(ui + half + 1, wd):step]
        z = win[(win > 0) & (win < m.max_depth_mm)]
        if z.size == 0:
            return None
        z0 = float(np.percentile(z, 25)) + m.surface_offset_mm
        guess = intr.to_xyz(np.array([u, v, z0]))
        # Average the visible points near the guess (on the subsampled grid: plenty for a mean).
        rad = int(m.gather_radius_mm * abs(intr.fx) / max(z0, 1.0)) + step
        v0, u0 = max(vi - rad, 0), max(ui - rad, 0)
        sub = depth_mm[v0:min(vi + rad + 1, h):step, u0:min(ui + rad + 1, wd):step]
        pts = Intrinsics(intr.fx / step, intr.fy / step, (intr.cx - u0) / step, (intr.cy - v0) / step).backproject(sub)
        near = np.linalg.norm(pts - guess, axis=1) < m.gather_radius_mm
        if near.sum() < 5:
            return guess
        # The visible points are the hand's front surface: push the mean back by half the offset.
        return pts[near].mean(axis=0).astype(np.float64) + np.array([0.0, 0.0, 0.5 * m.surface_offset_mm])
