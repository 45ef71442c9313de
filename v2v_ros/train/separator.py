"""Training the two-hand separator (v2v_ros.core.separator) on synthetic two-hand scenes.

The separator is asked about the cubes the estimator re-poses without the other hand: cubes
centred on a hand's estimated joint mean with another hand nearby, with both hands' estimated
poses. Its data are crops of two-hand frames (``v2v_ros.data.synthetic.multi``: apart,
touching, one in front of the other) at each hand's true centre plus a few centimetres of
jitter, with both hands' true poses made as wrong as estimated ones are (:func:`estimated`),
labelled with the renderer's own
segmentation (:func:`v2v_ros.data.synthetic.multi.hand_pixels`: the pixels where each hand,
forearm included, is the surface the camera sees). A pixel is *this hand* where the hand at
the crop's centre is seen, *another hand* where another hand is seen or one pixel next to it
(the sensor's flying pixels at its outline belong to neither surface and are removed with it),
and *rest* elsewhere. The validation split (another seed) reports how much of the other hand
the predicted mask removes and how much of this hand it takes with it.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from v2v_ros.core.separator import (
    INPUT_CHANNELS,
    NUM_CLASSES,
    OTHER_HAND,
    REST,
    THIS_HAND,
    Separator,
    SeparatorMeta,
    SeparatorNet,
    crop_labels,
    separator_inputs,
)
from v2v_ros.train.config import YamlConfig

IGNORE = -100  # label of crop pixels without a depth reading (nothing to remove there)


@dataclass
class SeparatorConfig(YamlConfig):
    train_data: str = "data/separator_train.npz"  # rendered here when missing
    val_data: str = "data/separator_val.npz"
    train_frames: int = 6000  # two-hand frames (v2v synth --hands 2 --full-frame, default scene)
    val_frames: int = 400
    train_seed: int = 29
    val_seed: int = 31
    crops_per_hand: int = 2  # jittered crops per hand at least min_visible seen
    min_visible: float = 0.3
    jitter_mm: float = 15.0  # std of the crop centre's offset from the true hand centre (per axis)
    # The drawn poses' errors (estimated): each pose moves as a whole by this much (std per axis, mm) and
    # each joint by pose_joint_mm more; one pose in wrong_share has both times wrong_factor.
    pose_offset_mm: float = 6.0
    pose_joint_mm: float = 6.0
    wrong_share: float = 0.3
    wrong_factor: float = 2.5
    # A pose model whose own poses are drawn instead for first_pose_share of the hands: each hand posed from
    # a cube at its jittered true centre on the frame as it is, the other hand in the cube (the first poses
    # the estimator separates touching hands with, often one pose between the two). "" = noisy true poses only.
    first_pose_model: str = ""
    first_pose_share: float = 0.5
    cube_size: float = 250.0
    input_size: int = 80
    crop_scale: float = 1.5
    other_weight: float = 2.0  # loss weight of "another hand" pixels (the class whose misses cost most)
    steps: int = 3000
    batch_size: int = 32
    lr: float = 2e-3
    seed: int = 0
    threads: int = 0
    workers: int = 2
    out: str = "runs/separator/hand_default.separator.safetensors"


def _meta(cfg: SeparatorConfig) -> SeparatorMeta:
    return SeparatorMeta(cube_size=cfg.cube_size, input_size=cfg.input_size, crop_scale=cfg.crop_scale)


def frame_labels(shown: list[np.ndarray], k: int, depth: np.ndarray) -> np.ndarray:
    """(H, W) int8 classes of a frame's pixels for a crop centred on hand ``k`` (see the module doc)."""
    from scipy.ndimage import binary_dilation  # noqa: PLC0415

    labels = np.full(depth.shape, REST, np.int8)
    for j, m in enumerate(shown):
        if j != k:
            labels[binary_dilation(m)] = OTHER_HAND
    labels[shown[k]] = THIS_HAND
    labels[depth <= 0] = IGNORE
    return labels


