"""Stamp pairing, newest-wins hand-over and statistics (pure; used by the node and eval-bag)."""

from __future__ import annotations

import threading

import numpy as np

from v2v_ros.core.stream import LatencyStats, LatestSlot, RateMeter, StampPairer, Throttle


def test_pairs_in_either_order() -> None:
    p = StampPairer(capacity=3)
    assert p.add_depth(10, "f", "d10") == ([], [])
    pairs, rej = p.add_info(10, "f", "i10")
    assert [(x.stamp_ns, x.depth, x.info) for x in pairs] == [(10, "d10", "i10")] and not rej
    assert p.add_info(20, "f", "i20") == ([], [])
    pairs, _ = p.add_depth(20, "f", "d20")
    assert pairs[0].info == "i20" and len(p) == 0


def test_frame_mismatch_rejected() -> None:
    p = StampPairer()
    p.add_info(1, "a", "i")
    pairs, rej = p.add_depth(1, "b", "d")
    assert not pairs and rej[0].reason == "frame_mismatch" and "'b'" in rej[0].message


def test_missing_info_is_bounded_and_counted() -> None:
    p = StampPairer(capacity=3)
    rejected = []
    for s in range(10):
        rejected += p.add_depth(s, "f", s)[1]
        assert p.pending_depth <= 3
    assert len(rejected) == 7 and all(r.reason == "no_camera_info" for r in rejected)
    for s in range(100, 200):
        p.add_info(s, "f", s)
    assert len(p) <= 6


def test_tolerance_and_static_info() -> None:
    p = StampPairer(tolerance_ns=5)
    p.add_info(100, "f", "i")
    assert p.add_depth(103, "f", "d")[0][0].info == "i"
    s = StampPairer(static_info=True)
    assert s.add_depth(1, "f", "d1") == ([], [])  # waits for the first camera_info
    pairs, _ = s.add_info(999, "f", "i")
    assert [x.depth for x in pairs] == ["d1"]
    assert s.add_depth(5, "f", "d5")[0][0].info == "i"


def test_latest_slot_newest_wins_and_counts() -> None:
    slot: LatestSlot[int] = LatestSlot()
    for i in range(5):
        slot.put(i)
    assert len(slot) == 1 and slot.dropped == 4
    assert slot.get(0) == 4 and slot.get(0.01) is None
    got = []
    t = threading.Thread(target=lambda: got.append(slot.get(2.0)))
    t.start()
    slot.put(7)
    t.join(1.0)
    assert got == [7]
    slot.close()
    assert slot.get(1.0) is None  # close wakes the consumer immediately


def test_rate_latency_throttle() -> None:
    r = RateMeter(window_s=1.0)
    for i in range(10):
        r.tick(100.0 + i * 0.1)
    assert abs(r.rate(101.0) - 10.0) < 1.5
    assert r.rate(110.0) == 0.0
    lat = LatencyStats()
    assert all(np.isnan(lat.percentiles_ms()))
    for v in np.linspace(0.001, 0.1, 100):
        lat.add(v)
    p50, p95 = lat.percentiles_ms()
    assert 45 < p50 < 56 and 90 < p95 < 100
    th = Throttle(5.0)
    assert th.ready("a", 0.0) and not th.ready("a", 1.0) and th.ready("b", 1.0) and th.ready("a", 6.0)
