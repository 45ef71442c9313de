"""`v2v bench --json` reports every field the performance work relies on (values are not timed here)."""

from __future__ import annotations

import json

import pytest

from v2v_ros.cli import main


@pytest.mark.slow
def test_bench_json_has_the_documented_fields(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    assert main(["bench", "--json", "--repeats", "1", "--model", str(tmp_path / "missing.safetensors")]) == 0
    r = json.loads(capsys.readouterr().out)
    for key in ("device", "precision", "grid", "voxelize_ms", "forward_ms", "floor_ms", "decode_ms",
                "end_to_end_ms", "forward_ms_88", "floor_ms_88", "matmul_gflops"):
        assert key in r, key
    assert r["grid"] == 32 and r["precision"] == "fp32"
    assert r["forward_gflop_88"] == pytest.approx(2 * 36.398782464, rel=1e-6)
    assert r["floor_ms_88"] > 0 and r["forward_ms_88"] > 0
    assert any("not found" in n for n in r["notes"])
