"""`v2v bench`: where the time goes, compared with the arithmetic floor of the forward.

A benchmark, not a test: numbers depend on the machine and its load. The base run
reports voxelisation of a 640×480 frame, the forward at the model's grid and at
the paper's 88³ (fp32, through the same inference engine), decoding, every other
stage of ``PoseEstimator.estimate`` (depth conversion, localisation, refinement,
message conversion), the forward's FLOPs and this machine's measured matrix-
multiply rate, so ``forward_ms / floor_ms`` says how close the forward runs to the
hardware limit. Options add:

* ``--grids 32,48,64,88 --precisions fp32,bf16,int8``: the accuracy/speed trade-off
  table (ms per frame and, with ``--eval-root``, mean error on synthetic shards
  through ``v2v eval``'s machinery, for grids that have a trained checkpoint);
* ``--scaling``: time vs hands per frame (one batched call vs k single calls),
  vs input resolution (640×480, 848×480, 1280×720) and vs grid size;
* ``--out DIR``: ``bench.json`` with every number plus PNG plots;
* ``--contended``: the forward idle and then while a busy process (started and stopped
  by the bench) holds one core, as drivers and planners do on a robot; with the default
  ``--threads 0`` this measures the adaptive thread policy (``core.threads``), with
  ``--threads N`` a fixed count.

Every timing is a median; ``*_cpu_ms`` are process CPU times, which stay meaningful
when other processes compete for the cores (wall time then includes waiting).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from v2v_ros.resources import shipped_model

RESOLUTIONS = ((640, 480), (848, 480), (1280, 720))
HANDS = (1, 2, 4, 8)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``fn`` in ms (medians resist the noise of shared machines)."""
    return _time2(fn, repeats, warmup)[0]


def _time2(fn: Callable[[], Any], repeats: int, warmup: int = 1, mins: dict[str, float] | None = None,
           key: str = "") -> tuple[float, float]:
    """(median wall ms, median process-CPU ms) of ``fn``; the minimum goes to ``mins[key]`` when given
    (on a loaded machine the minimum is the better estimate of the uncontended time)."""
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(max(1, repeats)):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - t) * 1e3)
        cpu.append((time.process_time() - c) * 1e3)
    if mins is not None:
        mins[key] = min(wall)
    return statistics.median(wall), statistics.median(cpu)


def matmul_gflops(device: torch.device, n: int = 2048, repeats: int = 5, dtype: torch.dtype = torch.float32) -> float:
    """Measured matrix-multiply rate in GFLOP/s (the 'peak' the floor is computed from).

    ``torch.int8`` times ``torch._int_mm`` (int8 x int8 -> int32, the VNNI / tensor-core
    path the quantised convolutions use), so an int8 forward is compared with int8 arithmetic.
    """
    if dtype == torch.int8:
        a = torch.randint(-128, 128, (n, n), dtype=torch.int8, device=device)
        b = torch.randint(-128, 128, (n, n), dtype=torch.int8, device=device)
        op = torch._int_mm
    else:
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        op = torch.mm

    def mm() -> None:
        op(a, b)
        _sync(device)

    ms = _time(mm, repeats, warmup=2)
    return 2.0 * n**3 / (ms * 1e-3) / 1e9


def default_precisions(dev: torch.device) -> list[str]:
    """The precisions a trade-off table compares by default: those this device runs (bf16 on a CPU only
    where oneDNN supports it; an AVX2-only CPU refuses bf16 by name when asked for it)."""
    from v2v_ros.core.inference import cpu_bf16_supported  # noqa: PLC0415

    if dev.type == "cuda":
        return ["fp32", "fp16", "bf16"]
    return ["fp32", "bf16", "int8"] if cpu_bf16_supported() else ["fp32", "int8"]


def floor_rate(out: dict[str, Any], dev: torch.device, precision: str, notes: list[str]) -> float | None:
    """GFLOP/s of matrix multiplies in ``precision`` on ``dev``: the peak a forward in that precision
    is held against. Measures (and records in ``out``) the rates not measured yet; None where this
    device has no fast path to measure (fp16 on a CPU: emulated, ~1000x slower)."""
    if precision == "fp32":
        return out["matmul_gflops"]
    if precision == "bf16":
        return out["matmul_gflops_bf16"]
    if precision == "fp16" and dev.type != "cuda":
        notes.append("fp16 on a CPU has no native matrix multiply here: no floor for the forward")
        return None
    dtype = torch.float16 if precision == "fp16" else torch.int8
    try:
        rate = matmul_gflops(dev, dtype=dtype)
    except (RuntimeError, NotImplementedError) as exc:  # e.g. no int8 matmul kernel on this device
        notes.append(f"no {precision} matrix-multiply rate on {dev.type} ({exc}): no floor for the forward")
        return None
    out[f"matmul_gflops_{precision}"] = rate
    return rate


def _device_name(dev: torch.device) -> str:
    return torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu"


def _meta(grid: int, cube: float = 200.0) -> Any:
    from v2v_ros.core.checkpoint import ModelMeta  # noqa: PLC0415
    from v2v_ros.core.skeletons import HAND_MSRA21  # noqa: PLC0415

    return ModelMeta(HAND_MSRA21.name, list(HAND_MSRA21.joint_names), grid, cube)


def _frame(width: int = 640, height: int = 480, seed: int = 0, index: int = 0) -> Any:
    """A synthetic frame (hand + clutter) at ``width``×``height`` (principal point centred, same focal)."""
    from v2v_ros.data.synthetic import SynthConfig, render_frame  # noqa: PLC0415

    cfg = SynthConfig(width=width, height=height, cx=(width - 1) / 2.0, cy=(height - 1) / 2.0)
    return render_frame(seed, index, cfg)


