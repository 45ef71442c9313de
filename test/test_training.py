"""Training: augmentation consistency, the loop, resume, torchrun/DDP and the refiner."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from v2v_ros.core.camera import Intrinsics
from v2v_ros.core.checkpoint import load_checkpoint
from v2v_ros.core.estimator import PoseEstimator
from v2v_ros.core.refiner import Refiner
from v2v_ros.core.skeletons import HAND_MSRA21
from v2v_ros.core.voxel import VoxelGrid
from v2v_ros.data.shards import ShardDataset, ShardWriter, crop_to_cube
from v2v_ros.data.synthetic import render_frame
from v2v_ros.train.config import TrainConfig
from v2v_ros.train.loop import train
from v2v_ros.train.refiner import RefinerConfig, train_refiner
from v2v_ros.train.samples import Augmentation, make_sample

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    with ShardWriter(root, HAND_MSRA21.joint_names, HAND_MSRA21.name, shard_size=4) as w:
        for i in range(12):
            w.add(crop_to_cube(render_frame(7, i), 320.0))
    return root


def _cfg(shards: Path, out: Path, **kw) -> TrainConfig:
    base = dict(train_data=str(shards), val_data=str(shards), out_dir=str(out), grid_size=16, batch_size=2,
                epochs=2, steps_per_epoch=2, workers=0, threads=1, val_frames=4, translation_voxels=1.0)
    base.update(kw)
    return TrainConfig.from_dict(base)


def test_augmentation_moves_points_and_joints_together(shards: Path) -> None:
    """The voxel under each joint stays the same voxel relative to the surface after augmentation."""
    f = ShardDataset(shards)[0]
    grid = VoxelGrid(200.0, 32)
    rng = np.random.default_rng(0)
    aug = Augmentation(40.0, (0.8, 1.2), 3.0)
    for _ in range(5):
        state = rng.bit_generator.state
        vox, hm = make_sample(f.depth, f.offset, f.intrinsics, f.joints, grid, rng, aug)
        # replay the same random draw to get the transform and check visible fingertips stay on occupied voxels
        rng2 = np.random.default_rng()
        rng2.bit_generator.state = state
        a, t = aug.sample(rng2, grid.voxel_size)
        c = f.joints.mean(axis=0)
        jt = (f.joints - c) @ a.T + c + t
        dec, _ = grid.decode(hm, c)
        np.testing.assert_allclose(dec, jt, atol=1e-3)
        assert vox.shape == (1, 32, 32, 32) and vox.sum() > 50
        g = np.floor(grid.to_grid(jt, c)).astype(int)
        ok = np.all((g >= 2) & (g < 30), axis=1)
        near = [vox[0, i - 2:i + 3, j - 2:j + 3, k - 2:k + 3].any() for (i, j, k) in g[ok]]
        assert np.mean(near) > 0.8  # joints lie inside/under the hand surface


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), wall=st.floats(380.0, 620.0), scale=st.floats(0.8, 1.2))
def test_augmented_voxels_equal_transforming_every_pixel(seed: int, wall: float, scale: float) -> None:
    """The pixel crop before back-projection is an optimisation only: it must keep every
    point that the augmentation moves into the cube (a wall filling the view at any
    depth in the cube, rotated by up to 40 degrees and shrunk to 0.8)."""
    cam = Intrinsics(fx=300.0, fy=300.0, cx=320.0, cy=240.0)
    depth = np.full((480, 640), wall, np.float32)
    joints = np.array([[0.0, 0.0, 500.0]])
    grid = VoxelGrid(200.0, 32)
    aug = Augmentation(40.0, (scale, scale), 8.0)
    rng = np.random.default_rng(seed)
    state = rng.bit_generator.state
    vox, _ = make_sample(depth, (0, 0), cam, joints, grid, rng, aug)
    replay = np.random.default_rng()
    replay.bit_generator.state = state
    a, t = aug.sample(replay, grid.voxel_size)
    c = joints.mean(axis=0)
    pts = (cam.backproject(depth).astype(np.float64) - c) @ a.T + c + t
    np.testing.assert_array_equal(vox[0], grid.voxelize(pts.astype(np.float32), c))


def test_training_writes_epoch_checkpoints_and_resumes(shards: Path, tmp_path: Path) -> None:
    out, model = train(_cfg(shards, tmp_path / "run"))
    assert sorted(p.name for p in out.glob("epoch_*.safetensors")) == ["epoch_01.safetensors", "epoch_02.safetensors"]
    state, meta = load_checkpoint(out / "epoch_02.safetensors")
    assert meta.grid_size == 16 and meta.provenance["epoch"] == 2 and np.isfinite(meta.provenance["val_mean_error_mm"])
    assert torch.equal(state["output_layer.weight"], model.state_dict()["output_layer.weight"])
    log = (out / "log.csv").read_text().splitlines()
    assert log[0].startswith("epoch,step,loss") and len(log) >= 3
    # Resume: asking for a third epoch continues from last.pt instead of starting over.
    out, model3 = train(_cfg(shards, tmp_path / "run", epochs=3))
    assert (out / "epoch_03.safetensors").exists()
    assert not torch.equal(model3.state_dict()["output_layer.weight"], state["output_layer.weight"])


def test_training_is_deterministic(shards: Path, tmp_path: Path) -> None:
    _, a = train(_cfg(shards, tmp_path / "a", epochs=1))
    _, b = train(_cfg(shards, tmp_path / "b", epochs=1))
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_torchrun_two_cpu_ranks_hold_identical_weights(shards: Path, tmp_path: Path) -> None:
    script = tmp_path / "ddp_train.py"
    script.write_text(textwrap.dedent(f"""
        import os, torch
        torch.set_num_threads(1)
        from v2v_ros.train.config import TrainConfig
        from v2v_ros.train.loop import train
        cfg = TrainConfig.from_dict(dict(train_data={str(shards)!r}, out_dir={str(tmp_path / 'ddp')!r}, grid_size=16,
                                         batch_size=2, epochs=1, steps_per_epoch=3, workers=0, threads=1))
        _, model = train(cfg)
        torch.save(model.state_dict(), {str(tmp_path)!r} + f"/rank{{os.environ['RANK']}}.pt")
    """))
    env = dict(os.environ, OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={_free_port()}", str(script)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0 = torch.load(tmp_path / "rank0.pt")
    r1 = torch.load(tmp_path / "rank1.pt")
    for k in r0:
        assert torch.equal(r0[k], r1[k]), k
    assert (tmp_path / "ddp" / "epoch_01.safetensors").exists()


def test_refiner_trains_loads_and_plugs_into_the_estimator(shards: Path, tmp_path: Path) -> None:
    cfg = RefinerConfig(train_data=str(shards), val_data=str(shards), out=str(tmp_path / "m.refiner.safetensors"),
                        steps=3, batch_size=4, threads=1, val_frames=4)
    path = train_refiner(cfg)
    ref = Refiner.load(path)
    f = ShardDataset(shards)[0]
    c = f.joints.mean(axis=0) + 10.0
    out = ref(f.full_depth(), f.intrinsics, c)
    assert out.shape == (3,) and np.all(np.isfinite(out))
    # PoseEstimator picks x.refiner.safetensors up next to x.safetensors
    train(_cfg(shards, tmp_path / "run", epochs=1))
    pose = tmp_path / "m.safetensors"
    (tmp_path / "run" / "epoch_01.safetensors").rename(pose)
    (tmp_path / "run" / "epoch_01.json").rename(tmp_path / "m.json")
    est = PoseEstimator.load(pose, device="cpu")
    assert est.refiner is not None
    res = est.estimate(f.full_depth(), f.intrinsics)
    assert "refine" in res.timings
    assert PoseEstimator.load(pose, device="cpu", refiner=False).refiner is None


def test_ensemble_averages_member_coordinates(shards: Path, tmp_path: Path) -> None:
    out, _ = train(_cfg(shards, tmp_path / "run"))
    paths = [out / "epoch_01.safetensors", out / "epoch_02.safetensors"]
    f = ShardDataset(shards)[1]
    ref = f.joints.mean(axis=0)
    singles = [PoseEstimator.load(p, device="cpu").estimate(f.full_depth(), f.intrinsics, ref) for p in paths]
    ens = PoseEstimator.load(paths, device="cpu").estimate(f.full_depth(), f.intrinsics, ref)
    # 0.01 mm: the batched ensemble and two single forwards sum in different orders (the thread count
    # may differ between calls, core.threads); a wrong member or weighting is off by millimetres
    assert np.abs(singles[0].joints - singles[1].joints).max() > 0.05  # the members really differ
    np.testing.assert_allclose(ens.joints, (singles[0].joints + singles[1].joints) / 2, atol=1e-2)


def test_a_missing_validation_folder_fails_before_any_training(shards: Path, tmp_path: Path) -> None:
    cfg = _cfg(shards, tmp_path / "run")
    cfg.val_data = str(tmp_path / "no_such_val")
    with pytest.raises(FileNotFoundError, match="no_such_val"):
        train(cfg)
    assert not (tmp_path / "run" / "last.pt").exists() and not list((tmp_path / "run").glob("epoch_*"))


def test_config_rejects_unknown_keys() -> None:
    with pytest.raises(ValueError, match="unknown key"):
        TrainConfig.from_dict({"learning_rate": 1.0})


def test_intrinsics_of_crops_keep_projection() -> None:
    from v2v_ros.train.refiner import crop_intrinsics

    cam = Intrinsics(600, 600, 320, 240)
    crop = crop_intrinsics(cam, (100, 50))
    p = np.array([10.0, 20.0, 500.0])
    np.testing.assert_allclose(crop.to_uvd(p)[:2], cam.to_uvd(p)[:2] - [100, 50])


def test_step_decay_of_the_learning_rate(shards: Path, tmp_path: Path) -> None:
    cfg = TrainConfig.from_dict({"lr": 1e-3, "lr_milestones": [1, 3], "lr_gamma": 0.5})
    assert [cfg.lr_at(e) for e in range(5)] == [1e-3, 5e-4, 5e-4, 2.5e-4, 2.5e-4]
    assert TrainConfig().lr_at(9) == TrainConfig().lr  # paper default: constant
    with pytest.raises(ValueError, match="lr_milestones"):
        TrainConfig.from_dict({"lr_milestones": [0]})
    # The optimiser really runs the second epoch at the decayed rate (and last.pt keeps it for a resume).
    out, _ = train(_cfg(shards, tmp_path / "run", lr_milestones=[1], lr_gamma=0.5))
    state = torch.load(out / "last.pt", weights_only=False)
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.5 * TrainConfig().lr)


def test_init_from_another_grid_carries_weights_and_optimiser(shards: Path, tmp_path: Path) -> None:
    """A 16³ run initialises a 24³ run (fully convolutional): same weights, same RMSProp state."""
    src, small = train(_cfg(shards, tmp_path / "small", epochs=1))
    big_cfg = _cfg(shards, tmp_path / "big", grid_size=24, epochs=1, steps_per_epoch=1, lr=0.0,
                   init_from=str(src / "last.pt"))
    out, big = train(big_cfg)
    # lr 0: the step changes nothing, so the 24³ model holds exactly the 16³ weights ...
    for k, v in small.state_dict().items():
        if v.is_floating_point() and "running" not in k:  # BatchNorm statistics follow the new data
            assert torch.equal(v, big.state_dict()[k]), k
    # ... and the optimiser state came along (square averages are not a fresh zero start).
    moved = torch.load(out / "last.pt", weights_only=False)["optimizer"]["state"]
    orig = torch.load(src / "last.pt", weights_only=False)["optimizer"]["state"]
    assert moved and all(int(moved[i]["step"]) == int(orig[i]["step"]) + 1 for i in orig)
    assert load_checkpoint(out / "epoch_01.safetensors")[1].grid_size == 24
    # From a shipped-style checkpoint: weights only; another skeleton is refused by name.
    _, from_st = train(_cfg(shards, tmp_path / "st", epochs=1, steps_per_epoch=1, lr=0.0,
                            init_from=str(src / "epoch_01.safetensors")))
    assert torch.equal(from_st.state_dict()["output_layer.weight"], small.state_dict()["output_layer.weight"])
    with pytest.raises(ValueError, match="joints"):
        train(_cfg(shards, tmp_path / "body", skeleton="body_itop15", init_from=str(src / "epoch_01.safetensors")))
    with pytest.raises(FileNotFoundError, match="init_from"):
        train(_cfg(shards, tmp_path / "none", init_from=str(tmp_path / "missing.pt")))


def test_a_one_channel_checkpoint_starts_a_two_channel_run_as_the_same_network(shards: Path, tmp_path: Path) -> None:
    """input_channels: 2 from a one-channel checkpoint: the old first-layer weights, zeros for the new channel."""
    src, one = train(_cfg(shards, tmp_path / "one", epochs=1))
    out, two = train(_cfg(shards, tmp_path / "two", epochs=1, steps_per_epoch=1, lr=0.0, input_channels=2,
                          init_from=str(src / "epoch_01.safetensors")))
    w, w1 = two.state_dict()["front_layers.0.0.weight"], one.state_dict()["front_layers.0.0.weight"]
    assert w.shape[1] == 2 and torch.equal(w[:, :1], w1) and not w[:, 1].any()
    assert load_checkpoint(out / "epoch_01.safetensors")[1].input_channels == 2
    # From a one-channel last.pt: the weights are widened, its RMSProp state (narrower shapes) is left behind.
    _, from_pt = train(_cfg(shards, tmp_path / "two_pt", epochs=1, steps_per_epoch=1, lr=0.0, input_channels=2,
                            init_from=str(src / "last.pt")))
    assert torch.equal(from_pt.state_dict()["front_layers.0.0.weight"][:, :1], w1)
    with pytest.raises(ValueError, match="input_channels"):
        _cfg(shards, tmp_path / "three", input_channels=3)


def test_several_train_folders_are_pooled(shards: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A list of folders feeds one stream: a pass yields every frame of every folder once."""
    import v2v_ros.train.stream as stream_mod

    more = tmp_path / "more"
    with ShardWriter(more, HAND_MSRA21.joint_names, HAND_MSRA21.name, shard_size=4) as w:
        for i in range(8):
            w.add(crop_to_cube(render_frame(8, i), 320.0))
    # Mark each sample with its frame's joints so the pass can be checked frame by frame.
    monkeypatch.setattr(stream_mod, "make_sample", lambda depth, off, intr, joints, *a, **k: (joints, joints))
    grid = VoxelGrid(200.0, 16)
    stream = stream_mod.ShardStream([str(shards), str(more)], grid, Augmentation(0.0, (1.0, 1.0), 0.0), 1.7, seed=3)
    it = iter(stream)
    seen = [next(it)[0].numpy().tobytes() for _ in range(20)]
    expected = {f.joints.tobytes() for root in (shards, more) for f in ShardDataset(root)}
    assert len(expected) == 20 and set(seen) == expected
    # One folder behaves as before (same order as a plain string root).
    a = iter(stream_mod.ShardStream(str(shards), grid, Augmentation(0.0, (1.0, 1.0), 0.0), 1.7, seed=3))
    b = iter(stream_mod.ShardStream([str(shards)], grid, Augmentation(0.0, (1.0, 1.0), 0.0), 1.7, seed=3))
    assert all(torch.equal(next(a)[0], next(b)[0]) for _ in range(12))
    # The loop counts the pooled frames and refuses a folder of another skeleton.
    body = tmp_path / "body"
    with ShardWriter(body, tuple(f"j{i}" for i in range(21)), "body_itop15", shard_size=4) as w:
        w.add(crop_to_cube(render_frame(8, 0), 320.0))  # only the declared skeleton differs
    with pytest.raises(ValueError, match="body_itop15"):
        train(_cfg(shards, tmp_path / "mixed", train_data=[str(shards), str(body)]))
    with pytest.raises(ValueError, match="train_data"):
        _cfg(shards, tmp_path / "bad", train_data=[])


