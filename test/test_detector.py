"""Whole-image hand detector: cell geometry, 3D read-out, training, storage and estimator wiring."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from v2v_ros.core.detector import Detector, DetectorMeta, DetectorNet, detector_input, subsample_step, target_cell
from v2v_ros.data.synthetic import render_frame
from v2v_ros.train.detector import DetectorConfig, make_detector_data, train_detector


def _sq_cell_distance(x: torch.Tensor, col: float, row: float) -> torch.Tensor:
    """(h, w) squared distance of every output cell (stride 4) of input ``x`` to (col, row)."""
    r = torch.arange(x.shape[2] // 4, dtype=torch.float32)[:, None]
    c = torch.arange(x.shape[3] // 4, dtype=torch.float32)[None, :]
    return (r - row) ** 2 + (c - col) ** 2


class OracleNet(torch.nn.Module):
    """Logits peaking at a given continuous cell position (what a perfect detector outputs)."""

    def __init__(self, col: float, row: float) -> None:
        super().__init__()
        self.col, self.row = col, row

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (-_sq_cell_distance(x, self.col, self.row) / 0.5)[None, None]


@pytest.mark.parametrize("index", [0, 2, 4, 6])
def test_perfect_scores_give_a_centre_inside_the_hand(index: int) -> None:
    f = render_frame(3, index)  # 640×480
    meta = DetectorMeta()
    step = subsample_step(f.image_size[0], meta)
    assert step == 4
    gt = f.joints.mean(axis=0)
    col, row = target_cell(gt, f.intrinsics, step, meta)
    det = Detector(DetectorNet(), meta)
    det.net = OracleNet(col, row)
    c = det(f.full_depth(), f.intrinsics)
    assert c is not None
    # The read-out depends only on the depth around the true pixel: the hand's own surface.
    assert np.linalg.norm(c[:2] - gt[:2]) < 40.0 and abs(c[2] - gt[2]) < 40.0


def test_input_marks_invalid_pixels() -> None:
    d = np.array([[0.0, 1500.0], [np.nan, 4000.0]], dtype=np.float32)
    x = detector_input(np.nan_to_num(d), DetectorMeta(max_depth_mm=3000.0), 1)
    assert x.shape == (2, 2, 2)
    np.testing.assert_array_equal(x[1], [[0, 1], [0, 0]])
    assert x[0, 0, 1] == pytest.approx(0.0) and x[0, 0, 0] == 1.0


def test_training_saves_a_detector_the_estimator_picks_up(tmp_path: Path) -> None:
    from v2v_ros.core.checkpoint import ModelMeta, save_checkpoint
    from v2v_ros.core.estimator import PoseEstimator
    from v2v_ros.core.model import V2VPoseNet
    from v2v_ros.core.skeletons import HAND_MSRA21

    make_detector_data(tmp_path / "train.npz", 5, 8, workers=1)
    make_detector_data(tmp_path / "val.npz", 6, 4, workers=1)
    cfg = DetectorConfig(train_data=str(tmp_path / "train.npz"), val_data=str(tmp_path / "val.npz"),
                         out=str(tmp_path / "m.detector.safetensors"), steps=2, batch_size=4, threads=1)
    path = train_detector(cfg)
    det = Detector.load(path)
    assert det.meta.provenance["val"]["frames"] == 4
    meta = ModelMeta(HAND_MSRA21.name, list(HAND_MSRA21.joint_names), 16, 200.0)
    save_checkpoint(tmp_path / "m.safetensors", V2VPoseNet(21).state_dict(), meta)
    est = PoseEstimator.load(tmp_path / "m.safetensors", device="cpu")
    assert isinstance(est.detector, Detector)
    assert PoseEstimator.load(tmp_path / "m.safetensors", device="cpu", detector=False).detector is None
    f = render_frame(3, 1)
    res = est.estimate(f.full_depth(), f.intrinsics)
    assert res.reference_point.shape == (3,)


class TwoBumpNet(torch.nn.Module):
    """Logits with a strong and a weaker peak (a hand and a distractor)."""

    def __init__(self, strong: tuple[float, float], weak: tuple[float, float]) -> None:
        super().__init__()
        self.strong, self.weak = strong, weak

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        strong = 8.0 * torch.exp(-_sq_cell_distance(x, *self.strong) / 4.0)
        weak = 5.0 * torch.exp(-_sq_cell_distance(x, *self.weak) / 4.0)
        return (strong + weak)[None, None]


def test_peaks_are_best_first_and_a_hand_width_apart() -> None:
    f = render_frame(3, 0)
    meta = DetectorMeta()
    gt = f.joints.mean(axis=0)
    hand = target_cell(gt, f.intrinsics, subsample_step(f.image_size[0], meta), meta)
    other = (hand[0] + 12.0, hand[1] + 5.0)
    det = Detector(DetectorNet(), meta)
    det.net = TwoBumpNet(strong=other, weak=hand)  # the detector prefers the distractor
    peaks = det.peaks(f.full_depth(), 3)
    assert len(peaks.cells) == 3 and peaks.scores == sorted(peaks.scores, reverse=True)
    (r0, c0), (r1, c1), (r2, c2) = peaks.cells
    assert (abs(r0 - other[1]), abs(c0 - other[0])) <= (0.5, 0.5)
    assert abs(r1 - hand[1]) <= 0.5 and abs(c1 - hand[0]) <= 0.5  # not a neighbour of the first peak
    for a, b in ((peaks.cells[0], peaks.cells[1]), (peaks.cells[0], peaks.cells[2]), (peaks.cells[1], peaks.cells[2])):
        assert max(abs(a[0] - b[0]), abs(a[1] - b[1])) > 3
    second = det.center(f.full_depth(), f.intrinsics, peaks, 1)
    assert second is not None and np.linalg.norm(second[:2] - gt[:2]) < 40.0
    assert det.center(f.full_depth(), f.intrinsics, peaks, 5) is None
    # The single-peak call is the first of these: here the distractor, with no depth under it ...
    single, first = det(f.full_depth(), f.intrinsics), det.center(f.full_depth(), f.intrinsics, peaks, 0)
    assert single is None and first is None
    # ... and, with the hand as the best peak, the same 3D centre.
    det.net = TwoBumpNet(strong=hand, weak=other)
    peaks = det.peaks(f.full_depth(), 3)
    single, first = det(f.full_depth(), f.intrinsics), det.center(f.full_depth(), f.intrinsics, peaks, 0)
    assert single is not None and first is not None
    np.testing.assert_array_equal(single, first)


def test_inference_form_folds_batchnorm_and_matches_the_trained_net() -> None:
    net = DetectorNet()
    with torch.no_grad():  # non-trivial BN statistics, as after training
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    det = Detector(net, DetectorMeta())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in det.fast.modules())
    x = torch.randn(1, 2, 120, 160)
    with torch.inference_mode():
        torch.testing.assert_close(det.fast(det.prepare(x)), det.net(x), atol=1e-4, rtol=1e-4)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in det.net.modules())  # what is saved stays trainable
    det.net = OracleNet(10.0, 7.0)  # a new network rebuilds the inference form
    with torch.inference_mode():
        torch.testing.assert_close(det.fast(det.prepare(x)), det.net(x))
