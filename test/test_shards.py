"""v2v-shards format round trip, cube crops, the synth CLI and its rosbag2 output (sqlite3 and mcap)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from v2v_ros.cli import main
from v2v_ros.core.camera import Intrinsics
from v2v_ros.core.skeletons import HAND_MSRA21
from v2v_ros.data.shards import Frame, ShardDataset, ShardWriter, crop_to_cube, cube_box
from v2v_ros.data.synthetic import SynthConfig, render_frame

NAMES = list(HAND_MSRA21.joint_names)


def _random_frame(rng: np.random.Generator, i: int) -> Frame:
    width, height = (640, 480) if i % 2 else (320, 240)
    w, h = int(rng.integers(1, 90)), int(rng.integers(1, 70))
    u0, v0 = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
    depth = rng.integers(0, 65536, size=(h, w)).astype(np.float32)
    depth[rng.random((h, w)) < 0.3] = 0
    intr = Intrinsics(*(float(x) for x in rng.uniform(100, 700, 4)))
    joints = rng.normal(0, 300, (21, 3)).astype(np.float32)
    return Frame(depth, (u0, v0), intr, (width, height), joints, {"handedness": ("left", "right")[i % 2], "i": i})


def test_round_trip_is_exact(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frames = [_random_frame(rng, i) for i in range(7)]
    with ShardWriter(tmp_path / "ds", joint_names=NAMES, skeleton="hand_msra21", meta_extra={"seed": 5},
                     shard_size=3) as w:
        for f in frames:
            w.add(f)
    ds = ShardDataset(tmp_path / "ds")
    assert len(ds) == 7 and ds.num_shards == 3 and ds.shard_sizes == [3, 3, 1]
    assert ds.joint_names == NAMES and ds.skeleton == "hand_msra21"
    meta = json.loads((tmp_path / "ds" / "meta.json").read_text())
    assert meta["format"] == "v2v-shards" and meta["version"] == 1 and meta["count"] == 7 and meta["seed"] == 5
    assert [s["file"] for s in meta["shards"]] == ["shard-00000.npz", "shard-00001.npz", "shard-00002.npz"]
    order = [4, 0, 6, 1, 5, 2, 3, -1]
    for i in order:
        got, want = ds[i], frames[i]
        assert got.depth.dtype == np.float32
        np.testing.assert_array_equal(got.depth, want.depth)
        assert got.offset == want.offset and got.image_size == want.image_size
        assert got.intrinsics == want.intrinsics
        np.testing.assert_array_equal(got.joints, want.joints)
        assert got.info == want.info
    streamed = list(ds.iter_shard(1))
    assert len(streamed) == 3
    for j, f in enumerate(streamed):
        np.testing.assert_array_equal(f.depth, frames[3 + j].depth)
    assert [f.info["i"] for f in ds] == list(range(7))
    np.testing.assert_array_equal(ds.shard_arrays(0)["handedness"], [1, 0, 1])
    with pytest.raises(IndexError):
        ds[7]
    full = ds[2].full_depth()
    u0, v0 = frames[2].offset
    h, w = frames[2].depth.shape
    assert full.shape == (frames[2].image_size[1], frames[2].image_size[0])
    np.testing.assert_array_equal(full[v0:v0 + h, u0:u0 + w], frames[2].depth)
    assert full.sum() == frames[2].depth.sum()


def test_writer_refuses_to_overwrite_and_checks_joints(tmp_path: Path) -> None:
    with ShardWriter(tmp_path, joint_names=NAMES, skeleton="hand_msra21") as w:
        with pytest.raises(ValueError):
            w.add(Frame(np.zeros((2, 2), np.float32), (0, 0), Intrinsics(1, 1, 0, 0), (2, 2), np.zeros((5, 3))))
    assert len(ShardDataset(tmp_path)) == 0
    with pytest.raises(FileExistsError):
        ShardWriter(tmp_path, joint_names=NAMES, skeleton="hand_msra21")


def test_cube_crop_contains_the_hand_and_matches_the_image() -> None:
    f = render_frame(3, 2)
    c = crop_to_cube(f, 320.0)
    u0, v0 = c.offset
    h, w = c.depth.shape
    np.testing.assert_array_equal(c.depth, f.depth[v0:v0 + h, u0:u0 + w])
    np.testing.assert_array_equal(c.full_depth()[v0:v0 + h, u0:u0 + w], f.depth[v0:v0 + h, u0:u0 + w])
    uv = f.intrinsics.to_uvd(f.joints.astype(np.float64))
    assert np.all((uv[:, 0] >= u0) & (uv[:, 0] < u0 + w) & (uv[:, 1] >= v0) & (uv[:, 1] < v0 + h))
    # far away the cube's projection shrinks; near the camera it is clipped to the image
    k = Intrinsics(615.0, 615.0, 319.5, 239.5)
    assert cube_box(np.array([0.0, 0.0, 2000.0]), 320.0, k, (640, 480))[2] < 120
    assert cube_box(np.array([0.0, 0.0, 200.0]), 320.0, k, (640, 480)) == (0, 0, 640, 480)


def test_synth_cli_writes_shards_matching_render_frame(tmp_path: Path) -> None:
    out = tmp_path / "syn"
    assert main(["synth", "--out", str(out), "--n", "5", "--seed", "7", "--preset", "msra", "--shard-size", "2"]) == 0
    ds = ShardDataset(out)
    assert len(ds) == 5 and ds.shard_sizes == [2, 2, 1]
    assert ds.meta["seed"] == 7 and ds.meta["generator"]["config"]["fx"] == pytest.approx(241.42)
    cfg = SynthConfig.preset("msra")
    for i in (0, 4):
        want = crop_to_cube(render_frame(7, i, cfg), 320.0)
        got = ds[i]
        np.testing.assert_array_equal(got.depth, want.depth)
        assert got.offset == want.offset and got.image_size == (320, 240)
        np.testing.assert_array_equal(got.joints, want.joints)
    assert main(["synth", "--out", str(out), "--n", "1"]) == 1  # never overwrites


@pytest.mark.parametrize("fmt", ["sqlite3", "mcap"])
def test_synth_bag_reads_back(tmp_path: Path, fmt: str) -> None:
    from rosbags.rosbag2 import Reader

    from v2v_ros.data.rosbag_types import typestore_with_v2v_msgs
    from v2v_ros.data.synthetic.bag import DEPTH_TOPIC, FRAME_ID, GT_TOPIC, INFO_TOPIC, stamp_ns

    out = tmp_path / "syn"
    n = 3
    args = ["synth", "--out", str(out), "--n", str(n), "--seed", "2", "--preset", "msra", "--bag", "--bag-format", fmt]
    assert main(args) == 0
    cfg = SynthConfig.preset("msra")
    frames = [render_frame(2, i, cfg) for i in range(n)]
    ts = typestore_with_v2v_msgs()
    seen: dict[str, list] = {DEPTH_TOPIC: [], INFO_TOPIC: [], GT_TOPIC: []}
    with Reader(out / "bag") as reader:
        assert reader.message_count == 3 * n
        for conn, stamp, raw in reader.messages():
            msg = ts.deserialize_cdr(raw, conn.msgtype)
            assert msg.header.frame_id == FRAME_ID
            assert msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec == stamp
            seen[conn.topic].append((stamp, msg))
    for topic, msgs in seen.items():
        assert [s for s, _ in msgs] == [stamp_ns(i) for i in range(n)], topic
    for i, f in enumerate(frames):
        img = seen[DEPTH_TOPIC][i][1]
        assert img.encoding == "16UC1" and img.is_bigendian == 0 and img.step == 2 * img.width
        assert (img.width, img.height) == (320, 240)
        depth = np.frombuffer(bytes(img.data), dtype="<u2").reshape(img.height, img.width)
        np.testing.assert_array_equal(depth, f.depth.astype(np.uint16))
        info = seen[INFO_TOPIC][i][1]
        assert info.distortion_model == "plumb_bob" and len(info.d) == 0
        assert Intrinsics.from_k(info.k) == f.intrinsics and info.p[0] == f.intrinsics.fx
        gt = seen[GT_TOPIC][i][1]
        assert len(gt.skeletons) == 1
        sk = gt.skeletons[0]
        assert sk.id == 0 and sk.skeleton_type == "hand_msra21" and list(sk.joint_names) == NAMES and sk.valid
        pos = np.array([[k.position.x, k.position.y, k.position.z] for k in sk.keypoints])
        np.testing.assert_allclose(pos, f.joints / 1000.0, rtol=1e-6, atol=1e-9)
        assert all(k.confidence == 1.0 for k in sk.keypoints) and sk.score == 1.0
        ref = np.array([sk.reference_point.x, sk.reference_point.y, sk.reference_point.z])
        np.testing.assert_allclose(ref, f.joints.astype(np.float64).mean(axis=0) / 1000.0, atol=1e-7)
        assert sk.cube_size == pytest.approx(0.2)
    assert len(ShardDataset(out)) == n
