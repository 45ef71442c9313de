"""Whole-image hand detector: cell geometry, 3D read-out, training, storage and estimator wiring."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from v2v_ros.core.detector import Detector, DetectorMeta, DetectorNet, detector_input, subsample_step, target_cell
from v2v_ros.data.synthetic import render_frame
from v2v_ros.train.detector import DetectorConfig, make_detector_data, train_detector


class OracleNet(torch.nn.Module):
    """Logits peaking at a given continuous cell position (what a perfect detector outputs)."""

    def __init__(self, col: float, row: float) -> None:
        super().__init__()
        self.col, self.row = col, row

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2] // 4, x.shape[3] // 4
        r = torch.arange(h, dtype=torch.float32)[:, None]
        c = torch.arange(w, dtype=torch.float32)[None, :]
        return (-((r - self.row) ** 2 + (c - self.col) ** 2) / 0.5)[None, None]


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
