"""Offline bag evaluation (no ROS needed): generated synthetic bags in sqlite3 and mcap, Humble metadata."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
pytest.importorskip("rosbags")
synth_bag = pytest.importorskip("v2v_ros.data.synthetic.bag", reason="synthetic bag writer not available")

from v2v_ros.bag.io import iter_messages, skeleton_array_to_mm, stamp_ns_of, topic_types  # noqa: E402
from v2v_ros.cli import main as v2v  # noqa: E402

N = 5


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch  # noqa: PLC0415

    from v2v_ros.core.checkpoint import ModelMeta, save_checkpoint  # noqa: PLC0415
    from v2v_ros.core.model import V2VPoseNet  # noqa: PLC0415
    from v2v_ros.core.skeletons import HAND_MSRA21  # noqa: PLC0415

    torch.manual_seed(0)
    meta = ModelMeta(skeleton="hand_msra21", joint_names=list(HAND_MSRA21.joint_names), grid_size=16, cube_size=200.0)
    return save_checkpoint(tmp_path_factory.mktemp("model") / "tiny.safetensors", V2VPoseNet(21).state_dict(), meta)


def _make_bag(root: Path, fmt: str) -> Path:
    assert v2v(["synth", "--out", str(root), "--n", str(N), "--seed", "3", "--bag", "--bag-format", fmt]) == 0
    return root / "bag"


@pytest.mark.parametrize("fmt", ["sqlite3", "mcap"])
def test_eval_bag_writes_predictions_and_metrics(tmp_path: Path, model: Path, fmt: str, capsys) -> None:
    bag = _make_bag(tmp_path / "data", fmt)
    out = tmp_path / "eval"
    rc = v2v(["eval-bag", str(bag), "--depth-topic", synth_bag.DEPTH_TOPIC, "--info-topic", synth_bag.INFO_TOPIC,
              "--gt-topic", synth_bag.GT_TOPIC, "--out", str(out), "--model", str(model), "--device", "cpu",
              "--no-progress"])
    assert rc == 0
    table = capsys.readouterr().out
    assert "mean error (mm)" in table and "success rate @20 mm" in table
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["frames_in"] == N and summary["frames_out"] == N
    assert summary["metrics"]["frames"] == N and summary["metrics"]["mean_error_mm"] is not None
    for png in ("success_curve.png", "per_joint_error.png", "overlay.png"):
        assert (out / png).stat().st_size > 1000
    # predictions bag: same storage, one Skeleton3DArray per frame with the input's stamps and frame
    assert any((out / "predictions").glob("*.mcap" if fmt == "mcap" else "*.db3"))
    types = topic_types(out / "predictions")
    assert types["/v2v_pose_node/skeletons"] == ("v2v_ros/msg/Skeleton3DArray", N)
    gt = {stamp_ns_of(m): m for _, _, m in iter_messages(bag, [synth_bag.GT_TOPIC])}
    preds = [m for _, _, m in iter_messages(out / "predictions", ["/v2v_pose_node/skeletons"])]
    assert len(preds) == N and any(p.skeletons for p in preds)  # the unit check below must run at least once
    for p in preds:
        assert stamp_ns_of(p) in gt and p.header.frame_id == synth_bag.FRAME_ID
        joints = skeleton_array_to_mm(p)
        if joints is not None:  # metres in the bag: a hand is within a few m of the camera
            ref = p.skeletons[0].reference_point
            assert 0.1 < ref.z < 3.0 and np.all(np.abs(joints / 1000.0 - [ref.x, ref.y, ref.z]) <= 0.1 + 1e-6)


def test_humble_metadata_version_reads(tmp_path: Path, model: Path) -> None:
    """A bag with Humble's metadata (version 5: no type hashes, custom_data, ros_distro) evaluates too."""
    bag = _make_bag(tmp_path / "data", "sqlite3")
    meta_path = bag / "metadata.yaml"
    meta = yaml.safe_load(meta_path.read_text())
    info = meta["rosbag2_bagfile_information"]
    info["version"] = 5
    for key in ("custom_data", "ros_distro"):
        info.pop(key, None)
    for t in info["topics_with_message_count"]:
        t["topic_metadata"].pop("type_description_hash", None)
    meta_path.write_text(yaml.safe_dump(meta))
    out = tmp_path / "eval"
    assert v2v(["eval-bag", str(bag), "--gt-topic", synth_bag.GT_TOPIC, "--out", str(out), "--model", str(model),
                "--device", "cpu", "--no-progress"]) == 0
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["frames_out"] == N
    # The node's defaults (precision auto, backend torch), so bag and node run the same arithmetic.
    from v2v_ros.core.inference import resolve_precision

    assert summary["precision"] == resolve_precision("auto", torch.device("cpu")) and summary["backend"] == "torch"


def test_eval_bag_errors_are_clear(tmp_path: Path, model: Path, capsys) -> None:
    bag = _make_bag(tmp_path / "data", "sqlite3")
    assert v2v(["eval-bag", str(bag), "--depth-topic", "/nope", "--out", str(tmp_path / "e1"), "--model",
                str(model), "--no-progress"]) == 1
    assert "/nope" in capsys.readouterr().err
    assert v2v(["eval-bag", str(bag), "--out", str(tmp_path / "e2"), "--model", str(tmp_path / "missing"),
                "--no-progress"]) == 1
    assert "missing" in capsys.readouterr().err
    assert v2v(["eval-bag", str(tmp_path / "nobag"), "--out", str(tmp_path / "e3"), "--model", str(model),
                "--no-progress"]) == 1
    assert "nobag" in capsys.readouterr().err
    assert v2v(["eval-bag", str(bag), "--gt-topic", "/no_gt", "--out", str(tmp_path / "e5"), "--model", str(model),
                "--no-progress"]) == 1
    assert "/no_gt" in capsys.readouterr().err
    assert not (tmp_path / "e5" / "predictions").exists()  # nothing half-written for the next run to trip on
    assert v2v(["eval-bag", str(bag), "--out", str(tmp_path / "e4"), "--model", str(model), "--min-confidence", "2",
                "--no-progress"]) == 1
    assert "--min-confidence" in capsys.readouterr().err


def test_rejected_frames_score_as_failures(tmp_path: Path, model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A frame that cannot be decoded has ground truth but no prediction: a failure, not a frame left out."""
    from v2v_ros.bag import evaluate  # noqa: PLC0415
    from v2v_ros.core.depth_decode import DepthDecodeError  # noqa: PLC0415
    from v2v_ros.core.estimator import PoseEstimator  # noqa: PLC0415

    bag = _make_bag(tmp_path / "data", "sqlite3")
    decode = evaluate.image_msg_to_mm
    first = min(stamp_ns_of(m) for _, _, m in iter_messages(bag, [synth_bag.DEPTH_TOPIC]))

    def corrupt_first(msg):  # noqa: ANN001, ANN202
        if stamp_ns_of(msg) == first:
            raise DepthDecodeError("data_length", "corrupt for the test")
        return decode(msg)

    monkeypatch.setattr(evaluate, "image_msg_to_mm", corrupt_first)
    est = PoseEstimator.load(model, device="cpu")
    run = evaluate.run_bag(est, bag, synth_bag.DEPTH_TOPIC, synth_bag.INFO_TOPIC, synth_bag.GT_TOPIC, progress=False)
    assert run.rejected["data_length"] == 1 and run.frames_out == N - 1
    assert first in run.pred and run.pred[first] is None
    report, pred, _ = evaluate.score(run.pred, run.gt, run.joint_names)
    assert report["frames"] == N and np.isnan(pred[0]).all()
