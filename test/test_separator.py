"""The two-hand separator: its crop and mask geometry, its training data and loop, and where the estimator uses it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from v2v_ros.core.camera import Intrinsics
from v2v_ros.core.checkpoint import CheckpointError, ModelMeta
from v2v_ros.core.estimator import PoseEstimator, without_hands
from v2v_ros.core.model import V2VPoseNet
from v2v_ros.core.separator import (
    OTHER_HAND,
    REST,
    THIS_HAND,
    Separator,
    SeparatorMeta,
    SeparatorNet,
    crop_labels,
    crop_window,
    pose_map,
    remove_where,
    separator_input,
    skeleton_points,
)
from v2v_ros.core.skeletons import HAND_MSRA21
from v2v_ros.train.separator import IGNORE, SeparatorConfig, frame_labels, separation_scores, train_separator

CAM = Intrinsics(615.0, 615.0, 319.5, 239.5)


@settings(max_examples=60, deadline=None)
@given(fx=st.floats(200.0, 900.0), x=st.floats(-150.0, 150.0), y=st.floats(-120.0, 120.0),
       z=st.floats(250.0, 1000.0), du=st.floats(-60.0, 60.0), dv=st.floats(-60.0, 60.0),
       radius=st.floats(15.0, 80.0), size=st.sampled_from([32, 64, 80]))
def test_a_cell_the_crop_labels_other_removes_the_image_pixels_it_was_sampled_from(
        fx: float, x: float, y: float, z: float, du: float, dv: float, radius: float, size: int) -> None:
    """remove_where maps crop cells back to the pixels crop_labels sampled them from: with the crop's own
    labels as the score, a labelled region is removed up to about a cell at its outline, nothing outside it."""
    intr = Intrinsics(fx, fx, 319.5, 239.5)
    meta = SeparatorMeta(input_size=size)
    centre = np.array([x, y, z])
    uc, vc, ru, rv = crop_window(intr, centre, meta)
    cell = 2.0 * ru / size  # pixels per crop cell
    v, u = np.mgrid[0:480, 0:640]
    r_px = radius * fx / z
    dist = np.hypot(u + 0.5 - (uc + du * fx / z), v + 0.5 - (vc + dv * fx / z))
    labels = np.where(dist <= r_px, OTHER_HAND, REST).astype(np.int8)
    depth = np.full((480, 640), 700.0, np.float32)
    score = np.where(crop_labels(labels, intr, centre, meta) == OTHER_HAND, 1.0, -1.0)
    out = remove_where(depth, intr, centre, score, meta)
    removed = out == 0
    assert not np.any(removed & (dist > r_px + 1.5 * cell + 1.5))
    window = (np.abs(u + 0.5 - uc) <= ru - cell - 1) & (np.abs(v + 0.5 - vc) <= rv - cell - 1)
    window &= (u >= cell + 1) & (u < 640 - cell - 1) & (v >= cell + 1) & (v < 480 - cell - 1)  # cells off the image: rest
    assert np.all(removed[window & (dist < r_px - 1.5 * cell - 1.5)])
    assert np.all(out[~removed] == 700.0)  # the rest is untouched


def test_labels_give_the_centred_hand_its_pixels_and_the_other_hand_a_pixel_more() -> None:
    shown = [np.zeros((8, 8), bool), np.zeros((8, 8), bool)]
    shown[0][2:4, 2:4] = True
    shown[1][2:4, 4:6] = True  # touching at column 3|4
    depth = np.full((8, 8), 500.0, np.float32)
    depth[7, 7] = 0.0
    lab = frame_labels(shown, 0, depth)
    assert np.all(lab[shown[0]] == THIS_HAND)  # the centred hand wins where the other's outline grows
    assert np.all(lab[shown[1]] == OTHER_HAND) and lab[1, 4] == OTHER_HAND and lab[2, 6] == OTHER_HAND
    assert lab[0, 0] == REST and lab[7, 7] == IGNORE
    assert np.all(frame_labels(shown, 1, depth)[shown[0]] == OTHER_HAND)


def test_separation_scores_count_what_the_mask_takes_from_each_class() -> None:
    y = np.array([[OTHER_HAND, OTHER_HAND, THIS_HAND, REST, IGNORE]], np.int8)
    pred = np.array([[OTHER_HAND, THIS_HAND, OTHER_HAND, REST, OTHER_HAND]], np.int8)
    s = separation_scores(pred, y)
    assert s["other_removed"] == pytest.approx(0.5) and s["this_removed"] == pytest.approx(1.0)
    assert s["rest_removed"] == 0.0 and s["pixel_accuracy"] == pytest.approx(0.5) and s["crops"] == 1


def _hand(at: np.ndarray) -> np.ndarray:
    """A flat open hand pose (MSRA order) around ``at``, fingers up (-y), facing the camera."""
    j = np.zeros((21, 3))
    j[0] = [0.0, 60.0, 0.0]
    for f, x in enumerate((-25.0, -8.0, 8.0, 25.0, -50.0)):  # index, middle, ring, little, thumb
        for k in range(4):
            j[1 + 4 * f + k] = [x, 10.0 - 22.0 * k, 0.0] if f < 4 else [x + 8.0 * k, 40.0 - 15.0 * k, 0.0]
    return j + at


@settings(max_examples=40, deadline=None)
@given(x=st.floats(-100.0, 100.0), y=st.floats(-80.0, 80.0), z=st.floats(300.0, 900.0), dz=st.floats(-100.0, 100.0))
def test_a_drawn_pose_covers_its_bones_at_its_depth_and_nothing_far_from_them(x: float, y: float, z: float,
                                                                            dz: float) -> None:
    meta = SeparatorMeta()
    centre = np.array([x, y, z])
    pose = _hand(centre + np.array([0.0, 0.0, dz]))
    m = pose_map(CAM, centre, [pose], meta)
    uc, vc, ru, rv = crop_window(CAM, centre, meta)
    n = meta.input_size
    for p in pose:  # each joint's cell holds its depth relative to the centre (the nearest point covering it)
        u, v = CAM.to_uvd(p)[:2]
        i, j = int((v - vc) / rv * n / 2 + n / 2), int((u - uc) / ru * n / 2 + n / 2)
        if 0 <= i < n and 0 <= j < n:
            assert m[i, j] == pytest.approx(np.clip(dz / 125.0, -1, 1), abs=1e-5)  # a flat pose: one depth
    pts = skeleton_points(pose)
    cells = np.argwhere(m < 1.0)
    assert len(cells)
    # every covered cell is within the bone radius (plus a cell) of a skeleton point, in the image plane
    uv = CAM.to_uvd(pts)[:, :2]
    cu = uc + ((cells[:, 1] + 0.5) / n * 2 - 1) * ru
    cv = vc + ((cells[:, 0] + 0.5) / n * 2 - 1) * rv
    d = np.min(np.hypot(cu[:, None] - uv[None, :, 0], cv[:, None] - uv[None, :, 1]), axis=1)
    assert np.all(d <= 12.0 * CAM.fx / (z + dz) + 2 * ru / n * 1.5)
    assert np.all(pose_map(CAM, centre, [], meta) == 1.0)


def _two_discs() -> tuple[np.ndarray, list[np.ndarray]]:
    v, u = np.mgrid[0:480, 0:640]
    depth = np.zeros((480, 640), np.float32)
    centres = []
    for uc in (280, 360):  # 80 px apart at 500 mm: 65 mm, one cube
        depth[(u - uc) ** 2 + (v - 240) ** 2 <= 40**2] = 500.0
        centres.append(CAM.to_xyz(np.array([uc, 240.0, 505.0])))
    return depth, centres


def test_separator_companion_round_trips_and_removes_only_other_hand_cells(tmp_path: Path) -> None:
    torch.manual_seed(0)
    sep = Separator(SeparatorNet(), SeparatorMeta())
    path = sep.save(tmp_path / "m.separator.safetensors")
    back = Separator.load(path)
    depth, centres = _two_discs()
    own, others = [_hand(c) for c in centres], [[_hand(centres[1])], [_hand(centres[0])]]
    logits = back.logits(depth, CAM, centres, own, others)
    np.testing.assert_allclose(logits, sep.logits(depth, CAM, centres, own, others), atol=1e-4)
    assert back.logits(depth, CAM, [], [], []).shape == (0, 3, 80, 80)
    with pytest.raises(ValueError, match="2 centres, 1 own poses"):
        back.logits(depth, CAM, centres, own[:1], others)
    images = back(depth, CAM, centres, own, others)
    for img, z in zip(images, logits, strict=True):
        assert np.all((img == depth) | (img == 0))  # it only removes
        if not np.any(z[OTHER_HAND] > np.maximum(z[THIS_HAND], z[REST])):
            assert np.array_equal(img, depth)  # no cell of another hand: nothing removed
    # a network sure that everything is another hand removes the whole window, and only the window
    with torch.no_grad():
        back.net.head.bias.copy_(torch.tensor([0.0, 0.0, 1e4]))
        back.net = back.net
    (img,) = back(depth, CAM, centres[:1], own[:1], others[:1])
    uc, vc, ru, rv = crop_window(CAM, centres[0], back.meta)
    v, u = np.mgrid[0:480, 0:640]
    inside = (np.abs(u + 0.5 - uc) <= ru - 1) & (np.abs(v + 0.5 - vc) <= rv - 1)
    assert np.all(img[inside] == 0) and np.array_equal(img[~inside & (np.abs(u + 0.5 - uc) > ru + 1)],
                                                        depth[~inside & (np.abs(u + 0.5 - uc) > ru + 1)])
    bad = path.with_suffix(".json")
    bad.write_text(bad.read_text().replace("v2v_separator", "v2v_presence"))
    with pytest.raises(CheckpointError, match="kind must be 'v2v_separator'"):
        Separator.load(path)


class HalfSeparator:
    """Calls the pixels right of each centre another hand's, and records what it was asked."""

    def __init__(self) -> None:
        self.asked: list[list[np.ndarray]] = []

    def __call__(self, depth: np.ndarray, intr: Intrinsics, centers: list[np.ndarray], own: list[np.ndarray],
                 others: list[list[np.ndarray]]) -> list[np.ndarray]:
        assert len(own) == len(others) == len(centers)
        self.asked.append([np.asarray(c) for c in centers])
        self.poses = (own, others)
        out = []
        for c in centers:
            img = depth.copy()
            img[:, int(intr.to_uvd(np.asarray(c))[0]) + 20:] = 0.0
            out.append(img)
        return out


