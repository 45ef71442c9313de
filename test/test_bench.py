"""`v2v bench --json` reports every field the performance work relies on (values are not timed here)."""

from __future__ import annotations

import json

import pytest

from v2v_ros.cli import main


@pytest.mark.slow
def test_bench_json_has_the_documented_fields(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    assert main(["bench", "--json", "--repeats", "1", "--random-weights", "--model", str(tmp_path / "missing.safetensors")]) == 0
    r = json.loads(capsys.readouterr().out)
    for key in ("device", "precision", "grid", "voxelize_ms", "forward_ms", "floor_ms", "decode_ms",
                "end_to_end_ms", "forward_ms_88", "floor_ms_88", "matmul_gflops"):
        assert key in r, key
    assert r["grid"] == 32 and r["precision"] == "fp32"
    assert r["forward_gflop_88"] == pytest.approx(2 * 36.398782464, rel=1e-6)
    assert r["floor_ms_88"] > 0 and r["forward_ms_88"] > 0
    # The fp32 run's floor is held against the fp32 matmul rate.
    assert r["floor_precision"] == "fp32"
    assert r["floor_ms"] == pytest.approx(r["forward_gflop"] / r["matmul_gflops"] * 1e3)
    assert r["forward_over_floor"] == pytest.approx(r["forward_ms"] / r["floor_ms"])
    assert any("not found" in n for n in r["notes"])
    t = r["tracking"]  # the 30 Hz stream with tracking: every frame accounted for, stages averaged
    assert t["frames"] == sum(t["reference"].values()) == 61
    assert {"forward", "voxelize", "decode"} <= set(t["stages_ms"]) and t["around_network_ms"] > 0


@pytest.mark.slow
def test_bench_tradeoff_scaling_and_plots(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    """--grids/--scaling/--out: every row and plot is produced (tiny grids, one repeat; values not checked)."""
    from v2v_ros.core.inference import cpu_bf16_supported

    out = tmp_path / "bench"
    second = "bf16" if cpu_bf16_supported() else "int8"  # AVX2-only CPUs have no bf16 path
    assert main(["bench", "--json", "--skip-base", "--repeats", "1", "--random-weights", "--model", str(tmp_path / "missing"),
                 "--grids", "16", "--precisions", f"fp32,{second}", "--scaling", "--scaling-grids", "16,24",
                 "--out", str(out)]) == 0
    r = json.loads(capsys.readouterr().out)
    assert [(row["grid"], row["precision"]) for row in r["tradeoff"]] == [(16, "fp32"), (16, second)]
    assert all(row["forward_ms"] > 0 and row["mean_error_mm"] is None for row in r["tradeoff"])
    assert [h["hands"] for h in r["scaling"]["hands"]] == [1, 2, 4, 8]
    assert [(x["width"], x["height"]) for x in r["scaling"]["resolutions"]] == [(640, 480), (848, 480), (1280, 720)]
    assert [g["grid"] for g in r["scaling"]["grids"]] == [16, 24]
    saved = json.loads((out / "bench.json").read_text())
    assert set(saved["plots"]) == {"scaling.png", "tradeoff.png"}
    assert all((out / p).stat().st_size > 1000 for p in saved["plots"])


def test_floor_rate_matches_the_forward_precision() -> None:
    """A bf16 or int8 forward is compared with bf16 / int8 matrix multiplies, not fp32 ones
    (against fp32 a bf16 forward read as 0.64 x its floor, i.e. faster than the hardware)."""
    import torch

    from v2v_ros.bench import floor_rate

    out: dict = {"matmul_gflops": 100.0, "matmul_gflops_bf16": 250.0}
    notes: list[str] = []
    cpu = torch.device("cpu")
    assert floor_rate(out, cpu, "fp32", notes) == 100.0
    assert floor_rate(out, cpu, "bf16", notes) == 250.0
    assert floor_rate(out, cpu, "fp16", notes) is None and "fp16" in notes[-1]
    rate = floor_rate(out, cpu, "int8", notes)
    assert rate is not None and rate > 0 and out["matmul_gflops_int8"] == rate


def test_bench_contended_starts_and_stops_its_competitor(capsys: pytest.CaptureFixture[str], tmp_path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """--contended times the forward idle and beside a busy process pinned to one of our cores,
    and the busy process is gone afterwards (values are not checked: a benchmark, not a test)."""
    import os

    import v2v_ros.bench as bench

    started = []
    real = bench.start_busy

    def spy(cpu: int):
        proc = real(cpu)
        started.append((cpu, proc))
        return proc

    monkeypatch.setattr(bench, "start_busy", spy)
    assert main(["bench", "--json", "--skip-base", "--contended", "--settle", "0.2", "--repeats", "3",
                 "--compare-threads", "1", "--random-weights", "--model", str(tmp_path / "missing")]) == 0
    c = json.loads(capsys.readouterr().out)["contended"]
    assert len(started) == 1 and started[0][1].poll() is not None  # stopped, not left spinning
    assert started[0][0] == c["busy_cpu"] and c["busy_cpu"] in os.sched_getaffinity(0)
    assert c["rounds"] == 3 and c["repeats"] == 3
    for row in (c, *c["compare"]):
        for key in ("idle", "contended"):
            m = row[key]
            assert 0 < m["min_ms"] <= m["median_ms"] <= m["max_ms"] and m["threads"] and m["settle_forwards"] >= 3
        assert row["ratio"] == pytest.approx(row["contended"]["median_ms"] / row["idle"]["median_ms"])
    assert c["threads_setting"] == 0 and c["contended"]["policy"].startswith("adaptive")  # the default
    assert [r["threads_setting"] for r in c["compare"]] == [1]
    assert c["compare"][0]["idle"]["threads"] == [1] and c["compare"][0]["contended"]["policy"] == "fixed 1"
    assert main(["bench", "--skip-base", "--contended", "--compare-threads", "-1", "--random-weights"]) == 2


@pytest.mark.slow
def test_bench_two_hands_times_the_same_scenes_with_one_and_two_hands(capsys: pytest.CaptureFixture[str]) -> None:
    """--two-hands: the one-hand stream is the two-hand stream's scenes with its first hand alone, every
    frame of every round is accounted for, and the ratios are of the two streams' times and of the network's
    forwards on two cubes and one (not timed here)."""
    import numpy as np
    import torch

    from v2v_ros.bench_hands import render_streams

    two, one = render_streams(3)
    for a, b in zip(two, one, strict=True):
        assert len(a.targets) == 2 and len(b.targets) == 1
        np.testing.assert_array_equal(a.targets[0], b.targets[0])  # the same hand, in the same place
        assert not np.array_equal(a.depth, b.depth)  # ... without the second one

    assert main(["bench", "--json", "--skip-base", "--two-hands", "--stream-frames", "6", "--stream-rounds", "2",
                 "--model", "models/hand_fast.safetensors"]) == 0
    r = json.loads(capsys.readouterr().out)["two_hands"]
    assert (r["frames"], r["rounds"], r["seed"]) == (6, 2, 902)
    for key in ("one_hand", "two_hands"):
        s = r[key]
        assert len(s["ms_per_frame_rounds"]) == 2 and all(ms > 0 for ms in s["ms_per_frame_rounds"])
        assert sum(v["frames"] for v in s["by_hands_returned"].values()) == 6
    assert set(r["one_hand"]["by_hands_returned"]) <= {"0", "1"}  # max_targets 1 returns one hand at most
    assert r["ratio"] == pytest.approx(r["two_hands"]["ms_per_frame"] / r["one_hand"]["ms_per_frame"])
    assert r["two_hands"]["by_hands_returned"].get("2", {}).get("frames", 0) > 0  # the shipped model finds both
    f = r["forward"]
    assert f["repeats"] == 20 and f["one_cube_ms"] > 0 and f["ratio"] == pytest.approx(f["two_cubes_ms"] / f["one_cube_ms"])
    assert f["threads"] >= 1 and f["one_thread_ratio"] == pytest.approx(f["one_cube_one_thread_ms"] / f["one_cube_ms"])
    assert torch.get_num_threads() == f["threads"]  # the single-thread forward gave the count back
    assert main(["bench", "--skip-base", "--two-hands", "--stream-frames", "1", "--random-weights"]) == 2
