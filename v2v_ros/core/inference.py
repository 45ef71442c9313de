"""Inference engines: the network's forward pass made fast for deployment.

:class:`~v2v_ros.core.estimator.PoseEstimator` calls an engine for its forward, so
the node, the evaluator and ``v2v bench`` run exactly the same optimised code.
An engine takes (B, C, N, N, N) float32 occupancy, NumPy or torch (C: the model's input channels,
core.voxel), and returns (B, J, N/2, N/2, N/2) float32 heatmaps. What it does, and why:

* **BatchNorm folded into the preceding convolution** (:func:`fold_batchnorm`): at
  inference BN is an affine map per channel, so it costs a memory pass per layer
  for nothing; folding it into the conv weights removes 30 of the network's layers.
* **oneDNN convolutions forced on CPU** (:class:`MkldnnConv3d`): PyTorch's CPU
  heuristic (written for 2-D) sends batch-1 3-D convolutions on small volumes
  (N·C·D·H ≤ 20480, i.e. every layer at 32³) to its im2col "slow_conv3d" path,
  2.5× slower than oneDNN here. Calling ``torch.mkldnn_convolution`` directly
  removes the heuristic without leaving PyTorch.
* **channels_last_3d** (NDHWC) on CPU: oneDNN's native layout, no reorders between layers.
* **Precisions**: ``fp32``; ``bf16`` as a bf16 copy of the folded weights (on CPU
  faster than autocast, which re-casts weights every call; on CUDA autocast);
  ``fp16`` (CUDA autocast; refused on a CPU, where it is only slower than fp32);
  ``int8`` via PyTorch's own FX graph-mode post-training quantisation (x86/fbgemm
  backend, static, per-channel weights, calibrated on volumes the caller passes, e.g.
  ``v2v_ros.data.calibration``'s synthetic hands: the core never imports data code) or,
  with the ``onnxruntime`` backend, ONNX Runtime static quantisation (QOperator).
* **Backends**: ``torch`` (above) and ``onnxruntime`` (the folded model exported
  to ONNX, run by ONNX Runtime's CPU or CUDA execution provider).
* **CUDA**: ``cudnn.benchmark`` autotuning, autocast fp16/bf16, the fixed-shape
  forward captured once per batch size as a CUDA graph with static input/output
  buffers (removes ~60 kernel launches of Python overhead per frame), pinned host
  buffers for NumPy input/output so the copies are asynchronous DMA.

Generic modules (test doubles, the vmapped epoch ensemble) run unchanged in an
eager engine with autocast, so an engine never alters a module it cannot prove
it understands.
"""

from __future__ import annotations

import copy
import functools
import io
import warnings
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np
import torch
from torch import nn

from v2v_ros.core.model import input_channels
from v2v_ros.core.threads import default_policy

PRECISIONS = ("fp32", "bf16", "fp16", "int8")
BACKENDS = ("torch", "onnxruntime")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
# fp16 gains nothing on a CPU: this network's fp16 convolutions have no fast CPU kernels in PyTorch
# (slower than fp32 on the CPU it was tried on), and bf16 is the CPUs' half precision.
FP16_ON_CPU = ("precision fp16 is for CUDA devices: on a CPU PyTorch has no fast fp16 kernels for this network "
               "(slower than fp32); use auto, bf16 (native on CPUs with AVX512-BF16/AMX), int8 or fp32")


class Engine(Protocol):
    """(B, C, N, N, N) occupancy -> (B, J, S, S, S) float32 heatmaps."""

    precision: str
    backend: str
    device: torch.device

    def __call__(self, voxels: np.ndarray | torch.Tensor) -> torch.Tensor: ...

    def run_numpy(self, voxels: np.ndarray | torch.Tensor) -> np.ndarray: ...


