"""Training the whole-image hand detector (v2v_ros.core.detector) on synthetic scenes.

The detector only needs ~160 px wide images, so its data is rendered directly at
that size (the same generator and scenes as the pose data, scaled intrinsics):
~10× cheaper than rendering VGA and subsampling.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from v2v_ros.core.camera import Intrinsics
from v2v_ros.core.detector import Detector, DetectorMeta, DetectorNet, detector_input, target_cell
from v2v_ros.train.config import YamlConfig


@dataclass
class DetectorConfig(YamlConfig):
    train_data: str = "data/detector_train.npz"
    val_data: str = "data/detector_val.npz"
    train_frames: int = 8000  # rendered when train_data does not exist yet
    val_frames: int = 500
    train_seed: int = 11
    val_seed: int = 12
    out: str = "runs/detector/hand_default.detector.safetensors"
    steps: int = 1500
    batch_size: int = 32
    lr: float = 1e-3
    sigma_cells: float = 1.0
    seed: int = 0
    threads: int = 0
    workers: int = 2


def _lowres_config(width: int = 160) -> Any:
    from v2v_ros.data.synthetic import SynthConfig  # noqa: PLC0415

    full = SynthConfig()
    f = width / full.width
    return SynthConfig(width=width, height=int(round(full.height * f)), fx=full.fx * f, fy=full.fy * f,
                       cx=(full.cx + 0.5) * f - 0.5, cy=(full.cy + 0.5) * f - 0.5, margin_px=1.0)


def _render(args: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    from v2v_ros.data.synthetic import render_frame  # noqa: PLC0415

    seed, i = args
    f = render_frame(seed, i, _lowres_config())
    return np.clip(np.rint(f.depth), 0, 65535).astype(np.uint16), f.joints.mean(axis=0).astype(np.float32)


def make_detector_data(path: str | Path, seed: int, n: int, workers: int = 2) -> Path:
    """Render ``n`` low-resolution synthetic scenes into one compressed .npz file."""
    cfg = _lowres_config()
    with mp.get_context("fork").Pool(max(1, workers)) as pool:
        res = pool.map(_render, [(seed, i) for i in range(n)], chunksize=64)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, depth=np.stack([r[0] for r in res]), center=np.stack([r[1] for r in res]),
                        intrinsics=np.array([cfg.fx, cfg.fy, cfg.cx, cfg.cy]), seed=seed)
    return path


def _load(path: str | Path) -> tuple[np.ndarray, np.ndarray, Intrinsics]:
    d = np.load(path)
    return d["depth"], d["center"], Intrinsics(*[float(x) for x in d["intrinsics"]])


def _targets(centers: np.ndarray, intr: Intrinsics, meta: DetectorMeta, shape: tuple[int, int], sigma: float,
             flip: np.ndarray) -> np.ndarray:
    """Normalised Gaussian target distributions over the (H/4, W/4) cells."""
    h, w = shape
    rows, cols = np.arange(h)[:, None], np.arange(w)[None, :]
    out = np.empty((len(centers), h, w), np.float32)
    for k, c in enumerate(centers):
        cc, rc = target_cell(c, intr, 1, meta)
        if flip[k]:
            cc = (w - 1) - cc
        g = np.exp(-((rows - rc) ** 2 + (cols - cc) ** 2) / (2 * sigma**2))
        out[k] = g / max(g.sum(), 1e-12)
    return out


def evaluate_detector(det: Detector, depth: np.ndarray, centers: np.ndarray, intr: Intrinsics) -> dict[str, float]:
    err = []
    for d, c in zip(depth, centers, strict=True):
        p = det(d.astype(np.float32), intr)
        err.append(np.inf if p is None else float(np.linalg.norm(p - c)))
    e = np.asarray(err)
    return {"frames": len(e), "median_error_mm": float(np.median(e)), "within_30mm": float((e < 30).mean()),
            "within_60mm": float((e < 60).mean())}


def train_detector(cfg: DetectorConfig) -> Path:
    from tqdm import tqdm  # noqa: PLC0415

    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    for path, seed, n in ((cfg.train_data, cfg.train_seed, cfg.train_frames), (cfg.val_data, cfg.val_seed, cfg.val_frames)):
        if not Path(path).exists():
            print(f"rendering {n} detector frames (seed {seed}) into {path}", flush=True)
            make_detector_data(path, seed, n, cfg.workers)
    depth, centers, intr = _load(cfg.train_data)
    meta = DetectorMeta(target_width=depth.shape[2])
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    net = DetectorNet()
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=cfg.steps)
    started = time.time()
    for _ in tqdm(range(cfg.steps), desc="detector", mininterval=5.0):
        idx = rng.integers(0, len(depth), cfg.batch_size)
        flip = rng.random(cfg.batch_size) < 0.5
        x = np.stack([detector_input(depth[i].astype(np.float32), meta, 1) for i in idx])
        x[flip] = x[flip][..., ::-1]
        net.train()
        logits = net(torch.from_numpy(np.ascontiguousarray(x)))[:, 0]
        tgt = torch.from_numpy(_targets(centers[idx], intr, meta, tuple(logits.shape[1:]), cfg.sigma_cells, flip))
        loss = -(tgt.flatten(1) * torch.log_softmax(logits.flatten(1), dim=1)).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    det = Detector(net, meta)
    vd, vc, vi = _load(cfg.val_data)
    metrics = evaluate_detector(det, vd, vc, vi)
    print(json.dumps(metrics), flush=True)
    meta.provenance = {"config": asdict(cfg), "val": metrics, "seconds": round(time.time() - started, 1)}
    return det.save(cfg.out)