def estimated(joints: np.ndarray, rng: np.random.Generator, cfg: SeparatorConfig) -> np.ndarray:
    """A true pose with an estimated pose's kind of error: a shift of the whole hand plus each joint's own.

    Why: at run time the separator sees the poses the estimator has (a tracker's prediction, a
    first pose from a cube with both hands in it): 7-15 mm off on average for touching hands,
    sometimes much more. Trained on true poses it would trust them too much.
    """
    f = cfg.wrong_factor if rng.random() < cfg.wrong_share else 1.0
    return (joints + rng.normal(0.0, f * cfg.pose_offset_mm, 3)
            + rng.normal(0.0, f * cfg.pose_joint_mm, joints.shape)).astype(np.float64)


_STATE: dict[str, Any] = {}


def _init_worker(first_pose_model: str) -> None:
    torch.set_num_threads(1)
    _STATE.clear()
    if first_pose_model:
        from v2v_ros.core.estimator import PoseEstimator  # noqa: PLC0415

        _STATE["pose"] = PoseEstimator.load(first_pose_model, device="cpu", precision="fp32", presence=False,
                                            separator=False)


def first_poses(depth: np.ndarray, intr: Any, centres: list[np.ndarray]) -> list[np.ndarray] | None:
    """The worker's pose model's poses from cubes at ``centres`` on ``depth`` (one batch), or None without a
    model or when a cube gave no pose (too few points in it)."""
    est = _STATE.get("pose")
    if est is None:
        return None
    results = est.estimate_many(depth, intr, centres)
    if not all(r.valid for r in results):
        return None
    return [np.asarray(r.joints, np.float64) for r in results]


def _crops(job: tuple[Any, ...]) -> dict[str, np.ndarray]:
    from v2v_ros.data.synthetic import SynthConfig  # noqa: PLC0415
    from v2v_ros.data.synthetic.multi import HandsSpec, hand_pixels, render_multi_frame  # noqa: PLC0415
    from v2v_ros.evaluate.multi import frame_targets_of  # noqa: PLC0415
    from v2v_ros.evaluate.runner import frame_image  # noqa: PLC0415

    seed, index, meta, cfg = job
    scene, spec = SynthConfig(), HandsSpec(2, 2)
    frame = render_multi_frame(seed, index, scene, spec)
    depth = frame_image(frame)
    gt, visible, _, _ = frame_targets_of(frame)
    shown = hand_pixels(seed, index, scene, spec)
    rng = np.random.default_rng([seed, index, 7])
    first = first_poses(depth, frame.intrinsics, [np.nanmean(g, axis=0) + rng.normal(0.0, cfg.jitter_mm, 3)
                                                  for g in gt])
    xs, ys = [], []
    for k in range(len(gt)):
        if visible[k] < cfg.min_visible:
            continue
        labels = frame_labels(shown, k, depth)
        for _ in range(cfg.crops_per_hand):
            c = np.nanmean(gt[k], axis=0) + rng.normal(0.0, cfg.jitter_mm, 3)
            if first is not None and rng.random() < cfg.first_pose_share:
                poses = first
            else:
                poses = [estimated(g, rng, cfg) for g in gt]
            others = [poses[j] for j in range(len(gt)) if j != k]
            x = separator_inputs(depth, frame.intrinsics, c, poses[k], others, meta)
            xs.append(np.round(x * 127).astype(np.int8))
            ys.append(crop_labels(labels, frame.intrinsics, c, meta).astype(np.int8))
    n = meta.input_size
    return {"x": np.stack(xs) if xs else np.zeros((0, INPUT_CHANNELS, n, n), np.int8),
            "y": np.stack(ys) if ys else np.zeros((0, n, n), np.int8)}