def test_every_shipped_training_config_is_valid() -> None:
    """Each config/train/*.yaml parses; a fine-tune's init_from names another config's run or committed
    weights (a shipped model or models/stages/, what a stage run in another session starts from)."""
    from v2v_ros.train.detector import DetectorConfig
    from v2v_ros.train.presence import PresenceConfig
    from v2v_ros.train.refiner import RefinerConfig
    from v2v_ros.train.separator import SeparatorConfig

    pose: dict[str, TrainConfig] = {}
    for path in sorted((ROOT / "config" / "train").glob("*.yaml")):
        if path.stem.startswith("refiner"):
            RefinerConfig.from_yaml(path)
        elif path.stem.startswith("detector"):
            DetectorConfig.from_yaml(path)
        elif path.stem.startswith("presence"):
            PresenceConfig.from_yaml(path)
        elif path.stem.startswith("separator"):
            sep = SeparatorConfig.from_yaml(path)
            assert not sep.first_pose_model or (ROOT / sep.first_pose_model).is_file(), path.name
        else:
            pose[path.stem] = TrainConfig.from_yaml(path)
    assert {"hand_synthetic", "body_synthetic", "hand_paper88"} <= set(pose)
    runs = {c.out_dir for c in pose.values()}
    assert len(runs) == len(pose), "two configs write the same run folder"
    for name, cfg in pose.items():
        if cfg.init_from.startswith("models/"):
            assert (ROOT / cfg.init_from).is_file() and (ROOT / cfg.init_from).with_suffix(".json").is_file(), name
        elif cfg.init_from:
            assert cfg.init_from.endswith("/last.pt") and str(Path(cfg.init_from).parent) in runs - {cfg.out_dir}, name


def test_log_csv_numbers_epochs_from_one_on_every_row(shards: Path, tmp_path: Path) -> None:
    """The loss rows of the first epoch say epoch 1, like its validation row and epoch_01.safetensors."""
    import csv

    out, _ = train(_cfg(shards, tmp_path / "run", epochs=1, log_every=1))
    rows = list(csv.DictReader((out / "log.csv").open()))
    loss_rows = [r for r in rows if r["loss"] != "nan"]
    val_rows = [r for r in rows if r["val_mean_error_mm"] != "nan"]
    assert len(loss_rows) == 2 and len(val_rows) == 1
    assert {r["epoch"] for r in rows} == {"1"}