def _check_model(args: argparse.Namespace) -> str | None:
    """Resolve ``--model`` (default: the shipped hand model) in place; the problem when it is missing
    and ``--random-weights`` was not given. Timing an untrained network by accident would publish
    numbers for a model nobody runs, so a missing checkpoint needs the explicit flag."""
    if args.model is None:
        try:
            args.model = str(shipped_model("hand_default"))
        except FileNotFoundError as exc:
            args.model = ""
            missing = str(exc)
    else:
        missing = f"--model {args.model}: no checkpoint ({Path(args.model).with_suffix('.safetensors')} is missing)"
    if args.random_weights or (args.model and Path(args.model).with_suffix(".safetensors").exists()):
        return None
    return f"{missing}; pass --random-weights to time an untrained 32³ network instead"


def _load(model_path: str | None, dev: torch.device, precision: str, backend: str,
          notes: list[str]) -> tuple[Any, str, bool]:
    """(estimator, model name, trained?) for the checkpoint, or random weights at 32³ when it is missing."""
    from v2v_ros.core.estimator import PoseEstimator  # noqa: PLC0415
    from v2v_ros.core.model import V2VPoseNet  # noqa: PLC0415
    from v2v_ros.data.calibration import synthetic_calibration_source as calib  # noqa: PLC0415

    if model_path and Path(model_path).with_suffix(".safetensors").exists():
        return PoseEstimator.load(model_path, device=str(dev), precision=precision, backend=backend,
                                  calibration=calib), str(model_path), True
    notes.append(f"model {model_path} not found: random weights at grid 32")
    return PoseEstimator(V2VPoseNet(21), _meta(32), device=dev, precision=precision, backend=backend,
                         calibration=calib), "random-32", False


