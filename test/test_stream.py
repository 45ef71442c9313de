"""Stamp pairing, newest-wins hand-over and statistics (pure; used by the node and eval-bag)."""

from __future__ import annotations

import threading

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

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


# -- pairing across processes: topics out of step, lost or constant camera_info, accounting --------

def test_camera_info_lagging_behind_depth_still_pairs() -> None:
    """Another process's camera_info can arrive several frames after its image (or before)."""
    p = StampPairer(capacity=10)
    out = []
    for s in range(20):
        out += p.add_depth(s, "f", s)[0]
        if s >= 4:
            out += p.add_info(s - 4, "f", f"i{s - 4}")[0]  # camera_info 4 frames late
    for s in range(16, 20):
        out += p.add_info(s, "f", f"i{s}")[0]
    assert [x.stamp_ns for x in out] == list(range(20)) and all(x.info == f"i{x.stamp_ns}" for x in out)
    assert len(p) == 0 and p.info_unused == 0


def test_lost_camera_info_rejected_at_once_without_stable_calibration() -> None:
    p = StampPairer(capacity=10)
    p.add_depth(1, "f", "d1")
    pairs, rej = p.add_info(2, "f", "i2", info_key=("K", 2))  # camera_info of stamp 1 never comes
    assert not pairs and [(r.reason, r.stamp_ns) for r in rej] == [("no_camera_info", 1)]
    assert p.pending_depth == 0
    pairs, rej = p.add_depth(0, "f", "d0")  # older than the newest camera_info: also an orphan
    assert not pairs and rej[0].reason == "no_camera_info"


def test_lost_camera_info_falls_back_to_constant_calibration() -> None:
    """Once two camera_infos carried the same calibration, a frame whose own is lost uses the latest."""
    p = StampPairer(capacity=10)
    key = ("640x480", (1.0, 0.0, 2.0))
    for s in (1, 2):
        p.add_depth(s, "f", f"d{s}")
        p.add_info(s, "f", f"i{s}", info_key=key)
    assert p.stable
    assert p.add_depth(3, "f", "d3") == ([], [])  # frames have had their own: wait for it
    pairs, rej = p.add_info(4, "f", "i4", info_key=key)  # the one of stamp 3 was lost
    assert [(x.stamp_ns, x.info) for x in pairs] == [(3, "i4")] and not rej and p.fallback_pairs == 1
    assert p.add_depth(4, "f", "d4")[0][0].info == "i4" and p.fallback_pairs == 1  # its own waited


def test_rare_camera_info_pairs_at_once_and_changes_are_seen() -> None:
    """A driver publishing camera_info once in a while: frames in between pair at once with it."""
    p = StampPairer(capacity=3)
    key = ("640x480",)
    out = []
    for s in range(1, 40):
        if s % 10 == 1:
            out += p.add_info(s, "f", f"i{s}", info_key=key)[0]
        out += p.add_depth(s, "f", f"d{s}")[0]
    assert len(out) >= 39 - 11 and p.pending_depth == 0  # only frames before it was constant waited
    assert out[-1].stamp_ns == 39 and out[-1].info == "i31"
    # camera_info with every frame again: a changed one at a frame's stamp is used for it.
    for s in (40, 41):
        p.add_info(s, "f", f"i{s}", info_key=key)
        assert p.add_depth(s, "f", f"d{s}")[0][0].info == f"i{s}"
    assert p.add_depth(42, "f", "d42") == ([], [])
    pairs, _ = p.add_info(42, "f", "zoomed", info_key=("640x480", "zoomed"))
    assert pairs[0].info == "zoomed" and not p.stable
    # A frame of another camera never borrows this camera's constant camera_info: it waits for its own.
    p.add_info(43, "f", "z43", info_key=("640x480", "zoomed"))
    assert p.stable and p.add_depth(44, "other", "o44") == ([], [])
    assert p.add_info(44, "other", "other44", info_key=("other",))[0][0].info == "other44"
    # An orphan under a calibration seen only once is rejected, not paired with it.
    p.add_depth(45, "f", "d45")
    _, rej = p.add_info(46, "f", "other", info_key=("1280x720",))
    assert [(r.reason, r.stamp_ns) for r in rej] == [("no_camera_info", 45)]


def test_full_buffer_evicts_oldest_stamp_and_counts_unused_info() -> None:
    p = StampPairer(capacity=3)
    for s in (30, 10, 20, 40):  # inserted out of stamp order: the oldest stamp goes
        p.add_info(s, "f", s)
    assert p.info_unused == 1 and p.add_depth(10, "f", "d")[0] == []
    assert p.add_depth(20, "f", "d")[0][0].info == 20
    rej = []
    for s in (101, 103, 102, 104):
        rej += p.add_depth(s, "f", s)[1]
    assert [(r.reason, r.stamp_ns) for r in rej] == [("no_camera_info", 101)]


def test_duplicate_stamp_is_counted() -> None:
    p = StampPairer()
    p.add_depth(7, "f", "first")
    pairs, rej = p.add_depth(7, "f", "second")
    assert not pairs and [r.reason for r in rej] == ["duplicate_stamp"]
    assert p.add_info(7, "f", "i")[0][0].depth == "second"


@given(st.lists(st.tuples(st.booleans(), st.booleans(), st.integers(0, 3)), min_size=1, max_size=60),
       st.integers(1, 6), st.booleans())
@settings(max_examples=200, deadline=None)
def test_every_frame_has_exactly_one_outcome(events: list[tuple[bool, bool, int]], capacity: int,
                                             constant: bool) -> None:
    """Whatever the interleaving and losses: frames in = paired + rejected + still waiting."""
    p = StampPairer(capacity=capacity)
    depth_in, outcomes = 0, []
    pending_infos: list[int] = []
    for stamp, (lose_info, depth_first, lag) in enumerate(events, start=1):
        key = "K" if constant else stamp
        if not lose_info:
            pending_infos.append(stamp)
        res = p.add_depth(stamp, "f", stamp) if depth_first else ([], [])
        outcomes += [x.stamp_ns for x in res[0]] + [r.stamp_ns for r in res[1]]
        while len(pending_infos) > lag:  # camera_info up to `lag` frames late, in order
            s = pending_infos.pop(0)
            pairs, rej = p.add_info(s, "f", s, info_key=key)
            outcomes += [x.stamp_ns for x in pairs] + [r.stamp_ns for r in rej]
        if not depth_first:
            pairs, rej = p.add_depth(stamp, "f", stamp)
            outcomes += [x.stamp_ns for x in pairs] + [r.stamp_ns for r in rej]
        depth_in += 1
    assert len(outcomes) == len(set(outcomes))  # no frame leaves twice
    assert depth_in == len(outcomes) + p.pending_depth
    assert p.pending_depth <= capacity