def make_separator_data(path: str | Path, cfg: SeparatorConfig, seed: int, n: int) -> Path:
    """Render ``n`` two-hand frames of dataset ``seed`` into crops and labels (``path``, .npz)."""
    meta = _meta(cfg)
    jobs = [(seed, i, meta, cfg) for i in range(n)]
    with mp.get_context("spawn").Pool(max(1, cfg.workers), initializer=_init_worker,
                                      initargs=(cfg.first_pose_model,)) as pool:
        parts = pool.map(_crops, jobs, chunksize=16)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, x=np.concatenate([p["x"] for p in parts]), y=np.concatenate([p["y"] for p in parts]))
    return path


def _augment(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The same one of the 8 flips/quarter turns for a crop, its drawn poses and its labels (hands at any
    roll, either side)."""
    ox, oy = np.empty_like(x), np.empty_like(y)
    for i, k in enumerate(rng.integers(0, 8, len(x))):
        a, b = np.rot90(x[i], int(k) % 4, axes=(1, 2)), np.rot90(y[i], int(k) % 4)
        ox[i], oy[i] = (a[:, :, ::-1], b[:, ::-1]) if k >= 4 else (a, b)
    return ox, oy


def predict(net: torch.nn.Module, x: np.ndarray, batch: int = 128) -> np.ndarray:
    """(N, S, S) classes of int8-stored crops."""
    net.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(x), batch):
            xb = torch.from_numpy(x[i: i + batch].astype(np.float32) / 127.0)
            out.append(net(xb).argmax(1).to(torch.int8).numpy())
    return np.concatenate(out) if out else np.zeros((0, *x.shape[1:]), np.int8)


def separation_scores(pred: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """What the predicted "another hand" mask does on labelled crops (pixels with a reading).

    ``other_removed``: share of the other hands' pixels it removes; ``this_removed``: share of
    the centred hand's pixels it takes with them; ``rest_removed``: share of the rest;
    ``pixel_accuracy``: all three classes.
    """
    valid = y != IGNORE
    removed = pred == OTHER_HAND

    def share(cls: int) -> float:
        m = valid & (y == cls)
        return float(removed[m].mean()) if m.any() else float("nan")

    return {"other_removed": share(OTHER_HAND), "this_removed": share(THIS_HAND), "rest_removed": share(REST),
            "pixel_accuracy": float((pred[valid] == y[valid]).mean()) if valid.any() else float("nan"),
            "crops": int(len(y))}


def train_separator(cfg: SeparatorConfig) -> Path:
    from tqdm import tqdm  # noqa: PLC0415

    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    for path, seed, n in ((cfg.train_data, cfg.train_seed, cfg.train_frames),
                          (cfg.val_data, cfg.val_seed, cfg.val_frames)):
        if not Path(path).exists():
            print(f"rendering {n} two-hand frames (seed {seed}) into {path}", flush=True)
            make_separator_data(path, cfg, seed, n)
    train, val = dict(np.load(cfg.train_data)), dict(np.load(cfg.val_data))
    print(f"train crops: {len(train['x'])}, validation crops: {len(val['x'])}", flush=True)
    started = time.time()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    net = SeparatorNet()
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=cfg.steps)
    weight = torch.ones(NUM_CLASSES)
    weight[OTHER_HAND] = cfg.other_weight
    for _ in tqdm(range(cfg.steps), desc="separator", mininterval=10.0):
        idx = rng.integers(0, len(train["x"]), cfg.batch_size)
        x, y = _augment(train["x"][idx], train["y"][idx], rng)
        net.train()
        logits = net(torch.from_numpy(x.astype(np.float32) / 127.0))
        loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(y.astype(np.int64)), weight=weight,
                                                 ignore_index=IGNORE)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    scores = separation_scores(predict(net, val["x"]), val["y"])
    print("validation: " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                     for k, v in scores.items()), flush=True)
    meta = _meta(cfg)
    meta.provenance = {"config": asdict(cfg), "val": scores, "seconds": round(time.time() - started, 1)}
    return Separator(net, meta).save(cfg.out)
