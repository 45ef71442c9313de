"""Depth decoding from raw Image fields (pure; shared by the node and the bag evaluator)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from v2v_ros.core.depth_decode import (
    DepthDecodeError,
    check_depth_units,
    decode_compressed_depth,
    decode_depth,
    encode_compressed_depth,
    encode_depth,
)

DEPTH = (np.arange(12, dtype=np.float32).reshape(3, 4) * 100.0 + 300.0)


@pytest.mark.parametrize("encoding,big", [("16UC1", False), ("16UC1", True), ("mono16", False), ("32FC1", False),
                                          ("32FC1", True)])
def test_round_trip_encodings(encoding: str, big: bool) -> None:
    data, step = encode_depth(DEPTH, encoding, big)
    out = decode_depth(data, encoding, 3, 4, step, big)
    assert out.dtype == np.float32 and out.shape == (3, 4)
    assert np.allclose(out, DEPTH, atol=1e-3)


def test_step_padding_is_skipped() -> None:
    data, step = encode_depth(DEPTH, "16UC1")
    rows = np.frombuffer(data, np.uint8).reshape(3, step)
    padded = np.concatenate([rows, np.full((3, 6), 0xFF, np.uint8)], axis=1)
    assert np.array_equal(decode_depth(padded.tobytes(), "16UC1", 3, 4, step + 6), DEPTH)


def test_32fc1_metres_nan_inf_negative_become_zero() -> None:
    m = np.array([[0.5, np.nan, np.inf, -1.0]], np.float32)
    report: dict[str, int] = {}
    out = decode_depth(m.tobytes(), "32FC1", 1, 4, 16, report=report)
    assert out.tolist() == [[500.0, 0.0, 0.0, 0.0]]
    assert report == {"nonfinite": 2}  # NaN and inf, counted in the decoding pass (negatives are not)
    decode_depth(np.array([[1, 2]], "<u2").tobytes(), "16UC1", 1, 2, 4, report=report)
    assert report == {"nonfinite": 0}


@pytest.mark.parametrize("kw,reason", [
    (dict(encoding="rgb8"), "encoding"),
    (dict(height=0), "zero_size"),
    (dict(width=0), "zero_size"),
    (dict(height=5000, width=5000), "too_large"),
    (dict(step=7), "step"),
    (dict(data=b"\0" * 23), "data_length"),
])
def test_errors_name_the_problem(kw: dict, reason: str) -> None:
    args = dict(data=b"\0" * 24, encoding="16UC1", height=3, width=4, step=8)
    args.update(kw)
    with pytest.raises(DepthDecodeError) as e:
        decode_depth(args["data"], args["encoding"], args["height"], args["width"], args["step"])
    assert e.value.reason == reason
    assert str(e.value)


@pytest.mark.filterwarnings("error::RuntimeWarning")  # a bad frame must not spray NumPy warnings on stderr
@settings(max_examples=200, deadline=None)
@given(h=st.integers(-2, 70), w=st.integers(-2, 70), pad=st.integers(-4, 12),
       extra=st.sampled_from([0, 0, 0, 0, -1, 1, 7]), seed=st.integers(0, 2**16),
       enc=st.sampled_from(["16UC1", "mono16", "32FC1", "8UC1", "bgr8", ""]), big=st.booleans())
def test_fuzz_never_raises_anything_else(h: int, w: int, pad: int, extra: int, seed: int, enc: str,
                                         big: bool) -> None:
    """Consistent fields always decode (to finite, non-negative mm equal to the raw values); any
    inconsistency raises DepthDecodeError and nothing else. Sizes are built around a consistent
    ``step``/length so that both outcomes are reached, not only the early rejections."""
    itemsize = 4 if enc == "32FC1" else 2
    step = max(w, 0) * itemsize + pad
    n = max(h * step + extra, 0)
    data = bytes(np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8))
    valid = enc in ("16UC1", "mono16", "32FC1") and h > 0 and w > 0 and pad >= 0 and n == h * step
    try:
        out = decode_depth(data, enc, h, w, step, big)
    except DepthDecodeError as e:
        assert not valid, f"consistent fields rejected: {e.reason}: {e}"
        assert e.reason in {"encoding", "zero_size", "step", "data_length"}, e.reason
        return
    assert valid, "inconsistent fields were decoded"
    assert out.shape == (h, w) and out.dtype == np.float32
    assert np.all(np.isfinite(out)) and np.all(out >= 0)
    raw = np.frombuffer(data, np.uint8).reshape(h, step)[:, :w * itemsize].copy()
    ref = raw.view(np.dtype("f4" if enc == "32FC1" else "u2").newbyteorder(">" if big else "<")).astype(np.float32)
    if enc == "32FC1":  # metres -> mm in float32; NaN, inf, negatives (and overflow to inf) are invalid: 0
        with np.errstate(over="ignore", invalid="ignore"):
            ref = ref * np.float32(1000.0)
            ref[~np.isfinite(ref) | (ref < 0)] = 0.0
    np.testing.assert_array_equal(out, ref.reshape(h, w))


def test_compressed_depth_png_round_trip_and_errors() -> None:
    fmt, data = encode_compressed_depth(DEPTH)
    assert np.array_equal(decode_compressed_depth(fmt, data), DEPTH)
    with pytest.raises(DepthDecodeError, match="RVL"):
        decode_compressed_depth("16UC1; compressedDepth rvl", data)
    with pytest.raises(DepthDecodeError) as e:
        decode_compressed_depth(fmt, data[:12] + b"garbage")
    assert e.value.reason == "corrupt"
    with pytest.raises(DepthDecodeError):
        decode_compressed_depth("png", data)


def test_compressed_depth_rejects_an_8_bit_png() -> None:
    """An 8-bit PNG under a 16UC1 format would read as 0-255 mm: refused, naming the bit depth."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((4, 5), 200, np.uint8)).save(buf, format="PNG")
    fmt, data = encode_compressed_depth(DEPTH)
    with pytest.raises(DepthDecodeError, match="8-bit") as e:
        decode_compressed_depth(fmt, data[:12] + buf.getvalue())
    assert e.value.reason == "encoding"


