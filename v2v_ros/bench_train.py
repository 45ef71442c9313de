"""``v2v bench --train``: training throughput of the project's CPU trainer against a plain fp32 loop.

Both loops train the same V2V-PoseNet with RMSProp on the same batches; the project's
loop is what ``v2v train`` runs on a CPU (``train.cpu_speed``: oneDNN 3-D convolutions in
channels-last layout under bf16 autocast where the CPU has AMX bf16 tiles); the plain
loop is what a PyTorch user writes first (``nn.Conv3d`` in fp32, contiguous tensors).

``--train-curve N`` also trains both loops for N steps on real shards from the same
initial weights and sample order, so the reduced-precision loss can be compared with the
fp32 one (the speed-up is worth nothing if the loss curve moves).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from v2v_ros.core.model import V2VPoseNet
from v2v_ros.train.cpu_speed import resolve_cpu_precision, use_onednn_training_convs

MODES = ("plain_fp32", "project")


def _make(mode: str, joints: int, seed: int) -> tuple[torch.nn.Module, torch.dtype | None]:
    torch.manual_seed(seed)
    model = V2VPoseNet(joints)
    if mode == "plain_fp32":
        return model, None
    if torch.backends.mkldnn.is_available():
        use_onednn_training_convs(model)
    return model, resolve_cpu_precision("auto")


def _step(model: torch.nn.Module, opt: torch.optim.Optimizer, amp: torch.dtype | None, vox: torch.Tensor,
          hm: torch.Tensor) -> float:
    with torch.autocast("cpu", dtype=amp or torch.bfloat16, enabled=amp is not None):
        out = model(vox)
    loss = torch.nn.functional.mse_loss(out.float(), hm)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return float(loss.detach())


def train_speed(grid: int, mode: str, batch: int = 8, steps: int = 4, warmup: int = 2, joints: int = 21
                ) -> dict[str, Any]:
    """Samples per second of ``mode`` at ``grid``³ (random volumes: the arithmetic is the same)."""
    model, amp = _make(mode, joints, 0)
    opt = torch.optim.RMSprop(model.parameters(), lr=2.5e-4)
    gen = torch.Generator().manual_seed(1)
    vox = (torch.rand(batch, 1, grid, grid, grid, generator=gen) > 0.9).float()
    hm = torch.rand(batch, joints, grid // 2, grid // 2, grid // 2, generator=gen) * 0.1
    for _ in range(warmup):
        _step(model, opt, amp, vox, hm)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        _step(model, opt, amp, vox, hm)
        times.append(time.perf_counter() - t0)
    med = float(np.median(times))
    return {"grid": grid, "mode": mode, "batch": batch, "autocast": str(amp) if amp else "none",
            "step_ms": med * 1e3, "samples_per_s": batch / med, "steps": steps}


def loss_curves(data: str, grid: int, cube: float, steps: int, batch: int = 8, seed: int = 0
                ) -> dict[str, list[float]]:
    """Per-step training loss of both loops over the same ``steps`` batches of ``data`` (shards)."""
    from v2v_ros.core.voxel import VoxelGrid  # noqa: PLC0415
    from v2v_ros.data.shards import ShardDataset  # noqa: PLC0415
    from v2v_ros.train.samples import Augmentation, make_sample  # noqa: PLC0415

    ds = ShardDataset(data)
    vgrid = VoxelGrid(cube, grid)
    rng = np.random.default_rng(seed)
    aug = Augmentation(40.0, (0.8, 1.2), 3.0)
    order = rng.permutation(len(ds))
    batches = []
    for s in range(steps):
        idx = [int(order[(s * batch + k) % len(ds)]) for k in range(batch)]
        pairs = [make_sample(f.depth, f.offset, f.intrinsics, f.joints, vgrid, rng, aug, 1.7)
                 for f in (ds[i] for i in idx)]
        batches.append((torch.from_numpy(np.stack([p[0] for p in pairs])),
                        torch.from_numpy(np.stack([p[1] for p in pairs]))))
    curves: dict[str, list[float]] = {}
    for mode in MODES:
        model, amp = _make(mode, len(ds.joint_names), seed)
        opt = torch.optim.RMSprop(model.parameters(), lr=2.5e-4, alpha=0.99, eps=1e-8)
        curves[mode] = [_step(model, opt, amp, v, h) for v, h in batches]
    return curves


def format_speed(rows: Sequence[dict[str, Any]]) -> str:
    lines = [f"{'grid':>5} {'plain fp32 samples/s':>21} {'project samples/s':>18} {'speed-up':>9}  (autocast)"]
    by = {(r["grid"], r["mode"]): r for r in rows}
    for g in sorted({r["grid"] for r in rows}):
        a, b = by[(g, "plain_fp32")], by[(g, "project")]
        lines.append(f"{g:>4}³ {a['samples_per_s']:>21.2f} {b['samples_per_s']:>18.2f} "
                     f"{b['samples_per_s'] / a['samples_per_s']:>8.2f}x  ({b['autocast']})")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Entry point of ``v2v bench --train``."""
    grids = [int(g) for g in args.train_grids.split(",") if g.strip()]
    if not grids or any(g <= 0 or g % 8 for g in grids):
        print(f"v2v bench: --train-grids must be positive multiples of 8, got {args.train_grids!r}", file=sys.stderr)
        return 2
    rows = []
    for g in grids:
        for mode in MODES:
            # one warm-up step at large grids: a plain fp32 step at 88³ takes minutes on 2 cores
            row = train_speed(g, mode, batch=args.train_batch, steps=args.train_steps, warmup=1 if g >= 64 else 2)
            rows.append(row)
            print(f"v2v bench --train: {g}³ {mode}: {row['step_ms']:.0f} ms/step, "
                  f"{row['samples_per_s']:.2f} samples/s", file=sys.stderr, flush=True)
    out: dict[str, Any] = {"train_speed": rows, "torch_threads": torch.get_num_threads()}
    text = format_speed(rows)
    if args.train_curve:
        if not args.eval_root:
            print("v2v bench: --train-curve needs --eval-root (a shard folder to train on)", file=sys.stderr)
            return 2
        curves = loss_curves(args.eval_root, args.train_curve_grid, args.train_curve_cube, args.train_curve)
        out["loss_curves"] = {"grid": args.train_curve_grid, "cube": args.train_curve_cube, "data": args.eval_root,
                              **curves}
        text += "\n\n" + format_curves(curves)
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            plot_curves(curves, args.out / "train_loss_curves.png", args.train_curve_grid)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "bench_train.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out) if args.json else text)
    return 0


