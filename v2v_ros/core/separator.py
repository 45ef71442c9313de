"""Which pixels around a hand belong to another hand? A small 2-D segmentation network.

Why: the pose network learnt one hand per cube. When two hands touch or one is in front of
the other, the estimator removes the other hand's pixels before posing each hand. Drawn
from a pose (:func:`v2v_ros.core.estimator.without_hands`: everything within a finger's
radius of the other pose's joints and bones) the mask misses that hand's forearm and the
surface farther from its bones, and bites into this hand where the two touch, or where the
other pose is wrong. With the renderer's exact labels instead, touching hands are posed
about 3.5 mm better (``tools/two_hand_gap.py``). This network predicts those labels: in the
crop around a cube's centre, every pixel is *this hand* (the one the crop is centred on,
forearm included), *another hand* or *anything else*; the pixels it calls another hand are
removed from that cube's image.

Its input is the refinement CNN's kind of crop (a metric window around the centre, depth
relative to the centre), so it does not depend on the distance to the camera, and the poses
the estimator already has, drawn into the same window (:func:`pose_map`): this hand's and
the other hands'. From the depth alone, which of two touching hands a finger belongs to is
often a guess; the poses say roughly where each hand is, the depth where its surface ends.
It learnt on poses with the errors of estimated ones (:mod:`v2v_ros.train.separator`). Its
output is the crop's pixels' classes at the same resolution, read back for every image
pixel in the window by inverting that sampling (the class margin interpolated between cells,
:func:`remove_where`). It is independent of the pose network's weights (its own crop size is in
its metadata).

Measured on validation (docs/multi_target.md): with true poses it beats the drawn mask on
touching hands, but through the pipeline, with the poses the estimator has, it is not better,
so none is shipped; the estimator uses one only when it is found next to the model.

Stored like the other companions: ``x.separator.safetensors`` + ``x.separator.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from v2v_ros.core.camera import Intrinsics
from v2v_ros.core.companion import CompanionNet
from v2v_ros.core.hand_masks import skeleton_points
from v2v_ros.core.refiner import crop_sample, crop_window, refiner_input

# Classes of a crop pixel, in the order of the network's output channels.
REST, THIS_HAND, OTHER_HAND = 0, 1, 2
NUM_CLASSES = 3
# Input channels: the depth crop, this hand's pose, the other hands' poses (pose_map).
INPUT_CHANNELS = 3
# A drawn pose covers the pixels this close (mm, in the image plane) to its joints and bones: a finger's
# radius (and its forearm's: hand_masks.skeleton_points).
BONE_RADIUS_MM = 12.0


@dataclass
class SeparatorMeta:
    cube_size: float = 250.0  # mm; the crop sees crop_scale x cube_size, depth in units of cube_size / 2
    input_size: int = 80  # crop resampled to input_size² pixels (4.7 mm each for a 250 mm cube)
    crop_scale: float = 1.5  # the whole cube's footprint, near face included, for hands 250 mm and farther
    kind: str = "v2v_separator"
    provenance: dict[str, Any] = field(default_factory=dict)


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SeparatorNet(nn.Module):
    """(B, 3, S, S) relative-depth crop and drawn poses -> (B, 3, S, S) class logits (rest, this hand, another hand).

    A small U-Net: three poolings take the crop to S/8 (about 37 mm a cell for a 250 mm cube),
    where two 3×3 convolutions see a whole hand and its neighbour, which is what tells the hand
    at the centre from the one next to it; the skip connections bring back the outline at
    full resolution, where the two surfaces meet.
    """

    def __init__(self, width: int = 12) -> None:
        super().__init__()
        w1, w2, w3, w4 = width, 2 * width, 3 * width, 4 * width
        self.enc1, self.enc2 = _block(INPUT_CHANNELS, w1), _block(w1, w2)
        self.enc3, self.bottom = _block(w2, w3), _block(w3, w4)
        self.pool = nn.MaxPool2d(2)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.dec3, self.dec2, self.dec1 = _block(w4 + w3, w3), _block(w3 + w2, w2), _block(w2 + w1, w1)
        self.head = nn.Conv2d(w1, NUM_CLASSES, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        e3 = self.enc3(self.pool(e2))
        b = self.bottom(self.pool(e3))
        d3 = self.dec3(torch.cat([self.up(b), e3], 1))
        d2 = self.dec2(torch.cat([self.up(d3), e2], 1))
        d1 = self.dec1(torch.cat([self.up(d2), e1], 1))
        return self.head(d1)


def separator_input(depth: np.ndarray, intr: Intrinsics, center: np.ndarray, meta: SeparatorMeta) -> np.ndarray:
    """(input_size, input_size) float32 crop around ``center`` (see :func:`v2v_ros.core.refiner.refiner_input`)."""
    return refiner_input(depth, intr, center, meta)  # type: ignore[arg-type]  # same fields, its own values


def pose_map(intr: Intrinsics, center: np.ndarray, poses: Sequence[np.ndarray], meta: SeparatorMeta) -> np.ndarray:
    """(input_size, input_size) float32: the poses drawn into the crop window of :func:`separator_input`.

    A cell within :data:`BONE_RADIUS_MM` (in the image plane, at the point's depth) of a pose's
    bone or forearm holds that point's depth relative to the centre, in the depth crop's units
    (the nearest to the camera where several points cover it); other cells read as background
    (+1), like a pixel without a reading.
    """
    n = meta.input_size
    out = np.ones((n, n), np.float32)
    uc, vc, ru, rv = crop_window(intr, center, meta)
    zc, half = max(float(center[2]), 1.0), meta.cube_size / 2.0
    grid = np.arange(n) + 0.5
    for joints in poses:
        for p in skeleton_points(joints):
            if p[2] <= 1.0:  # behind the camera (skeleton_points gives finite points only)
                continue
            u, v = p[0] * intr.fx / p[2] + intr.cx, p[1] * intr.fy / p[2] + intr.cy
            au, av = (u - uc) / ru * n / 2 + n / 2, (v - vc) / rv * n / 2 + n / 2  # cell coordinates
            r = abs(BONE_RADIUS_MM * intr.fx / p[2]) / (2 * ru / n)  # radius in cells
            i0, i1 = max(int(av - r), 0), min(int(av + r) + 2, n)
            j0, j1 = max(int(au - r), 0), min(int(au + r) + 2, n)
            if i0 >= i1 or j0 >= j1:
                continue
            disk = (grid[i0:i1, None] - av) ** 2 + (grid[None, j0:j1] - au) ** 2 <= r * r
            win = out[i0:i1, j0:j1]
            win[disk] = np.minimum(win[disk], np.float32(np.clip((p[2] - zc) / half, -1.0, 1.0)))
    return out


def separator_inputs(depth: np.ndarray, intr: Intrinsics, center: np.ndarray, own: np.ndarray | None,
                     others: Sequence[np.ndarray], meta: SeparatorMeta) -> np.ndarray:
    """(3, S, S) float32: the depth crop, this hand's pose and the other hands' poses drawn in it."""
    return np.stack([separator_input(depth, intr, center, meta),
                     pose_map(intr, center, [] if own is None else [own], meta),
                     pose_map(intr, center, others, meta)])


def crop_labels(labels: np.ndarray, intr: Intrinsics, center: np.ndarray, meta: SeparatorMeta) -> np.ndarray:
    """A per-pixel (H, W) label image sampled like :func:`separator_input` (outside the image: :data:`REST`)."""
    return crop_sample(labels, intr, center, meta, REST).astype(np.int64)


def _linear_weights(f: np.ndarray, n: int) -> np.ndarray:
    """(len(f), n) weights that interpolate n cell values linearly at fractional cell positions ``f``
    (clamped to the first and last cell)."""
    f = np.clip(f, 0.0, n - 1.0)
    lo = np.minimum(np.floor(f).astype(np.int64), n - 2) if n > 1 else np.zeros(len(f), np.int64)
    t = f - lo
    w = np.zeros((len(f), n))
    w[np.arange(len(f)), lo] = 1.0 - t
    if n > 1:
        w[np.arange(len(f)), lo + 1] += t
    return w


def remove_where(depth: np.ndarray, intr: Intrinsics, center: np.ndarray, score: np.ndarray,
                 meta: SeparatorMeta) -> np.ndarray:
    """A copy of ``depth`` without the pixels of the crop window where ``score`` (one value per crop
    cell), interpolated bilinearly between the cell centres, is above 0.

    Why bilinear: a cell is several image pixels wide (4.7 mm for an 80² crop of 1.5 × 250 mm),
    and at a finger's edge a cell's class decides a third of the finger's width; interpolating
    the network's margin places the boundary between cells (on validation touching hands with
    true poses, clearly better than each pixel taking its cell's class). A cell centre maps to
    the pixel :func:`separator_input` sampled it from.
    """
    out = depth.copy()
    n = meta.input_size
    uc, vc, ru, rv = crop_window(intr, center, meta)
    h, w = depth.shape
    u0, u1 = max(int(np.floor(uc - ru)), 0), min(int(np.ceil(uc + ru)) + 1, w)
    v0, v1 = max(int(np.floor(vc - rv)), 0), min(int(np.ceil(vc + rv)) + 1, h)
    if u0 >= u1 or v0 >= v1:
        return out
    # fractional cell of pixel u: cell k was sampled at u = floor(uc + s_k * ru), s_k = (k + 0.5) / n * 2 - 1
    fu = ((np.arange(u0, u1) + 0.5 - uc) / ru + 1.0) * n / 2.0 - 0.5
    fv = ((np.arange(v0, v1) + 0.5 - vc) / rv + 1.0) * n / 2.0 - 0.5
    inside_u, inside_v = np.abs(fu - (n - 1) / 2.0) <= n / 2.0, np.abs(fv - (n - 1) / 2.0) <= n / 2.0
    at_pixels = _linear_weights(fv, n) @ np.asarray(score, np.float64) @ _linear_weights(fu, n).T
    hit = (at_pixels > 0.0) & inside_v[:, None] & inside_u[None, :]
    out[v0:v1, u0:u1][hit] = 0.0
    return out


class Separator(CompanionNet):
    """Callable (depth mm, intrinsics, centres (K, 3) mm, each cube's own pose, each cube's other
    poses) -> K images, each without the pixels the network assigns to another hand than the one
    at its centre."""

    role = "separator"
    meta_cls = SeparatorMeta

    @classmethod
    def make_net(cls, meta: SeparatorMeta) -> nn.Module:
        return SeparatorNet()

    def logits(self, depth: np.ndarray, intr: Intrinsics, centers: Sequence[np.ndarray],
               own: Sequence[np.ndarray | None], others: Sequence[Sequence[np.ndarray]]) -> np.ndarray:
        """(K, 3, S, S) float32 class logits of each crop cell (:data:`REST`, :data:`THIS_HAND`,
        :data:`OTHER_HAND`), one batch."""
        if not len(centers) == len(own) == len(others):
            raise ValueError(f"{len(centers)} centres, {len(own)} own poses, {len(others)} lists of other poses")
        n = self.meta.input_size
        if len(centers) == 0:
            return np.zeros((0, NUM_CLASSES, n, n), np.float32)
        x = np.stack([separator_inputs(depth, intr, np.asarray(c, np.float64), o, list(oth), self.meta)
                      for c, o, oth in zip(centers, own, others, strict=True)])
        with torch.inference_mode():
            return self.fast(self.prepare(torch.from_numpy(x).to(self.device))).float().cpu().numpy()

    def __call__(self, depth: np.ndarray, intr: Intrinsics, centers: Sequence[np.ndarray],
                 own: Sequence[np.ndarray | None], others: Sequence[Sequence[np.ndarray]]) -> list[np.ndarray]:
        out = []
        for c, z in zip(centers, self.logits(depth, intr, centers, own, others), strict=True):
            margin = z[OTHER_HAND] - np.maximum(z[THIS_HAND], z[REST])  # > 0: the cell's class is another hand
            out.append(remove_where(depth, intr, np.asarray(c, np.float64), margin, self.meta))
        return out
