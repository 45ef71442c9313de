"""Training the reference-point refinement CNN (paper sec. 4) on sharded frames.

Inputs are crops around two kinds of initial centres, half each: the depth-band
centre of mass the localiser gives (with the biases it really has: forearm,
clutter) and the true joint centre displaced by Gaussian noise (so repeated
refinement steps stay stable). The target is the offset to the joints' mean.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from v2v_ros.core.camera import Intrinsics
from v2v_ros.core.localize import Localizer, localizer_for
from v2v_ros.core.refiner import Refiner, RefinerMeta, RefinerNet, refiner_input
from v2v_ros.train.config import YamlConfig


@dataclass
class RefinerConfig(YamlConfig):
    skeleton: str = "hand_msra21"  # picks the localiser whose errors the refiner learns to undo
    train_data: str = "data/synth_train"
    val_data: str = ""
    out: str = "runs/refiner/hand.refiner.safetensors"
    cube_size: float = 200.0
    input_size: int = 64
    crop_scale: float = 1.5
    iterations: int = 2
    depth_band_mm: float = 150.0
    jitter_mm: float = 25.0
    # Share of samples that start from the localiser's centre; the rest start from the
    # true centre plus Gaussian jitter. With the whole-image detector in front, starts
    # are near the hand, so jitter alone matches what the refiner will see.
    localizer_fraction: float = 0.5
    steps: int = 3000
    batch_size: int = 64
    lr: float = 1e-3
    seed: int = 0
    threads: int = 0
    val_frames: int = 300


def crop_intrinsics(intr: Intrinsics, offset: tuple[int, int]) -> Intrinsics:
    """Intrinsics of a crop whose top-left pixel is ``offset``: a shifted principal point."""
    return Intrinsics(intr.fx, intr.fy, intr.cx - offset[0], intr.cy - offset[1])


def initial_center(frame: Any, localizer: Any) -> np.ndarray | None:
    """What the estimator would start from for this frame (localiser on the stored depth)."""
    return localizer.locate(frame.depth, crop_intrinsics(frame.intrinsics, frame.offset))


def _batch(ds: Any, idx: np.ndarray, meta: RefinerMeta, loc: Any, rng: np.random.Generator, jitter: float,
           localizer_fraction: float = 0.5):
    xs, ys = [], []
    for i in idx:
        f = ds[int(i)]
        gt = f.joints.mean(axis=0).astype(np.float64)
        c = initial_center(f, loc) if rng.random() < localizer_fraction else None
        if c is None or np.linalg.norm(c - gt) > meta.cube_size:
            c = gt + rng.normal(0.0, jitter, 3)
        intr = crop_intrinsics(f.intrinsics, f.offset)
        xs.append(refiner_input(f.depth, intr, c, meta))
        ys.append((gt - c) / (meta.cube_size / 2.0))
    return torch.from_numpy(np.stack(xs)[:, None]), torch.from_numpy(np.stack(ys).astype(np.float32))


def evaluate_refiner(refiner: Refiner | None, ds: Any, n: int, loc: Any) -> dict[str, float]:
    """Mean distance (mm) of the centre to the joints' mean, before and after refinement."""
    before, after = [], []
    for i in range(min(n, len(ds))):
        f = ds[i]
        gt = f.joints.mean(axis=0)
        c = initial_center(f, loc)
        if c is None:
            continue
        before.append(np.linalg.norm(c - gt))
        if refiner is not None:
            after.append(np.linalg.norm(refiner(f.depth, crop_intrinsics(f.intrinsics, f.offset), c) - gt))
    out = {"frames": len(before), "com_error_mm": float(np.mean(before)) if before else float("nan")}
    if after:
        out["refined_error_mm"] = float(np.mean(after))
    return out


def train_refiner(cfg: RefinerConfig) -> Path:
    from tqdm import tqdm  # noqa: PLC0415

    from v2v_ros.data.shards import ShardDataset  # noqa: PLC0415

    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    ds = ShardDataset(cfg.train_data)
    meta = RefinerMeta(cfg.cube_size, cfg.input_size, cfg.crop_scale, cfg.iterations)
    loc = localizer_for(cfg)
    if isinstance(loc, Localizer):
        loc = replace(loc, depth_band_mm=cfg.depth_band_mm)
    net = RefinerNet(cfg.input_size)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps)
    # Shard-local batches: random frames from a few shards keep decompression cheap.
    started = time.time()
    for _step in tqdm(range(cfg.steps), desc="refiner", mininterval=5.0):
        shard = int(rng.integers(ds.num_shards))
        start = sum(ds.shard_sizes[:shard])
        idx = start + rng.integers(0, ds.shard_sizes[shard], cfg.batch_size)
        x, y = _batch(ds, idx, meta, loc, rng, cfg.jitter_mm, cfg.localizer_fraction)
        net.train()
        loss = torch.nn.functional.smooth_l1_loss(net(x), y, beta=0.05)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    refiner = Refiner(net, meta)
    metrics: dict[str, Any] = {}
    if cfg.val_data:
        metrics = evaluate_refiner(refiner, ShardDataset(cfg.val_data), cfg.val_frames, loc)
        print(json.dumps(metrics), flush=True)
    meta.provenance = {"config": asdict(cfg), "val": metrics, "seconds": round(time.time() - started, 1)}
    return refiner.save(cfg.out)
