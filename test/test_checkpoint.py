"""Checkpoint save/load and the errors that name what is wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from v2v_ros.core.checkpoint import CheckpointError, ModelMeta, build_model, load_checkpoint, save_checkpoint
from v2v_ros.core.model import V2VPoseNet
from v2v_ros.core.skeletons import HAND_MSRA21


def _meta(**kw) -> ModelMeta:
    base = dict(skeleton=HAND_MSRA21.name, joint_names=list(HAND_MSRA21.joint_names), grid_size=32, cube_size=200.0)
    base.update(kw)
    return ModelMeta(**base)


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    model = V2VPoseNet(21)
    return save_checkpoint(tmp_path / "hand.safetensors", model.state_dict(), _meta(provenance={"seed": 0}))


@pytest.mark.parametrize("half", [False, True])
def test_round_trip(tmp_path: Path, half: bool) -> None:
    model = V2VPoseNet(21)
    path = save_checkpoint(tmp_path / "m", model.state_dict(), _meta(), half=half)
    state, meta = load_checkpoint(path)
    assert meta.joint_names == list(HAND_MSRA21.joint_names) and meta.dtype == ("float16" if half else "float32")
    rebuilt = build_model(state, meta)
    for k, v in model.state_dict().items():
        tol = 1e-3 * v.abs().max().item() + 1e-7 if half and v.is_floating_point() else 0
        assert torch.allclose(rebuilt.state_dict()[k].to(v.dtype), v, atol=tol), k


def test_load_accepts_json_path_and_folder(saved: Path) -> None:
    assert load_checkpoint(saved.with_suffix(".json"))[1].grid_size == 32
    assert load_checkpoint(saved.parent)[1].grid_size == 32


def test_missing_weights(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.safetensors")


def test_corrupt_weights_named(saved: Path) -> None:
    saved.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(saved)


def test_corrupt_metadata_named(saved: Path) -> None:
    saved.with_suffix(".json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(saved)


@pytest.mark.parametrize(
    "field, value, match",
    [("grid_size", 30, "grid_size"), ("arch", "ResNet", "arch"), ("stride", 4, "stride"), ("cube_size", -1, "cube_size"),
     ("cube_size", float("inf"), "cube_size"), ("cube_size", float("nan"), "cube_size"), ("cube_size", True, "cube_size")],
)
def test_bad_metadata_field_named(saved: Path, field: str, value, match: str) -> None:
    path = saved.with_suffix(".json")
    data = json.loads(path.read_text())
    data[field] = value
    path.write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(saved)


def test_joint_count_mismatch_names_the_tensor(saved: Path) -> None:
    path = saved.with_suffix(".json")
    data = json.loads(path.read_text())
    data["joint_names"] = data["joint_names"][:14]
    path.write_text(json.dumps(data))
    state, meta = load_checkpoint(saved)
    with pytest.raises(CheckpointError, match="output_layer.weight"):
        build_model(state, meta)


def test_nan_weights_rejected(tmp_path: Path) -> None:
    model = V2VPoseNet(21)
    sd = model.state_dict()
    sd["output_layer.bias"][0] = float("nan")
    path = save_checkpoint(tmp_path / "nan", sd, _meta())
    state, meta = load_checkpoint(path)
    with pytest.raises(CheckpointError, match="NaN"):
        build_model(state, meta)
