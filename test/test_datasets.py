"""Dataset readers: tiny fixtures written in the exact on-disk byte formats, read back and checked.

Each reader test checks values, the coordinate convention (a joint projected with
the dataset camera lands on the pixel where the fixture put the hand) and, where
the format has one, invalid-frame handling. No dataset is downloaded.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from v2v_ros.data import centers as centers_mod
from v2v_ros.data import datasets
from v2v_ros.data.datasets import DATASETS, get_dataset


def _blob(depth: np.ndarray, u: float, v: float, z: float, radius: int = 3) -> None:
    """Paint a small square of depth z around pixel (u, v): the 'hand' the joints must land on."""
    ui, vi = int(round(u)), int(round(v))
    depth[vi - radius:vi + radius + 1, ui - radius:ui + radius + 1] = z


def _joints_in_view(spec: datasets.DatasetSpec, n: int, seed: int = 0, z: float = 500.0) -> np.ndarray:
    """Random joints (n, 3) mm in the optical frame, well inside the image."""
    rng = np.random.default_rng(seed)
    w, h = spec.image_size
    uv = np.stack([rng.uniform(0.3 * w, 0.7 * w, n), rng.uniform(0.3 * h, 0.7 * h, n)], axis=1)
    d = z + rng.uniform(-40, 40, n)
    return np.asarray(spec.intrinsics.to_xyz(np.column_stack([uv, d])), dtype=np.float64)


# --------------------------------------------------------------------------- the table


def test_table_facts() -> None:
    assert set(DATASETS) >= {"msra", "nyu", "icvl", "hands2017", "itop_front", "itop_top", "synthetic"}
    nyu = get_dataset("nyu")
    assert nyu.num_joints == 36 and nyu.num_eval_joints == 14
    assert nyu.eval_joints == (0, 3, 6, 9, 12, 15, 18, 21, 24, 25, 27, 30, 31, 32)
    assert nyu.eval_intrinsics.fy == -587.07 and nyu.intrinsics.fy == 587.07
    assert get_dataset("icvl").num_eval_joints == 16
    assert get_dataset("msra").num_eval_joints == 21 and get_dataset("hands2017").num_eval_joints == 21
    assert get_dataset("ITOP").name == "itop_front" and get_dataset("itop_top").num_eval_joints == 15
    assert [get_dataset(n).cube_mm for n in ("msra", "icvl", "nyu", "hands2017", "itop_top")] == [200, 200, 250, 250,
                                                                                                  2000]
    syn = get_dataset("synthetic")
    assert syn.joint_names == get_dataset("msra").joint_names and syn.cube_mm == 200
    assert (syn.intrinsics.fx, syn.intrinsics.cx, syn.image_size) == (615.0, 319.5, (640, 480))
    for spec in DATASETS.values():
        assert len(set(spec.joint_names)) == spec.num_joints
        assert spec.eval_intrinsics is not None
        assert all(a != b for a, b in spec.bones)
    with pytest.raises(KeyError, match="known"):
        get_dataset("nope")
    full = np.arange(36 * 3, dtype=float).reshape(36, 3)
    assert np.array_equal(nyu.select_eval(full)[1], full[3])
    assert nyu.select_eval(full[:14]).shape == (14, 3)


# --------------------------------------------------------------------------- MSRA


def _write_msra_bin(path: Path, depth: np.ndarray, box: tuple[int, int, int, int]) -> None:
    left, top, right, bottom = box
    h, w = depth.shape
    crop = depth[top:bottom, left:right].astype("<f4")
    path.write_bytes(struct.pack("<6I", w, h, left, top, right, bottom) + crop.tobytes())


def test_msra_reader(tmp_path: Path) -> None:
    from v2v_ros.data import msra

    spec = get_dataset("msra")
    frames = {}
    for subject in ("P0", "P1"):
        for gesture in ("1", "TIP"):
            folder = tmp_path / subject / gesture
            folder.mkdir(parents=True)
            lines = ["2"]
            for i in range(2):
                # A stable seed (str hashes are salted per process, so hash() made this test flaky).
                seed = 100 * int(subject[1:]) + 10 * len(gesture) + i
                joints = _joints_in_view(spec, 21, seed=seed)
                depth = np.zeros((240, 320), np.float32)
                u, v, z = spec.intrinsics.to_uvd(joints[0])
                _blob(depth, u, v, z)
                _write_msra_bin(folder / f"{i:06d}_depth.bin", depth, (80, 50, 240, 200))
                # MSRA file convention: y up, z negative (community code reads x, y, -z and v = cy - y f / z).
                file_xyz = joints * np.array([1.0, -1.0, -1.0])
                lines.append(" ".join(f"{x:.4f}" for x in file_xyz.ravel()))
                frames[(subject, gesture, i)] = (joints, depth)
            (folder / "joint.txt").write_text("\n".join(lines) + "\n")

    test = msra.MSRADataset(tmp_path, split="test", test_subject=1)
    train = msra.MSRADataset(tmp_path, split="train", test_subject=1)
    assert len(test) == 4 and len(train) == 4
    frame = test[2]
    joints, depth = frames[("P1", "TIP", 0)]
    assert frame.name.replace("\\", "/") == "P1/TIP/000000_depth.bin"
    assert frame.depth.shape == (240, 320) and frame.depth.dtype == np.float32
    np.testing.assert_array_equal(frame.depth, np.where((np.arange(240)[:, None] >= 50) & (np.arange(240)[:, None]
                                  < 200) & (np.arange(320) >= 80) & (np.arange(320) < 240), depth, 0))
    np.testing.assert_allclose(frame.joints, joints, atol=1e-3)
    # Convention: the wrist projects onto the painted blob, same pixel as the community formula gives.
    u, v, z = spec.intrinsics.to_uvd(frame.joints[0])
    assert frame.depth[int(round(v)), int(round(u))] == pytest.approx(z, abs=1e-3)
    fx, fy, fz = joints[0] * np.array([1, -1, -1])  # file values
    assert u == pytest.approx(fx * 241.42 / -fz + 160, abs=1e-3)
    assert v == pytest.approx(120 - fy * 241.42 / -fz, abs=1e-3)
    assert frame.joints[:, 2].min() > 0  # in front of the camera
    with pytest.raises(IndexError):
        test[4]


def test_msra_write_roundtrip_and_bad_file(tmp_path: Path) -> None:
    from v2v_ros.data import msra

    depth = np.zeros((240, 320), np.float32)
    depth[10:20, 30:45] = 400.0
    msra.write_depth(tmp_path / "a.bin", depth)
    np.testing.assert_array_equal(msra.read_depth(tmp_path / "a.bin"), depth)
    assert len((tmp_path / "a.bin").read_bytes()) == 24 + 10 * 15 * 4
    (tmp_path / "b.bin").write_bytes(struct.pack("<6I", 320, 240, 0, 0, 10, 10) + b"\0" * 12)
    with pytest.raises(ValueError, match="expected 100"):
        msra.read_depth(tmp_path / "b.bin")
    joints = np.random.default_rng(1).normal(size=(3, 21, 3)) * 50 + [0, 0, 400]
    msra.write_joints(tmp_path / "joint.txt", joints)
    np.testing.assert_allclose(msra.read_joints(tmp_path / "joint.txt"), joints, atol=1e-4)


# --------------------------------------------------------------------------- NYU


def test_nyu_rgb_decoding() -> None:
    from v2v_ros.data import nyu

    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[0, 0] = (77, 0x03, 0x2A)  # R is ignored
    rgb[1, 1] = (0, 0xFF, 0xFF)
    depth = nyu.decode_depth(rgb)
    assert depth.dtype == np.float32
    assert depth[0, 0] == 0x032A == 810 and depth[1, 1] == 65535 and depth[0, 1] == 0
    values = np.array([[0, 1, 255], [256, 1234, 4000]], dtype=np.float32)
    np.testing.assert_array_equal(nyu.decode_depth(nyu.encode_depth(values)), values)


def test_nyu_reader(tmp_path: Path) -> None:
    from PIL import Image
    from scipy.io import savemat

    from v2v_ros.data import nyu

    spec = get_dataset("nyu")
    folder = tmp_path / "test"
    folder.mkdir()
    n = 3
    ours = np.stack([_joints_in_view(spec, 36, seed=i, z=700) for i in range(n)])  # optical frame
    raw = np.zeros((3, n, 36, 3))
    raw[0] = ours * np.array([1.0, -1.0, 1.0])  # NYU stores y up
    raw[1:] = 12345.0  # other kinects: must be ignored
    savemat(folder / "joint_data.mat", {"joint_xyz": raw, "joint_uvd": np.zeros_like(raw)})
    for i in range(n):
        depth = np.zeros((480, 640), np.float32)
        for j in spec.eval_joints:
            u, v, z = spec.intrinsics.to_uvd(ours[i, j])
            _blob(depth, u, v, round(z), radius=1)
        Image.fromarray(nyu.encode_depth(depth)).save(folder / f"depth_1_{i + 1:07d}.png")

    ds = nyu.NYUDataset(tmp_path, split="test")
    assert len(ds) == n
    frame = ds[1]
    assert frame.joints.shape == (14, 3) and frame.depth.shape == (480, 640)
    np.testing.assert_allclose(frame.joints, ours[1][list(spec.eval_joints)], atol=1e-4)
    for j in range(14):
        u, v, z = spec.intrinsics.to_uvd(frame.joints[j])
        assert frame.depth[int(round(v)), int(round(u))] == pytest.approx(round(z))
    # The community files' camera (fy < 0) maps the same pixels to NYU's own y-up coordinates.
    uvd = spec.intrinsics.to_uvd(frame.joints)
    np.testing.assert_allclose(spec.eval_intrinsics.to_xyz(uvd), raw[0, 1][list(spec.eval_joints)], atol=1e-3)
    assert nyu.NYUDataset(tmp_path, split="test", all_joints=True)[0].joints.shape == (36, 3)


# --------------------------------------------------------------------------- ICVL


def test_icvl_reader(tmp_path: Path) -> None:
    from v2v_ros.data import icvl

    spec = get_dataset("icvl")
    testing = tmp_path / "Testing"
    rng = np.random.default_rng(3)
    all_uvd = []
    for seq, count in (("test_seq_1", 2), ("test_seq_2", 1)):
        (testing / "Depth" / seq).mkdir(parents=True)
        lines = []
        for i in range(count):
            uvd = np.column_stack([rng.uniform(100, 220, 16), rng.uniform(80, 160, 16), rng.uniform(300, 400, 16)])
            depth = np.zeros((240, 320), np.float32)
            _blob(depth, uvd[0, 0], uvd[0, 1], round(uvd[0, 2]), radius=1)
            name = f"{seq}/image_{i:04d}.png"
            icvl.write_png16(testing / "Depth" / name, depth)
            lines.append(name + " " + " ".join(f"{x:.3f}" for x in uvd.ravel()))
            all_uvd.append(np.round(uvd, 3))
        (testing / f"{seq}.txt").write_text("\n".join(lines) + "\n\n")
    ds = icvl.ICVLDataset(tmp_path, split="test")
    assert len(ds) == 3 and ds.names[2] == "test_seq_2/image_0000.png"
    frame = ds[2]
    expected = np.stack([(all_uvd[2][:, 0] - 160) * all_uvd[2][:, 2] / 240.99,
                         (all_uvd[2][:, 1] - 120) * all_uvd[2][:, 2] / 240.96, all_uvd[2][:, 2]], axis=1)
    np.testing.assert_allclose(frame.joints, expected, rtol=1e-5)
    u, v, z = spec.intrinsics.to_uvd(frame.joints[0])
    assert frame.depth.dtype == np.float32
    assert frame.depth[int(round(v)), int(round(u))] == round(all_uvd[2][0, 2])
    with pytest.raises(FileNotFoundError):
        icvl.ICVLDataset(tmp_path, split="train")


def test_png16_roundtrip(tmp_path: Path) -> None:
    from v2v_ros.data.icvl import read_png16, write_png16

    depth = np.array([[0, 1, 300], [1000, 40000, 65535]], dtype=np.float32)
    write_png16(tmp_path / "d.png", depth)
    raw = (tmp_path / "d.png").read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n" and raw[24] == 16 and raw[25] == 0  # bit depth 16, greyscale
    np.testing.assert_array_equal(read_png16(tmp_path / "d.png"), depth)


# --------------------------------------------------------------------------- HANDS2017


def test_hands2017_reader(tmp_path: Path) -> None:
    from v2v_ros.data import hands2017
    from v2v_ros.data.icvl import write_png16

    spec = get_dataset("hands2017")
    (tmp_path / "images").mkdir()
    lines = []
    truth = []
    for i in range(2):
        joints = _joints_in_view(spec, 21, seed=10 + i)
        depth = np.zeros((480, 640), np.float32)
        u, v, z = spec.intrinsics.to_uvd(joints[5])
        _blob(depth, u, v, round(z))
        write_png16(tmp_path / "images" / hands2017.image_name(i), depth)
        lines.append(hands2017.image_name(i) + "\t" + "\t".join(f"{x:.4f}" for x in joints.ravel()))
        truth.append(joints)
    (tmp_path / "Training_Annotation.txt").write_text("\n".join(lines) + "\n")
    ds = hands2017.Hands2017Dataset(tmp_path)
    assert len(ds) == 2 and ds.names[1] == "image_D00000002.png"
    frame = ds[1]
    np.testing.assert_allclose(frame.joints, truth[1], atol=1e-3)
    u, v, z = spec.intrinsics.to_uvd(frame.joints[5])
    assert frame.depth[int(round(v)), int(round(u))] == round(z)


# --------------------------------------------------------------------------- ITOP


def test_itop_reader(tmp_path: Path) -> None:
    import h5py

    from v2v_ros.data import itop

    spec = get_dataset("itop_top")
    n = 4
    ids = np.array([f"{i:02d}_{i:05d}".encode() for i in range(n)])
    ours = np.stack([_joints_in_view(spec, 15, seed=20 + i, z=2500) for i in range(n)]) / 1000.0  # metres
    world = ours * np.array([1.0, -1.0, 1.0])  # ITOP: y up
    data = np.zeros((n, 240, 320), np.float16)
    for i in range(n):
        u, v, z = spec.intrinsics.to_uvd(ours[i, 8] * 1000)
        img = np.zeros((240, 320), np.float32)
        _blob(img, u, v, z / 1000.0)
        data[i] = img.astype(np.float16)
    image_coords = np.round(np.stack([world[..., 0] / world[..., 2] * 285.71 + 160,
                                      120 - world[..., 1] / world[..., 2] * 285.71], -1)).astype(np.int64)
    is_valid = np.array([1, 0, 1, 1], np.uint8)
    depth_name, label_name = itop.file_names("top", "test")
    with h5py.File(tmp_path / depth_name, "w") as f:
        f["id"] = ids
        f["data"] = data
    with h5py.File(tmp_path / label_name, "w") as f:
        f["id"] = ids
        f["is_valid"] = is_valid
        f["real_world_coordinates"] = world.astype(np.float32)
        f["image_coordinates"] = image_coords
        f["visible_joints"] = np.ones((n, 15), np.uint8)

    ds = itop.ITOPDataset(tmp_path, view="top", split="test")
    assert len(ds) == 3 and [ds[i].name for i in range(3)] == ["00_00000", "02_00002", "03_00003"]
    frame = ds[1]
    np.testing.assert_allclose(frame.joints, ours[2] * 1000, rtol=1e-5, atol=1e-2)
    assert frame.depth.dtype == np.float32 and frame.depth.max() == pytest.approx(ours[2, 8, 2] * 1000, rel=1e-3)
    u, v, z = spec.intrinsics.to_uvd(frame.joints).T
    np.testing.assert_allclose(np.column_stack([u, v]), image_coords[2], atol=0.51)  # ITOP's own pixels
    assert frame.depth[int(round(v[8])), int(round(u[8]))] > 0
    everything = itop.ITOPDataset(tmp_path, view="top", split="test", skip_invalid=False)
    assert len(everything) == 4 and not everything[1].valid
    import pickle

    assert len(pickle.loads(pickle.dumps(ds))) == 3
    with pytest.raises(FileNotFoundError):
        itop.ITOPDataset(tmp_path, view="front", split="test")
    via_table = datasets.open_dataset("itop_top", str(tmp_path), split="test")
    assert len(via_table) == 3


# --------------------------------------------------------------------------- centres


def test_centers_file(tmp_path: Path) -> None:
    path = tmp_path / "centers.txt"
    path.write_text("1.5 -2 300\ninvalid invalid invalid\nnan nan nan\ninvalid\n\n10 20 -5\n4 5 6\n\n\n")
    centers, valid = centers_mod.read_centers(path)
    assert centers.shape == (7, 3)
    assert valid.tolist() == [True, False, False, False, False, False, True]
    np.testing.assert_array_equal(centers[0], [1.5, -2, 300])
    assert np.isnan(centers[~valid]).all()
    centers_mod.write_centers(tmp_path / "out.txt", centers)
    again, valid2 = centers_mod.read_centers(tmp_path / "out.txt")
    assert valid2.tolist() == valid.tolist()
    np.testing.assert_allclose(again[valid], centers[valid])
    (tmp_path / "bad.txt").write_text("1 2\n")
    with pytest.raises(ValueError, match="bad.txt:1"):
        centers_mod.read_centers(tmp_path / "bad.txt")


@pytest.mark.parametrize(("name", "file_frame"), [
    ("msra", lambda j: j * [1.0, -1.0, 1.0]),  # the release's MSRA frame: (x, y_file, -z_file), y up
    ("nyu", lambda j: j * [1.0, -1.0, 1.0]),  # joint_xyz's own frame, y up
    ("itop_top", lambda j: j * [1.0, -1.0, 1.0] / 1000.0),  # real_world_coordinates: metres, y up
    ("icvl", lambda j: j),  # pixel2world with y = (v - cy) z / f: already y down
    ("hands2017", lambda j: j),
])
def test_release_centers_come_back_in_the_optical_frame(tmp_path: Path, name: str, file_frame: Any) -> None:
    """A centre the V2V release computed from the labels in its own frame lands on our joints' mean."""
    spec = get_dataset(name)
    joints = np.stack([_joints_in_view(spec, spec.num_eval_joints, seed=s, z=spec.cube_mm * 2) for s in range(3)])
    ours = joints.mean(axis=1)
    released = np.stack([file_frame(j).mean(axis=0) for j in joints])
    path = tmp_path / "center_test_refined.txt"
    path.write_text("\n".join(" ".join(f"{v:.9f}" for v in c) for c in released) + "\ninvalid invalid invalid\n")
    centers, valid = centers_mod.read_centers(path, name)
    assert valid.tolist() == [True, True, True, False]
    np.testing.assert_allclose(centers[:3], ours, atol=1e-4)
    # In the optical frame the centre projects where the hand is.
    np.testing.assert_allclose(spec.intrinsics.to_uvd(centers[:3]), spec.intrinsics.to_uvd(ours), atol=1e-3)
    centers_mod.write_centers(tmp_path / "again.txt", centers, spec)
    np.testing.assert_allclose(centers_mod.read_centers(tmp_path / "again.txt")[0][:3], released, atol=1e-5)
    np.testing.assert_allclose(centers_mod.read_centers(path)[0][:3], released, atol=1e-9)  # no dataset: as written


