"""The training loop: one process, or many through torchrun (DistributedDataParallel).

Resumable: ``last.pt`` (model, optimiser, epoch, step) is written every few
minutes and at each epoch's end, next to one standard checkpoint per epoch
(``epoch_XX.safetensors`` + ``.json``) for the epoch ensemble. A CSV log records
loss and validation error.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from v2v_ros.core.checkpoint import ModelMeta, load_checkpoint, save_checkpoint
from v2v_ros.core.estimator import resolve_device
from v2v_ros.core.model import V2VPoseNet, input_channels
from v2v_ros.core.skeletons import get_skeleton
from v2v_ros.core.voxel import VoxelGrid
from v2v_ros.train.config import TrainConfig
from v2v_ros.train.cpu_speed import cpu_precision_mode, resolve_cpu_precision, use_onednn_training_convs
from v2v_ros.train.samples import NO_AUGMENTATION, Augmentation, make_sample
from v2v_ros.train.stream import ShardStream, data_roots


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> DistInfo:
    """Join the torchrun process group when launched by torchrun (gloo on CPU, nccl on GPU)."""
    if "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) <= 1:
        return DistInfo()
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend)
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _git_dirty() -> bool | None:
    """Whether tracked files differ from the commit (None outside a git checkout)."""
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return bool(out.stdout.strip()) if out.returncode == 0 else None


def package_versions() -> dict[str, str]:
    """Versions of the packages that decide a run's numbers (data generation, training, evaluation)."""
    from importlib import metadata  # noqa: PLC0415

    out = {}
    for name in ("torch", "numpy", "scipy", "safetensors", "v2v_ros"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    import platform  # noqa: PLC0415

    out["python"] = platform.python_version()
    return out


def data_fingerprints(roots: str | list[str]) -> list[str]:
    """Content fingerprints of shard folders (what a checkpoint was trained or validated on)."""
    from v2v_ros.data.shards import ShardDataset  # noqa: PLC0415

    return [ShardDataset(r).fingerprint for r in data_roots(roots)]


def validation_error(model: torch.nn.Module, cfg: TrainConfig, grid: VoxelGrid, device: torch.device) -> float:
    """Mean 3D joint error (mm) on held-out frames, cube centred on the true joint mean."""
    if not cfg.val_data:
        return float("nan")
    from v2v_ros.data.shards import ShardDataset  # noqa: PLC0415

    ds = ShardDataset(cfg.val_data)
    n = min(len(ds), cfg.val_frames)
    return frames_error(model, (ds[i] for i in range(n)), grid, device)


def frames_error(model: torch.nn.Module, frames: Iterable[Any], grid: VoxelGrid, device: torch.device,
                 batch: int = 16) -> float:
    """Mean 3D joint error (mm) of ``model`` on ``frames`` with the cube on the true joint mean.

    The network alone, without localisation, in fp32: the number every checkpoint records
    (``val_mean_error_mm``), and the one ``test_reproduce`` recomputes from freshly rendered
    frames to prove that the shipped weights and the committed generator still agree.
    """
    rng = np.random.default_rng(0)
    errors = []
    was_training = model.training
    model.eval()
    it = iter(frames)
    with torch.inference_mode():
        while chunk := list(itertools.islice(it, batch)):
            vox = np.stack([make_sample(f.depth, f.offset, f.intrinsics, f.joints, grid, rng, NO_AUGMENTATION,
                                        channels=input_channels(model))[0] for f in chunk])
            heat = model(torch.from_numpy(vox).to(device)).float().cpu().numpy()
            centers = np.stack([f.joints.mean(axis=0) for f in chunk])
            pred, _ = grid.decode(heat, centers)
            errors.append(np.linalg.norm(pred - np.stack([f.joints for f in chunk]), axis=-1).mean(axis=1))
    model.train(was_training)
    return float(np.concatenate(errors).mean()) if errors else float("nan")


def _widened_input(model: torch.nn.Module, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``weights`` with the first convolution given zero weights for input channels it lacks.

    Why zeros: a one-channel network fine-tuned with a second input channel then starts as the
    very network it was (the new channel contributes nothing) and learns to use it from there.
    """
    expected = model.state_dict()
    out = dict(weights)
    for key, ref in expected.items():
        got = out.get(key)
        if got is None or got.ndim != 5 or ref.ndim != 5 or got.shape == ref.shape:
            continue
        if got.shape[0] == ref.shape[0] and got.shape[2:] == ref.shape[2:] and got.shape[1] < ref.shape[1]:
            wide = torch.zeros(ref.shape, dtype=got.dtype)
            wide[:, : got.shape[1]] = got
            out[key] = wide
    return out


def _initialise(model: torch.nn.Module, opt: torch.optim.Optimizer, source: str, num_joints: int,
                device: torch.device) -> None:
    """Load another run's weights (and optimiser state from a ``last.pt``) into a fresh run.

    Fails loudly when the source does not fit (another skeleton, another architecture):
    a silently half-loaded model would train from garbage.
    """
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"init_from: {path} does not exist")
    if path.suffix == ".pt":
        state = torch.load(path, map_location=device, weights_only=False)
        weights, optim = state["model"], state.get("optimizer")
    else:
        weights, meta = load_checkpoint(path)
        optim = None
        if len(meta.joint_names) != num_joints:
            raise ValueError(f"init_from: {path} has {len(meta.joint_names)} joints, this run {num_joints}")
    weights = {k: v.float() if v.is_floating_point() else v for k, v in weights.items()}
    wide = _widened_input(model, weights)
    if any(wide[k] is not weights[k] for k in weights):
        optim = None  # RMSProp's averages have the narrower shapes: the widened run starts its own
    weights = wide
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        raise ValueError(f"init_from: {path} does not fit this model: {exc}") from exc
    if optim is not None:
        opt.load_state_dict(optim)


def train(cfg: TrainConfig) -> tuple[Path, torch.nn.Module]:
    """Run (or resume) training; returns the checkpoint folder and this rank's model."""
    device = resolve_device(cfg.device)
    info = init_distributed(device)
    if device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    out = Path(cfg.out_dir)
    # Open every data folder now: a missing validation folder must not surface after an epoch of training.
    from v2v_ros.data.shards import ShardDataset  # noqa: PLC0415

    for root in [*data_roots(cfg.train_data), *([cfg.val_data] if cfg.val_data else [])]:
        ShardDataset(root)

    skeleton = get_skeleton(cfg.skeleton)
    grid = VoxelGrid(cfg.cube_size, cfg.grid_size)
    model = V2VPoseNet(skeleton.num_joints, cfg.input_channels).to(device)
    opt = torch.optim.RMSprop(model.parameters(), lr=cfg.lr, alpha=cfg.rmsprop_alpha, eps=cfg.rmsprop_eps)
    epoch, step = 0, 0
    last = out / "last.pt"
    if last.exists():
        state = torch.load(last, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        epoch, step = state["epoch"], state["step"]
        if info.is_main:
            print(f"resuming from {last}: epoch {epoch}, step {step}", flush=True)
    elif cfg.init_from:
        _initialise(model, opt, cfg.init_from, skeleton.num_joints, device)
        if info.is_main:
            print(f"initialised from {cfg.init_from}", flush=True)
    amp_cpu = resolve_cpu_precision(cfg.cpu_precision) if device.type == "cpu" else None
    if device.type == "cpu" and cfg.onednn and torch.backends.mkldnn.is_available():
        use_onednn_training_convs(model)
    net: torch.nn.Module = model
    if info.world_size > 1:
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    from v2v_ros.data.shards import ShardDataset  # noqa: PLC0415

    n_train = 0
    for root in data_roots(cfg.train_data):
        ds = ShardDataset(root)
        if ds.skeleton != cfg.skeleton:
            raise ValueError(f"train_data: {root} holds {ds.skeleton} frames, this run trains {cfg.skeleton}")
        n_train += len(ds)
    train_prints = data_fingerprints(cfg.train_data) if info.is_main else []
    # The run folder is made once the data and init_from are known to be usable: a wrong
    # path or skeleton leaves nothing behind.
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    steps_per_epoch = cfg.steps_per_epoch or max(1, n_train // (cfg.batch_size * info.world_size))
    aug = Augmentation(cfg.rotation_deg, tuple(cfg.scale_range), cfg.translation_voxels)
    use_amp = cfg.amp and device.type == "cuda"
    # bf16 on CPUs with AMX (train.cpu_speed.resolve_cpu_precision), fp16 with a grad scaler on CUDA
    autocast_dtype, autocast_on = (amp_cpu, True) if amp_cpu is not None else (torch.float16, use_amp)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    log_path = out / "log.csv"
    meta = ModelMeta(skeleton.name, list(skeleton.joint_names), cfg.grid_size, cfg.cube_size, sigma=cfg.sigma,
                     input_channels=cfg.input_channels)

    def save_resume(ep: int, st: int) -> None:
        tmp = last.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": ep, "step": st}, tmp)
        tmp.replace(last)

    started = time.time()
    while epoch < cfg.epochs:
        stream = ShardStream(cfg.train_data, grid, aug, cfg.sigma, cfg.seed, epoch, info.rank, info.world_size,
                             cfg.center_jitter_mm, start_step=step, mask_other_hands=cfg.mask_other_hands,
                             channels=cfg.input_channels)
        loader = DataLoader(stream, batch_size=cfg.batch_size, num_workers=cfg.workers,
                            pin_memory=device.type == "cuda", persistent_workers=False)
        for group in opt.param_groups:
            group["lr"] = cfg.lr_at(epoch)
        model.train()
        t_save = time.time()
        bar = None
        if info.is_main:
            from tqdm import tqdm  # noqa: PLC0415

            bar = tqdm(total=steps_per_epoch, initial=step, desc=f"epoch {epoch + 1}/{cfg.epochs}",
                       mininterval=5.0, dynamic_ncols=True)
        running = 0.0
        for vox, hm in loader:
            vox = vox.to(device, non_blocking=True)
            hm = hm.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_on):
                out_hm = net(vox)
            loss = torch.nn.functional.mse_loss(out_hm.float(), hm)  # eq. 2, averaged
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            step += 1
            lv = float(loss.detach())
            if not math.isfinite(lv):
                raise FloatingPointError(f"training loss became {lv} at epoch {epoch}, step {step}")
            running += lv
            if bar is not None:
                bar.update(1)
                if step % cfg.log_every == 0:
                    bar.set_postfix(loss=f"{running / cfg.log_every:.3e}")
                    _log(log_path, epoch + 1, step, running / cfg.log_every, float("nan"), time.time() - started)
                    running = 0.0
            if info.is_main and time.time() - t_save > cfg.save_every_minutes * 60:
                save_resume(epoch, step)
                t_save = time.time()
            if step >= steps_per_epoch:
                break
        if bar is not None:
            bar.close()
        epoch, step = epoch + 1, 0
        if info.world_size > 1:
            # Parameters are identical through DDP's all-reduce; BatchNorm running
            # statistics are per rank: take rank 0's so every rank holds the same model.
            for buf in model.buffers():
                dist.broadcast(buf, 0)
        if info.is_main:
            val = validation_error(model, cfg, grid, device)
            meta.provenance = {"epoch": epoch, "config": cfg.to_dict(), "git": _git_commit(),
                               "git_dirty": _git_dirty(), "val_mean_error_mm": val, "train_frames": n_train,
                               "train_data_fingerprints": train_prints,
                               "val_data_fingerprint": data_fingerprints(cfg.val_data)[0] if cfg.val_data else None,
                               "val_frames": cfg.val_frames, "packages": package_versions(),
                               "precision": {"device": device.type,
                                             "autocast": str(amp_cpu) if amp_cpu is not None else
                                             ("float16" if use_amp else "none"),
                                             "onednn_convs": bool(device.type == "cpu" and cfg.onednn),
                                             **cpu_precision_mode()}}
            save_checkpoint(out / f"epoch_{epoch:02d}.safetensors", model.state_dict(), meta)
            save_resume(epoch, 0)
            _log(log_path, epoch, steps_per_epoch, float("nan"), val, time.time() - started)
            print(f"epoch {epoch}: validation mean error {val:.2f} mm", flush=True)
        if info.world_size > 1:
            dist.barrier()
    if info.world_size > 1:
        dist.destroy_process_group()
    return out, model


def _log(path: Path, epoch: int, step: int, loss: float, val: float, seconds: float) -> None:
    new = not path.exists()
    with path.open("a", newline="") as fh:
        w = csv.writer(fh)
        if new:
            w.writerow(["epoch", "step", "loss", "val_mean_error_mm", "seconds"])
        w.writerow([epoch, step, f"{loss:.6e}", f"{val:.3f}", f"{seconds:.1f}"])


def run_info(out_dir: str | Path) -> dict[str, Any]:
    """Summary of a run folder (epochs done, last validation error) for CLIs and model cards."""
    out = Path(out_dir)
    rows = list(csv.DictReader((out / "log.csv").open())) if (out / "log.csv").exists() else []
    vals = [r for r in rows if r["val_mean_error_mm"] != "nan"]
    return {"epochs_done": len(sorted(out.glob("epoch_*.safetensors"))), "last_val": vals[-1] if vals else None}