# ---------------------------------------------------------------------------------------
# Graph rewrites
# ---------------------------------------------------------------------------------------
_CONVS = (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_BNS = {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}


def _fold_pair(conv: nn.Module, bn: nn.Module) -> nn.Module:
    """A new conv equal to ``bn(conv(x))`` in eval mode (running statistics); 2-D or 3-D."""
    fused = copy.deepcopy(conv)
    w = fused.weight.detach()
    scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps) if bn.affine else 1.0 / torch.sqrt(
        bn.running_var + bn.eps)
    shift = bn.bias.detach() if bn.affine else torch.zeros_like(bn.running_mean)
    bias = fused.bias.detach() if fused.bias is not None else torch.zeros_like(bn.running_mean)
    spatial = [1] * (w.ndim - 2)
    if isinstance(conv, (nn.ConvTranspose2d, nn.ConvTranspose3d)):
        if conv.groups != 1:
            raise ValueError("fold_batchnorm: grouped transposed convolutions are not supported")
        w = w * scale.reshape(1, -1, *spatial)  # (Cin, Cout, k...): output channels on dim 1
    else:
        w = w * scale.reshape(-1, 1, *spatial)
    fused.weight = nn.Parameter(w, requires_grad=False)
    fused.bias = nn.Parameter((bias - bn.running_mean) * scale + shift, requires_grad=False)
    return fused


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every BatchNorm2d/3d that directly follows a convolution
    (or transposed convolution) of the same dimension inside an ``nn.Sequential`` folded
    into that convolution.

    Pure: the input model is not modified. The result is only valid in eval mode
    (it uses the running statistics), which is what inference needs. Folded BNs
    become ``nn.Identity`` so module names and indices are preserved.
    """
    out = copy.deepcopy(model).eval()

    def visit(module: nn.Module) -> None:
        if isinstance(module, nn.Sequential):
            children = list(module._modules.items())
            for (_, a), (name_b, b) in zip(children, children[1:], strict=False):
                if isinstance(a, _CONVS) and isinstance(b, _BNS.get(a.weight.ndim - 2, ())) \
                        and b.track_running_stats and b.running_var is not None:
                    idx = next(i for i, (n, _) in enumerate(children) if n == name_b)
                    module._modules[children[idx - 1][0]] = _fold_pair(a, b)
                    module._modules[name_b] = nn.Identity()
        for child in module.children():
            visit(child)

    visit(out)
    return out


class MkldnnConv3d(nn.Module):
    """Conv3d evaluated by ``torch.mkldnn_convolution`` (oneDNN), bypassing the 2-D
    heuristic that picks the slow im2col path for batch-1 3-D volumes (see module doc)."""

    def __init__(self, conv: nn.Conv3d) -> None:
        super().__init__()
        if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise ValueError("MkldnnConv3d needs numeric zero padding")
        self.weight = nn.Parameter(conv.weight.detach().clone(), requires_grad=False)
        self.bias = nn.Parameter(
            conv.bias.detach().clone() if conv.bias is not None else torch.zeros(conv.out_channels),
            requires_grad=False)
        self.padding = list(conv.padding)
        self.stride = list(conv.stride)
        self.dilation = list(conv.dilation)
        self.groups = conv.groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.mkldnn_convolution(x, self.weight, self.bias, self.padding, self.stride, self.dilation,
                                        self.groups)


def use_mkldnn_convs(model: nn.Module) -> nn.Module:
    """Replace every ``nn.Conv3d`` in ``model`` (in place) by :class:`MkldnnConv3d`."""
    for name, child in model.named_children():
        if type(child) is nn.Conv3d:
            setattr(model, name, MkldnnConv3d(child))
        else:
            use_mkldnn_convs(child)
    return model


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (``/proc/cpuinfo``; empty where it cannot be read)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    return frozenset(w for line in text.splitlines() if line.startswith("flags") for w in line.split(":", 1)[-1].split())


def native_bf16_cpu() -> bool:
    """True on CPUs with bf16 arithmetic in hardware (AVX512-BF16 or AMX), where bf16 is ~2× fp32.

    oneDNN also runs bf16 on plain AVX-512 by conversion, which is no faster, so
    ``auto`` must not pick it there.
    """
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"}) and cpu_bf16_supported()


def amx_bf16_cpu() -> bool:
    """True on CPUs with AMX bf16 tiles (where ``auto`` trains in bf16: ``train.cpu_speed``)."""
    return "amx_bf16" in cpu_flags() and cpu_bf16_supported()


def int8_dot_product_cpu() -> bool:
    """True on CPUs whose int8 dot products accumulate in 32 bits (AVX512-VNNI, AVX-VNNI or AMX).

    Without them x86 int8 kernels multiply-add pairs of u8 × s8 into saturating 16-bit sums, which
    is why PyTorch's x86 default quantises activations to 7 bits (``reduce_range``); with them all
    8 bits are safe (:func:`quantize_int8`).
    """
    return bool(cpu_flags() & {"avx512_vnni", "avx_vnni", "amx_int8"})


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` -> the fastest precision that keeps the accuracy (docs/performance.md):
    bf16 on CUDA with bf16 support (else fp16) and on CPUs with native bf16, fp32 elsewhere."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if native_bf16_cpu() else "fp32"


def cpu_bf16_supported() -> bool:
    """Whether oneDNN can run bf16 on this CPU (AVX512 BW/VL/DQ or newer)."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def is_v2v(model: nn.Module) -> bool:
    """Whether the engine may rewrite ``model`` (our own architecture, nothing else)."""
    from v2v_ros.core.model import V2VPoseNet  # noqa: PLC0415

    return isinstance(model, V2VPoseNet)


