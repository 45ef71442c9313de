"""Depth image decoding from raw message fields to float32 millimetres, without ROS.

The node (``sensor_msgs/Image`` from DDS) and the bag evaluator (the same message
deserialised by ``rosbags``) hand the *fields* of the message to these functions,
so both decode identically and every malformed-input rule lives in one tested place.

Supported encodings: ``16UC1`` and ``mono16`` (unsigned mm), ``32FC1`` (metres).
``step`` (bytes per row, may include padding) and ``is_bigendian`` are honoured.
``compressedDepth`` (image_transport's PNG variant: 12-byte header + PNG) is decoded
with Pillow. Every failure raises :class:`DepthDecodeError` whose ``reason`` is a short
stable key (for diagnostics counters) and whose message names the offending value.
"""

from __future__ import annotations

import io
import struct
from typing import Any

import numpy as np

from v2v_ros.core.camera import Intrinsics

# Pixels, not bytes: a 4096x4096 frame is already 16x a Kinect frame. Larger
# "images" are almost certainly corrupt headers and would cost seconds of CPU.
MAX_PIXELS = 4096 * 4096

# encoding -> (numpy dtype without byte order, scale to millimetres)
ENCODINGS: dict[str, tuple[str, float]] = {
    "16UC1": ("u2", 1.0),
    "mono16": ("u2", 1.0),
    "32FC1": ("f4", 1000.0),
}

# Encodings a wrong topic typically carries (colour, IR, a colourised depth view).
EIGHT_BIT_ENCODINGS = frozenset({"8UC1", "8UC3", "8UC4", "8SC1", "mono8", "rgb8", "bgr8", "rgba8", "bgra8",
                                 "bayer_rggb8", "bayer_bggr8", "bayer_gbrg8", "bayer_grbg8", "yuv422"})

COMPRESSED_DEPTH_HEADER = 12  # enum format (int32) + depthQuantA, depthQuantB (float32)


