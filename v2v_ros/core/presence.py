"""Is there a hand in this cube? A small 2-D classifier on the depth crop around a candidate centre.

Why: V2V-PoseNet always returns *some* pose: its heatmaps have a maximum in any cube,
and on a cup, a table edge or a forearm that maximum can be as high as on a hand
(a plain disc scores 0.33, a wall 0.25, a random image 0.45 with the shipped model), so
no confidence threshold separates "a doubtful hand" from "no hand". A manipulation
stack acting on such a skeleton grabs at a cup. This network answers the question the
pose network cannot: it was trained on hand crops against crops of hand-free scenes
(tables, walls, cups and boxes of hand size, forearms and people whose hand is out of
view; ``v2v_ros.data.synthetic.negatives``) and its threshold was calibrated on a
separate validation split (``v2v train-presence``). It is independent of the pose
network's weights, grid and cube (its own crop size is in its metadata), so retraining
the pose network does not invalidate it.

It looks at the refinement CNN's kind of input (a metric depth window around the centre,
depth relative to the centre), costs well under a millisecond per candidate on a CPU
core, and runs on every cube the estimator is about to voxelise, so a tracked cube that
loses its hand is caught on the first such frame.

Stored like the other companions: ``x.presence.safetensors`` + ``x.presence.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from v2v_ros.core.camera import Intrinsics
from v2v_ros.core.companion import CompanionNet
from v2v_ros.core.refiner import refiner_input

# PoseResult.reason of a cube the presence classifier judged hand-free (a stable key for counters).
NO_HAND = "no_hand"


@dataclass
class PresenceMeta:
    cube_size: float = 200.0  # mm; the crop sees crop_scale x cube_size, depth in units of cube_size / 2
    input_size: int = 64  # crop resampled to input_size² pixels
    crop_scale: float = 1.5
    threshold: float = 0.5  # probability at or above which a cube holds a hand (calibrated at training)
    kind: str = "v2v_presence"
    provenance: dict[str, Any] = field(default_factory=dict)


class PresenceNet(nn.Sequential):
    """(B, 1, S, S) relative-depth crop -> (B,) logit of "a hand is centred here"."""

    def __init__(self) -> None:
        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        # Four resolutions (fingers at the first, the hand's outline and its arm at the last),
        # then global pooling: the answer must not depend on where in the window the hand sits.
        super().__init__(
            *block(1, 16), nn.MaxPool2d(2),
            *block(16, 32), nn.MaxPool2d(2),
            *block(32, 48), nn.MaxPool2d(2),
            *block(48, 64), nn.AdaptiveAvgPool2d(1),
            nn.Flatten(), nn.Linear(64, 1), nn.Flatten(0),
        )


def presence_input(depth: np.ndarray, intr: Intrinsics, center: np.ndarray, meta: PresenceMeta) -> np.ndarray:
    """(input_size, input_size) float32 crop around ``center`` (see :func:`v2v_ros.core.refiner.refiner_input`)."""
    return refiner_input(depth, intr, center, meta)  # type: ignore[arg-type]  # same fields, its own values


class Presence(CompanionNet):
    """Callable (depth mm, intrinsics, centres (K, 3) mm) -> (K,) probabilities that a hand is there."""

    role = "presence"
    meta_cls = PresenceMeta

    @classmethod
    def make_net(cls, meta: PresenceMeta) -> nn.Module:
        return PresenceNet()

    @property
    def threshold(self) -> float:
        return float(self.meta.threshold)

    def __call__(self, depth: np.ndarray | list[np.ndarray], intr: Intrinsics,
                 centers: Sequence[np.ndarray]) -> np.ndarray:
        """``depth``: one image for every centre, or a list with each centre's own image (one batch either way)."""
        if len(centers) == 0:
            return np.zeros(0, np.float32)
        images = depth if isinstance(depth, list) else [depth] * len(centers)
        if len(images) != len(centers):
            raise ValueError(f"{len(images)} images for {len(centers)} centres")
        x = np.stack([presence_input(d, intr, np.asarray(c, np.float64), self.meta)
                      for d, c in zip(images, centers, strict=True)])
        with torch.inference_mode():
            logits = self.fast(self.prepare(torch.from_numpy(x)[:, None].to(self.device)))
        return torch.sigmoid(logits.float()).cpu().numpy().astype(np.float32)
