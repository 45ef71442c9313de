"""`v2v bench`: where the time goes, compared with the arithmetic floor of the forward.

A benchmark, not a test: numbers depend on the machine and its load. It reports
voxelisation of a 640×480 frame, the forward at the model's grid and at the
paper's 88³ (fp32), decoding, the whole ``PoseEstimator.estimate`` call, the
forward's FLOPs and this machine's measured fp32 matrix-multiply rate, so that
``forward_ms / floor_ms`` says how close the forward runs to the hardware limit.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "models" / "hand_default.safetensors"


def _time(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``fn`` in ms (medians resist the noise of shared machines)."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1e3)
    return statistics.median(samples)


def matmul_gflops(device: torch.device, n: int = 2048, repeats: int = 5) -> float:
    """Measured fp32 matrix-multiply rate in GFLOP/s (the 'peak' the floor is computed from)."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)

    def mm() -> None:
        torch.mm(a, b)
        if device.type == "cuda":
            torch.cuda.synchronize()

    ms = _time(mm, repeats, warmup=2)
    return 2.0 * n**3 / (ms * 1e-3) / 1e9


def run_bench(model_path: str | None, device: str, repeats: int, precision: str | None = None) -> dict[str, Any]:
    from v2v_ros.core.camera import cube_footprint  # noqa: PLC0415
    from v2v_ros.core.checkpoint import ModelMeta  # noqa: PLC0415
    from v2v_ros.core.estimator import PoseEstimator, resolve_device  # noqa: PLC0415
    from v2v_ros.core.model import V2VPoseNet, count_macs  # noqa: PLC0415
    from v2v_ros.core.skeletons import HAND_MSRA21  # noqa: PLC0415
    from v2v_ros.data.synthetic import render_frame  # noqa: PLC0415

    dev = resolve_device(device)
    notes = []
    if model_path and Path(model_path).with_suffix(".safetensors").exists():
        est = PoseEstimator.load(model_path, device=str(dev))
        model_name = str(model_path)
    else:
        notes.append(f"model {model_path} not found: random weights at grid 32")
        meta = ModelMeta(HAND_MSRA21.name, list(HAND_MSRA21.joint_names), 32, 200.0)
        est = PoseEstimator(V2VPoseNet(21), meta, device=dev)
        model_name = "random-32"
    if precision:
        est.precision = precision
    frame = render_frame(0, 0)  # 640×480, hand + clutter
    depth, intr = frame.full_depth(), frame.intrinsics
    center = frame.joints.mean(axis=0).astype(np.float64)
    grid = est.grid
    n = grid.size

    def voxelize() -> None:
        u0, v0, u1, v1 = cube_footprint(intr, center, grid.cube_size, depth.shape[1], depth.shape[0])
        grid.voxelize(intr.backproject(depth[v0:v1, u0:u1], offset=(u0, v0)), center)

    vox = np.zeros((1, 1, n, n, n), np.float32)
    grid.voxelize(intr.backproject(depth), center, out=vox[0, 0])
    heat = est.forward(vox)
    out: dict[str, Any] = {
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu",
        "torch_threads": torch.get_num_threads(),
        "model": model_name,
        "precision": est.precision,
        "grid": n,
        "voxelize_ms": _time(voxelize, repeats * 4),
        "voxelize_full_frame_ms": _time(lambda: grid.voxelize(intr.backproject(depth), center), repeats),
        "forward_ms": _time(lambda: est.forward(vox), repeats),
        "decode_ms": _time(lambda: grid.decode(heat, center[None]), repeats * 4),
        "end_to_end_ms": _time(lambda: est.estimate(depth, intr), repeats),
    }
    gflops = matmul_gflops(dev)
    macs = count_macs(est.model if isinstance(est.model, V2VPoseNet) else V2VPoseNet(21).to(dev), n)
    out["forward_gflop"] = 2 * macs / 1e9
    out["matmul_gflops"] = gflops
    out["floor_ms"] = 2 * macs / (gflops * 1e9) * 1e3
    # The paper's network at 88³, fp32, same machine and run.
    m88 = V2VPoseNet(21).to(dev).eval()
    x88 = torch.zeros(1, 1, 88, 88, 88, device=dev)

    def fwd88() -> None:
        with torch.inference_mode():
            m88(x88)
        if dev.type == "cuda":
            torch.cuda.synchronize()

    macs88 = count_macs(m88, 88)
    out["forward_ms_88"] = _time(fwd88, max(2, repeats // 2))
    out["forward_gflop_88"] = 2 * macs88 / 1e9
    out["floor_ms_88"] = 2 * macs88 / (gflops * 1e9) * 1e3
    out["forward_over_floor_88"] = out["forward_ms_88"] / out["floor_ms_88"]
    out["fps_end_to_end"] = 1e3 / out["end_to_end_ms"]
    if notes:
        out["notes"] = notes
    return out


def format_table(r: dict[str, Any]) -> str:
    rows = [
        ("device", f"{r['device']} ({r['device_name']}, {r['torch_threads']} threads)"),
        ("model / precision / grid", f"{r['model']} / {r['precision']} / {r['grid']}³"),
        ("voxelize 640×480 (cube crop)", f"{r['voxelize_ms']:.2f} ms"),
        ("voxelize 640×480 (all points)", f"{r['voxelize_full_frame_ms']:.2f} ms"),
        ("forward", f"{r['forward_ms']:.1f} ms  (floor {r['floor_ms']:.1f} ms, {r['forward_gflop']:.1f} GFLOP)"),
        ("decode", f"{r['decode_ms']:.2f} ms"),
        ("end to end (estimate)", f"{r['end_to_end_ms']:.1f} ms  = {r['fps_end_to_end']:.1f} fps"),
        ("matmul rate fp32", f"{r['matmul_gflops']:.0f} GFLOP/s"),
        ("forward 88³ fp32 (paper)", f"{r['forward_ms_88']:.0f} ms  (floor {r['floor_ms_88']:.0f} ms, "
                                     f"ratio {r['forward_over_floor_88']:.2f})"),
    ]
    w = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{w}}  {v}" for k, v in rows) + "".join(f"\nnote: {n}" for n in r.get("notes", []))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmark voxelisation, forward (vs. arithmetic floor), decoding, end to end")
    p.add_argument("--model", default=str(DEFAULT_MODEL), help="checkpoint (default: the shipped hand model)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default=None)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--markdown", type=Path, default=None, help="also append the table to this file")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    r = run_bench(args.model, args.device, args.repeats, args.precision)
    print(json.dumps(r) if args.json else format_table(r))
    if args.markdown:
        with args.markdown.open("a") as fh:
            fh.write(f"\n```\n# v2v bench ({time.strftime('%Y-%m-%d')})\n{format_table(r)}\n```\n")
    return 0
