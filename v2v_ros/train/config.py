"""Training configuration: the paper's recipe as defaults, overridable from YAML."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml


@dataclass
class TrainConfig:
    """Everything that determines a training run (saved next to its checkpoints)."""

    # Folder written by `v2v synth` (or a list of them: their frames are pooled)
    train_data: str | list[str] = "data/synth_train"
    val_data: str = ""  # optional held-out folder for the per-epoch validation error
    out_dir: str = "runs/hand"
    skeleton: str = "hand_msra21"
    # Voxel grid (paper: 88³, 200 mm for MSRA/ICVL, 250 mm for NYU)
    grid_size: int = 88
    cube_size: float = 200.0
    sigma: float = 1.7
    # Optimiser (paper sec. 7: RMSProp, lr 2.5e-4, batch 8, 10 epochs)
    epochs: int = 10
    batch_size: int = 8
    lr: float = 2.5e-4
    rmsprop_alpha: float = 0.99
    rmsprop_eps: float = 1e-8
    # Step decay: after each listed epoch the learning rate is multiplied by lr_gamma.
    # Empty = the paper's constant rate. Short CPU budgets gain from a final low-lr epoch.
    lr_milestones: list[int] = field(default_factory=list)
    lr_gamma: float = 0.1
    # Augmentation (paper sec. 7), applied to points and joints before voxelisation
    rotation_deg: float = 40.0
    scale_range: tuple[float, float] = (0.8, 1.2)
    translation_voxels: float = 8.0  # in voxels of the grid above (±8 of 88 in the paper)
    # Where the cube is centred during training: the joints' mean (what the refiner
    # predicts at test time) plus this much Gaussian jitter in mm.
    center_jitter_mm: float = 0.0
    # Two-hand frames: the share of samples whose other hands are masked out as a tracker masks them
    # at run time (train.stream, without_other_hands); 0 = the other hands stay in the cube.
    mask_other_hands: float = 0.0
    # 2: the masked samples also give the network the removed pixels in a second input channel
    # (core.voxel.OTHER_TARGETS_CHANNEL), as the estimator does at run time; 1: the paper's input.
    # A one-channel init_from starts the second channel's weights at zero (the same network at step 0).
    input_channels: int = 1
    # Start a fresh run from another run's weights (ignored once this run has its own
    # last.pt). V2V-PoseNet is fully convolutional, so a model trained at one grid size
    # initialises another (same skeleton): a 32³ model fine-tuned at 40³ costs a few epochs,
    # not a whole schedule. A ``last.pt`` brings its RMSProp state along (no restart
    # transient); a ``.safetensors`` checkpoint brings the weights only.
    init_from: str = ""
    # Runtime
    seed: int = 0
    workers: int = 1
    threads: int = 0  # torch intra-op threads per process, 0 = torch default
    device: str = "auto"
    amp: bool = True  # mixed precision on CUDA only
    # CPU: "auto" trains under bf16 autocast where the CPU has AMX bf16 tiles (train.cpu_speed:
    # AVX512-BF16 alone turned small runs' loss into NaN), fp32 elsewhere; "fp32" / "bf16" force it.
    # onednn: 3-D convolutions through oneDNN in the channels-last layout (train.cpu_speed); both
    # measured by `v2v bench --train`.
    cpu_precision: str = "auto"
    onednn: bool = True
    steps_per_epoch: int = 0  # 0 = one pass over the training frames
    val_frames: int = 200
    save_every_minutes: float = 10.0  # mid-epoch resume point
    log_every: int = 20
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: dict[str, Any] | None = None) -> "TrainConfig":
        return cls.from_dict(read_yaml(path, overrides), str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> "TrainConfig":
        check_keys(cls, data, source)
        check_types(cls, data, source)
        cfg = cls(**data)
        cfg.scale_range = tuple(cfg.scale_range)  # YAML gives lists
        cfg.validate(source)
        return cfg

    def validate(self, source: str = "config") -> None:
        roots = [self.train_data] if isinstance(self.train_data, str) else self.train_data
        if not isinstance(roots, list) or not roots or not all(isinstance(r, str) and r for r in roots):
            raise ValueError(f"{source}: train_data must be a folder or a non-empty list of folders, "
                             f"got {self.train_data!r}")
        if self.grid_size % 8 or self.grid_size <= 0:
            raise ValueError(f"{source}: grid_size must be a positive multiple of 8, got {self.grid_size}")
        if self.batch_size < 1 or self.epochs < 1:
            raise ValueError(f"{source}: batch_size and epochs must be >= 1")
        if not 0.0 <= self.mask_other_hands <= 1.0:
            raise ValueError(f"{source}: mask_other_hands must be a probability in [0, 1], got {self.mask_other_hands}")
        if self.input_channels not in (1, 2):
            raise ValueError(f"{source}: input_channels must be 1 or 2, got {self.input_channels}")
        if any(m < 1 for m in self.lr_milestones) or not 0 < self.lr_gamma <= 1:
            raise ValueError(f"{source}: lr_milestones must be epochs >= 1 and 0 < lr_gamma <= 1, got "
                             f"{self.lr_milestones}, {self.lr_gamma}")
        if self.cpu_precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"{source}: cpu_precision must be auto, fp32 or bf16, got {self.cpu_precision!r}")
        lo, hi = self.scale_range
        if not 0 < lo <= hi:
            raise ValueError(f"{source}: scale_range must satisfy 0 < lo <= hi, got {self.scale_range}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["scale_range"] = list(self.scale_range)
        return d

    def lr_at(self, epoch: int) -> float:
        """Learning rate for 0-based ``epoch``: a pure function of it, so resuming restores it exactly."""
        return self.lr * self.lr_gamma ** sum(1 for m in self.lr_milestones if epoch >= m)


def read_yaml(path: str | Path, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """A YAML mapping with command-line overrides applied on top."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of config keys")
    data.update(overrides or {})
    return data


def check_keys(cls: type, data: dict[str, Any], source: str) -> None:
    """Reject keys the dataclass does not have: a typo must not silently fall back to a default."""
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {unknown}; known: {sorted(names)}")


_SCALARS: dict[str, tuple[type, ...]] = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}
_KINDS = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}


def check_types(cls: type, data: dict[str, Any], source: str) -> None:
    """Reject values of the wrong type for scalar keys (``grid_size: abc``), naming key and value.

    Without this a string reaches arithmetic deep in training and fails with an unrelated
    message (``not all arguments converted during string formatting``).
    """
    for f in fields(cls):
        kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
        want = _SCALARS.get(kind)
        if want is None or f.name not in data:
            continue
        value = data[f.name]
        if float in want and isinstance(value, str):
            try:  # YAML 1.1 reads `1e-4` (no dot) as a string
                value = data[f.name] = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) and bool not in want or not isinstance(value, want):
            raise ValueError(f"{source}: {f.name} must be {_KINDS[kind]}, got {value!r}")


class YamlConfig:
    """``from_yaml`` for plain config dataclasses: a YAML mapping, overrides, unknown keys rejected."""

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: dict[str, Any] | None = None) -> Any:
        data = read_yaml(path, overrides)
        check_keys(cls, data, str(path))
        check_types(cls, data, str(path))
        return cls(**data)