def _estimator(separator: Any = None) -> PoseEstimator:
    meta = ModelMeta(HAND_MSRA21.name, list(HAND_MSRA21.joint_names), 16, 250.0)
    return PoseEstimator(V2VPoseNet(21), meta, separator=separator, min_points=5)


def test_followed_hands_sharing_a_cube_are_separated_by_the_separator_in_one_call() -> None:
    depth, centres = _two_discs()
    poses = [np.repeat(c[None], 21, axis=0) for c in centres]
    sep = HalfSeparator()
    images = _estimator(sep)._followed_images(depth, CAM, [*centres, np.array([0.0, 0.0, 900.0])], poses, {})
    assert len(sep.asked) == 1 and len(sep.asked[0]) == 2  # both followed cubes, one batch; not the third
    own, others = sep.poses  # each cube's own predicted pose and the other followed hand's
    assert own[0] is poses[0] and others[0][0] is poses[1] and own[1] is poses[1] and others[1][0] is poses[0]
    assert images[2] is depth
    for img, c in zip(images[:2], centres, strict=True):
        u = int(CAM.to_uvd(c)[0])
        assert np.all(img[:, u + 20:] == 0) and np.array_equal(img[:, : u + 20], depth[:, : u + 20])
    # without a separator: the pixels near the other pose, as before
    plain = _estimator()._followed_images(depth, CAM, centres, poses, {})
    np.testing.assert_array_equal(plain[0], without_hands(depth, CAM, [poses[1]]))
    # apart (no shared cube, neither hides the other): nobody is masked, the separator is not asked
    far = [centres[0], centres[1] + np.array([400.0, 0.0, 0.0])]
    sep.asked.clear()
    assert all(img is depth for img in _estimator(sep)._followed_images(depth, CAM, far, poses, {}))
    assert sep.asked == []


