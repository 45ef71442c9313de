"""`v2v bench --two-hands`: what a second tracked hand costs, per frame of a 30 Hz stream.

Why a stream, and why the same hands: the node follows hands from frame to frame, so the cost a
robot sees is that of followed frames (plus the searches a tracker makes), not of independent
frames. The two streams differ only in the second hand: one shows two hands moving
(``v2v synth --hands 2 --sequence``), the other the same scenes with the first hand alone
(``render_multi_frame(only=0)``: the same hand, motion, distance, camera and clutter). One hand
goes through the node's default path (``max_targets: 1``, :class:`TrackingEstimator`), two through
the path of ``max_targets: 2`` (:class:`MultiTracker`).

The streams run alternately, ``rounds`` times each with a fresh tracker, so that a change in the
machine's load falls on both. Reported per stream: the mean time per frame (the median over rounds),
and the mean time of the frames that returned 0, 1 and 2 hands: a frame whose hand the pipeline
lost costs a search instead of a followed cube, so "two hands followed" against "one hand followed"
compares like with like when the two streams lose hands in different frames.

Also reported: the pose network's forward alone, a batch of two cubes against one (alternating,
``FORWARD_REPEATS`` per round). It bounds the ratio from below: on a CPU the network is most of a
followed frame, and a batch of two costs nearly twice one there, whatever the pipeline around it.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

STREAM_SEED = 902  # the held-out two-hand streams (`v2v synth --hands 2 --sequence 60 --seed 902`)
CLIP_FRAMES = 60  # 2 s clips at 30 Hz, as the held-out two-hand streams
FRAME_NS = 33_333_333
FORWARD_REPEATS = 10  # forwards of each batch size per round (the network's own ratio)


def render_streams(frames: int, seed: int = STREAM_SEED) -> tuple[list[Any], list[Any]]:
    """(two-hand stream, the same scenes with the first hand alone), ``frames`` frames each."""
    from v2v_ros.data.synthetic import SynthConfig  # noqa: PLC0415
    from v2v_ros.data.synthetic.multi import HandsSpec, render_multi_frame  # noqa: PLC0415

    cfg = SynthConfig(sequence_length=CLIP_FRAMES)
    spec = HandsSpec(2, 2)
    two = [render_multi_frame(seed, i, cfg, spec) for i in range(frames)]
    one = [render_multi_frame(seed, i, cfg, spec, only=0) for i in range(frames)]
    return two, one


def _play(runner: Any, stream: list[Any], multi: bool) -> tuple[list[float], list[int]]:
    """(ms per frame, hands returned per frame) of one pass over ``stream`` with a fresh tracker."""
    runner.reset()
    walls: list[float] = []
    hands: list[int] = []
    for i, f in enumerate(stream):
        depth = f.full_depth()
        t = time.perf_counter()
        if multi:
            out = runner.estimate_all(depth, f.intrinsics, stamp_ns=i * FRAME_NS)
            n = sum(1 for r in out if r.valid)
        else:
            n = int(runner.estimate(depth, f.intrinsics, stamp_ns=i * FRAME_NS).valid)
        walls.append(1e3 * (time.perf_counter() - t))
        hands.append(n)
    return walls, hands


def _summary(rounds: list[tuple[list[float], list[int]]]) -> dict[str, Any]:
    """Per-stream figures over every round: mean ms per frame (median of the rounds) and by hands returned."""
    means = [statistics.fmean(w) for w, _ in rounds]
    by: dict[str, list[float]] = {}
    for walls, hands in rounds:
        for ms, n in zip(walls, hands, strict=True):
            by.setdefault(str(n), []).append(ms)
    frames = len(rounds[0][0])
    return {
        "ms_per_frame": statistics.median(means),
        "ms_per_frame_rounds": means,
        "fps": 1e3 / statistics.median(means),
        "by_hands_returned": {k: {"frames": len(v) / len(rounds), "mean_ms": statistics.fmean(v)}
                              for k, v in sorted(by.items())},
        "frames": frames,
    }


def forward_ratio(est: Any, repeats: int) -> dict[str, float]:
    """Median ms of the pose network's forward on one cube and on a batch of two (alternating), their ratio,
    and one cube on a single thread.

    Why the single thread: a batch of two can cost less than twice one only where one cube leaves the
    hardware idle. ``one_thread_ratio`` (one thread against the bench's threads, one cube) near the thread
    count says one cube already keeps every core busy, so two cubes cost about twice one on that CPU.
    """
    import numpy as np  # noqa: PLC0415
    import torch  # noqa: PLC0415

    n = est.grid.size
    vox = np.zeros((2, est.meta.input_channels, n, n, n), np.float32)
    vox[:, 0, n // 4: 3 * n // 4, n // 4: 3 * n // 4, n // 2] = 1.0  # a surface across the cube (the cost is dense)
    times: dict[int, list[float]] = {1: [], 2: []}
    single: list[float] = []  # one cube on one thread
    threads = torch.get_num_threads()
    for b in (1, 2):
        est.forward(vox[:b])  # the engine's shapes for both batch sizes
    for _ in range(repeats):
        for b in (1, 2):
            t = time.perf_counter()
            est.forward(vox[:b])
            times[b].append(1e3 * (time.perf_counter() - t))
        torch.set_num_threads(1)
        try:
            t = time.perf_counter()
            est.forward(vox[:1])
            single.append(1e3 * (time.perf_counter() - t))
        finally:
            torch.set_num_threads(threads)  # the same count again: a thread policy sees no change
    one, two, alone = statistics.median(times[1]), statistics.median(times[2]), statistics.median(single)
    return {"one_cube_ms": one, "two_cubes_ms": two, "ratio": two / one, "repeats": repeats,
            "threads": threads, "one_cube_one_thread_ms": alone, "one_thread_ratio": alone / one}


def run_two_hands(est: Any, frames: int = 240, rounds: int = 3, seed: int = STREAM_SEED) -> dict[str, Any]:
    """Time the one-hand and the two-hand stream (alternating, ``rounds`` each) with the same estimator."""
    from v2v_ros.core.tracking import MultiTracker, TrackingConfig, TrackingEstimator  # noqa: PLC0415

    if frames < 2 or rounds < 1:
        raise ValueError(f"--two-hands needs at least 2 frames and 1 round, got {frames} and {rounds}")
    two, one = render_streams(frames, seed)
    cfg = TrackingConfig(enabled=True)
    single, multi = TrackingEstimator(est, cfg), MultiTracker(est, cfg, max_targets=2)
    _play(single, one[:2], False)  # warm-up: the engines' shapes for batches of one and two cubes
    _play(multi, two[:2], True)
    runs_one, runs_two = [], []
    for _ in range(rounds):
        runs_one.append(_play(single, one, False))
        runs_two.append(_play(multi, two, True))
    forward = forward_ratio(est, FORWARD_REPEATS * rounds)
    a, b = _summary(runs_one), _summary(runs_two)
    followed_one = a["by_hands_returned"].get("1", {}).get("mean_ms")
    followed_two = b["by_hands_returned"].get("2", {}).get("mean_ms")
    return {
        "seed": seed, "frames": frames, "rounds": rounds, "clip_frames": CLIP_FRAMES,
        "one_hand": a, "two_hands": b, "forward": forward,
        "ratio": b["ms_per_frame"] / a["ms_per_frame"],
        "ratio_found": followed_two / followed_one if followed_one and followed_two else None,
        "both_found_rate": b["by_hands_returned"].get("2", {}).get("frames", 0.0) / frames,
        "one_found_rate": a["by_hands_returned"].get("1", {}).get("frames", 0.0) / frames,
    }


def format_two_hands(r: dict[str, Any]) -> str:
    """The table `v2v bench --two-hands` prints."""
    a, b = r["one_hand"], r["two_hands"]

    def by(s: dict[str, Any]) -> str:
        return ", ".join(f"{k} hand{'s' if k != '1' else ''}: {v['frames']:.0f} frames at {v['mean_ms']:.1f} ms"
                         for k, v in s["by_hands_returned"].items())

    found = "n/a" if r["ratio_found"] is None else f"{r['ratio_found']:.2f}"
    rows = [
        ("tracked stream, one hand (max_targets 1)", f"{a['ms_per_frame']:.1f} ms/frame = {a['fps']:.1f} fps ({by(a)})"),
        ("same scenes, two hands (max_targets 2)", f"{b['ms_per_frame']:.1f} ms/frame = {b['fps']:.1f} fps ({by(b)})"),
        ("two hands / one hand, per frame", f"{r['ratio']:.2f}"),
        ("frames with two hands found / with the one hand found", found),
        ("network forward alone, two cubes / one cube",
         f"{r['forward']['ratio']:.2f} ({r['forward']['two_cubes_ms']:.1f} / {r['forward']['one_cube_ms']:.1f} ms)"),
        (f"one cube, 1 thread / {r['forward']['threads']} threads",
         f"{r['forward']['one_thread_ratio']:.2f} ({r['forward']['one_cube_one_thread_ms']:.1f} / "
         f"{r['forward']['one_cube_ms']:.1f} ms)"),
    ]
    w = max(len(k) for k, _ in rows)
    head = f"{r['frames']} frames (seed {r['seed']}, clips of {r['clip_frames']}), {r['rounds']} rounds each, alternating"
    return head + "\n" + "\n".join(f"{k:<{w}}  {v}" for k, v in rows)

