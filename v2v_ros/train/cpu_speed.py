"""Fast training on CPUs: oneDNN 3-D convolutions, channels-last volumes, bf16 autocast.

Why: PyTorch's CPU ``Conv3d`` picks a slow im2col path for the small 3-D volumes of
V2V-PoseNet (the reason the inference engine forces oneDNN, ``core.inference``), and
``torch.autocast`` on CPU does not cast ``torch.mkldnn_convolution``, so autocast alone
leaves every convolution in fp32. :class:`OneDnnTrainConv3d` routes the forward (and so,
through autograd, the backward) of each ``Conv3d`` to oneDNN and casts its operands to
the autocast dtype itself. The parameters stay fp32 ``nn.Conv3d`` parameters under the
same names, so checkpoints, ``init_from`` and DDP see an ordinary V2V-PoseNet.

``auto`` uses bf16 only where the CPU has AMX bf16 tiles (see :func:`resolve_cpu_precision`):
without bf16 arithmetic oneDNN emulates it and it is no faster (``core.inference.native_bf16_cpu``).
``v2v bench --train`` measures the speed-up against a plain fp32 loop.
"""

from __future__ import annotations

import torch
from torch import nn

from v2v_ros.core.inference import amx_bf16_cpu, native_bf16_cpu

CPU_PRECISIONS = ("auto", "fp32", "bf16")


class OneDnnTrainConv3d(nn.Conv3d):
    """``nn.Conv3d`` whose CPU forward runs ``torch.mkldnn_convolution`` in the autocast dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102 - see class docstring
        if x.device.type != "cpu" or self.padding_mode != "zeros" or isinstance(self.padding, str):
            return super().forward(x)
        dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else x.dtype
        bias = None if self.bias is None else self.bias.to(dtype)
        return torch.mkldnn_convolution(x.to(dtype), self.weight.to(dtype), bias, list(self.padding),
                                        list(self.stride), list(self.dilation), self.groups)


def use_onednn_training_convs(model: nn.Module) -> nn.Module:
    """Turn every plain ``nn.Conv3d`` of ``model`` into :class:`OneDnnTrainConv3d` (in place, same parameters)
    and move the model to the channels-last-3d layout oneDNN works in."""
    for module in model.modules():
        if type(module) is nn.Conv3d:
            module.__class__ = OneDnnTrainConv3d
    return model.to(memory_format=torch.channels_last_3d)


def resolve_cpu_precision(name: str) -> torch.dtype | None:
    """Autocast dtype for CPU training (None = fp32): ``auto`` is bf16 on CPUs with AMX.

    Why not on every CPU with native bf16: on a 2-core AVX512-BF16 CPU without AMX, bf16 training
    of a small network (grid 16, batch 2) turned the loss into NaN within two steps in one of two
    runs (the training tests failed there), while fp32 trained; ``bf16`` still forces it.
    """
    if name not in CPU_PRECISIONS:
        raise ValueError(f"cpu_precision must be one of {CPU_PRECISIONS}, got {name!r}")
    if name == "bf16" or (name == "auto" and amx_bf16_cpu()):
        return torch.bfloat16
    return None


def cpu_precision_mode() -> dict[str, object]:
    """What decides CPU numerics on this machine, recorded with each checkpoint."""
    from v2v_ros.core.inference import cpu_bf16_supported  # noqa: PLC0415

    return {
        "native_bf16": native_bf16_cpu(),
        "onednn_bf16": cpu_bf16_supported(),
        "mkldnn": bool(torch.backends.mkldnn.is_available()),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "threads": torch.get_num_threads(),
    }
