"""User errors on the command line end in one line naming the problem and a non-zero status.

A wrong folder, a bad option value or a typo in a config must not end in a traceback from
deep inside the generator or the training loop, nor leave a half-made output folder behind.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from v2v_ros.cli import main

REPO = Path(__file__).resolve().parents[1]


def _one_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("extra, needle", [
    (["--shard-size", "0"], "--shard-size"),
    (["--depth-min", "900", "--depth-max", "300"], "--depth-min"),
    (["--depth-min", "-100"], "--depth-min"),
    (["--width", "0"], "--width"),
    (["--fx", "0"], "--fx"),
    (["--crop-cube-mm", "-5"], "--crop-cube-mm"),
    (["--view", "top"], "--body"),  # a camera view preset exists for people only
])
def test_synth_bad_values_one_line_nothing_written(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   extra: list[str], needle: str) -> None:
    out = tmp_path / "ds"
    assert main(["synth", "--out", str(out), "--n", "2", *extra]) == 2
    assert needle in _one_line(capsys.readouterr().err)
    assert not out.exists()


def test_synth_out_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "afile"
    out.write_text("x")
    assert main(["synth", "--out", str(out), "--n", "2"]) == 2
    assert "not a folder" in _one_line(capsys.readouterr().err)


@pytest.mark.parametrize("sets, needle", [
    (["train_data={root}/missing"], "missing/meta.json not found"),
    (["grid_size=abc"], "grid_size must be an integer, got 'abc'"),
    (["bogus=1"], "unknown key(s) ['bogus']"),
    (["amp=3"], "amp must be true or false"),
])
def test_train_user_errors_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], sets: list[str],
                                    needle: str) -> None:
    out = tmp_path / "run"
    sets = [s.format(root=tmp_path) for s in sets]
    code = main(["train", "--config", str(REPO / "config/train/hand_synthetic.yaml"), "--set",
                 f"train_data={tmp_path}/missing", f"out_dir={out}", "grid_size=16", *sets])
    assert code == 2
    assert needle in _one_line(capsys.readouterr().err)
    assert not out.exists()  # nothing written for a run that cannot start


def test_train_missing_config_and_refiner_detector_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml: No such file or directory" in _one_line(capsys.readouterr().err)
    assert main(["train-refiner", "--config", str(REPO / "config/train/refiner_synthetic.yaml"), "--set",
                 f"train_data={tmp_path}/missing", f"out={tmp_path}/r.safetensors"]) == 2
    assert "not a v2v-shards dataset" in _one_line(capsys.readouterr().err)
    assert main(["train-detector", "--config", str(REPO / "config/train/detector_synthetic.yaml"), "--set",
                 "steps=x"]) == 2
    assert "steps must be an integer" in _one_line(capsys.readouterr().err)


def test_train_config_reads_exponent_without_dot() -> None:
    """YAML 1.1 reads `1e-4` as a string; a float key accepts it as the number it means."""
    from v2v_ros.train.config import TrainConfig

    assert TrainConfig.from_dict({"lr": "1e-4"}).lr == pytest.approx(1e-4)


def test_play_domain_id_out_of_range(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("rclpy")
    for bad in ("-1", "999"):
        assert main(["play", str(tmp_path), "--domain-id", bad]) == 2
        assert "--domain-id must be in [0, 232]" in _one_line(capsys.readouterr().err)


def test_node_missing_params_file_one_line(tmp_path: Path) -> None:
    pytest.importorskip("rclpy")
    proc = subprocess.run([sys.executable, "-m", "v2v_ros.ros.node", "--ros-args", "--params-file",
                           str(tmp_path / "nope.yaml")], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "[v2v_pose_node] fatal: cannot start ROS" in proc.stderr and "nope.yaml" in proc.stderr


def test_eval_bag_unknown_depth_topic_is_not_quoted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["synth", "--out", str(tmp_path / "ds"), "--n", "2", "--bag"]) == 0
    capsys.readouterr()
    assert main(["eval-bag", str(tmp_path / "ds" / "bag"), "--depth-topic", "/nope", "--out",
                 str(tmp_path / "ev"), "--no-progress"]) == 1
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("eval-bag: depth topic '/nope' not in"), line


def test_eval_timings_are_per_frame_over_all_frames() -> None:
    """A stage that runs on some frames only (the detector under tracking) is amortised, so the
    stages printed as 'ms/frame' add up to the total instead of exceeding it."""
    from v2v_ros.core.camera import Intrinsics
    from v2v_ros.evaluate.runner import run_estimator

    intr = Intrinsics(500.0, 500.0, 15.5, 15.5)
    joints = np.tile(np.array([0.0, 0.0, 400.0]), (21, 1))
    frames = [SimpleNamespace(depth=np.full((32, 32), 400.0, np.float32), intrinsics=intr, joints=joints)
              for _ in range(4)]
    timings = [{"localize": 8.0, "forward": 2.0, "total": 10.0}] + [{"forward": 2.0, "total": 2.0}] * 3

    class Est:
        def estimate(self, depth: np.ndarray, intrinsics: Intrinsics, reference_point: object = None) -> object:
            return SimpleNamespace(joints=joints, valid=True, timings=timings.pop(0))

    run = run_estimator(Est(), frames)
    assert run.timings_ms == pytest.approx({"localize": 2.0, "forward": 2.0, "total": 4.0})