# -- units: depth that is not millimetres is an error naming the value and the likely cause --------
def _room_mm(h: int = 120, w: int = 160) -> np.ndarray:
    d = np.full((h, w), 2400.0, np.float32)
    d[40:80, 60:100] = 650.0  # a hand-sized blob in front
    d[:10] = 0.0  # invalid rows (no return)
    return d


def test_millimetres_pass_the_unit_check() -> None:
    check_depth_units(_room_mm(), np.dtype(np.uint16))
    check_depth_units(np.zeros((4, 4), np.float32))  # nothing valid: reported elsewhere, not a unit error
    near = np.zeros((480, 640), np.float32)
    near[200:203, 300:303] = 120.0  # a few valid pixels the strided sample misses: every pixel is looked at
    check_depth_units(near)


@pytest.mark.parametrize("scale, match", [(1e-3, r"metres, not millimetres: median valid depth 2\.4 "),
                                          (1e3, r"millimetres scaled as metres: median valid depth 2400 m")])
def test_wrong_units_are_refused_naming_the_value(scale: float, match: str) -> None:
    with pytest.raises(DepthDecodeError, match=match) as err:
        check_depth_units(_room_mm() * np.float32(scale))
    assert err.value.reason == "depth_units"


def test_eight_bit_depth_is_refused() -> None:
    with pytest.raises(DepthDecodeError, match="8-bit.*colour, IR or visualised") as err:
        check_depth_units(np.full((4, 4), 200.0, np.float32), np.dtype(np.uint8))
    assert err.value.reason == "depth_8bit"


@pytest.mark.parametrize("encoding", ["mono8", "rgb8", "8UC1"])
def test_eight_bit_encodings_name_the_likely_cause(encoding: str) -> None:
    with pytest.raises(DepthDecodeError, match="not depth: is the topic the camera's depth stream") as err:
        decode_depth(bytes(12), encoding, 3, 4, 4)
    assert err.value.reason == "encoding"
    with pytest.raises(DepthDecodeError) as other:
        decode_depth(bytes(12), "yuv420", 3, 4, 4)
    assert "not depth" not in str(other.value)
