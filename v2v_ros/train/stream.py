"""Streaming training data from a sharded dataset, split across ranks and loader workers.

Shards are read sequentially (one decompression each) in an order shuffled per
epoch; frames are shuffled within a shard. Rank r of W takes every W-th shard and
loader worker k of K every K-th of those, so no frame is read twice in a pass. The
stream cycles, and the training loop counts steps, so ranks never wait on each other
because one received a shorter shard.

Several folders can feed one run (``train_data`` as a list, e.g. a view-balanced mix of
synthetic people, or synthetic plus a real dataset converted to shards): their shards
form one pool, so a folder's share of the samples is its share of the frames.

Frames with several targets (``v2v synth --hands 2``) give one sample each, centred on one of
their hands drawn at random among those at least :data:`MIN_VISIBLE` visible, with that hand's
joints as the target and every other hand's pixels left in the cube: the network learns to
estimate the hand its cube is centred on when another hand touches or hides part of it (at
run time each target's cube is centred on its own hand). Frames without a usable hand are skipped.

With ``mask_other_hands`` (a probability), such a sample instead sees the other hands' pixels removed
the way a tracker removes them at run time (:func:`v2v_ros.core.estimator.without_hands` around a
pose a few millimetres off the true one, as a followed hand's predicted pose is): a followed cube is
voxelised without the other followed hand (``PoseEstimator._followed``), so the network meets the
hole that hand leaves, sometimes bitten into its own hand where the two touch. A model with two
input channels (``input_channels: 2``) gets the removed pixels in its second channel, as the
estimator gives them at run time (core.voxel.removed_depth).
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from v2v_ros.core.voxel import VoxelGrid, removed_depth
from v2v_ros.train.samples import Augmentation, make_sample

# A hand less visible than this is no training target: its hidden joints are guesses.
MIN_VISIBLE = 0.5


def training_target(frame: Any, rng: np.random.Generator) -> np.ndarray | None:
    """The (J, 3) joints one sample of ``frame`` is trained on; None when it has no usable target.

    Single-target frames: their ``joints``. Multi-target frames: one hand drawn uniformly among those
    at least :data:`MIN_VISIBLE` visible (``info['targets'][k]['visible']``).
    """
    targets = getattr(frame, "targets", None)
    if targets is None or len(targets) == 0:
        joints = np.asarray(frame.joints)
        return joints if np.all(np.isfinite(joints)) else None
    labels = frame.info.get("targets", []) if isinstance(frame.info, dict) else []
    visible = [float(t.get("visible", 1.0)) for t in labels] if len(labels) == len(targets) else [1.0] * len(targets)
    usable = [k for k, v in enumerate(visible) if v >= MIN_VISIBLE and np.all(np.isfinite(targets[k]))]
    if not usable:
        return None
    return np.asarray(targets[usable[int(rng.integers(len(usable)))]])


# How far the pose a tracker masks a hand with is from that hand: the previous frame's pose moved
# by the track's velocity (a whole-hand shift) plus the pose's own error per joint.
MASK_SHIFT_MM = 6.0
MASK_JOINT_MM = 5.0


def other_hands(frame: Any, joints: np.ndarray) -> list[np.ndarray]:
    """The (J, 3) joints of every target of ``frame`` other than ``joints`` (finite ones only)."""
    targets = getattr(frame, "targets", None)
    if targets is None:
        return []
    return [np.asarray(t) for t in targets if np.all(np.isfinite(t)) and not np.array_equal(t, joints)]


def without_other_hands(frame: Any, others: Sequence[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """``frame.depth`` (its crop) without the pixels of ``others``, each masked around a perturbed pose."""
    from v2v_ros.train.refiner import crop_intrinsics  # noqa: PLC0415

    return without_hands_as_estimated(frame.depth, crop_intrinsics(frame.intrinsics, frame.offset), others, rng)


def without_hands_as_estimated(depth: np.ndarray, intrinsics: Any, hands: Sequence[np.ndarray],
                               rng: np.random.Generator) -> np.ndarray:
    """``depth`` without the pixels of ``hands`` (true joints), each masked around a perturbed pose.

    Why perturbed: at run time the estimator masks a hand with its estimated pose (a tracker's
    prediction, a found hand's pose), never with the true one, so some of its pixels survive.
    """
    from v2v_ros.core.estimator import without_hands  # noqa: PLC0415

    poses = [o + rng.normal(0.0, MASK_SHIFT_MM, 3) + rng.normal(0.0, MASK_JOINT_MM, o.shape) for o in hands]
    return without_hands(np.asarray(depth, np.float32), intrinsics, poses)


def data_roots(root: str | Sequence[str]) -> list[str]:
    """``train_data`` as a list of folders (one folder or several)."""
    return [root] if isinstance(root, str) else [str(r) for r in root]


class ShardStream(IterableDataset):
    """Yields (voxels, heatmaps) float32 tensors forever; deterministic given the seeds."""

    def __init__(
        self,
        root: str | Sequence[str],
        grid: VoxelGrid,
        aug: Augmentation,
        sigma: float,
        seed: int,
        epoch: int = 0,
        rank: int = 0,
        world_size: int = 1,
        center_jitter_mm: float = 0.0,
        start_step: int = 0,
        mask_other_hands: float = 0.0,
        channels: int = 1,
    ) -> None:
        super().__init__()
        self.root, self.grid, self.aug, self.sigma = root, grid, aug, sigma
        self.seed, self.epoch, self.rank, self.world_size = seed, epoch, rank, world_size
        self.center_jitter_mm = center_jitter_mm
        self.start_step = start_step
        self.mask_other_hands = mask_other_hands
        self.channels = channels

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        from v2v_ros.data.shards import ShardDataset  # noqa: PLC0415 - heavy, only in workers

        sets = [ShardDataset(r) for r in data_roots(self.root)]
        units = [(ds, k) for ds in sets for k in range(ds.num_shards)]  # (folder, shard) pool
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        order = np.random.default_rng([self.seed, self.epoch]).permutation(len(units))
        mine = order[self.rank :: self.world_size][wid::nw]
        if len(mine) == 0:  # more consumers than shards: share by frame instead
            mine = order
        rng = np.random.default_rng([self.seed, self.epoch, self.rank, wid, self.start_step])
        cycle = 0
        while True:
            for k in mine if cycle == 0 else rng.permutation(mine):
                ds, shard = units[int(k)]
                frames = list(ds.iter_shard(shard))
                for i in rng.permutation(len(frames)):
                    f = frames[i]
                    joints = training_target(f, rng)
                    if joints is None:
                        continue
                    depth, removed = f.depth, None
                    if self.mask_other_hands > 0:
                        others = other_hands(f, joints)
                        if others and rng.random() < self.mask_other_hands:
                            depth = without_other_hands(f, others, rng)
                            if self.channels == 2:
                                removed = removed_depth(np.asarray(f.depth, np.float32), depth)
                    vox, hm = make_sample(
                        depth, f.offset, f.intrinsics, joints, self.grid, rng, self.aug, self.sigma,
                        center_jitter_mm=self.center_jitter_mm, channels=self.channels, removed=removed,
                    )
                    yield torch.from_numpy(vox), torch.from_numpy(hm)
            cycle += 1