def format_curves(curves: dict[str, list[float]], window: int = 50) -> str:
    """Mean loss of both loops over consecutive windows of steps, and their relative difference."""
    a, b = np.asarray(curves["plain_fp32"]), np.asarray(curves["project"])
    lines = [f"{'steps':>11} {'plain fp32 loss':>16} {'project loss':>13} {'diff':>7}"]
    for s in range(0, len(a), window):
        ma, mb = a[s:s + window].mean(), b[s:s + window].mean()
        lines.append(f"{s + 1:>5}-{min(s + window, len(a)):<5} {ma:>16.4e} {mb:>13.4e} {100 * (mb - ma) / ma:>6.1f}%")
    return "\n".join(lines)


def plot_curves(curves: dict[str, list[float]], path: Path, grid: int) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(7, 4))
    for mode, ys in curves.items():
        ys = np.asarray(ys)
        k = max(1, min(10, len(ys)))
        smooth = np.convolve(ys, np.ones(k) / k, mode="valid")
        ax.plot(np.arange(1, len(ys) + 1), ys, alpha=0.25)
        ax.plot(np.arange(k, len(ys) + 1), smooth, label=f"{mode} ({k}-step mean)")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("MSE loss")
    ax.set_title(f"Training loss, {grid}³, same batches and initial weights")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
