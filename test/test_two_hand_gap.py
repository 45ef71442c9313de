"""tools/two_hand_gap.py: each hand's cube at its true centre, on the two-hand frame, without the other hand, alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tool_loader import load_tool

from v2v_ros.cli import main


def _tool():
    return load_tool("two_hand_gap")


@pytest.fixture(scope="module")
def splits(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("gap")
    two, solo = root / "two", root / "solo"
    # Seed 78's first frames: touching, touching, occluding, each hand at least half visible.
    assert main(["synth", "--out", str(two), "--n", "3", "--seed", "78", "--hands", "2", "--full-frame"]) == 0
    assert main(["synth", "--out", str(solo), "--n", "3", "--seed", "78", "--hands", "2", "--full-frame",
                 "--solo"]) == 0
    return two, solo


def test_every_hand_of_a_two_hand_frame_is_scored_on_every_image(splits: tuple[Path, Path],
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from v2v_ros.resources import shipped_model

    two, solo = splits
    assert _tool().main([str(two), str(solo), "--checkpoint", str(shipped_model("hand_default")),
                         "--precision", "fp32", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)["by_arrangement"]
    assert report["all"]["hands"] == 6
    assert report["touching"]["hands"] + report["occluding"]["hands"] == 6
    # The solo frame k of frame i is that frame's hand k: posed alone at its true centre, the shipped
    # model is within a few centimetres of every hand (a hand paired with the wrong solo frame would
    # be hundreds of millimetres off).
    assert report["all"]["alone_mm"] < 20.0
    for name in ("other_removed", "split", "exactly_removed", "other_removed_as_estimated", "split_as_estimated"):
        assert report["all"][f"{name}_mm"] < 40.0, name


def test_mismatched_splits_are_refused(splits: tuple[Path, Path], tmp_path: Path) -> None:
    two, _ = splits
    other = tmp_path / "other"
    assert main(["synth", "--out", str(other), "--n", "3", "--seed", "78", "--hands", "2", "--full-frame"]) == 0
    assert _tool().main([str(two), str(other)]) == 2
    assert _tool().main([str(other), str(other)]) == 2  # not twice as many frames


def test_a_two_channel_model_sees_what_the_masks_removed_unless_told_not_to(
        splits: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Only the two masked images change with --empty-removed-channel: the frame and the hand alone remove nothing."""
    from test_inference import _net

    from v2v_ros.core.checkpoint import ModelMeta, save_checkpoint
    from v2v_ros.core.skeletons import HAND_MSRA21

    ckpt = save_checkpoint(tmp_path / "two.safetensors", _net(5, channels=2).state_dict(),
                           ModelMeta(HAND_MSRA21.name, list(HAND_MSRA21.joint_names), 16, 250.0, input_channels=2))
    two, solo = splits
    reports = []
    for extra in ([], ["--empty-removed-channel"]):
        assert _tool().main([str(two), str(solo), "--checkpoint", str(ckpt), "--precision", "fp32", "--json",
                             *extra]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["input_channels"] == 2 and out["removed_channel"] is not bool(extra)
        reports.append(out["by_arrangement"]["all"])
    used, empty = reports
    assert used["two_hands_mm"] == empty["two_hands_mm"] and used["alone_mm"] == empty["alone_mm"]
    assert used["other_removed_mm"] != empty["other_removed_mm"]
    assert used["exactly_removed_mm"] != empty["exactly_removed_mm"]