def test_label_rows_errors_name_file_and_line(tmp_path: Path) -> None:
    from v2v_ros.data.labels import read_named_joint_rows

    path = tmp_path / "labels.txt"
    path.write_text("a.png 1 2 3 4 5 6\n\nb.png 1 2 3 4 5\n")
    with pytest.raises(ValueError, match=r"labels.txt:3: expected a name and 6 numbers, got 6 fields"):
        read_named_joint_rows(path, 2)
    path.write_text("a.png 1 2 3 4 5 6\nb.png 1 2 x 4 5 6\n")
    with pytest.raises(ValueError, match=r"labels.txt:2: .*'x'"):
        read_named_joint_rows(path, 2)
    path.write_text("a.png 1 2 3 4 5 6\n")
    names, rows = read_named_joint_rows(path, 2)
    assert names == ["a.png"] and rows.tolist() == [[[1, 2, 3], [4, 5, 6]]]


def test_png16_refuses_8bit_and_colour(tmp_path: Path) -> None:
    """An 8-bit PNG read as millimetres would put every hand within 25 cm: refused, naming the mode."""
    from PIL import Image

    from v2v_ros.data.icvl import read_png16

    Image.fromarray(np.full((4, 5), 200, np.uint8)).save(tmp_path / "grey8.png")
    Image.fromarray(np.full((4, 5, 3), 200, np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(ValueError, match=r"8-bit PNG \(mode 'L'\).*not depth"):
        read_png16(tmp_path / "grey8.png")
    with pytest.raises(ValueError, match="single-channel"):
        read_png16(tmp_path / "rgb.png")