def _as_tensor(voxels: np.ndarray | torch.Tensor) -> torch.Tensor:
    if isinstance(voxels, torch.Tensor):
        return voxels
    if isinstance(voxels, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(voxels, dtype=np.float32))
    return torch.from_dlpack(voxels)  # CuPy and other DLPack producers: no copy


def _check_input(x: torch.Tensor, channels: int = 1) -> None:
    if x.ndim != 5 or x.shape[1] != channels or not (x.shape[2] == x.shape[3] == x.shape[4]):
        raise ValueError(f"voxels must be (B, {channels}, N, N, N), got {tuple(x.shape)}")


# ---------------------------------------------------------------------------------------
# int8 calibration data: always the caller's (the core renders nothing and reads no dataset)
# ---------------------------------------------------------------------------------------
# (grid N, cube edge mm, skeleton preset) -> (count, 1, N, N, N) float32 occupancy volumes that look like
# what the model will see; v2v_ros.data.calibration.synthetic_calibration_source renders synthetic ones.
# For a model with two input channels the estimator also passes ``channels=2`` (volumes (count, 2, ...)).
CalibrationSource = Callable[[int, float, str], np.ndarray]
Calibration = np.ndarray | Callable[[], np.ndarray]

NO_CALIBRATION = ("int8 needs calibration volumes from the caller: pass calibration= (an array of (B, C, N, N, N) "
                  "occupancy volumes, or v2v_ros.data.calibration.synthetic_calibration_source to PoseEstimator)")


def _calibration_volumes(calibration: Calibration | None, channels: int = 1) -> np.ndarray:
    data = calibration() if callable(calibration) else calibration
    if data is None:
        raise ValueError(NO_CALIBRATION)
    arr = np.asarray(data, np.float32)
    if arr.ndim != 5 or arr.shape[1] != channels or len(arr) == 0:
        raise ValueError(f"int8 calibration volumes must be (B >= 1, {channels}, N, N, N), got {arr.shape}")
    return arr


