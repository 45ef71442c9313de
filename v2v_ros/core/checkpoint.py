"""Checkpoints: weights in safetensors plus a small JSON metadata file beside them.

``name.safetensors`` holds the tensors; ``name.json`` says what they are (joint
names, grid, cube, stride, σ, provenance). Loading checks the two against each
other and against the architecture, and every failure names the file and the
mismatch, so a wrong or corrupt model fails loudly at start-up, not mid-stream.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from v2v_ros.core.voxel import INPUT_CHANNELS

FORMAT_VERSION = 1
ARCH = "V2VPoseNet"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, or does not match what the caller needs."""


@dataclass
class ModelMeta:
    """What a set of V2V-PoseNet weights means."""

    skeleton: str
    joint_names: list[str]
    grid_size: int
    cube_size: float
    stride: int = 2
    sigma: float = 1.7
    arch: str = ARCH
    format_version: int = FORMAT_VERSION
    dtype: str = "float32"
    provenance: dict[str, Any] = field(default_factory=dict)
    # Stem of another model in the same folder whose refiner, detector and presence classifier this one
    # uses when it has none of its own ("" = its own only). Why: those three look at the depth image,
    # not at the pose network's grid or weights, so a second pose network (e.g. a cheaper grid) shares
    # them instead of shipping copies that could drift apart.
    companions: str = ""
    # Input volumes per cube (core.voxel.INPUT_CHANNELS): 1 = occupancy of the cube's points; 2 = that
    # plus a second occupancy of the points the pipeline gave to another target (another hand's pixels,
    # masked out of this cube). Why a channel rather than only removing them: a mask drawn around an
    # estimated pose bites into the hand it protects where two hands touch, and the network that sees
    # what was removed can take those points back and knows where the other hand hides this one.
    input_channels: int = 1

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def validate(self, source: str = "metadata") -> None:
        """Raise CheckpointError naming the first inconsistent field."""
        if self.arch != ARCH:
            raise CheckpointError(f"{source}: arch must be {ARCH!r}, got {self.arch!r}")
        if self.format_version != FORMAT_VERSION:
            raise CheckpointError(f"{source}: format_version {self.format_version} not supported (want {FORMAT_VERSION})")
        if not self.joint_names or not all(isinstance(n, str) for n in self.joint_names):
            raise CheckpointError(f"{source}: joint_names must be a non-empty list of strings")
        if not isinstance(self.grid_size, int) or self.grid_size <= 0 or self.grid_size % 8:
            raise CheckpointError(f"{source}: grid_size must be a positive multiple of 8, got {self.grid_size!r}")
        if not isinstance(self.stride, int) or self.stride != 2:
            raise CheckpointError(f"{source}: stride must be 2 for V2VPoseNet, got {self.stride!r}")
        if isinstance(self.cube_size, bool) or not isinstance(self.cube_size, (int, float)) \
                or not 0 < self.cube_size < float("inf"):  # JSON admits Infinity; NaN fails both comparisons
            raise CheckpointError(f"{source}: cube_size must be a positive finite number of mm, got {self.cube_size!r}")
        if isinstance(self.input_channels, bool) or self.input_channels not in INPUT_CHANNELS:
            raise CheckpointError(f"{source}: input_channels must be one of {INPUT_CHANNELS}, got {self.input_channels!r}")
        if not isinstance(self.companions, str) or any(c in self.companions for c in "/\\") \
                or self.companions in (".", ".."):
            raise CheckpointError(f"{source}: companions must be the stem of a model in the same folder "
                                  f"(no path), got {self.companions!r}")

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "metadata") -> "ModelMeta":
        known = {f for f in cls.__dataclass_fields__}
        missing = [k for k in ("skeleton", "joint_names", "grid_size", "cube_size") if k not in data]
        if missing:
            raise CheckpointError(f"{source}: missing field(s) {missing}")
        unknown = sorted(set(data) - known)
        if unknown:
            raise CheckpointError(f"{source}: unknown field(s) {unknown}")
        meta = cls(**data)
        meta.validate(source)
        return meta


def checkpoint_paths(path: str | Path) -> tuple[Path, Path]:
    """(weights, metadata) paths for ``x.safetensors``, ``x.json``, ``x`` or a folder with one model."""
    p = Path(path)
    if p.is_dir():
        found = sorted(p.glob("*.safetensors"))
        if len(found) != 1:
            raise CheckpointError(f"{p}: expected exactly one *.safetensors in the folder, found {len(found)}")
        p = found[0]
    stem = p.with_suffix("") if p.suffix in (".safetensors", ".json") else p
    return stem.with_suffix(".safetensors"), stem.with_suffix(".json")


def save_checkpoint(path: str | Path, state_dict: dict[str, torch.Tensor], meta: ModelMeta, half: bool = False) -> Path:
    """Write weights (optionally fp16 for floating tensors) and metadata; return the weights path."""
    from safetensors.torch import save_file  # noqa: PLC0415

    meta.validate()
    weights, meta_path = checkpoint_paths(path)
    weights.parent.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for k, v in state_dict.items():
        v = v.detach().cpu().contiguous()
        if half and v.is_floating_point():
            v = v.half()
        tensors[k] = v
    meta.dtype = "float16" if half else "float32"
    save_file(tensors, str(weights), metadata={"format": "v2v_ros", "arch": meta.arch})
    meta_path.write_text(json.dumps(asdict(meta), indent=2, sort_keys=True) + "\n")
    return weights


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], ModelMeta]:
    """Read and check a checkpoint; weights are returned as float32 tensors."""
    from safetensors import SafetensorError  # noqa: PLC0415
    from safetensors.torch import load_file  # noqa: PLC0415

    weights, meta_path = checkpoint_paths(path)
    if not weights.is_file():
        raise CheckpointError(f"model weights not found: {weights}")
    if not meta_path.is_file():
        raise CheckpointError(f"model metadata not found: {meta_path} (expected next to {weights.name})")
    try:
        data = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{meta_path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{meta_path}: expected a JSON object")
    try:
        meta = ModelMeta.from_dict(data, str(meta_path))
    except TypeError as exc:
        raise CheckpointError(f"{meta_path}: {exc}") from exc
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{weights}: corrupt or unreadable safetensors file ({exc})") from exc
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in tensors.items()}
    return state, meta


def build_model(state: dict[str, torch.Tensor], meta: ModelMeta, source: str = "checkpoint") -> torch.nn.Module:
    """Instantiate V2VPoseNet for ``meta`` and load ``state``, naming any mismatching tensor."""
    from v2v_ros.core.model import V2VPoseNet  # noqa: PLC0415

    model = V2VPoseNet(meta.num_joints, meta.input_channels)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{source}: tensors missing {missing[:5]} / unexpected {unexpected[:5]}")
    for key, ref in expected.items():
        if tuple(state[key].shape) != tuple(ref.shape):
            raise CheckpointError(
                f"{source}: tensor {key!r} has shape {tuple(state[key].shape)}, architecture needs {tuple(ref.shape)}"
                f" (metadata says {meta.num_joints} joints, {meta.input_channels} input channel(s))"
            )
        if ref.is_floating_point() and not torch.isfinite(state[key]).all():
            raise CheckpointError(f"{source}: tensor {key!r} contains NaN or inf")
    model.load_state_dict(state)
    return model.eval()
