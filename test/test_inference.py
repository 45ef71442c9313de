"""Inference engines (core.inference): exactness of the rewrites, precisions, backends, batching.

Small random V2V-PoseNets at 16³ keep this fast; the weights are scaled so that
activations and heatmaps are O(1) (the paper's N(0, 0.001) init gives ~0 outputs,
which would make every comparison trivially pass). CUDA tests run only where a
GPU exists and say why they skip otherwise.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from torch import nn

from v2v_ros.core.checkpoint import ModelMeta
from v2v_ros.core.estimator import PoseEstimator
from v2v_ros.core.inference import (
    MkldnnConv3d,
    TorchEngine,
    fold_batchnorm,
    make_engine,
)
from v2v_ros.core.model import V2VPoseNet
from v2v_ros.core.skeletons import HAND_MSRA21
from v2v_ros.data.calibration import synthetic_calibration, synthetic_calibration_source

GRID = 16
HAS_ORT = importlib.util.find_spec("onnxruntime") is not None
NO_CUDA = "CUDA is not available here (CPU-only torch build / no GPU): GPU path tests run on CUDA machines"


def _net(seed: int = 0, joints: int = 21, channels: int = 1) -> V2VPoseNet:
    """A V2VPoseNet with O(1) activations and non-trivial BatchNorm statistics."""
    g = torch.Generator().manual_seed(seed)
    net = V2VPoseNet(joints, channels).eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d)):
                fan_in = m.weight[0].numel() if isinstance(m, nn.Conv3d) else m.weight.shape[0] * 8
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (1.0 / fan_in) ** 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.05)
            elif isinstance(m, nn.BatchNorm3d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(1.0 + 0.1 * torch.randn(m.num_features, generator=g))
                m.bias.copy_(0.1 * torch.randn(m.num_features, generator=g))
    return net


@pytest.fixture(scope="module")
def volumes() -> np.ndarray:
    return synthetic_calibration(GRID, count=4)


@pytest.fixture(scope="module")
def net() -> V2VPoseNet:
    return _net()


def _reference(net: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return net(torch.from_numpy(x)).numpy()


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def test_fold_batchnorm_is_exact_and_pure(net: V2VPoseNet, volumes: np.ndarray) -> None:
    folded = fold_batchnorm(net)
    assert not any(isinstance(m, nn.BatchNorm3d) for m in folded.modules())
    assert sum(isinstance(m, nn.BatchNorm3d) for m in net.modules()) == 30  # input untouched
    ref = _reference(net, volumes)
    assert np.abs(ref).max() > 0.1  # the comparison is not trivially about zeros
    assert _rel(_reference(folded, volumes), ref) < 1e-4


def test_mkldnn_conv_matches_conv3d() -> None:
    conv = nn.Conv3d(4, 8, 3, padding=1).eval()
    x = torch.randn(2, 4, 8, 8, 8)
    with torch.inference_mode():
        torch.testing.assert_close(MkldnnConv3d(conv)(x), conv(x), rtol=1e-4, atol=1e-5)


def test_int8_calibrates_on_what_the_model_sees() -> None:
    """A body model's int8 engine is calibrated on synthetic people, a hand model's on hands:
    hands in a 2 m cube occupy a few voxels and would set the body's activation ranges.
    The volumes come from the caller (data code); the estimator asks its source for its own
    grid, cube and skeleton."""
    body = synthetic_calibration(16, 2000.0, count=2, body=True)
    hands = synthetic_calibration(16, 2000.0, count=2)
    assert body.reshape(2, -1).sum(axis=1).min() > 2 * hands.reshape(2, -1).sum(axis=1).max()
    np.testing.assert_array_equal(synthetic_calibration_source(16, 2000.0, "body_itop15"),
                                  synthetic_calibration(16, 2000.0, body=True))
    np.testing.assert_array_equal(synthetic_calibration_source(16, 200.0, "hand_msra21"),
                                  synthetic_calibration(16, 200.0))
    asked: list[tuple[int, float, str]] = []

    def source(grid: int, cube: float, skeleton: str) -> np.ndarray:
        asked.append((grid, cube, skeleton))
        raise RuntimeError("calibration requested")  # stop before quantising: only the request matters

    meta = ModelMeta("body_itop15", [f"j{i}" for i in range(15)], 16, 2000.0)
    est = PoseEstimator(V2VPoseNet(15), meta, device="cpu", precision="int8", calibration=source)
    with pytest.raises(RuntimeError, match="calibration requested"):
        est.forward(np.zeros((1, 1, 16, 16, 16), np.float32))
    assert asked == [(16, 2000.0, "body_itop15")]
    # Without volumes from the caller int8 is refused with the reason, not calibrated on anything.
    plain = PoseEstimator(V2VPoseNet(15), meta, device="cpu", precision="int8")
    with pytest.raises(ValueError, match="calibration"):
        plain.forward(np.zeros((1, 1, 16, 16, 16), np.float32))


def test_core_renders_no_calibration_data() -> None:
    """The inference core does not depend on the synthetic renderer (data code) any more."""
    import v2v_ros.core.inference as inference

    assert not hasattr(inference, "synthetic_calibration")


def test_int8_activations_use_all_8_bits_only_where_int8_sums_cannot_saturate(
        net: V2VPoseNet, volumes: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    """On CPUs with 32-bit int8 accumulation (VNNI, AMX) every activation gets 256 levels, half the step
    of PyTorch's 7-bit x86 default (which guards the 16-bit saturating sums of older CPUs); the
    40³ hand model's stage-2 weights went from 8.46 to 7.84 mm of true-centre error with it (bf16: 7.78)."""
    from v2v_ros.core import inference
    from v2v_ros.core.inference import quantize_int8

    def scales(vnni: bool) -> dict[str, float]:
        monkeypatch.setattr(inference, "int8_dot_product_cpu", lambda: vnni)
        q = quantize_int8(net, volumes)
        return {n: float(getattr(q, n)) for n in dir(q) if n.endswith("_scale_0") and getattr(q, n).numel() == 1}

    seven, eight = scales(False), scales(True)
    assert seven.keys() == eight.keys() and len(seven) > 10
    ratios = [eight[k] / seven[k] for k in seven if seven[k] > 1e-6]
    assert ratios and all(0.4 < r < 0.6 for r in ratios), ratios  # 127 / 255 levels over the same range