class DepthDecodeError(ValueError):
    """A depth message that cannot be turned into an image; ``reason`` is a counter key."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def decode_depth(
    data: bytes | bytearray | memoryview | np.ndarray,
    encoding: str,
    height: int,
    width: int,
    step: int,
    is_bigendian: bool | int = False,
    max_pixels: int = MAX_PIXELS,
    report: dict[str, int] | None = None,
) -> np.ndarray:
    """Raw ``sensor_msgs/Image`` fields -> (height, width) float32 depth in mm.

    Invalid pixels (0, NaN, inf, negative) become 0, the convention of
    :func:`v2v_ros.core.estimator.check_depth`; a given ``report`` dict receives
    ``nonfinite``, the number of NaN/inf pixels (found in the same pass, so callers
    that count them need no second scan of the image). Raises DepthDecodeError for a wrong
    encoding, a zero or absurd size, a ``step`` smaller than a row, or a data length
    that does not match ``height * step``.
    """
    if encoding not in ENCODINGS:
        likely = (f"; {encoding!r} is an 8-bit or colour image, not depth: is the topic the camera's depth "
                  "stream (16UC1 mm or 32FC1 m)?") if encoding in EIGHT_BIT_ENCODINGS else ""
        raise DepthDecodeError(
            "encoding", f"unsupported depth encoding {encoding!r} (expected one of {sorted(ENCODINGS)}){likely}"
        )
    height, width, step = int(height), int(width), int(step)
    if height <= 0 or width <= 0:
        raise DepthDecodeError("zero_size", f"image has zero size: height={height}, width={width}")
    if height * width > max_pixels:
        raise DepthDecodeError(
            "too_large", f"image of {width}x{height}={height * width} pixels exceeds the limit of {max_pixels}"
        )
    kind, scale = ENCODINGS[encoding]
    itemsize = int(kind[1])
    row_bytes = width * itemsize
    if step < row_bytes:
        raise DepthDecodeError("step", f"step={step} is smaller than width*bytes_per_pixel={row_bytes} ({encoding})")
    buf = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data.view(np.uint8).ravel()
    if buf.size != height * step:
        raise DepthDecodeError(
            "data_length", f"data has {buf.size} bytes but height*step = {height}*{step} = {height * step}"
        )
    dtype = np.dtype(kind).newbyteorder(">" if is_bigendian else "<")
    rows = buf.reshape(height, step)[:, :row_bytes]
    image = np.ascontiguousarray(rows).view(dtype).reshape(height, width)
    depth = image.astype(np.float32)
    if scale != 1.0:
        # Huge metres overflow to inf and inf*1000 stays inf (NaN stays NaN): both become invalid
        # pixels below, so the floating-point warnings would only be stderr noise from a bad frame.
        with np.errstate(over="ignore", invalid="ignore"):
            depth *= np.float32(scale)
    nonfinite = 0
    if kind[0] == "f":
        finite = np.isfinite(depth)
        bad = ~finite | (depth < 0)
        if bad.any():
            depth[bad] = 0.0
            nonfinite = int(finite.size - np.count_nonzero(finite))
    if report is not None:
        report["nonfinite"] = nonfinite
    return depth


# -- units: a depth image that is not millimetres must not become a confident pose ----------------
# Any depth camera sees something farther than 2 cm and nearer than 100 m; a median of the valid
# pixels outside that range means the image is in other units (metres passed as mm, millimetres
# labelled as metres), which would otherwise voxelise into an empty or absurd cube.
METRES_BELOW_MM = 20.0
MM_AS_METRES_ABOVE_MM = 100_000.0
UNITS_SAMPLE = 2048  # pixels the median is taken over: a strided sample (tens of µs), not a full-image sort


def check_depth_units(depth_mm: np.ndarray, source_dtype: np.dtype | None = None) -> None:
    """Raise :class:`DepthDecodeError` when a depth image (mm, invalid pixels 0) is almost surely not mm.

    ``source_dtype`` is the caller's dtype before conversion to float: 8-bit data holds
    0-255, a colour, IR or visualised-depth image rather than depth (reason ``depth_8bit``).
    Otherwise the median of the valid pixels (a strided sample) decides: under 20 means
    metres given where millimetres are expected, over 100 m means millimetres stored as
    metres (e.g. a 32FC1 image whose driver wrote mm) (reason ``depth_units``). The messages
    name the value found and the likely cause; an image without valid pixels passes (it is
    reported as such by the caller).
    """
    if source_dtype is not None and np.dtype(source_dtype).itemsize == 1:
        raise DepthDecodeError(
            "depth_8bit", f"depth has dtype {np.dtype(source_dtype)} (8-bit, values 0-255): not depth in "
            "millimetres; probably a colour, IR or visualised-depth image or an 8-bit PNG. Pass 16-bit or "
            "float depth in mm")
    h, w = depth_mm.shape[:2]
    stride = max(1, int((h * w / UNITS_SAMPLE) ** 0.5))
    sample = depth_mm[::stride, ::stride]
    valid = sample[sample > 0]
    if valid.size < 16:  # sparse image: look at every pixel
        valid = depth_mm[depth_mm > 0]
        if valid.size == 0:
            return
    med = float(np.median(valid))
    if med < METRES_BELOW_MM:
        raise DepthDecodeError(
            "depth_units", f"depth values look like metres, not millimetres: median valid depth {med:.3g} "
            f"(< {METRES_BELOW_MM:g} mm, nearer than any depth camera sees); multiply by 1000")
    if med > MM_AS_METRES_ABOVE_MM:
        raise DepthDecodeError(
            "depth_units", f"depth values look like millimetres scaled as metres: median valid depth "
            f"{med / 1000:.4g} m (> {MM_AS_METRES_ABOVE_MM / 1000:g} m); a 32FC1 image must hold metres")


def decode_compressed_depth(fmt: str, data: bytes | bytearray | memoryview, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """``sensor_msgs/CompressedImage`` from image_transport's compressedDepth plugin -> mm.

    Only the lossless PNG variant of 16-bit depth is supported (``format`` like
    ``"16UC1; compressedDepth png"``); the RVL variant and 32FC1 (quantised inverse
    depth) are rejected with a reason rather than guessed.
    """
    fmt_l = fmt.lower()
    if "compresseddepth" not in fmt_l:
        raise DepthDecodeError("encoding", f"CompressedImage.format {fmt!r} is not a compressedDepth format")
    if "rvl" in fmt_l:
        raise DepthDecodeError("encoding", f"compressedDepth RVL is not supported (format {fmt!r}); use png")
    base = fmt.split(";")[0].strip()
    if base not in ("16UC1", "mono16"):
        raise DepthDecodeError("encoding", f"compressedDepth of {base!r} is not supported (only 16UC1/mono16 png)")
    raw = bytes(data)
    if len(raw) <= COMPRESSED_DEPTH_HEADER:
        raise DepthDecodeError("data_length", f"compressedDepth payload has {len(raw)} bytes, no PNG after the header")
    png = raw[COMPRESSED_DEPTH_HEADER:]
    if not png.startswith(b"\x89PNG"):
        raise DepthDecodeError("corrupt", "compressedDepth payload after the 12-byte header is not a PNG")
    try:
        from PIL import Image  # noqa: PLC0415  (Pillow is only needed for this optional input)

        with Image.open(io.BytesIO(png)) as img:
            w, h = img.size
            if w * h > max_pixels:
                raise DepthDecodeError("too_large", f"compressed image of {w}x{h} pixels exceeds {max_pixels}")
            mode = img.mode
            arr = np.asarray(img)
    except DepthDecodeError:
        raise
    except Exception as exc:  # Pillow raises many types for broken streams
        raise DepthDecodeError("corrupt", f"compressedDepth PNG cannot be decoded ({exc})") from exc
    if arr.ndim != 2 or arr.size == 0:
        raise DepthDecodeError("corrupt", f"compressedDepth PNG has shape {arr.shape}, expected a 2-D 16-bit image")
    if arr.dtype.kind not in "ui" or arr.dtype.itemsize < 2:
        # An 8-bit PNG would read as 0-255 "mm": a hand at 25 cm at most, silently wrong.
        raise DepthDecodeError("encoding", f"compressedDepth PNG is {arr.dtype.itemsize * 8}-bit (mode {mode!r}); "
                                           f"{base} depth needs a 16-bit grayscale PNG")
    return arr.astype(np.float32)


def encode_compressed_depth(depth_mm: np.ndarray) -> tuple[str, bytes]:
    """(format, data) of a compressedDepth PNG message for 16UC1 depth (tests, bag tools)."""
    from PIL import Image  # noqa: PLC0415

    arr = np.clip(np.nan_to_num(np.asarray(depth_mm, dtype=np.float64)), 0, 65535).astype(np.uint16)
    out = io.BytesIO()
    Image.fromarray(arr).save(out, format="PNG")
    header = struct.pack("<iff", 0, 0.0, 0.0)  # PNG, no quantisation (16UC1)
    return "16UC1; compressedDepth png", header + out.getvalue()


def encode_depth(depth_mm: np.ndarray, encoding: str = "16UC1", is_bigendian: bool = False) -> tuple[bytes, int]:
    """(data, step) of an Image message holding ``depth_mm`` (tests, synthetic bags)."""
    if encoding not in ENCODINGS:
        raise ValueError(f"unsupported encoding {encoding!r}")
    kind, scale = ENCODINGS[encoding]
    dtype = np.dtype(kind).newbyteorder(">" if is_bigendian else "<")
    values = np.asarray(depth_mm, dtype=np.float64) / scale
    if kind[0] == "u":
        values = np.clip(np.nan_to_num(values), 0, 65535).round()
    arr = np.ascontiguousarray(values.astype(dtype))
    return arr.tobytes(), arr.shape[1] * arr.dtype.itemsize


# -- duck-typed message readers (rclpy messages and rosbags dataclasses have the same fields) --
def image_msg_to_mm(msg: object, max_pixels: int = MAX_PIXELS, report: dict[str, int] | None = None) -> np.ndarray:
    """``sensor_msgs/Image`` (any implementation) -> (H, W) float32 mm (``report``: see decode_depth)."""
    m: Any = msg
    return decode_depth(m.data, m.encoding, m.height, m.width, m.step, bool(m.is_bigendian), max_pixels, report)


def compressed_msg_to_mm(msg: object, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """``sensor_msgs/CompressedImage`` (compressedDepth PNG) -> float32 mm."""
    m: Any = msg
    return decode_compressed_depth(m.format, m.data, max_pixels)


def info_msg_to_intrinsics(msg: object, image_shape: tuple[int, int] | None = None) -> Intrinsics:
    """``sensor_msgs/CameraInfo`` -> Intrinsics; DepthDecodeError for an unusable K or a size mismatch.

    A camera_info whose width/height are set and differ from the image's would
    project with the wrong principal point, so it is rejected, not used.
    """
    m: Any = msg
    try:
        intr = Intrinsics.from_k(list(m.k))
    except ValueError as exc:
        raise DepthDecodeError("camera_info", f"unusable camera_info: {exc}") from exc
    if image_shape is not None and m.width and m.height:
        h, w = image_shape
        if (int(m.width), int(m.height)) != (w, h):
            raise DepthDecodeError("camera_info", f"camera_info size {m.width}x{m.height} != image size {w}x{h}")
    return intr