def quantize_int8(model: nn.Module, calibration: np.ndarray) -> nn.Module:
    """Post-training static int8 quantisation with PyTorch's FX graph mode (x86 backend).

    The quantiser folds BN and fuses conv+BN+ReLU / add+ReLU itself, so it gets the
    unfolded model (a pre-folded model would leave Identity between conv and ReLU
    and block the conv+ReLU fusion: measured 2× slower). Activations are
    calibrated with histogram observers on ``calibration`` volumes. The two
    ConvTranspose3d upsamplers (<2% of the MACs) stay fp32: PyTorch's quantised
    transposed convolution gave a 25% relative heatmap error on a test network,
    against 6% with them in fp32.

    Activations use all 8 bits on CPUs with 32-bit int8 accumulation
    (:func:`int8_dot_product_cpu`), 7 bits (PyTorch's x86 default) elsewhere. With the cube on the
    true joint mean, on 200 validation frames (``v2v bench --eval-reference gt``, docs/performance.md),
    the 40³ hand model's stage-2 weights (``models/stages/hand_grid40_two_s2``) measured 8.46 mm
    with 7 bits, 7.84 mm with 8 and 7.78 mm in bf16.
    """
    try:  # deprecated upstream (successor: torchao's pt2e flow) but present and working in torch 2.13
        from torch.ao.quantization import HistogramObserver, QConfig, get_default_qconfig_mapping  # noqa: PLC0415
        from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx  # noqa: PLC0415
    except ImportError as exc:
        raise ValueError(f"int8 with the torch backend needs torch.ao.quantization ({exc}); "
                         "use backend='onnxruntime' or bf16") from exc

    torch.backends.quantized.engine = "x86" if "x86" in torch.backends.quantized.supported_engines else "fbgemm"
    example = torch.from_numpy(calibration[:1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao deprecation notices
        mapping = get_default_qconfig_mapping(torch.backends.quantized.engine)
        if int8_dot_product_cpu():
            default = mapping.global_qconfig
            full = QConfig(activation=HistogramObserver.with_args(reduce_range=False), weight=default.weight)
            mapping.set_global(full)
            for kind, qconfig in list(mapping.object_type_qconfigs.items()):
                if qconfig is default:
                    mapping.set_object_type(kind, full)
        mapping.set_object_type(nn.ConvTranspose3d, None)
        prepared = prepare_fx(copy.deepcopy(model).cpu().eval(), mapping, (example,))
        with torch.inference_mode():
            for i in range(len(calibration)):
                prepared(torch.from_numpy(calibration[i:i + 1]))
        return convert_fx(prepared).eval()


# ---------------------------------------------------------------------------------------
# torch backend
# ---------------------------------------------------------------------------------------
class TorchEngine:
    """The network in PyTorch, rewritten for speed where it is a V2VPoseNet.

    ``optimize=False`` (or a module that is not a V2VPoseNet) runs the module
    itself in eager mode with autocast for bf16/fp16, exactly as before engines.
    """

    backend = "torch"

    def __init__(self, model: nn.Module, device: str | torch.device = "cpu", precision: str = "fp32", *,
                 optimize: bool = True, channels_last: bool | None = None, cuda_graphs: bool = True,
                 calibration: Calibration | None = None) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.device = torch.device(device)
        self.precision = precision
        self.optimized = optimize and is_v2v(model)
        self.channels = input_channels(model)
        cuda = self.device.type == "cuda"
        if precision == "fp16" and not cuda:
            raise ValueError(FP16_ON_CPU)
        if precision == "int8" and (cuda or not self.optimized):
            raise ValueError("int8 with the torch backend needs a V2VPoseNet on CPU (PyTorch's quantised "
                             "kernels are CPU-only); use backend='onnxruntime' or bf16/fp16 on CUDA")
        if precision == "bf16" and self.optimized and not cuda and not cpu_bf16_supported():
            raise ValueError("bf16 on this CPU is not supported by oneDNN (needs AVX512 BW/VL/DQ; fast only with "
                             "AVX512-BF16 or AMX): use fp32 or int8")
        self.channels_last = (self.optimized and precision != "int8" and (not cuda or precision != "fp32")) \
            if channels_last is None else channels_last
        # Graphs only for our own network: a generic module may do host work (or record its
        # input, like the test doubles) that a replayed graph would silently skip.
        self.cuda_graphs = cuda and cuda_graphs and self.optimized
        self._upload_done: Any = None  # CUDA event: the pinned input buffer may be rewritten
        self._autocast: torch.dtype | None = None
        self._in_dtype = torch.float32
        self._graphs: dict[tuple[int, ...], tuple[Any, torch.Tensor, torch.Tensor]] = {}
        self._pinned: dict[tuple[str, tuple[int, ...]], torch.Tensor] = {}
        if cuda:
            torch.backends.cudnn.benchmark = True  # autotune conv algorithms for the fixed shapes
        if not self.optimized:
            self.model = model.to(self.device).eval()
            self._autocast = _DTYPES.get(precision)
            return
        if precision == "int8":
            self.model = quantize_int8(model, _calibration_volumes(calibration, self.channels))
            return
        net = fold_batchnorm(model)
        if not cuda and torch.backends.mkldnn.is_available() and precision != "fp16":
            use_mkldnn_convs(net)
        net = net.to(self.device)
        if precision == "bf16" and not cuda:
            net = net.to(torch.bfloat16)  # measured faster than autocast on CPU (no per-call weight casts)
            self._in_dtype = torch.bfloat16
        elif precision in _DTYPES:
            self._autocast = _DTYPES[precision]
        if self.channels_last:
            net = net.to(memory_format=torch.channels_last_3d)
        self.model = net.eval()

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self._in_dtype)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        if self._autocast is not None:
            with torch.autocast(self.device.type, dtype=self._autocast, cache_enabled=False):
                y = self.model(x)
        else:
            y = self.model(x)
        return y.float().contiguous()

    def __call__(self, voxels: np.ndarray | torch.Tensor) -> torch.Tensor:
        x = _as_tensor(voxels)
        _check_input(x, self.channels)
        with torch.inference_mode():
            if self.device.type != "cuda":
                default_policy().update()  # fewer threads while other processes hold cores (core.threads)
                return self._run(x.to(self.device))
            x = self._upload(x)
            if not self.cuda_graphs:
                return self._run(x)
            return self._replay(x)

    def run_numpy(self, voxels: np.ndarray | torch.Tensor) -> np.ndarray:
        """Heatmaps as a NumPy array (via a pinned host buffer on CUDA)."""
        y = self(voxels)
        if y.device.type != "cuda":
            return y.numpy()
        host = self._pinned_buffer("out", tuple(y.shape))
        host.copy_(y, non_blocking=True)
        torch.cuda.current_stream(y.device).synchronize()
        return host.numpy().copy()  # the pinned buffer is reused by the next call

    # -- CUDA helpers ----------------------------------------------------------------------
    def _pinned_buffer(self, kind: str, shape: tuple[int, ...]) -> torch.Tensor:
        key = (kind, shape)
        if key not in self._pinned:
            self._pinned[key] = torch.empty(shape, dtype=torch.float32, pin_memory=True)
        return self._pinned[key]

    def _upload(self, x: torch.Tensor) -> torch.Tensor:
        """Host tensors go through a pinned buffer (asynchronous DMA); device tensors stay."""
        if x.device.type == "cuda":
            return x.to(self.device)
        if self._upload_done is not None:
            self._upload_done.synchronize()  # the previous asynchronous copy still reads the buffer
        host = self._pinned_buffer("in", tuple(x.shape))
        host.copy_(x)
        dev = host.to(self.device, non_blocking=True)
        self._upload_done = torch.cuda.Event()
        self._upload_done.record()
        return dev

    def _replay(self, x: torch.Tensor) -> torch.Tensor:
        """Run the fixed-shape forward as a CUDA graph (captured on first use per shape)."""
        key = tuple(x.shape)
        if key not in self._graphs:
            static_in = torch.zeros(key, device=self.device)
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):  # warm-up: cuDNN autotuning and allocator pools
                for _ in range(3):
                    self._run(static_in)
            torch.cuda.current_stream(self.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_out = self._run(static_in)
            self._graphs[key] = (graph, static_in, static_out)
        graph, static_in, static_out = self._graphs[key]
        static_in.copy_(x)
        graph.replay()
        return static_out.clone()  # the static buffer is overwritten by the next replay


# ---------------------------------------------------------------------------------------
# ONNX export and the ONNX Runtime backend
# ---------------------------------------------------------------------------------------
def export_onnx(model: nn.Module, grid_size: int, batch: int | None = 1, *, exporter: str = "auto",
                opset: int = 18, fold: bool = True) -> bytes:
    """Serialise ``model`` (BN folded) to ONNX bytes; ``batch=None`` makes the batch axis dynamic.

    ``exporter``: ``dynamo`` (torch.export based, PyTorch's maintained exporter),
    ``legacy`` (TorchScript based, ~10× faster to run, deprecated) or ``auto``
    (legacy where this PyTorch still has it, else dynamo).
    """
    net = (fold_batchnorm(model) if fold and is_v2v(model) else copy.deepcopy(model)).float().cpu().eval()
    example = torch.zeros(batch or 2, input_channels(model), grid_size, grid_size, grid_size)
    names = {"input_names": ["voxels"], "output_names": ["heatmaps"]}
    if exporter not in ("auto", "legacy", "dynamo"):
        raise ValueError(f"exporter must be auto, legacy or dynamo, got {exporter!r}")
    if exporter in ("auto", "legacy"):
        try:
            buf = io.BytesIO()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(net, (example,), buf, dynamo=False, opset_version=min(opset, 17),
                                  dynamic_axes=None if batch else {"voxels": {0: "batch"}, "heatmaps": {0: "batch"}},
                                  **names)
            return buf.getvalue()
        except (TypeError, RuntimeError, ImportError) as exc:
            if exporter == "legacy":
                raise RuntimeError(f"legacy ONNX export failed: {exc}") from exc
    shapes = None if batch else {"x": {0: torch.export.Dim("batch", min=1, max=1024)}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(net, (example,), dynamo=True, opset_version=opset, dynamic_shapes=shapes,
                                    verbose=False, **names)
    return program.model_proto.SerializeToString()


def quantize_onnx_int8(onnx_bytes: bytes, calibration: np.ndarray) -> bytes:
    """ONNX Runtime static int8 quantisation (QOperator, per-channel weights) of an exported model."""
    import tempfile  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    from onnxruntime.quantization import (  # noqa: PLC0415
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter([{"voxels": calibration[i:i + 1]} for i in range(len(calibration))])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(_unshare_initializers(onnx_bytes))
        quantize_static(str(src), str(dst), _Reader(), quant_format=QuantFormat.QOperator, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        return dst.read_bytes()


def _unshare_initializers(onnx_bytes: bytes) -> bytes:
    """Give every node its own copy of the initializers it reads.

    The exporter de-duplicates identical tensors (e.g. the all-zero biases of a
    freshly initialised network) behind ``Identity`` nodes, and ONNX Runtime's
    quantiser then finds no initializer for those biases and fails.
    """
    import onnx  # noqa: PLC0415

    model = onnx.load_from_string(onnx_bytes)
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    alias = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "Identity" and n.input[0] in inits}
    outputs = {o.name for o in graph.output}
    keep = [n for n in graph.node if not (n.op_type == "Identity" and n.output[0] in alias
                                          and n.output[0] not in outputs)]
    seen: set[str] = set()
    for k, node in enumerate(keep):
        for i, name in enumerate(node.input):
            src = alias.get(name, name) if name not in outputs else name
            if src not in inits:
                continue
            if src in seen or src != name:
                dup = onnx.TensorProto()
                dup.CopyFrom(inits[src])
                dup.name = f"{src}__{k}_{i}"
                graph.initializer.append(dup)
                node.input[i] = dup.name
            else:
                seen.add(src)
    del graph.node[:]
    graph.node.extend(keep)
    return model.SerializeToString()


def ort_session(onnx_model: bytes | str, device: torch.device, threads: int | None = None) -> Any:
    """An ONNX Runtime session on the CPU or (with onnxruntime-gpu) the CUDA execution provider."""
    import onnxruntime as ort  # noqa: PLC0415

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or torch.get_num_threads()
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if device.type == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise ValueError("backend onnxruntime on CUDA needs the onnxruntime-gpu package "
                             f"(available providers: {ort.get_available_providers()})")
        providers: list[Any] = [("CUDAExecutionProvider", {"device_id": device.index or 0,
                                                           "cudnn_conv_algo_search": "EXHAUSTIVE"})]
    else:
        providers = ["CPUExecutionProvider"]
    return ort.InferenceSession(onnx_model, opts, providers=providers)


class OnnxRuntimeEngine:
    """The folded network exported to ONNX and run by ONNX Runtime (fp32, or int8 on CPU)."""

    backend = "onnxruntime"

    def __init__(self, model: nn.Module, device: str | torch.device = "cpu", precision: str = "fp32", *,
                 grid_size: int | None = None, calibration: Calibration | None = None) -> None:
        self.device = torch.device(device)
        if precision not in ("fp32", "int8"):
            raise ValueError(f"backend onnxruntime supports fp32 and int8, got {precision!r} "
                             "(for fp16 on GPU export with `v2v export --onnx` and build a TensorRT engine)")
        if precision == "int8" and self.device.type == "cuda":
            raise ValueError("int8 with onnxruntime is CPU-only here (use TensorRT for int8 on GPUs)")
        if not is_v2v(model):
            raise ValueError("backend onnxruntime needs a V2VPoseNet (ensembles and test doubles run on torch)")
        if grid_size is None:
            raise ValueError("backend onnxruntime needs grid_size to export the model")
        self.precision = precision
        self.grid_size = grid_size
        self.channels = input_channels(model)
        blob = export_onnx(model, grid_size, batch=None)
        if precision == "int8":
            blob = quantize_onnx_int8(blob, _calibration_volumes(calibration, self.channels))
        self.session = ort_session(blob, self.device)

    def run_numpy(self, voxels: np.ndarray | torch.Tensor) -> np.ndarray:
        x = voxels.detach().cpu().numpy() if isinstance(voxels, torch.Tensor) else np.asarray(voxels)
        if x.ndim != 5 or x.shape[1] != self.channels:
            raise ValueError(f"voxels must be (B, {self.channels}, N, N, N), got {tuple(x.shape)}")
        return self.session.run(["heatmaps"], {"voxels": np.ascontiguousarray(x, dtype=np.float32)})[0]

    def __call__(self, voxels: np.ndarray | torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.run_numpy(voxels)).to(self.device)


def make_engine(model: nn.Module, device: str | torch.device = "cpu", precision: str = "fp32",
                backend: str = "torch", *, grid_size: int | None = None, **kwargs: Any) -> TorchEngine | OnnxRuntimeEngine:
    """The engine for ``backend`` and ``precision`` (validated, with reasons on refusal).

    int8 engines are calibrated on the ``calibration`` volumes (or zero-argument callable
    returning them) that the caller passes; without them int8 is refused with a reason.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if backend == "onnxruntime":
        return OnnxRuntimeEngine(model, device, precision, grid_size=grid_size, **kwargs)
    return TorchEngine(model, device, precision, **kwargs)

