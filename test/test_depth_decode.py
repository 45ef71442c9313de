"""Depth decoding from raw Image fields (pure; shared by the node and the bag evaluator)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from v2v_ros.core.depth_decode import (
    DepthDecodeError,
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


@settings(max_examples=200, deadline=None)
@given(h=st.integers(-2, 70), w=st.integers(-2, 70), step=st.integers(-4, 300), n=st.integers(0, 20000),
       enc=st.sampled_from(["16UC1", "mono16", "32FC1", "8UC1", "bgr8", ""]), big=st.booleans())
def test_fuzz_never_raises_anything_else(h: int, w: int, step: int, n: int, enc: str, big: bool) -> None:
    data = bytes(np.random.default_rng(n).integers(0, 256, n, dtype=np.uint8))
    try:
        out = decode_depth(data, enc, h, w, step, big)
    except DepthDecodeError:
        return
    assert out.shape == (h, w) and out.dtype == np.float32
    assert np.all(np.isfinite(out)) and np.all(out >= 0)


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
