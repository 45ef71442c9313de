"""The second input channel: the points a mask removed from a cube as another hand's.

From the training sample through the checkpoint and the int8 calibration to the estimator's masked cubes,
the network must see in channel 1 exactly the pixels that were taken out of channel 0, and a one-channel
model must behave as before.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from v2v_ros.core.camera import cube_footprint
from v2v_ros.core.checkpoint import CheckpointError, ModelMeta, build_model, load_checkpoint, save_checkpoint
from v2v_ros.core.estimator import PoseEstimator, without_hands
from v2v_ros.core.inference import make_engine
from v2v_ros.core.model import V2VPoseNet, input_channels
from v2v_ros.core.skeletons import HAND_MSRA21
from v2v_ros.core.voxel import OTHER_TARGETS_CHANNEL, VoxelGrid, removed_depth
from v2v_ros.data.calibration import synthetic_calibration
from v2v_ros.data.synthetic import SynthConfig
from v2v_ros.data.synthetic.multi import HandsSpec, render_multi_frame
from v2v_ros.train.loop import _widened_input
from v2v_ros.train.samples import Augmentation, make_sample

CUBE = 250.0


def _meta(grid: int = 16, channels: int = 1) -> ModelMeta:
    return ModelMeta(HAND_MSRA21.name, list(HAND_MSRA21.joint_names), grid, CUBE, input_channels=channels)


def _touching_pair():
    """A two-hand frame whose hands are both well visible and close enough to share a cube."""
    for i in range(60):
        f = render_multi_frame(11, i, SynthConfig(), HandsSpec(2, 2))
        if min(t["visible"] for t in f.info["targets"]) > 0.6 and \
                np.linalg.norm(f.targets[0].mean(0) - f.targets[1].mean(0)) < 0.5 * CUBE:
            return f
    raise AssertionError("no two-hand frame with hands in one cube among the first 60")


@settings(max_examples=60, deadline=None)
@given(arrays(np.float32, (6, 7), elements=st.sampled_from([0.0, 300.0, 812.5, 1500.0])),
       arrays(np.bool_, (6, 7)))
def test_removed_depth_is_exactly_what_a_mask_zeroed(full: np.ndarray, mask: np.ndarray) -> None:
    kept = np.where(mask, 0.0, full).astype(np.float32)
    removed = removed_depth(full, kept)
    np.testing.assert_array_equal(removed + kept, full)  # the two images partition the readings
    assert not np.any((removed > 0) & (kept > 0))
    np.testing.assert_array_equal(removed_depth(full, full), np.zeros_like(full))


def test_a_two_channel_sample_splits_the_points_under_the_same_augmentation() -> None:
    """Channel 0 and channel 1 together are the one-channel sample of the whole image; heatmaps are unchanged."""
    f = _touching_pair()
    full, intr, joints = f.full_depth(), f.intrinsics, f.targets[0]
    kept = without_hands(full, intr, [f.targets[1]])
    removed = removed_depth(full, kept)
    assert removed.any()
    grid, aug = VoxelGrid(CUBE, 32), Augmentation(30.0, (0.9, 1.1), 2.0)
    one, hm1 = make_sample(full, (0, 0), intr, joints, grid, np.random.default_rng(5), aug)
    two, hm2 = make_sample(kept, (0, 0), intr, joints, grid, np.random.default_rng(5), aug, channels=2,
                           removed=removed)
    assert one.shape == (1, 32, 32, 32) and two.shape == (2, 32, 32, 32)
    np.testing.assert_array_equal(np.maximum(two[0], two[OTHER_TARGETS_CHANNEL]), one[0])
    assert two[OTHER_TARGETS_CHANNEL].sum() > 0 and two[0].sum() > 0
    np.testing.assert_array_equal(hm1, hm2)
    nothing, _ = make_sample(full, (0, 0), intr, joints, grid, np.random.default_rng(5), aug, channels=2)
    np.testing.assert_array_equal(nothing[0], one[0])
    assert not nothing[OTHER_TARGETS_CHANNEL].any()
    with pytest.raises(ValueError, match="second input channel"):
        make_sample(kept, (0, 0), intr, joints, grid, np.random.default_rng(5), removed=removed)


def test_the_metadata_says_how_many_input_channels_and_the_weights_must_agree(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "two", V2VPoseNet(21, 2).state_dict(), _meta(channels=2))
    state, meta = load_checkpoint(path)
    assert meta.input_channels == 2 and input_channels(build_model(state, meta)) == 2
    with pytest.raises(CheckpointError, match="input channel"):
        build_model(state, dataclasses.replace(meta, input_channels=1))
    for bad in (3, 0, True):
        with pytest.raises(CheckpointError, match="input_channels"):
            dataclasses.replace(meta, input_channels=bad).validate()
    assert _meta().input_channels == 1  # metadata written before the field: the paper's one channel


def test_a_one_channel_network_widened_with_zero_weights_is_the_same_network() -> None:
    torch.manual_seed(0)
    one = V2VPoseNet(21).eval()
    for p in one.parameters():  # weights large enough for the outputs to differ if the channel counted
        p.data.normal_(0.0, 0.05)
    two = V2VPoseNet(21, 2).eval()
    two.load_state_dict(_widened_input(two, one.state_dict()))
    x = (torch.rand(2, 1, 16, 16, 16) > 0.8).float()
    other = (torch.rand(2, 1, 16, 16, 16) > 0.8).float()
    with torch.inference_mode():
        np.testing.assert_allclose(two(torch.cat([x, other], 1)).numpy(), one(x).numpy(), rtol=1e-5, atol=1e-6)
    assert torch.equal(two.front_layers[0][0].weight[:, 0], one.front_layers[0][0].weight[:, 0])


def test_the_estimator_gives_a_two_channel_model_what_the_mask_removed() -> None:
    f = _touching_pair()
    full, intr = f.full_depth(), f.intrinsics
    kept = without_hands(full, intr, [f.targets[1]])
    centre = f.targets[0].mean(0)
    seen: list[np.ndarray] = []
    est = PoseEstimator(V2VPoseNet(21, 2), _meta(channels=2), device="cpu", precision="fp32")
    forward = est.forward
    est.forward = lambda v: (seen.append(v.copy()), forward(v))[1]  # type: ignore[method-assign]
    (r,) = est.estimate_many(kept, intr, [centre], full_mm=full)
    assert r.valid and seen[-1].shape == (1, 2, 16, 16, 16)
    grid = est.grid
    u0, v0, u1, v1 = cube_footprint(intr, centre, CUBE, full.shape[1], full.shape[0])
    expect = np.zeros((2, 16, 16, 16), np.float32)
    grid.voxelize_depth(kept[v0:v1, u0:u1], intr, centre, offset=(u0, v0), out=expect[0])
    grid.voxelize_depth(removed_depth(full, kept)[v0:v1, u0:u1], intr, centre, offset=(u0, v0), out=expect[1])
    assert expect[1].sum() > 0
    np.testing.assert_array_equal(seen[-1][0], expect)
    est.estimate_many(kept, intr, [centre])  # nothing said about what was removed: an empty channel
    assert seen[-1][0, 0].sum() == expect[0].sum() and not seen[-1][0, 1].any()
    with pytest.raises(ValueError, match="full_mm"):
        est.estimate_many(kept, intr, [centre], full_mm=full[:-1])


def test_two_channel_int8_is_calibrated_on_cubes_with_another_hand_removed() -> None:
    vols = synthetic_calibration(16, CUBE, count=4, channels=2)
    assert vols.shape == (4, 2, 16, 16, 16)
    assert vols[:, 0].reshape(4, -1).sum(1).min() > 0
    assert not vols[0::2, 1].any() and vols[1::2, 1].reshape(2, -1).sum(1).min() > 0  # single hands, then pairs
    net = V2VPoseNet(21, 2).eval()
    engine = make_engine(net, "cpu", "int8", grid_size=16, calibration=vols)
    assert engine.run_numpy(vols[:2]).shape == (2, 21, 8, 8, 8)
    with pytest.raises(ValueError, match=r"\(B, 2, N, N, N\)"):
        engine.run_numpy(vols[:2, :1])
    with pytest.raises(ValueError, match="channels"):
        synthetic_calibration(16, CUBE, channels=3)


def test_masked_training_samples_carry_the_other_hand_in_the_second_channel(tmp_path: Path) -> None:
    """mask_other_hands with two channels: what the mask took out of channel 0 is in channel 1."""
    from v2v_ros.data.shards import ShardWriter
    from v2v_ros.train.stream import ShardStream

    with ShardWriter(tmp_path / "two", list(HAND_MSRA21.joint_names), HAND_MSRA21.name, shard_size=2) as w:
        w.add(_touching_pair())
    grid, still = VoxelGrid(CUBE, 16), Augmentation(0.0, (1.0, 1.0), 0.0)
    samples = {}
    for channels, mask in ((1, 0.0), (2, 1.0), (2, 0.0)):
        it = iter(ShardStream(str(tmp_path / "two"), grid, still, 1.7, seed=4, mask_other_hands=mask,
                              channels=channels))
        samples[channels, mask] = next(it)[0].numpy()  # the first: the same hand drawn in all three
    whole, masked, unmasked = samples.values()
    assert masked.shape == (2, 16, 16, 16) and masked[1].sum() > 0 and masked[0].sum() < whole[0].sum()
    np.testing.assert_array_equal(np.maximum(masked[0], masked[1]), whole[0])
    np.testing.assert_array_equal(unmasked[0], whole[0])
    assert not unmasked[1].any()


def test_the_reproduction_record_of_a_two_channel_checkpoint_builds_it_as_its_metadata_says(tmp_path: Path) -> None:
    """tools/ship_model.py measures every shipped checkpoint on fresh frames: a two-channel one too."""
    from v2v_ros.data.synthetic import render_frame
    from v2v_ros.train.reproduce import network_error

    path = save_checkpoint(tmp_path / "two", V2VPoseNet(21, 2).state_dict(), _meta(channels=2))
    assert np.isfinite(network_error(path, [render_frame(3, i) for i in range(2)]))


def test_an_ensemble_of_two_channel_checkpoints_gets_two_channels_and_members_must_agree(tmp_path: Path) -> None:
    from test_inference import _net

    paths = [save_checkpoint(tmp_path / f"m{k}", _net(k, channels=2).state_dict(), _meta(channels=2)) for k in (1, 2)]
    f = _touching_pair()
    full, intr = f.full_depth(), f.intrinsics
    kept, centre = without_hands(full, intr, [f.targets[1]]), f.targets[0].mean(0)
    est = PoseEstimator.load(paths, device="cpu", precision="fp32")
    assert input_channels(est.model) == 2
    members = [PoseEstimator.load(p, device="cpu", precision="fp32") for p in paths]
    (r,) = est.estimate_many(kept, intr, [centre], full_mm=full)
    alone = [m.estimate_many(kept, intr, [centre], full_mm=full)[0] for m in members]
    np.testing.assert_allclose(r.joints, np.mean([a.joints for a in alone], axis=0), atol=0.05)
    one = save_checkpoint(tmp_path / "one", _net(3).state_dict(), _meta())
    with pytest.raises(CheckpointError, match="input_channels"):
        PoseEstimator.load([paths[0], one], device="cpu")