def test_estimator_loads_a_separator_next_to_the_model_and_can_do_without(tmp_path: Path) -> None:
    from v2v_ros.core.checkpoint import save_checkpoint  # noqa: PLC0415

    meta = ModelMeta(HAND_MSRA21.name, list(HAND_MSRA21.joint_names), 16, 250.0)
    model = save_checkpoint(tmp_path / "m.safetensors", V2VPoseNet(21).state_dict(), meta)
    assert PoseEstimator.load(model, device="cpu").separator is None
    with pytest.raises(CheckpointError, match="m.separator.safetensors"):
        PoseEstimator.load(model, device="cpu", separator=True)
    Separator(SeparatorNet(), SeparatorMeta()).save(Separator.paths(model)[0])
    assert isinstance(PoseEstimator.load(model, device="cpu").separator, Separator)
    assert PoseEstimator.load(model, device="cpu", separator=False).separator is None


def test_training_renders_labelled_two_hand_crops_and_writes_a_loadable_separator(tmp_path: Path) -> None:
    cfg = SeparatorConfig(train_data=str(tmp_path / "train.npz"), val_data=str(tmp_path / "val.npz"),
                          train_frames=2, val_frames=1, crops_per_hand=1, input_size=32, steps=2, batch_size=2,
                          workers=1, out=str(tmp_path / "s.separator.safetensors"))
    out = train_separator(cfg)
    data = np.load(cfg.train_data)
    assert data["x"].dtype == np.int8 and data["x"].shape[1:] == (3, 32, 32)
    assert data["y"].shape == (len(data["x"]), 32, 32)
    assert np.all(np.any(data["x"][:, 1] < 127, axis=(1, 2)))  # each crop's own (noisy) pose is drawn in it
    assert 2 <= len(data["x"]) <= 4  # one crop per hand at least min_visible seen, two hands a frame
    assert all(np.any(y == THIS_HAND) for y in data["y"])  # every crop shows the hand it is centred on
    assert set(np.unique(data["y"])) <= {IGNORE, REST, THIS_HAND, OTHER_HAND}
    sep = Separator.load(out)
    assert sep.meta.input_size == 32 and set(sep.meta.provenance["val"]) >= {"other_removed", "this_removed"}
    x = separator_input(np.full((480, 640), 500.0, np.float32), CAM, np.array([0.0, 0.0, 500.0]), sep.meta)
    assert x.shape == (32, 32)


