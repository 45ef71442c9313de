"""V2V-PoseNet structure: the paper's parameter count, shapes, init and grid sizes."""

from __future__ import annotations

import pytest
import torch

from v2v_ros.core.model import Res3D, V2VPoseNet, count_macs


def test_parameter_count_matches_released_network() -> None:
    model = V2VPoseNet(21)
    assert sum(p.numel() for p in model.parameters()) == 3_410_453


def test_forward_shape_88_and_macs() -> None:
    model = V2VPoseNet(21).eval()
    assert count_macs(model, 88) == 36_398_782_464  # 36.4 GMAC, the figure the perf issue quotes
    with torch.no_grad():
        y = model(torch.zeros(1, 1, 88, 88, 88))
    assert y.shape == (1, 21, 44, 44, 44)


@pytest.mark.parametrize("size", [16, 32, 48])
def test_fully_convolutional_other_grids(size: int) -> None:
    model = V2VPoseNet(14).eval()
    with torch.no_grad():
        y = model(torch.rand(2, 1, size, size, size))
    assert y.shape == (2, 14, size // 2, size // 2, size // 2)


def test_initialisation_follows_the_paper() -> None:
    torch.manual_seed(0)
    model = V2VPoseNet(21)
    convs = [m for m in model.modules() if isinstance(m, (torch.nn.Conv3d, torch.nn.ConvTranspose3d))]
    assert len(convs) == 1 + 2 * 11 + 3 + 2 + 2 + 1  # basic, 11 res pairs, 3 res skips, ups, 1x1 basics, output
    w = torch.cat([m.weight.flatten() for m in convs])
    assert abs(w.std().item() - 0.001) < 5e-5 and abs(w.mean().item()) < 5e-5
    assert all(torch.count_nonzero(m.bias) == 0 for m in convs)


def test_res_block_skip_projection_only_when_channels_change() -> None:
    assert isinstance(Res3D(32, 32).skip, torch.nn.Identity)
    assert isinstance(Res3D(16, 32).skip[0], torch.nn.Conv3d)


def test_gradients_flow_to_the_first_layer() -> None:
    model = V2VPoseNet(3)
    model.reset_parameters()
    for m in model.modules():  # larger init so the signal survives 30 layers in one step
        if isinstance(m, (torch.nn.Conv3d, torch.nn.ConvTranspose3d)):
            torch.nn.init.kaiming_normal_(m.weight)
    y = model(torch.rand(1, 1, 16, 16, 16))
    y.square().mean().backward()
    assert model.front_layers[0][0].weight.grad.abs().sum() > 0