@pytest.mark.parametrize("precision, tol", [("fp32", 1e-4), ("bf16", 0.05), ("int8", 0.2)])
def test_torch_engine_precisions_close_to_fp32(net: V2VPoseNet, volumes: np.ndarray, precision: str,
                                               tol: float) -> None:
    from v2v_ros.core.inference import cpu_bf16_supported

    if precision == "bf16" and not cpu_bf16_supported():  # e.g. AVX2-only CPUs: a named refusal, not garbage
        with pytest.raises(ValueError, match="bf16 on this CPU is not supported"):
            make_engine(net, "cpu", precision, grid_size=GRID, calibration=volumes[:2])
        return
    engine = make_engine(net, "cpu", precision, grid_size=GRID, calibration=volumes[:2])
    y = engine.run_numpy(volumes[:2])
    assert y.shape == (2, 21, GRID // 2, GRID // 2, GRID // 2) and y.dtype == np.float32
    assert _rel(y, _reference(net, volumes[:2])) < tol
    t = engine(torch.from_numpy(volumes[:1]))  # torch input, torch output
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32 and t.shape[0] == 1


@pytest.mark.skipif(not HAS_ORT, reason="onnxruntime is not installed (pip install -r requirements.txt)")
@pytest.mark.parametrize("precision, tol", [("fp32", 1e-4), pytest.param("int8", 0.2, marks=pytest.mark.slow)])
def test_onnxruntime_engine(net: V2VPoseNet, volumes: np.ndarray, precision: str, tol: float) -> None:
    engine = make_engine(net, "cpu", precision, "onnxruntime", grid_size=GRID, calibration=volumes)
    for b in (1, 3):  # dynamic batch axis
        y = engine.run_numpy(volumes[:b])
        assert y.shape == (b, 21, GRID // 2, GRID // 2, GRID // 2)
        assert _rel(y, _reference(net, volumes[:b])) < tol


@pytest.mark.skipif(not HAS_ORT, reason="onnxruntime is not installed (pip install -r requirements.txt)")
def test_onnxruntime_int8_with_deduplicated_initializers(volumes: np.ndarray) -> None:
    """The paper's init (all-zero biases) makes the exporter share tensors behind Identity nodes."""
    engine = make_engine(V2VPoseNet(21).eval(), "cpu", "int8", "onnxruntime", grid_size=GRID,
                         calibration=volumes[:1])
    assert engine.run_numpy(volumes[:1]).shape == (1, 21, GRID // 2, GRID // 2, GRID // 2)


def test_batched_forward_equals_single_forwards(net: V2VPoseNet, volumes: np.ndarray) -> None:
    engine = make_engine(net, "cpu", "fp32")
    many = engine.run_numpy(volumes)
    singles = np.concatenate([engine.run_numpy(volumes[i:i + 1]) for i in range(len(volumes))])
    np.testing.assert_allclose(many, singles, rtol=1e-4, atol=1e-5 * np.abs(singles).max())


def test_engine_refusals_name_the_reason(net: V2VPoseNet) -> None:
    with pytest.raises(ValueError, match="precision"):
        make_engine(net, "cpu", "fp8")
    with pytest.raises(ValueError, match="backend"):
        make_engine(net, "cpu", "fp32", "tensorrt")
    with pytest.raises(ValueError, match="calibration"):
        TorchEngine(net, "cpu", "int8")
    with pytest.raises(ValueError, match="V2VPoseNet"):
        make_engine(nn.Conv3d(1, 21, 1), "cpu", "int8")
    with pytest.raises(ValueError, match="calibration volumes must be"):
        make_engine(net, "cpu", "int8", calibration=np.zeros((1, 16, 16, 16), np.float32))
    # fp16 on a CPU only runs slower than fp32: refused with what to use instead (API, node, CLIs).
    for module in (net, nn.Conv3d(1, 21, 1)):
        with pytest.raises(ValueError, match="fp16 is for CUDA.*bf16"):
            make_engine(module, "cpu", "fp16")


def test_generic_modules_run_unchanged() -> None:
    """Test doubles and ensembles are called as they are (no copy, no rewrite)."""
    seen = []

    class Probe(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(x.dtype)
            return x[:, :1, ::2, ::2, ::2].repeat(1, 3, 1, 1, 1)

    probe = Probe()
    engine = make_engine(probe, "cpu", "bf16")
    assert engine.model is probe
    assert engine.run_numpy(np.ones((2, 1, 8, 8, 8), np.float32)).shape == (2, 3, 4, 4, 4)
    assert seen == [torch.float32]  # autocast, input left as float32


@pytest.mark.parametrize("precision", ["fp32", "bf16", pytest.param("int8", marks=pytest.mark.slow)])
def test_estimator_with_each_precision(net: V2VPoseNet, precision: str) -> None:
    from v2v_ros.core.inference import cpu_bf16_supported  # noqa: PLC0415
    from v2v_ros.data.synthetic import render_frame  # noqa: PLC0415

    meta = ModelMeta(HAND_MSRA21.name, list(HAND_MSRA21.joint_names), GRID, 200.0)
    if precision == "bf16" and not cpu_bf16_supported():  # AVX2-only CPUs: refused by name at construction
        with pytest.raises(ValueError, match="bf16 on this CPU is not supported"):
            PoseEstimator(net, meta, device="cpu", precision=precision).engine  # noqa: B018
        return
    est = PoseEstimator(net, meta, device="cpu", precision=precision, calibration=synthetic_calibration_source)
    frame = render_frame(0, 0)
    res = est.estimate(frame.full_depth(), frame.intrinsics, reference_point=frame.joints.mean(axis=0))
    assert res.valid and np.isfinite(res.joints).all()
    assert est.engine.precision == precision
    est.precision = "fp32"  # switching precision rebuilds the engine
    assert est.engine.precision == "fp32"
    with pytest.raises(ValueError, match="precision"):
        est.precision = "fp64"


# -- CUDA ---------------------------------------------------------------------------------
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)


@cuda
# fp32 on CUDA: cuDNN uses TF32 tensor cores by default on Ampere and newer (~1e-3 per layer).
@pytest.mark.parametrize("precision, tol", [("fp32", 2e-2), ("fp16", 0.05), ("bf16", 0.05)])
def test_cuda_graph_engine_matches_cpu(net: V2VPoseNet, volumes: np.ndarray, precision: str, tol: float) -> None:
    engine = TorchEngine(net, "cuda", precision)
    assert engine.cuda_graphs and torch.backends.cudnn.benchmark
    ref = _reference(net, volumes)
    for _ in range(2):  # capture, then replay
        assert _rel(engine.run_numpy(volumes), ref) < tol
    assert _rel(engine.run_numpy(volumes[:1]), ref[:1]) < tol  # a second graph for another batch size
    dev = engine(torch.from_numpy(volumes).cuda())  # device input, device output
    assert dev.device.type == "cuda" and len(engine._graphs) == 2


@cuda
def test_cuda_estimator_gpu_voxelisation_agrees_with_cpu() -> None:
    from v2v_ros.core.arrays import cupy_available  # noqa: PLC0415
    from v2v_ros.data.synthetic import render_frame  # noqa: PLC0415

    if not cupy_available():
        pytest.skip("CuPy is not installed: the estimator voxelises on the CPU and uploads via pinned memory")
    meta = ModelMeta(HAND_MSRA21.name, list(HAND_MSRA21.joint_names), GRID, 200.0)
    gpu = PoseEstimator(_net(0), meta, device="cuda")  # separate copies: the constructor moves the module
    cpu = PoseEstimator(_net(0), meta, device="cpu")
    assert gpu.gpu_voxels
    f = render_frame(0, 1)
    ref = f.joints.mean(axis=0)
    a = gpu.estimate(f.full_depth(), f.intrinsics, reference_point=ref)
    b = cpu.estimate(f.full_depth(), f.intrinsics, reference_point=ref)
    assert a.points_in_cube == b.points_in_cube  # identical volumes
    # Same heatmaps up to TF32 rounding: nearly all joints agree to a millimetre (a near-tie
    # in a random network's heatmap may move an argmax by a voxel).
    assert np.mean(np.linalg.norm(a.joints - b.joints, axis=1) < 1.0) >= 0.9
