"""Parameters of ``v2v_pose_node``: one table with type, default, range, description.

Keeping the table separate from the node lets the launch file, the docs and the
tests share it, and makes validation a pure function: :func:`validate` returns a
message that names the parameter and the offending value (or None), so start-up
(configure) and runtime updates reject bad values with the same words.

Read-only parameters (the model, the device, the subscriptions) are declared with
``read_only=True``; rclpy itself refuses to change them with a reason. Everything
else is runtime-safe and applied by the node's post-set callback.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType

PACKAGE = "v2v_ros"
DEFAULT_MODEL = "models/hand_default.safetensors"
DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
# Same values as v2v_ros.core.inference.PRECISIONS / BACKENDS (not imported: that pulls in torch).
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")  # auto: see core.inference.resolve_precision
BACKENDS = ("torch", "onnxruntime")


@dataclass(frozen=True)
class Param:
    """One parameter: name, default, description and constraints."""

    name: str
    default: Any
    description: str
    read_only: bool = False
    range: tuple[float, float] | None = None  # inclusive
    constraints: str = ""

    @property
    def type(self) -> int:
        if isinstance(self.default, bool):
            return ParameterType.PARAMETER_BOOL
        if isinstance(self.default, int):
            return ParameterType.PARAMETER_INTEGER
        if isinstance(self.default, float):
            return ParameterType.PARAMETER_DOUBLE
        if isinstance(self.default, str):
            return ParameterType.PARAMETER_STRING
        return ParameterType.PARAMETER_STRING_ARRAY

    def descriptor(self) -> ParameterDescriptor:
        d = ParameterDescriptor(name=self.name, type=self.type, description=self.description,
                                read_only=self.read_only, additional_constraints=self.constraints)
        if self.range is not None and self.type == ParameterType.PARAMETER_DOUBLE:
            d.floating_point_range = [FloatingPointRange(from_value=float(self.range[0]), to_value=float(self.range[1]))]
        elif self.range is not None and self.type == ParameterType.PARAMETER_INTEGER:
            d.integer_range = [IntegerRange(from_value=int(self.range[0]), to_value=int(self.range[1]))]
        return d


PARAMS: tuple[Param, ...] = (
    # -- model (read-only: changing them means loading another network -> reconfigure) --
    Param("autostart", True, "Configure and activate on start-up, so the node runs without a lifecycle manager.",
          read_only=True),
    Param("model_path", DEFAULT_MODEL,
          "Checkpoint (x.safetensors next to x.json). Relative paths are tried against the current directory, "
          "the installed share directory of v2v_ros and the source tree.", read_only=True),
    Param("device", "auto", "Torch device: auto (CUDA when available), cpu or cuda:N. A CUDA device that is not "
          "available falls back to CPU with a warning.", read_only=True, constraints="auto | cpu | cuda[:N]"),
    Param("precision", "auto", "Network arithmetic: auto (bf16 where the CPU/GPU does it natively, else fp32); fp32; bf16 (CPUs with AVX512-BF16/AMX, or CUDA); fp16 (CUDA); "
          "int8 (CPU; post-training quantisation calibrated on synthetic hands at load). The measured "
          "speed/accuracy trade-off is in docs/performance.md.", read_only=True, constraints="auto | fp32 | bf16 | fp16 | int8"),
    Param("backend", "torch", "Inference backend: torch (BN folded, oneDNN/cuDNN, CUDA graphs) or onnxruntime "
          "(the same folded network exported to ONNX; fp32 or int8).", read_only=True,
          constraints="torch | onnxruntime"),
    Param("threads", 0, "Torch intra-op threads for the networks; 0 adapts: one per core that other processes "
          "leave free, re-measured every 0.25 s (an idle machine gets every core; a busy process on one core "
          "costs one thread instead of stalling every layer). N > 0 fixes N (docs/performance.md, "
          "'A shared CPU').", read_only=True,
          range=(0, 256)),
    Param("use_refinement", False, "Refine the target centre with the refinement CNN (paper sec. 4) stored next "
          "to the model as x.refiner.safetensors; true requires that file.", read_only=True),
    Param("use_detector", False, "Find the target with the whole-image detector stored next to the model as "
          "x.detector.safetensors (falls back to the depth-band localiser when it finds nothing); true requires "
          "that file, false uses the depth-band localiser only.", read_only=True),
    Param("ensemble_checkpoints", [], "Extra checkpoints whose joints are averaged with model_path's "
          "(epoch ensemble, paper Table 2); slower by one forward pass each.", read_only=True),
    # -- estimation (runtime) --
    Param("cube_size", 0.0, "Edge of the voxelised cube in mm; 0 uses the model's training value.",
          range=(0.0, 3000.0)),
    Param("depth_band_mm", 150.0, "Hand localisation: depth band behind the nearest surface that is taken as "
          "the hand (mm).", range=(10.0, 2000.0)),
    Param("min_depth_mm", 100.0, "Hand localisation: ignore depth nearer than this (mm).", range=(0.0, 10000.0)),
    Param("max_depth_mm", 3000.0, "Hand localisation: ignore depth farther than this (mm).", range=(1.0, 20000.0)),
    Param("localization.hypotheses", 8, "Candidate centres the pose network may check when a frame is localised "
          "from scratch (detector peaks; for bodies, the room's other objects): when the first one's pose is less "
          "confident than localization.verify_below, the next are estimated too, two per batched forward, until "
          "one is confident; the most confident pose wins. 1 trusts the first candidate alone; lower values bound "
          "the worst-case cost of a detection frame.", range=(1, 16)),
    Param("localization.verify_below", 0.7, "Mean joint confidence under which the first candidate is doubted and "
          "its rivals are estimated (0 = never, 1 = always).", range=(0.0, 1.0)),
    Param("min_confidence", 0.0, "Skeletons whose mean joint confidence is below this are not published "
          "(an empty array is).", range=(0.0, 1.0)),
    Param("max_targets", 1, "Targets published per frame. 1: the one target the single-target pipeline finds "
          "(verified detection, tracking). > 1 (two hands: 2): every target in view up to this many, each from "
          "its own cube in one batched forward, each with a stable id (tracked from frame to frame when "
          "tracking.enabled), handedness and score (core.estimator.estimate_all, core.tracking.MultiTracker). "
          "Each target in view adds a cube to every frame's forward, and fewer targets than this in view "
          "make the node look for more every few frames.", range=(1, 16)),
    Param("opposite_hands_prior", 0.99, "With max_targets > 1: how likely two hands seen together are one "
          "person's left and right hand. Their sides are then decided together from both tracks' poses, so a hand "
          "whose poses say little (or keep mirroring it) takes the side the other hand leaves it unless its own "
          "evidence outweighs this prior (core.tracking.MultiTracker._sides). 0.5 decides each hand alone "
          "(several people's hands).", range=(0.5, 0.999)),
    # -- reference-point tracking (runtime; core.tracking) --
    Param("tracking.enabled", False, "Centre each frame's cube on the previous frame's estimate, so the detector "
          "and refinement CNN run only to acquire, re-check or recover the target (a stream moves a few mm per "
          "frame). Off: every frame is detected from scratch."),
    Param("tracking.max_gap_s", 0.25, "Frames further apart than this (s), or out of order, start over with a "
          "detection. With max_targets > 1 a late frame (up to 1 s) searches for the targets and keeps their ids.",
          range=(0.001, 10.0)),
    Param("tracking.redetect_every", 30, "Run the detector anyway after this many tracked frames, so a drifted "
          "track is corrected; 0 = only when the track is lost.", range=(0, 100000)),
    Param("tracking.min_score", 0.4, "A tracked pose with a mean joint confidence below this counts as lost; "
          "the frame is re-estimated from a detection.", range=(0.0, 1.0)),
    # -- temporal smoothing (runtime) --
    Param("smoothing.enabled", False, "Smooth joints over time with a One Euro filter."),
    Param("smoothing.min_cutoff", 1.0, "One Euro filter cut-off at rest (Hz); lower = smoother.", range=(0.001, 100.0)),
    Param("smoothing.beta", 0.0, "One Euro filter speed coefficient (per mm/s); higher = less lag.",
          range=(0.0, 10.0)),
    Param("smoothing.d_cutoff", 1.0, "One Euro filter cut-off of the speed estimate (Hz).", range=(0.001, 100.0)),
    # -- markers (runtime) --
    Param("markers.enabled", True, "Publish visualization markers on ~/markers."),
    Param("markers.show_cube", False, "Draw the voxelised cube as a wireframe."),
    Param("markers.joint_radius", 0.008, "Diameter of the joint spheres (m).", range=(0.0005, 0.1)),
    Param("markers.line_width", 0.004, "Width of the bone lines (m).", range=(0.0005, 0.1)),
    Param("markers.lifetime", 0.5, "Marker lifetime (s) so RViz clears them when the node stops; 0 = forever.",
          range=(0.0, 60.0)),
    # -- inputs and queueing --
    Param("use_compressed", False, "Also subscribe to depth/image/compressedDepth (PNG compressedDepth).",
          read_only=True),
    Param("static_camera_info", False, "Reuse the latest camera_info for every depth frame instead of pairing by "
          "stamp (for cameras that latch camera_info)."),
    Param("pair_buffer", 10, "Depth frames and camera_infos held while waiting for their partner.",
          read_only=True, range=(1, 100)),
    Param("pair_tolerance_ms", 0.0, "Largest stamp difference (ms) accepted when pairing depth and camera_info.",
          range=(0.0, 1000.0)),
    Param("max_age_ms", 0.0, "Drop frames older than this (receive to processing start, ms); 0 = no limit.",
          range=(0.0, 60000.0)),
    Param("max_pixels", 4096 * 4096, "Reject images with more pixels than this.", range=(1, 1 << 26)),
    Param("diagnostics_period", 1.0, "Seconds between /diagnostics messages.", read_only=True, range=(0.05, 60.0)),
)

BY_NAME: dict[str, Param] = {p.name: p for p in PARAMS}


def validate(name: str, value: Any, others: dict[str, Any] | None = None) -> str | None:
    """Why ``value`` is not acceptable for ``name`` (None when it is).

    ``others`` are the current values of the other parameters, for cross checks
    (min_depth_mm < max_depth_mm).
    """
    spec = BY_NAME.get(name)
    if spec is None:
        return None  # qos_overrides.* and use_sim_time are rclpy's
    others = others or {}
    if spec.range is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
        lo, hi = spec.range
        if not lo <= value <= hi:
            return f"{name}={value!r} is out of range [{lo}, {hi}]"
    if name == "device" and not DEVICE_RE.match(str(value)):
        return f"device={value!r} is not one of auto, cpu, cuda, cuda:N"
    if name == "precision" and value not in PRECISIONS:
        return f"precision={value!r} is not one of {', '.join(PRECISIONS)}"
    if name == "backend" and value not in BACKENDS:
        return f"backend={value!r} is not one of {', '.join(BACKENDS)}"
    if name == "model_path" and not str(value).strip():
        return "model_path='' is empty"
    if name == "min_depth_mm" and value >= others.get("max_depth_mm", float("inf")):
        return f"min_depth_mm={value!r} must be below max_depth_mm={others['max_depth_mm']!r}"
    if name == "max_depth_mm" and value <= others.get("min_depth_mm", -1.0):
        return f"max_depth_mm={value!r} must be above min_depth_mm={others['min_depth_mm']!r}"
    if name == "ensemble_checkpoints" and any(not str(v).strip() for v in value):
        return f"ensemble_checkpoints={list(value)!r} contains an empty path"
    return None


def validate_all(values: dict[str, Any]) -> list[str]:
    """Every problem of a full parameter set (for configure)."""
    return [msg for name, v in values.items() if (msg := validate(name, v, values))]


def share_directory() -> Path | None:
    """The installed share/v2v_ros directory, if the package is installed (ament index)."""
    try:
        from ament_index_python.packages import get_package_share_directory  # noqa: PLC0415

        return Path(get_package_share_directory(PACKAGE))
    except Exception:  # not installed, or ament_index_python missing
        return None


def source_root() -> Path:
    """The repository root when running from the source tree."""
    return Path(__file__).resolve().parents[2]


def resolve_model_path(path: str) -> Path:
    """Find a checkpoint given absolute or package-relative; FileNotFoundError lists every place tried."""
    p = Path(os.path.expanduser(path))
    candidates = [p] if p.is_absolute() else [Path.cwd() / p]
    if not p.is_absolute():
        share = share_directory()
        if share is not None:
            candidates.append(share / p)
        candidates.append(source_root() / p)
    for c in candidates:
        weights = c if c.suffix == ".safetensors" else c.with_suffix(".safetensors")
        if c.is_dir() or weights.is_file():
            return c
    tried = ", ".join(str(c) for c in dict.fromkeys(candidates))
    raise FileNotFoundError(f"model_path={path!r}: no checkpoint found (tried {tried})")
