"""`v2v export --onnx`: the exported file reproduces PyTorch in ONNX Runtime; bad exports fail."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from v2v_ros.cli import main
from v2v_ros.core.checkpoint import ModelMeta, save_checkpoint
from v2v_ros.core.skeletons import HAND_MSRA21

pytestmark = pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None,
                                reason="onnxruntime is not installed (pip install -r requirements.txt)")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from test_inference import _net  # noqa: PLC0415 - the O(1)-activation random network

    path = tmp_path_factory.mktemp("export") / "tiny16.safetensors"
    meta = ModelMeta(HAND_MSRA21.name, list(HAND_MSRA21.joint_names), 16, 200.0)
    save_checkpoint(path, _net(3).state_dict(), meta)
    return path


@pytest.mark.parametrize("batch", ["1", "dynamic"])
def test_export_matches_pytorch(checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                batch: str) -> None:
    out = tmp_path / "m.onnx"
    code = main(["export", "--onnx", str(out), "--checkpoint", str(checkpoint), "--batch", batch,
                 "--exporter", "legacy", "--json"])
    r = json.loads(capsys.readouterr().out)
    assert code == 0 and r["ok"] and out.is_file()
    assert r["max_abs_diff"] <= 1e-4 and r["max_abs_heatmap"] > 0.1  # a real comparison, not zeros
    import onnx  # noqa: PLC0415

    model = onnx.load(str(out))
    onnx.checker.check_model(model)
    assert not any(n.op_type == "BatchNormalization" for n in model.graph.node)  # folded
    dim0 = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert (dim0.dim_value == 1) if batch == "1" else bool(dim0.dim_param)


@pytest.mark.slow
def test_export_fails_above_tolerance(checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["export", "--onnx", str(tmp_path / "m.onnx"), "--checkpoint", str(checkpoint),
                 "--exporter", "legacy", "--tolerance", "0"])
    text = capsys.readouterr().out
    assert "max abs diff" in text
    # fp32 ORT and PyTorch differ in summation order, so a zero tolerance fails unless they agree bit for bit.
    assert code == (0 if "diff 0 " in text else 1)


def test_a_two_channel_model_exports_with_two_input_channels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The ONNX input is (B, 2, N, N, N) and is checked on volumes with another hand in the second channel."""
    from test_inference import _net  # noqa: PLC0415

    ckpt, out = tmp_path / "two16.safetensors", tmp_path / "two.onnx"
    save_checkpoint(ckpt, _net(4, channels=2).state_dict(),
                    ModelMeta(HAND_MSRA21.name, list(HAND_MSRA21.joint_names), 16, 250.0, input_channels=2))
    code = main(["export", "--onnx", str(out), "--checkpoint", str(ckpt), "--exporter", "legacy", "--json"])
    r = json.loads(capsys.readouterr().out)
    assert code == 0 and r["ok"] and r["input_channels"] == 2 and r["max_abs_heatmap"] > 0.1
    import onnx  # noqa: PLC0415

    assert onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim[1].dim_value == 2


def test_export_other_grid_and_bad_arguments(checkpoint: Path, tmp_path: Path) -> None:
    assert main(["export", "--onnx", str(tmp_path / "g24.onnx"), "--checkpoint", str(checkpoint), "--grid", "24",
                 "--exporter", "legacy"]) == 0
    assert main(["export", "--onnx", str(tmp_path / "x.onnx"), "--checkpoint", str(checkpoint), "--grid", "20"]) == 2
    assert main(["export", "--onnx", str(tmp_path / "x.onnx"), "--checkpoint", str(checkpoint), "--batch", "0"]) == 2
    assert main(["export", "--onnx", str(tmp_path / "x.onnx"), "--checkpoint", str(tmp_path / "missing")]) == 2


@pytest.mark.slow
def test_dynamo_exporter(checkpoint: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    assert main(["export", "--onnx", str(tmp_path / "d.onnx"), "--checkpoint", str(checkpoint),
                 "--batch", "dynamic", "--exporter", "dynamo"]) == 0


def test_non_finite_onnx_output_fails_the_check(checkpoint: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """An export whose heatmaps come back NaN must not report agreement (max(0.0, nan) is 0.0)."""
    import numpy as np  # noqa: PLC0415

    from v2v_ros import export as export_mod  # noqa: PLC0415
    from v2v_ros.core import inference  # noqa: PLC0415

    real = inference.ort_session

    class NaNSession:
        def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
            self.inner = real(*args, **kwargs)

        def run(self, names, feeds):  # noqa: ANN001, ANN201
            out = self.inner.run(names, feeds)
            out[0][..., 0] = np.nan
            return out

    monkeypatch.setattr(inference, "ort_session", NaNSession)
    r = export_mod.export(checkpoint, tmp_path / "m.onnx", exporter="legacy")
    assert not r["ok"] and r["max_abs_diff"] == float("inf")


def test_grid_zero_is_refused_not_replaced(checkpoint: Path, tmp_path: Path) -> None:
    from v2v_ros import export as export_mod  # noqa: PLC0415

    with pytest.raises(ValueError, match="got 0"):
        export_mod.export(checkpoint, tmp_path / "m.onnx", grid=0, exporter="legacy")
    assert main(["export", "--onnx", str(tmp_path / "x.onnx"), "--checkpoint", str(checkpoint), "--grid", "0"]) == 2