# ---------------------------------------------------------------------------------------
# Base run (keys relied on by test_bench: keep them)
# ---------------------------------------------------------------------------------------
def run_bench(model_path: str | None, device: str, repeats: int, precision: str | None = None,
              backend: str = "torch") -> dict[str, Any]:
    from v2v_ros.core.camera import cube_footprint  # noqa: PLC0415
    from v2v_ros.core.depth_decode import decode_depth, encode_depth  # noqa: PLC0415
    from v2v_ros.core.estimator import resolve_device  # noqa: PLC0415
    from v2v_ros.core.inference import TorchEngine  # noqa: PLC0415
    from v2v_ros.core.model import V2VPoseNet, count_macs  # noqa: PLC0415

    dev = resolve_device(device)
    notes: list[str] = []
    est, model_name, _ = _load(model_path, dev, precision or "fp32", backend, notes)
    frame = _frame()
    depth, intr = frame.full_depth(), frame.intrinsics
    center = frame.joints.mean(axis=0).astype(np.float64)
    grid = est.grid
    n = grid.size

    def voxelize() -> None:
        u0, v0, u1, v1 = cube_footprint(intr, center, grid.cube_size, depth.shape[1], depth.shape[0])
        grid.voxelize_depth(depth[v0:v1, u0:u1], intr, center, offset=(u0, v0))  # as PoseEstimator does

    vox = np.zeros((1, est.meta.input_channels, n, n, n), np.float32)
    grid.voxelize(intr.backproject(depth), center, out=vox[0, 0])
    heat = est.forward(vox)
    mins: dict[str, float] = {}
    fwd_ms, fwd_cpu = _time2(lambda: est.forward(vox), repeats, mins=mins, key="forward_min_ms")
    out: dict[str, Any] = {
        "device": str(dev),
        "device_name": _device_name(dev),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "model": model_name,
        "precision": est.precision,
        "backend": est.backend,
        "grid": n,
        "voxelize_ms": _time(voxelize, repeats * 4),
        "voxelize_full_frame_ms": _time(lambda: grid.voxelize(intr.backproject(depth), center), repeats),
        "forward_ms": fwd_ms,
        "forward_cpu_ms": fwd_cpu,
        "decode_ms": _time(lambda: grid.decode(heat, center[None]), repeats * 4),
    }
    # Independent frames: 20 different scenes, each estimated once after a warm-up, so the
    # figures include how often the first candidate is doubted and verified (one fixed
    # frame would be either never or always verified).
    scenes = [_frame(index=i) for i in range(20)]
    est.estimate(scenes[0].full_depth(), scenes[0].intrinsics)
    stages: dict[str, list[float]] = {}
    walls: list[float] = []
    cpu0 = time.process_time()
    verified = 0
    result = None
    for sc in scenes:
        d, it = sc.full_depth(), sc.intrinsics
        t0 = time.perf_counter()
        result = est.estimate(d, it)
        _sync(dev)
        walls.append((time.perf_counter() - t0) * 1e3)
        verified += int(result.candidates > 1)
        for k, v in result.timings.items():
            stages.setdefault(k, []).append(v)
    out["end_to_end_ms"] = statistics.mean(walls)
    out["end_to_end_cpu_ms"] = (time.process_time() - cpu0) * 1e3 / len(scenes)
    out["end_to_end_median_ms"] = statistics.median(walls)
    out["end_to_end_max_ms"] = max(walls)
    out["independent_frames"] = {"frames": len(scenes), "verified": verified}
    # Stage breakdown of estimate() (mean per stage over the scenes) plus what the node adds around it.
    out["stages_ms"] = {k: sum(v) / len(scenes) for k, v in stages.items()}
    raw, step = encode_depth(np.round(depth).astype(np.uint16), "16UC1")
    h, w = depth.shape
    out["depth_decode_ms"] = _time(lambda: decode_depth(raw, "16UC1", h, w, step), repeats * 4)
    out["message_ms"] = _message_ms(result, repeats, notes)
    around = sum(v for k, v in out["stages_ms"].items() if k not in ("forward", "total"))
    around += out["depth_decode_ms"] + (out["message_ms"] or 0.0)
    out["around_network_ms"] = around
    out["around_over_forward"] = around / out["stages_ms"].get("forward", fwd_ms)
    out["tracking"] = _tracking_stream(est, out["depth_decode_ms"] + (out["message_ms"] or 0.0))

    gflops = matmul_gflops(dev)
    out["matmul_gflops"] = gflops
    out["matmul_gflops_bf16"] = matmul_gflops(dev, dtype=torch.bfloat16)
    macs = count_macs(est.model if isinstance(est.model, V2VPoseNet) else V2VPoseNet(21).to(dev), n)
    out["forward_gflop"] = 2 * macs / 1e9
    # The floor of this run's forward uses the matmul rate of its own arithmetic: a bf16 forward
    # measured against the fp32 rate would read as "faster than the hardware" (ratio < 1).
    rate = floor_rate(out, dev, est.precision, notes)
    out["floor_precision"] = est.precision if rate is not None else None
    out["floor_ms"] = 2 * macs / (rate * 1e9) * 1e3 if rate else None
    out["forward_over_floor"] = fwd_ms / out["floor_ms"] if out["floor_ms"] else None
    # The paper's network at 88³, fp32, same machine and run: our engine, and plain eager PyTorch.
    m88 = V2VPoseNet(21).eval()
    eng88 = TorchEngine(m88, dev, "fp32")
    x88 = torch.zeros(1, 1, 88, 88, 88)
    x88[0, 0, 30:60, 30:60, 40:45] = 1.0
    macs88 = count_macs(m88, 88)
    r88 = max(2, repeats // 2)
    out["forward_ms_88"], out["forward_cpu_ms_88"] = _time2(lambda: eng88.run_numpy(x88), r88, mins=mins,
                                                            key="forward_min_ms_88")
    m88d, x88d = m88.to(dev), x88.to(dev)

    def eager88() -> None:
        with torch.inference_mode():
            m88d(x88d)
        _sync(dev)

    out["forward_ms_88_eager"] = _time(eager88, r88)
    out["forward_gflop_88"] = 2 * macs88 / 1e9
    out["floor_ms_88"] = 2 * macs88 / (gflops * 1e9) * 1e3
    out["forward_over_floor_88"] = out["forward_ms_88"] / out["floor_ms_88"]
    out["fps_end_to_end"] = 1e3 / out["end_to_end_ms"]
    out.update(mins)
    out["load_average"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    if notes:
        out["notes"] = notes
    return out


def _tracking_stream(est: Any, per_frame_extra_ms: float, frames: int = 61, redetect_every: int = 30
                     ) -> dict[str, Any]:
    """The node's per-frame cost with ``tracking.enabled`` on a 30 Hz stream of one moving hand.

    Detection and refinement run on the first frame and every ``redetect_every``
    frames; the others reuse the previous estimate as their cube centre. Stage times
    are averaged over all frames (so the detections are amortised as they are live);
    ``per_frame_extra_ms`` is what the node adds per frame (depth decode, message).
    """
    from v2v_ros.core.tracking import TrackingConfig, TrackingEstimator  # noqa: PLC0415
    from v2v_ros.data.synthetic import SynthConfig, render_frame  # noqa: PLC0415

    cfg = SynthConfig(sequence_length=frames)
    stream = [render_frame(1, i, cfg) for i in range(frames)]
    tracker = TrackingEstimator(est, TrackingConfig(enabled=True, redetect_every=redetect_every))
    for f in stream[:2]:  # warm-up: engines, caches
        tracker.estimate(f.full_depth(), f.intrinsics)
    tracker.reset()
    tracker.stats = dict.fromkeys(tracker.stats, 0)
    sums: dict[str, float] = {}
    wall = 0.0
    for i, f in enumerate(stream):
        depth = f.full_depth()
        t0 = time.perf_counter()
        res = tracker.estimate(depth, f.intrinsics, stamp_ns=i * 33_333_333)
        wall += time.perf_counter() - t0
        for k, v in res.timings.items():
            sums[k] = sums.get(k, 0.0) + v
    stages = {k: v / frames for k, v in sums.items()}
    around = sum(v for k, v in stages.items() if k not in ("forward", "total")) + per_frame_extra_ms
    return {"frames": frames, "redetect_every": redetect_every, "reference": dict(tracker.stats),
            "stages_ms": stages, "around_network_ms": around,
            "around_over_forward": around / max(stages.get("forward", 0.0), 1e-9),
            "end_to_end_ms": 1e3 * wall / frames}


def _message_ms(result: Any, repeats: int, notes: list[str]) -> float | None:
    """PoseResult -> Skeleton3DArray conversion (the node's output message), when ROS messages import."""
    try:
        from v2v_ros.ros.convert import make_header, result_to_skeleton, skeleton_array  # noqa: PLC0415
    except Exception as exc:  # no ROS / messages not built: say so rather than fail the benchmark
        notes.append(f"message conversion not measured ({type(exc).__name__}: {exc})")
        return None
    header = make_header(0, "camera")
    return _time(lambda: skeleton_array(header, [result_to_skeleton(result)]), repeats * 4)


# ---------------------------------------------------------------------------------------
# A shared CPU: the forward with a competing busy process on one core
# ---------------------------------------------------------------------------------------
BUSY_LOOP = "import os, sys\nos.sched_setaffinity(0, {int(sys.argv[1])})\nwhile True:\n    pass\n"


def start_busy(cpu: int) -> Any:
    """A Python busy loop pinned to ``cpu`` (the competitor of ``--contended``); the caller stops it."""
    import subprocess  # noqa: PLC0415

    return subprocess.Popen([sys.executable, "-c", BUSY_LOOP, str(cpu)], stdin=subprocess.DEVNULL)


def stop_busy(proc: Any) -> None:
    proc.kill()
    proc.wait(timeout=10)


class _Block:
    """Forward timings of one (phase, thread policy) pair, accumulated over alternating rounds."""

    def __init__(self) -> None:
        self.walls: list[float] = []
        self.settle: list[float] = []
        self.threads: set[int] = set()
        self.others_s = 0.0  # CPU seconds other processes used while the timed forwards ran
        self.wall_s = 0.0
        self.measured = True
        self.policy = ""

    def run(self, est: Any, vox: np.ndarray, repeats: int, settle_s: float) -> None:
        """Forwards for ``settle_s`` (the thread policy sees the load and reacts), then ``repeats`` timed ones,
        with the CPU that other processes used meanwhile (so a result says whether "idle" was idle)."""
        from v2v_ros.core.threads import default_policy, read_cpu_busy  # noqa: PLC0415

        cpus = set(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < settle_s:
            t = time.perf_counter()
            est.forward(vox)
            self.settle.append((time.perf_counter() - t) * 1e3)
        busy0, own0, w0 = read_cpu_busy(cpus), time.process_time(), time.perf_counter()
        for _ in range(max(1, repeats)):
            t = time.perf_counter()
            est.forward(vox)
            self.walls.append((time.perf_counter() - t) * 1e3)
            self.threads.add(torch.get_num_threads())
        busy1, own1, w1 = read_cpu_busy(cpus), time.process_time(), time.perf_counter()
        if busy0 is None or busy1 is None:
            self.measured = False
        else:
            self.others_s += busy1 - busy0 - (own1 - own0)
            self.wall_s += w1 - w0
        self.policy = default_policy().describe()

    def summary(self) -> dict[str, Any]:
        w = self.walls
        q = statistics.quantiles(w, n=10) if len(w) > 1 else w * 9
        others = max(0.0, self.others_s / self.wall_s) if self.measured and self.wall_s > 0 else None
        return {"median_ms": statistics.median(w), "min_ms": min(w), "p90_ms": q[-1], "max_ms": max(w),
                "threads": sorted(self.threads), "others_cores": others, "settle_forwards": len(self.settle),
                "settle_max_ms": max(self.settle) if self.settle else None, "policy": self.policy}


def run_contended(est: Any, repeats: int, settle_s: float = 1.0, cpu: int | None = None,
                  threads: Sequence[int] = (0,), rounds: int = 1) -> dict[str, Any]:
    """The model-grid forward idle, then with a busy process pinned to one core (stopped afterwards).

    ``threads`` lists thread settings (0 = adaptive, N = fixed N) measured in the same run,
    alternating in ``rounds`` blocks per phase, so that the machine's other load (which
    drifts over seconds) weighs on each alike; the first one's figures are the top-level
    keys, the others go to ``compare``. The settle period before each block's timed
    forwards is where an adaptive policy pays for noticing the load (``settle_max_ms``).
    """
    from v2v_ros.core.threads import configure_threads  # noqa: PLC0415

    n = est.grid.size
    frame = _frame()
    c = frame.joints.mean(axis=0).astype(np.float64)
    vox = np.zeros((1, est.meta.input_channels, n, n, n), np.float32)
    est.grid.voxelize(frame.intrinsics.backproject(frame.full_depth()), c, out=vox[0, 0])
    for _ in range(3):
        est.forward(vox)  # engine build, oneDNN primitive caches
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    cpu = cpus[-1] if cpu is None else cpu
    blocks = {(t, phase): _Block() for t in threads for phase in ("idle", "contended")}
    per_block = max(1, repeats // max(1, rounds))
    for phase in ("idle", "contended"):
        proc = start_busy(cpu) if phase == "contended" else None
        try:
            for _ in range(max(1, rounds)):
                for t in threads:
                    configure_threads(t)
                    blocks[(t, phase)].run(est, vox, per_block, settle_s)
        finally:
            if proc is not None:
                stop_busy(proc)
    configure_threads(threads[0])
    rows = []
    for t in threads:
        idle, contended = blocks[(t, "idle")].summary(), blocks[(t, "contended")].summary()
        rows.append({"threads_setting": t, "idle": idle, "contended": contended,
                     "ratio": contended["median_ms"] / idle["median_ms"]})
    return {"precision": est.precision, "grid": n, "busy_cpu": cpu, "cores": len(cpus), "settle_s": settle_s,
            "repeats": per_block * max(1, rounds), "rounds": max(1, rounds), **rows[0], "compare": rows[1:]}


def format_contended(c: dict[str, Any]) -> str:
    rows = []
    for r in (c, *c.get("compare", [])):
        setting = "adaptive" if r["threads_setting"] == 0 else f"fixed {r['threads_setting']}"
        for key in ("idle", "contended"):
            m = r[key]
            others = "n/a" if m["others_cores"] is None else f"{m['others_cores']:.2f}"
            rows.append(f"forward {c['grid']}³ {c['precision']} threads {setting:<8} {key:<9}  median "
                        f"{m['median_ms']:.1f} ms, min {m['min_ms']:.1f}, p90 {m['p90_ms']:.1f}, max {m['max_ms']:.1f}; "
                        f"threads used {m['threads']}; other processes {others} cores; slowest while settling "
                        f"{m['settle_max_ms'] or 0:.1f} ms")
        rows.append(f"threads {setting}: contended / idle {r['ratio']:.2f}")
    rows.append(f"(busy process on CPU {c['busy_cpu']} of {c['cores']}; {c['rounds']} alternating round(s) per phase)")
    return "\n".join(rows)


# ---------------------------------------------------------------------------------------
# Accuracy/speed trade-off: grid × precision
# ---------------------------------------------------------------------------------------
def run_tradeoff(model_path: str | None, device: str, grids: Sequence[int], precisions: Sequence[str],
                 backend: str = "torch", repeats: int = 3, eval_root: str | None = None, eval_frames: int = 200,
                 grid_models: dict[int, str] | None = None, reference: str = "pipeline") -> list[dict[str, Any]]:
    """One row per (grid, precision): forward and end-to-end ms per frame, mean error where a trained
    checkpoint exists for that grid (the shipped model's grid, or ``grid_models``)."""
    from v2v_ros.core.checkpoint import build_model, load_checkpoint  # noqa: PLC0415
    from v2v_ros.core.estimator import PoseEstimator, resolve_device  # noqa: PLC0415
    from v2v_ros.core.model import V2VPoseNet  # noqa: PLC0415
    from v2v_ros.data.calibration import synthetic_calibration_source  # noqa: PLC0415

    dev = resolve_device(device)
    trained: dict[int, str] = dict(grid_models or {})
    if model_path and Path(model_path).with_suffix(".safetensors").exists():
        _, meta = load_checkpoint(model_path)
        trained.setdefault(meta.grid_size, str(model_path))
    frame = _frame()
    depth, intr = frame.full_depth(), frame.intrinsics
    rows = []
    for g in grids:
        if g in trained:
            state, meta = load_checkpoint(trained[g])
            net, source = build_model(state, meta, trained[g]), trained[g]
        else:
            net, meta, source = V2VPoseNet(21).eval(), _meta(g), "random weights (timing only)"
        for p in precisions:
            row: dict[str, Any] = {"grid": g, "precision": p, "backend": backend, "model": source}
            try:
                t0 = time.perf_counter()
                est = PoseEstimator(net, meta, device=dev, precision=p, backend=backend,
                                    calibration=synthetic_calibration_source)
                vox = np.zeros((1, meta.input_channels, g, g, g), np.float32)
                vox[0, 0, g // 4:3 * g // 4, g // 4:3 * g // 4, g // 2] = 1.0
                est.forward(vox)  # builds the engine (int8: calibrates)
                row["build_s"] = time.perf_counter() - t0
                row["forward_ms"], row["forward_cpu_ms"] = _time2(lambda e=est, v=vox: e.forward(v), repeats,
                                                                  mins=row, key="forward_min_ms")
                row["end_to_end_ms"] = _time(lambda e=est: e.estimate(depth, intr), repeats)
                row["fps"] = 1e3 / row["end_to_end_ms"]
                row["mean_error_mm"] = None
                if eval_root and g in trained:
                    row["mean_error_mm"], row["eval_frames"] = _mean_error(est, eval_root, eval_frames, reference)
                    row["eval_reference"] = reference
            except (ValueError, RuntimeError, ImportError) as exc:
                row["error"] = f"{type(exc).__name__}: {exc}"
            rows.append(row)
    return rows


def _mean_error(est: Any, root: str, frames: int, reference: str = "pipeline") -> tuple[float, int]:
    """Mean 3-D joint error (mm) on the first ``frames`` frames of a synthetic shard folder (as `v2v eval`).

    ``reference="pipeline"`` lets the estimator localise the hand (what users get);
    ``"gt"`` centres the cube on the ground-truth joint mean, which isolates the
    network (and so the effect of its precision) from localisation failures.
    """
    from v2v_ros.data.datasets import get_dataset  # noqa: PLC0415
    from v2v_ros.data.shards import ShardDataset  # noqa: PLC0415
    from v2v_ros.evaluate.runner import evaluate_estimator  # noqa: PLC0415

    ds = ShardDataset(root)
    centers = None
    if reference == "gt":
        centers = np.stack([np.asarray(ds[i].joints, np.float64).mean(axis=0) for i in range(min(frames, len(ds)))])
    report = evaluate_estimator(est, ds, spec=get_dataset("synthetic"), limit=frames, centers=centers)
    return float(report["mean_error_mm"]), int(report["frames"])


# ---------------------------------------------------------------------------------------
# Cost scaling: hands per frame, resolution, grid
# ---------------------------------------------------------------------------------------
def run_scaling(model_path: str | None, device: str, precision: str = "fp32", backend: str = "torch",
                repeats: int = 3, grids: Sequence[int] = (16, 32, 48, 64, 88)) -> dict[str, Any]:
    from v2v_ros.core.camera import cube_footprint  # noqa: PLC0415
    from v2v_ros.core.estimator import PoseEstimator, resolve_device  # noqa: PLC0415
    from v2v_ros.core.model import V2VPoseNet  # noqa: PLC0415
    from v2v_ros.data.calibration import synthetic_calibration_source  # noqa: PLC0415

    dev = resolve_device(device)
    est, _, _ = _load(model_path, dev, precision, backend, [])
    frame = _frame()
    depth, intr = frame.full_depth(), frame.intrinsics
    c = frame.joints.mean(axis=0)
    rng = np.random.default_rng(0)
    hands = []
    for k in HANDS:
        refs = [c + rng.uniform(-15, 15, 3) for _ in range(k)]  # all in the hand so every cube is valid
        batched = _time(lambda r=refs: est.estimate_many(depth, intr, r), repeats)
        singles = _time(lambda r=refs: [est.estimate(depth, intr, reference_point=p) for p in r], repeats)
        hands.append({"hands": k, "batched_ms": batched, "single_calls_ms": singles, "ratio": batched / singles})
    resolutions = []
    grid = est.grid
    for w, h in RESOLUTIONS:
        f = _frame(w, h)
        d, it = f.full_depth(), f.intrinsics
        cc = f.joints.mean(axis=0)

        def crop_vox(d: np.ndarray = d, it: Any = it, cc: np.ndarray = cc) -> None:
            u0, v0, u1, v1 = cube_footprint(it, cc, grid.cube_size, d.shape[1], d.shape[0])
            grid.voxelize_depth(d[v0:v1, u0:u1], it, cc, offset=(u0, v0))

        resolutions.append({
            "width": w, "height": h,
            "voxelize_ms": _time(crop_vox, repeats * 3),
            "voxelize_full_frame_ms": _time(lambda d=d, it=it, cc=cc: grid.voxelize(it.backproject(d), cc), repeats),
            "end_to_end_ms": _time(lambda d=d, it=it: est.estimate(d, it), repeats),
        })
    by_grid = []
    for g in grids:
        e = PoseEstimator(V2VPoseNet(21), _meta(g), device=dev, precision=precision, backend=backend,
                          calibration=synthetic_calibration_source)
        vox = np.zeros((1, 1, g, g, g), np.float32)
        e.forward(vox)
        by_grid.append({"grid": g, "forward_ms": _time(lambda e=e, v=vox: e.forward(v), repeats),
                        "gflop": 2 * 36.398782464 * (g / 88) ** 3})
    return {"precision": precision, "backend": backend, "hands": hands, "resolutions": resolutions, "grids": by_grid}


# ---------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------
def format_table(r: dict[str, Any]) -> str:
    stages = r.get("stages_ms", {})
    rows = [
        ("device", f"{r['device']} ({r['device_name']}, {r['torch_threads']} threads)"),
        ("model / precision / backend / grid", f"{r['model']} / {r['precision']} / {r.get('backend', 'torch')} / "
                                               f"{r['grid']}³"),
        ("voxelize 640×480 (cube crop)", f"{r['voxelize_ms']:.2f} ms"),
        ("voxelize 640×480 (all points)", f"{r['voxelize_full_frame_ms']:.2f} ms"),
        ("forward", f"{r['forward_ms']:.1f} ms  ({r['forward_gflop']:.1f} GFLOP; "
                    + (f"{r.get('floor_precision')} floor {r['floor_ms']:.1f} ms, ratio {r['forward_over_floor']:.2f})"
                       if r.get("floor_ms") else "no floor for this precision)")),
        ("decode", f"{r['decode_ms']:.2f} ms"),
        ("stages of estimate()", ", ".join(f"{k} {v:.2f}" for k, v in stages.items()) + " ms"),
        ("depth decode / message", f"{r.get('depth_decode_ms', 0):.2f} ms / "
                                   + ("n/a" if r.get("message_ms") is None else f"{r['message_ms']:.2f} ms")),
        ("around the network, independent frames", f"{r.get('around_network_ms', 0):.2f} ms = "
                                                   f"{100 * r.get('around_over_forward', 0):.0f}% of the frames' forwards"),
        ("end to end (estimate)", f"{r['end_to_end_ms']:.1f} ms  = {r['fps_end_to_end']:.1f} fps"),
        *([("stream with tracking", f"{r['tracking']['end_to_end_ms']:.1f} ms/frame, around the network "
                                    f"{r['tracking']['around_network_ms']:.2f} ms = "
                                    f"{100 * r['tracking']['around_over_forward']:.0f}% of the forward "
                                    f"({r['tracking']['reference'].get('tracked', 0)}/{r['tracking']['frames']} "
                                    "frames tracked)")] if r.get("tracking") else []),
        ("matmul rate fp32 / bf16", f"{r['matmul_gflops']:.0f} / {r.get('matmul_gflops_bf16', 0):.0f} GFLOP/s"),
        ("forward 88³ fp32 (paper)", f"{r['forward_ms_88']:.0f} ms  (floor {r['floor_ms_88']:.0f} ms, "
                                     f"ratio {r['forward_over_floor_88']:.2f}; eager PyTorch "
                                     f"{r.get('forward_ms_88_eager', float('nan')):.0f} ms)"),
    ]
    w = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{w}}  {v}" for k, v in rows) + "".join(f"\nnote: {n}" for n in r.get("notes", []))


def format_tradeoff(rows: list[dict[str, Any]]) -> str:
    lines = ["| grid | precision | forward ms | end-to-end ms | fps | mean error mm |", "|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['grid']}³ | {r['precision']} | n/a | n/a | n/a | {r['error']} |")
            continue
        err = "n/a" if r.get("mean_error_mm") is None else f"{r['mean_error_mm']:.2f}"
        lines.append(f"| {r['grid']}³ | {r['precision']} | {r['forward_ms']:.1f} | {r['end_to_end_ms']:.1f} | "
                     f"{r['fps']:.1f} | {err} |")
    return "\n".join(lines)


def format_scaling(s: dict[str, Any]) -> str:
    lines = ["hands  batched ms  k single calls ms  ratio"]
    lines += [f"{h['hands']:5d}  {h['batched_ms']:10.1f}  {h['single_calls_ms']:17.1f}  {h['ratio']:.2f}"
              for h in s["hands"]]
    lines.append("resolution  voxelize (crop) ms  voxelize (all) ms  end to end ms")
    lines += [f"{r['width']}x{r['height']:<5} {r['voxelize_ms']:17.2f}  {r['voxelize_full_frame_ms']:17.2f}"
              f"  {r['end_to_end_ms']:13.1f}" for r in s["resolutions"]]
    lines.append("grid  forward ms  GFLOP")
    lines += [f"{g['grid']:4d}  {g['forward_ms']:10.1f}  {g['gflop']:5.2f}" for g in s["grids"]]
    return "\n".join(lines)


def write_plots(result: dict[str, Any], out: Path) -> list[str]:
    """PNG plots of the scaling and trade-off results (matplotlib, Agg backend)."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    written = []
    b = result["base"]
    label = f"{b['device_name']} ({b['device']}, {b['torch_threads']} thread{'s' if b['torch_threads'] != 1 else ''})"
    s = result.get("scaling")
    if s:
        fig, ax = plt.subplots(1, 3, figsize=(15, 4))
        k = [h["hands"] for h in s["hands"]]
        ax[0].plot(k, [h["batched_ms"] for h in s["hands"]], "o-", label="one batched call")
        ax[0].plot(k, [h["single_calls_ms"] for h in s["hands"]], "s--", label="k single calls")
        ax[0].set(xlabel="hands per frame", ylabel="ms per frame", title="hands per frame")
        ax[0].legend()
        px = [r["width"] * r["height"] / 1e6 for r in s["resolutions"]]
        for key, name in (("voxelize_ms", "voxelise (cube crop)"), ("voxelize_full_frame_ms", "voxelise (all)"),
                          ("end_to_end_ms", "end to end")):
            ax[1].plot(px, [r[key] for r in s["resolutions"]], "o-", label=name)
        ax[1].set(xlabel="megapixels (640×480, 848×480, 1280×720)", ylabel="ms", title="input resolution")
        ax[1].legend()
        gx = [g["grid"] for g in s["grids"]]
        ax[2].plot(gx, [g["forward_ms"] for g in s["grids"]], "o-", label=f"forward ({s['precision']})")
        ax[2].set(xlabel="grid N (N³ voxels)", ylabel="ms", title="grid size", yscale="log")
        ax[2].legend()
        fig.suptitle(label)
        fig.tight_layout()
        fig.savefig(out / "scaling.png", dpi=100)
        plt.close(fig)
        written.append("scaling.png")
    rows = [r for r in result.get("tradeoff", []) if "error" not in r]
    if rows:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for p in dict.fromkeys(r["precision"] for r in rows):
            sel = [r for r in rows if r["precision"] == p]
            ax.plot([r["grid"] for r in sel], [r["end_to_end_ms"] for r in sel], "o-", label=p)
            for r in sel:
                if r.get("mean_error_mm") is not None:
                    ax.annotate(f"{r['mean_error_mm']:.1f} mm", (r["grid"], r["end_to_end_ms"]), fontsize=8)
        ax.axhline(1000 / 30, color="grey", ls=":", label="30 fps")
        ax.set(xlabel="grid N", ylabel="end-to-end ms per frame", yscale="log", title=f"trade-off — {label}")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "tradeoff.png", dpi=100)
        plt.close(fig)
        written.append("tradeoff.png")
    return written


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmark voxelisation, forward (vs. arithmetic floor), decoding, end to end")
    p.add_argument("--model", default=None, help="checkpoint (default: the shipped hand model)")
    p.add_argument("--random-weights", action="store_true",
                   help="time an untrained 32³ network when --model does not exist (timings only; without "
                        "this flag a missing model is an error, so random weights are never timed by accident)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16", "int8"], default=None,
                   help="default fp32, the reference the tables in docs/performance.md start from; the node "
                        "and v2v eval/eval-bag default to auto (bf16 on CPUs with native bf16): pass "
                        "--precision bf16 to time what they run")
    p.add_argument("--backend", choices=["torch", "onnxruntime"], default="torch")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--threads", type=int, default=0,
                   help="torch threads; 0 (default, like the node's threads: 0) adapts to the cores other "
                        "processes leave free (core.threads), N fixes N")
    p.add_argument("--contended", action="store_true",
                   help="also time the forward while a busy process (started and stopped here) holds one core")
    p.add_argument("--settle", type=float, default=1.0,
                   help="with --contended: seconds of untimed forwards after the load changes (default 1)")
    p.add_argument("--compare-threads", type=int, default=None, metavar="N",
                   help="with --contended: also measure a fixed N threads in the same run, alternating with "
                        "--threads in 3 rounds per phase (e.g. 2 on 2 cores: the old one-per-core default)")
    p.add_argument("--grids", default="", help="trade-off table for these grids, e.g. 32,48,64,88")
    p.add_argument("--precisions", default="", help="precisions of the trade-off table "
                                                    "(default fp32,bf16,int8 on CPU, without bf16 on CPUs that lack it; fp32,fp16,bf16 on CUDA)")
    p.add_argument("--grid-model", action="append", default=[], metavar="N=CKPT",
                   help="a trained checkpoint for grid N (mean-error column), repeatable")
    p.add_argument("--eval-root", default=None, help="synthetic shard folder for the mean-error column "
                                                    "(e.g. data/synth_test)")
    p.add_argument("--eval-frames", type=int, default=200, help="frames scored per row (default 200)")
    p.add_argument("--eval-reference", choices=["pipeline", "gt"], default="pipeline",
                   help="cube centre for the error column: the estimator's own localisation (default) or the "
                        "ground-truth joint mean (isolates the network's precision)")
    p.add_argument("--scaling", action="store_true", help="time vs hands per frame, resolution and grid")
    p.add_argument("--two-hands", action="store_true",
                   help="time a tracked 30 Hz stream of two hands against the same scenes with one hand "
                        "(max_targets 2 against the default 1; v2v_ros.bench_hands)")
    p.add_argument("--stream-frames", type=int, default=240, help="frames of each --two-hands stream (default 240: four 2-s clips)")
    p.add_argument("--stream-rounds", type=int, default=3, help="alternating rounds of --two-hands (default 3)")
    p.add_argument("--scaling-grids", default="16,32,48,64,88", help="grids of the --scaling forward curve")
    p.add_argument("--out", type=Path, default=None, help="folder for bench.json and PNG plots")
    p.add_argument("--skip-base", action="store_true", help="only the trade-off/scaling parts")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--markdown", type=Path, default=None, help="also append the table to this file")
    p.add_argument("--train", action="store_true",
                   help="training throughput instead: the project's CPU trainer vs a plain fp32 PyTorch loop "
                        "(v2v_ros.bench_train)")
    p.add_argument("--train-grids", default="32,48,88", help="grids of --train")
    p.add_argument("--train-batch", type=int, default=8, help="batch size of --train")
    p.add_argument("--train-steps", type=int, default=4, help="timed steps per grid and loop (after 2 warm-up)")
    p.add_argument("--train-curve", type=int, default=0, metavar="N",
                   help="with --train: also train both loops N steps on --eval-root shards and compare losses")
    p.add_argument("--train-curve-grid", type=int, default=32, help="grid of --train-curve")
    p.add_argument("--train-curve-cube", type=float, default=250.0, help="cube (mm) of --train-curve")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    if args.train:
        from v2v_ros.bench_train import run as run_train  # noqa: PLC0415
        from v2v_ros.core.threads import configure_threads  # noqa: PLC0415

        configure_threads(args.threads)
        return run_train(args)
    problem = _check_model(args)
    if problem:
        print(f"v2v bench: {problem}", file=sys.stderr)
        return 2
    from v2v_ros.core.threads import configure_threads  # noqa: PLC0415

    if args.threads < 0 or (args.compare_threads is not None and args.compare_threads < 0):
        print(f"v2v bench: --threads and --compare-threads must be >= 0, got {args.threads}, {args.compare_threads}",
              file=sys.stderr)
        return 2
    if args.two_hands and (args.stream_frames < 2 or args.stream_rounds < 1):
        print(f"v2v bench: --stream-frames must be >= 2 and --stream-rounds >= 1, got {args.stream_frames}, "
              f"{args.stream_rounds}", file=sys.stderr)
        return 2
    configure_threads(args.threads)
    from v2v_ros.core.estimator import resolve_device  # noqa: PLC0415

    dev = resolve_device(args.device)
    precision = args.precision or "fp32"
    if args.skip_base:
        r: dict[str, Any] = {"device": str(dev), "device_name": _device_name(dev),
                             "torch_threads": torch.get_num_threads()}
    else:
        r = run_bench(args.model, args.device, args.repeats, args.precision, args.backend)
    full: dict[str, Any] = {"base": r}
    if args.grids:
        grids = [int(g) for g in args.grids.split(",") if g.strip()]
        precs = [p for p in args.precisions.split(",") if p] or default_precisions(dev)
        models = {int(k): v for k, v in (s.split("=", 1) for s in args.grid_model)}
        full["tradeoff"] = run_tradeoff(args.model, args.device, grids, precs, args.backend,
                                        max(2, args.repeats // 3), args.eval_root, args.eval_frames, models,
                                        args.eval_reference)
    if args.contended:
        est, _, _ = _load(args.model, dev, precision, args.backend, [])
        settings = [args.threads] + ([args.compare_threads] if args.compare_threads is not None else [])
        full["contended"] = run_contended(est, args.repeats, args.settle, threads=settings,
                                          rounds=3 if len(settings) > 1 else 1)
    if args.scaling:
        full["scaling"] = run_scaling(args.model, args.device, precision, args.backend, max(2, args.repeats // 3),
                                      [int(g) for g in args.scaling_grids.split(",") if g.strip()])
    if args.two_hands:
        from v2v_ros.bench_hands import run_two_hands  # noqa: PLC0415

        est, _, _ = _load(args.model, dev, precision, args.backend, [])
        full["two_hands"] = run_two_hands(est, args.stream_frames, args.stream_rounds)
    text = "" if args.skip_base else format_table(r)
    if "tradeoff" in full:
        text += "\n\n" + format_tradeoff(full["tradeoff"])
    if "scaling" in full:
        text += "\n\n" + format_scaling(full["scaling"])
    if "contended" in full:
        text += "\n\n" + format_contended(full["contended"])
    if "two_hands" in full:
        from v2v_ros.bench_hands import format_two_hands  # noqa: PLC0415

        text += "\n\n" + format_two_hands(full["two_hands"])
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        full["plots"] = write_plots(full, args.out)
        (args.out / "bench.json").write_text(json.dumps(full, indent=2) + "\n")
    if args.json:
        # The base keys stay at the top level (scripts and tests read them); the rest is nested.
        print(json.dumps({**r, **{k: v for k, v in full.items() if k != "base"}}))
    else:
        print(text.strip())
    if args.markdown:
        with args.markdown.open("a") as fh:
            fh.write(f"\n```\n# v2v bench ({time.strftime('%Y-%m-%d')})\n{text.strip()}\n```\n")
    return 0
