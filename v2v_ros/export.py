"""`v2v export --onnx OUT.onnx`: the network as ONNX, checked against PyTorch.

Users deploy with ONNX Runtime or TensorRT (``trtexec --onnx=OUT.onnx --fp16``);
the export is only useful if it computes the same heatmaps, so the command runs
the exported file in ONNX Runtime on synthetic hand volumes and compares with the
PyTorch forward, printing the largest absolute difference and failing (exit 1)
above the tolerance. BatchNorm is folded into the convolutions before export.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from v2v_ros.resources import shipped_model

# What exporting and checking needs: the `onnx` extra of the wheel (pip install "v2v_ros[onnx]").
ONNX_MODULES = ("onnx", "onnxruntime", "onnxscript")


def missing_onnx_modules() -> list[str]:
    """The modules of the ``onnx`` extra that are not installed (a plain ``pip install v2v_ros`` has none)."""
    return [m for m in ONNX_MODULES if importlib.util.find_spec(m) is None]


def export(checkpoint: str | Path, out: str | Path, grid: int | None = None, batch: int | None = 1,
           exporter: str = "dynamo", tolerance: float = 1e-4, check_frames: int = 2) -> dict[str, Any]:
    """Export ``checkpoint`` to ``out`` and verify it with ONNX Runtime.

    ``grid`` defaults to the checkpoint's grid (the network is fully convolutional,
    so another multiple of 8 exports too, for speed/accuracy experiments).
    ``batch=None`` gives a dynamic batch axis. Returns a report with
    ``max_abs_diff`` (heatmaps, ONNX Runtime vs PyTorch fp32) and ``ok``.
    """
    from v2v_ros.core.checkpoint import build_model, load_checkpoint  # noqa: PLC0415
    from v2v_ros.core.inference import export_onnx, ort_session  # noqa: PLC0415
    from v2v_ros.core.skeletons import is_body_skeleton  # noqa: PLC0415
    from v2v_ros.data.calibration import synthetic_calibration  # noqa: PLC0415

    state, meta = load_checkpoint(checkpoint)
    model = build_model(state, meta, str(checkpoint))
    n = meta.grid_size if grid is None else grid  # not `grid or ...`: --grid 0 must be refused, not replaced
    if n <= 0 or n % 8:
        raise ValueError(f"--grid must be a positive multiple of 8, got {n}")
    blob = export_onnx(model, n, batch, exporter=exporter)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(blob)
    b = batch or 2  # a dynamic axis is checked with batch 2
    volumes = synthetic_calibration(n, meta.cube_size, count=max(check_frames, b),
                                    body=is_body_skeleton(meta.skeleton), channels=meta.input_channels)
    session = ort_session(str(out), torch.device("cpu"))
    worst = 0.0
    peak = 0.0
    for i in range(0, len(volumes) - b + 1, b):
        x = volumes[i:i + b]
        with torch.inference_mode():
            ref = model(torch.from_numpy(x)).numpy()
        got = session.run(["heatmaps"], {"voxels": x})[0]
        if got.shape != ref.shape:  # broadcasting would compare something else
            raise RuntimeError(f"ONNX Runtime returned heatmaps of shape {got.shape}, PyTorch {ref.shape}")
        diff = float(np.abs(got - ref).max())
        # NaN/inf must fail the check: max(worst, nan) keeps `worst` and would report agreement.
        worst = max(worst, diff if np.isfinite(diff) else np.inf)
        peak = max(peak, float(np.abs(ref).max()))
    return {"onnx": str(out), "bytes": len(blob), "grid": n, "batch": batch or "dynamic", "exporter": exporter,
            "joints": meta.num_joints, "input_channels": meta.input_channels, "max_abs_diff": worst,
            "max_abs_heatmap": peak, "tolerance": tolerance,
            "ok": worst <= tolerance}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export the network to ONNX and verify it with ONNX Runtime",
                       description="Export a checkpoint to ONNX (BatchNorm folded) and check that ONNX Runtime "
                                   "reproduces the PyTorch heatmaps within --tolerance (exit 1 otherwise).")
    p.add_argument("--onnx", required=True, type=Path, metavar="OUT.onnx", help="output file")
    p.add_argument("--checkpoint", default=None, help="checkpoint (default: the shipped hand model)")
    p.add_argument("--grid", type=int, default=None, help="input grid N (default: the checkpoint's)")
    p.add_argument("--batch", default="1", help="fixed batch size, or 'dynamic'")
    p.add_argument("--exporter", choices=["dynamo", "legacy", "auto"], default="dynamo",
                   help="torch.export-based (default, maintained) or the TorchScript-based legacy exporter")
    p.add_argument("--tolerance", type=float, default=1e-4, help="largest accepted |ORT - PyTorch| (default 1e-4)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    try:
        batch = None if args.batch == "dynamic" else int(args.batch)
        if batch is not None and batch <= 0:
            raise ValueError
    except ValueError:
        print(f"v2v export: --batch must be a positive integer or 'dynamic', got {args.batch!r}", file=sys.stderr)
        return 2
    missing = missing_onnx_modules()
    if missing:  # a one-line hint instead of an ImportError from deep inside torch.onnx
        print(f"v2v export: needs the onnx extra (missing: {', '.join(missing)}): "
              f"pip install \"v2v_ros[onnx]\" (in a checkout: pip install -r requirements.txt)", file=sys.stderr)
        return 2
    try:
        checkpoint = args.checkpoint if args.checkpoint is not None else shipped_model("hand_default")
        r = export(checkpoint, args.onnx, args.grid, batch, args.exporter, args.tolerance)
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"v2v export: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(r))
    else:
        print(f"wrote {r['onnx']} ({r['bytes'] / 1e6:.1f} MB, grid {r['grid']}³, batch {r['batch']}, "
              f"{r['exporter']} exporter)")
        print(f"ONNX Runtime vs PyTorch: max abs diff {r['max_abs_diff']:.3g} (heatmap peak {r['max_abs_heatmap']:.3g},"
              f" tolerance {r['tolerance']:g}) -> {'OK' if r['ok'] else 'FAILED'}")
    return 0 if r["ok"] else 1
