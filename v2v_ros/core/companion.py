"""Small networks stored next to a pose model: ``x.<role>.safetensors`` + ``x.<role>.json``.

The refinement CNN and the hand detector share how they are named, saved, checked
and loaded; only their metadata class and network differ.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar

import torch

from v2v_ros.core.checkpoint import CheckpointError, checkpoint_paths


class CompanionNet:
    """Base for a callable wrapper around ``net`` with dataclass metadata ``meta``.

    Subclasses set ``role`` (file infix), ``meta_cls`` and implement ``make_net(meta)``.
    """

    role: ClassVar[str]
    meta_cls: ClassVar[type]

    def __init__(self, net: torch.nn.Module, meta: Any, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.meta = meta
        self.net = net

    @property
    def net(self) -> torch.nn.Module:
        """The network as trained and saved."""
        return self._net

    @net.setter
    def net(self, value: torch.nn.Module) -> None:
        self._net = value.to(self.device).eval()
        self._fast: torch.nn.Module | None = None

    @property
    def fast(self) -> torch.nn.Module:
        """The same network as inference runs it: BatchNorm folded into the convolutions and
        channels-last weights (oneDNN's fast layout for these small 2-D CNNs; measured on the
        detector: 3.3 -> 2.5 ms per frame on one core). Feed it :meth:`prepare`d inputs."""
        if self._fast is None:
            from v2v_ros.core.inference import fold_batchnorm  # noqa: PLC0415

            self._fast = fold_batchnorm(self._net).to(memory_format=torch.channels_last)
        return self._fast

    @staticmethod
    def prepare(x: torch.Tensor) -> torch.Tensor:
        """A (B, C, H, W) input in the layout :attr:`fast` expects."""
        return x.contiguous(memory_format=torch.channels_last)

    @classmethod
    def make_net(cls, meta: Any) -> torch.nn.Module:
        raise NotImplementedError

    @classmethod
    def paths(cls, pose_model_path: str | Path) -> tuple[Path, Path]:
        """Files that belong to a pose checkpoint ``x``: ``x.<role>.safetensors`` / ``.json``."""
        weights, _ = checkpoint_paths(pose_model_path)
        stem = weights.with_suffix("")
        return (stem.with_name(f"{stem.name}.{cls.role}.safetensors"), stem.with_name(f"{stem.name}.{cls.role}.json"))

    def save(self, weights: str | Path) -> Path:
        from safetensors.torch import save_file  # noqa: PLC0415

        weights = Path(weights)
        weights.parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()}, str(weights))
        weights.with_suffix(".json").write_text(json.dumps(asdict(self.meta), indent=2, sort_keys=True) + "\n")
        return weights

    @classmethod
    def load(cls, weights: str | Path, device: torch.device | str = "cpu") -> Any:
        """Load and check; every failure names the file and what is wrong with it."""
        from safetensors import SafetensorError  # noqa: PLC0415
        from safetensors.torch import load_file  # noqa: PLC0415

        weights = Path(weights)
        meta_path = weights.with_suffix(".json")
        try:
            meta = cls.meta_cls(**json.loads(meta_path.read_text()))
        except (OSError, ValueError, TypeError) as exc:
            raise CheckpointError(f"{meta_path}: unreadable {cls.role} metadata ({exc})") from exc
        if meta.kind != f"v2v_{cls.role}":
            raise CheckpointError(f"{meta_path}: kind must be 'v2v_{cls.role}', got {meta.kind!r}")
        net = cls.make_net(meta)
        try:
            state = load_file(str(weights))
            net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
        except (SafetensorError, OSError, RuntimeError) as exc:
            raise CheckpointError(f"{weights}: {cls.role} weights do not load ({exc})") from exc
        return cls(net, meta, device)