def test_first_pose_crops_draw_the_pose_models_own_poses() -> None:
    """With first_pose_model, a share of the crops draws the poses that model gives from cubes at the hands'
    jittered centres on the frame as it is (the first poses the estimator separates touching hands with)."""
    from v2v_ros.core.separator import pose_map  # noqa: PLC0415
    from v2v_ros.data.synthetic import SynthConfig  # noqa: PLC0415
    from v2v_ros.data.synthetic.multi import HandsSpec, render_multi_frame  # noqa: PLC0415
    from v2v_ros.evaluate.multi import frame_targets_of  # noqa: PLC0415
    from v2v_ros.train import separator as ts  # noqa: PLC0415

    model = Path(__file__).resolve().parents[1] / "models" / "hand_fast.safetensors"
    if not model.exists():
        pytest.skip("models/hand_fast.safetensors not shipped")
    cfg = ts.SeparatorConfig(first_pose_model=str(model), first_pose_share=1.0, crops_per_hand=1, input_size=32)
    meta = ts._meta(cfg)
    assert ts.first_poses(np.zeros((480, 640), np.float32), CAM, []) is None  # no model loaded: noisy true poses
    ts._init_worker(cfg.first_pose_model)
    try:
        seed, index = 29, 1
        out = ts._crops((seed, index, meta, cfg))
        frame = render_multi_frame(seed, index, SynthConfig(), HandsSpec(2, 2))
        gt, visible, _, _ = frame_targets_of(frame)
        rng = np.random.default_rng([seed, index, 7])
        centres = [np.nanmean(g, axis=0) + rng.normal(0.0, cfg.jitter_mm, 3) for g in gt]
        poses = ts.first_poses(frame.full_depth(), frame.intrinsics, centres)
    finally:
        ts._STATE.clear()
    assert poses is not None and len(poses) == len(gt)
    k = int(np.argmax(visible >= cfg.min_visible))
    c = np.nanmean(gt[k], axis=0) + rng.normal(0.0, cfg.jitter_mm, 3)  # the crop's own draw comes next
    drawn = np.round(pose_map(frame.intrinsics, c, [poses[k]], meta) * 127).astype(np.int8)
    np.testing.assert_array_equal(out["x"][0, 1], drawn)


def test_a_pose_with_joints_missing_draws_the_bones_it_has() -> None:
    meta = SeparatorMeta()
    centre = np.array([0.0, 0.0, 500.0])
    pose = _hand(centre)
    pose[8] = np.nan  # the middle fingertip: its last bone is not drawn, the rest is
    full, part = pose_map(CAM, centre, [_hand(centre)], meta), pose_map(CAM, centre, [pose], meta)
    assert np.all(part >= full) and 0 < np.count_nonzero(part < 1.0) < np.count_nonzero(full < 1.0)
    assert np.all(pose_map(CAM, centre, [np.full((21, 3), np.nan)], meta) == 1.0)
