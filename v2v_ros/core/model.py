"""V2V-PoseNet (Moon, Chang, Lee, CVPR 2018), as the authors released it.

The building blocks of paper sec. 6.1 are composed into the hourglass of Fig. 3
(front layers), Fig. 5 (encoder), Fig. 6 (decoder) and the 1×1×1 back layers, so
the structure below reads like the figures. For an 88³ input the output is
J × 44³ and the network has 3,410,453 parameters when J = 21.
"""

from __future__ import annotations

import torch
from torch import nn


class Basic3D(nn.Sequential):
    """Volumetric basic block: Conv3d + BatchNorm3d + ReLU (first and last layers)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__(
            nn.Conv3d(in_channels, out_channels, kernel_size, padding=(kernel_size - 1) // 2),
            nn.BatchNorm3d(out_channels),
            nn.ReLU(inplace=True),
        )


class Res3D(nn.Module):
    """Volumetric residual block (option B of He et al.): 1×1×1 conv + BN skip when channels change."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.res_branch = nn.Sequential(
            nn.Conv3d(in_channels, out_channels, 3, padding=1),
            nn.BatchNorm3d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv3d(out_channels, out_channels, 3, padding=1),
            nn.BatchNorm3d(out_channels),
        )
        if in_channels == out_channels:
            self.skip: nn.Module = nn.Identity()
        else:
            self.skip = nn.Sequential(nn.Conv3d(in_channels, out_channels, 1), nn.BatchNorm3d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.res_branch(x) + self.skip(x))


class Pool3D(nn.MaxPool3d):
    """Volumetric downsampling block: 2×2×2 max pooling with stride 2."""

    def __init__(self) -> None:
        super().__init__(kernel_size=2, stride=2)


class Up3D(nn.Sequential):
    """Volumetric upsampling block: 2×2×2 stride-2 deconvolution + BN + ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.ConvTranspose3d(in_channels, out_channels, kernel_size=2, stride=2),
            nn.BatchNorm3d(out_channels),
            nn.ReLU(inplace=True),
        )


class EncoderDecoder(nn.Module):
    """Figs. 5 and 6: two poolings down to 1/8 scale and back up to 1/2, with additive skips."""

    def __init__(self) -> None:
        super().__init__()
        self.skip_res1 = Res3D(32, 32)  # skip taken at the 1/2 scale
        self.encoder_pool1 = Pool3D()
        self.encoder_res1 = Res3D(32, 64)
        self.skip_res2 = Res3D(64, 64)  # skip taken at the 1/4 scale
        self.encoder_pool2 = Pool3D()
        self.encoder_res2 = Res3D(64, 128)
        self.mid_res = Res3D(128, 128)
        self.decoder_res2 = Res3D(128, 128)
        self.decoder_upsample2 = Up3D(128, 64)
        self.decoder_res1 = Res3D(64, 64)
        self.decoder_upsample1 = Up3D(64, 32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip1 = self.skip_res1(x)
        x = self.encoder_res1(self.encoder_pool1(x))
        skip2 = self.skip_res2(x)
        x = self.encoder_res2(self.encoder_pool2(x))
        x = self.decoder_res2(self.mid_res(x))
        x = self.decoder_res1(self.decoder_upsample2(x) + skip2)
        return self.decoder_upsample1(x) + skip1


class V2VPoseNet(nn.Module):
    """Voxel-to-voxel network: (B, C, N, N, N) occupancy -> (B, J, N/2, N/2, N/2) heatmaps.

    Fully convolutional, so any N divisible by 8 works (88 in the paper, 48 in its
    ablation). Weights start from N(0, 0.001) and biases from 0 (paper sec. 7).
    C is 1 in the paper; 2 adds the points removed from the cube as another target's
    (core.voxel.OTHER_TARGETS_CHANNEL), which only the first convolution sees.
    """

    def __init__(self, num_joints: int, in_channels: int = 1) -> None:
        super().__init__()
        if num_joints <= 0:
            raise ValueError(f"num_joints must be positive, got {num_joints}")
        self.num_joints = num_joints
        self.in_channels = in_channels
        self.front_layers = nn.Sequential(
            Basic3D(in_channels, 16, 7),
            Pool3D(),
            Res3D(16, 32),
            Res3D(32, 32),
            Res3D(32, 32),
        )
        self.encoder_decoder = EncoderDecoder()
        self.back_layers = nn.Sequential(
            Res3D(32, 32),
            Basic3D(32, 32, 1),
            Basic3D(32, 32, 1),
        )
        self.output_layer = nn.Conv3d(32, num_joints, kernel_size=1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d)):
                nn.init.normal_(m.weight, 0.0, 0.001)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_layer(self.back_layers(self.encoder_decoder(self.front_layers(x))))


def input_channels(model: nn.Module) -> int:
    """Input channels of a V2VPoseNet, or of a wrapper (ensemble, compiled, quantised) around one.

    Read from the network itself, from what a wrapper says (``input_channels``), or from the first
    3-D convolution's weights, which folded and quantised variants keep.
    """
    for m in model.modules():
        if isinstance(m, V2VPoseNet):
            return m.in_channels
    said = getattr(model, "input_channels", None)  # a wrapper holding its network outside its modules
    if isinstance(said, int) and not isinstance(said, bool):
        return said
    for m in model.modules():
        if isinstance(m, nn.Conv3d):
            return int(m.in_channels)
    return 1


def count_macs(model: nn.Module, grid_size: int) -> int:
    """Multiply-accumulates of one forward pass at ``grid_size``³ (convolutions only).

    Used by the benchmark to compute the arithmetic floor of the forward.
    """
    total = 0

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        k = 1
        for ks in module.kernel_size:
            k *= ks
        if isinstance(module, nn.ConvTranspose3d):
            # each input voxel scatters into k output voxels
            total += inputs[0][0].numel() * module.out_channels * k // module.groups
        else:
            total += output[0].numel() * (module.in_channels // module.groups) * k

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d))]
    try:
        device = next(model.parameters()).device
        with torch.no_grad():
            model(torch.zeros(1, input_channels(model), grid_size, grid_size, grid_size, device=device))
    finally:
        for h in handles:
            h.remove()
    return total
