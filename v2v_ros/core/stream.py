"""Message-independent streaming logic shared by the ROS node and the bag evaluator.

* :class:`StampPairer` pairs depth frames with camera_info by stamp in bounded buffers
  (what message_filters' exact/approximate-time synchronisers do, which are not installable
  here), falling back to the latest camera_info when the calibration is known not to change.
* :class:`LatestSlot` is a one-element hand-over from the receive thread to the worker:
  the newest frame wins, the one it replaces is dropped and counted, so no queue can
  grow when inference is slower than the camera.
* :class:`RateMeter`, :class:`LatencyStats` and :class:`Counters` feed diagnostics.

No ROS import here: stamps are integer nanoseconds and payloads are opaque objects.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any, Generic, Hashable, TypeVar

import numpy as np

T = TypeVar("T")


@dataclass
class Paired:
    """A depth frame and the camera_info that goes with it."""

    stamp_ns: int
    frame_id: str
    depth: Any
    info: Any
    received: float  # monotonic seconds when the depth frame arrived


@dataclass
class Rejected:
    """A frame that was dropped by the pairer, with a counter key and a message."""

    reason: str
    message: str
    stamp_ns: int


class StampPairer:
    """Pairs depth frames and camera_info messages that carry the same stamp.

    Works for the three ways drivers publish camera_info:

    * **exact stamps** (one camera_info per image, same stamp; most drivers): a frame and
      its camera_info pair whichever arrives first, also when the two topics arrive out of
      step (another process, a loaded executor);
    * **near stamps** (``tolerance_ns``): the closest camera_info within the tolerance;
    * **camera_info that never changes**: once two consecutive camera_infos carried the same
      calibration (``info_key``), a frame of that camera (same frame id) whose own camera_info
      will not come (lost in transport: a newer one arrived first) is paired with the latest
      one (``fallback_pairs``);
      the calibration it would have carried is the same by construction. When camera_info
      comes only every few frames (a driver that publishes it rarely), frames pair with it at
      once; when it comes with every frame, each frame waits for its own (so a changed
      camera_info with the same stamp as its image is used for it). A camera_info with another calibration ends
      the fallback until it repeats. ``static_info`` reuses the latest camera_info for every
      frame from the first one on (cameras that latch camera_info).

    Both sides wait in bounded buffers (``capacity`` each), evicted by stamp, oldest first.
    A frame leaves exactly one way: paired (``Paired``) or rejected with a reason
    (``Rejected``: ``no_camera_info`` - evicted, or overtaken by a newer camera_info with no
    stable calibration to fall back on; ``frame_mismatch`` - the frame ids differ, intrinsics
    of another camera would give confidently wrong 3D points; ``duplicate_stamp`` - a second
    frame with a stamp already waiting replaced it). camera_infos that leave unused are
    counted in ``info_unused`` (normal with ``static_info`` or a fallback), never silently.
    Not thread-safe by itself; the caller serialises access.
    """

    STABLE_AFTER = 2  # consecutive identical camera_infos before the calibration counts as stable

    def __init__(self, capacity: int = 10, tolerance_ns: int = 0, static_info: bool = False) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self.tolerance_ns = int(tolerance_ns)
        self.static_info = bool(static_info)
        self._depth: dict[int, tuple[str, Any, float]] = {}
        self._info: dict[int, tuple[str, Any]] = {}
        self._latest_info: tuple[int, str, Any] | None = None  # (stamp, frame_id, info)
        self._latest_key: Hashable | None = None
        self._same_key_run = 0
        self._own_infos = True  # camera_info comes with (nearly) every frame: wait for a frame's own
        self._depths_since_info = 0
        self.info_unused = 0  # camera_infos evicted or replaced without pairing
        self.fallback_pairs = 0  # frames paired with the latest constant camera_info, not their own

    def __len__(self) -> int:
        return len(self._depth) + len(self._info)

    @property
    def pending_depth(self) -> int:
        return len(self._depth)

    @property
    def stable(self) -> bool:
        """True when the latest camera_infos carried one calibration (fallback allowed)."""
        return self._same_key_run >= self.STABLE_AFTER

    def add_info(self, stamp_ns: int, frame_id: str, info: Any,
                 info_key: Hashable | None = None) -> tuple[list[Paired], list[Rejected]]:
        """Store a camera_info; returns the frames it completes and frames it rejected.

        ``info_key`` identifies the calibration (e.g. size, K, D, P and frame id): equal keys
        mean the camera_info did not change. None never counts as unchanged.
        """
        if info_key is not None and info_key == self._latest_key:
            self._same_key_run += 1
        else:
            self._same_key_run = 1 if info_key is not None else 0
        self._latest_key = info_key
        self._latest_info = (stamp_ns, frame_id, info)
        self._own_infos = self._depths_since_info <= 2  # (2: the two topics may arrive a frame out of step)
        self._depths_since_info = 0
        paired: list[Paired] = []
        rejected: list[Rejected] = []
        if self.static_info:
            # Frames that waited for the first camera_info can go now; this one serves all later ones.
            for s in sorted(self._depth):
                d_frame, depth, received = self._depth.pop(s)
                self._emit(s, d_frame, depth, received, frame_id, info, paired, rejected)
            self.info_unused += len(self._info)
            self._info.clear()
            return paired, rejected
        match = self._find(self._depth, stamp_ns)
        used = match is not None
        if used:
            d_frame, depth, received = self._depth.pop(match)
            self._emit(match, d_frame, depth, received, frame_id, info, paired, rejected)
        else:
            self._info[stamp_ns] = (frame_id, info)
        # camera_infos arrive in stamp order: frames older than this one (beyond the tolerance)
        # that are still waiting will never see their own.
        for s in sorted(x for x in self._depth if x < stamp_ns - self.tolerance_ns):
            self._resolve_orphan(s, paired, rejected)
        while len(self._info) > self.capacity:
            del self._info[min(self._info)]
            self.info_unused += 1
        return paired, rejected

    def add_depth(
        self, stamp_ns: int, frame_id: str, depth: Any, received: float | None = None
    ) -> tuple[list[Paired], list[Rejected]]:
        """Store a depth frame; returns the pair it completes (if any) and rejected frames."""
        received = time.monotonic() if received is None else received
        paired: list[Paired] = []
        rejected: list[Rejected] = []
        self._depths_since_info += 1
        if self.static_info:
            if self._latest_info is not None:
                _, i_frame, info = self._latest_info
                self._emit(stamp_ns, frame_id, depth, received, i_frame, info, paired, rejected)
                return paired, rejected
        else:
            match = self._find(self._info, stamp_ns)
            if match is not None:
                i_frame, info = self._info.pop(match)
                # camera_info older than the match can never pair again (stamps increase).
                for s in [s for s in self._info if s < match]:
                    del self._info[s]
                    self.info_unused += 1
                self._emit(stamp_ns, frame_id, depth, received, i_frame, info, paired, rejected)
                return paired, rejected
            latest = self._latest_info
            rare = self.stable and not self._own_infos and latest is not None and latest[1] == frame_id
            if latest is not None and (rare or latest[0] > stamp_ns + self.tolerance_ns):
                # Constant calibration and frames have been going without their own camera_info
                # (published rarely): no need to wait for a copy of it. Or a newer camera_info
                # already came, so this frame's own was lost or never sent.
                self._depth[stamp_ns] = (frame_id, depth, received)
                self._resolve_orphan(stamp_ns, paired, rejected)
                return paired, rejected
        if stamp_ns in self._depth:
            rejected.append(Rejected("duplicate_stamp", f"a newer depth frame with the same stamp {_fmt(stamp_ns)} "
                                     "replaced this one (two images with one stamp)", stamp_ns))
        self._depth[stamp_ns] = (frame_id, depth, received)
        while len(self._depth) > self.capacity:
            self._resolve_orphan(min(self._depth), paired, rejected, evicted=True)
        return paired, rejected

    def clear(self) -> int:
        """Forget everything (deactivation); returns how many depth frames were still waiting."""
        n = len(self._depth)
        self.info_unused += len(self._info)
        self._depth.clear()
        self._info.clear()
        self._latest_info = None
        self._latest_key = None
        self._same_key_run = 0
        self._own_infos = True
        self._depths_since_info = 0
        return n

    # -- helpers ------------------------------------------------------------------------
    def _resolve_orphan(self, stamp_ns: int, paired: list[Paired], rejected: list[Rejected],
                        evicted: bool = False) -> None:
        """A waiting frame whose own camera_info will not come: fall back or reject it."""
        d_frame, depth, received = self._depth.pop(stamp_ns)
        # Only a frame of the camera the constant camera_info describes (same frame id) may borrow it.
        if self.stable and self._latest_info is not None and self._latest_info[1] == d_frame:
            _, i_frame, info = self._latest_info
            self.fallback_pairs += 1
            self._emit(stamp_ns, d_frame, depth, received, i_frame, info, paired, rejected)
            return
        why = ("the pair buffer was full" if evicted
               else "a newer camera_info arrived first and the camera_info is not yet known to be constant")
        rejected.append(Rejected("no_camera_info", f"no camera_info with stamp {_fmt(stamp_ns)} ({why})", stamp_ns))

    def _find(self, buf: dict[int, Any], stamp_ns: int) -> int | None:
        if stamp_ns in buf:
            return stamp_ns
        if self.tolerance_ns <= 0 or not buf:
            return None
        best = min(buf, key=lambda s: abs(s - stamp_ns))
        return best if abs(best - stamp_ns) <= self.tolerance_ns else None

    @staticmethod
    def _emit(
        stamp_ns: int, d_frame: str, depth: Any, received: float, i_frame: str, info: Any,
        paired: list[Paired], rejected: list[Rejected],
    ) -> None:
        if d_frame != i_frame:
            rejected.append(Rejected(
                "frame_mismatch", f"depth frame_id {d_frame!r} != camera_info frame_id {i_frame!r}", stamp_ns))
        else:
            paired.append(Paired(stamp_ns, d_frame, depth, info, received))


def _fmt(stamp_ns: int) -> str:
    return f"{stamp_ns // 1_000_000_000}.{stamp_ns % 1_000_000_000:09d}"


class LatestSlot(Generic[T]):
    """Single-element, newest-wins hand-over between a producer and one consumer.

    ``put`` never blocks: an item that was not taken yet is replaced and counted in
    ``dropped``. ``get`` blocks up to ``timeout`` seconds. This is the whole queue of
    the node, which is why memory stays bounded under overload.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._has = False
        self._closed = False
        self._taken = 0  # items handed to the consumer and not yet reported done
        self.dropped = 0

    def put(self, item: T) -> T | None:
        """Offer an item; returns the item it displaced (already counted), if any."""
        with self._cond:
            old = self._item if self._has else None
            if self._has:
                self.dropped += 1
            self._item, self._has = item, True
            self._cond.notify()
            return old

    def get(self, timeout: float | None = None) -> T | None:
        """Take the newest item, or None on timeout or after :meth:`close`."""
        with self._cond:
            if not self._has and not self._closed:
                self._cond.wait(timeout)
            if not self._has:
                return None
            item, self._item, self._has = self._item, None, False
            self._taken += 1
            return item

    def task_done(self) -> None:
        """The consumer finished the item it took (so :attr:`pending` can count it until then)."""
        with self._cond:
            self._taken = max(0, self._taken - 1)

    @property
    def pending(self) -> int:
        """Items waiting in the slot or taken and still being worked on."""
        with self._cond:
            return int(self._has) + self._taken

    def clear(self) -> int:
        """Drop the pending item (counted); returns how many were dropped (0 or 1)."""
        with self._cond:
            n = int(self._has)
            self.dropped += n
            self._item, self._has = None, False
            return n

    def close(self) -> None:
        """Wake the consumer for shutdown."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def reopen(self) -> None:
        with self._cond:
            self._closed = False

    def __len__(self) -> int:
        return int(self._has)


class RateMeter:
    """Events per second over a sliding time window (default 5 s)."""

    def __init__(self, window_s: float = 5.0, maxlen: int = 10000) -> None:
        self.window_s = float(window_s)
        self._times: deque[float] = deque(maxlen=maxlen)
        self._lock = threading.Lock()
        self._start: float | None = None

    def tick(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            if self._start is None:
                self._start = now
            self._times.append(now)

    def rate(self, now: float | None = None) -> float:
        """Events in the window divided by the window (or by the time since the first event)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if self._start is None:
                return 0.0
            while self._times and now - self._times[0] > self.window_s:
                self._times.popleft()
            span = min(self.window_s, now - self._start)
            return len(self._times) / span if span > 1e-6 else 0.0


class LatencyStats:
    """Percentiles of the last ``maxlen`` latencies (seconds in, milliseconds out)."""

    def __init__(self, maxlen: int = 500) -> None:
        self._values: deque[float] = deque(maxlen=maxlen)
        self._lock = threading.Lock()
        self.count = 0

    def add(self, seconds: float) -> None:
        with self._lock:
            self._values.append(float(seconds))
            self.count += 1

    def percentiles_ms(self, qs: tuple[float, ...] = (50.0, 95.0)) -> tuple[float, ...]:
        """Percentiles in ms; NaN when nothing was measured yet."""
        with self._lock:
            if not self._values:
                return tuple(float("nan") for _ in qs)
            arr = np.asarray(self._values, dtype=np.float64) * 1e3
        return tuple(float(np.percentile(arr, q)) for q in qs)

    def values_ms(self) -> list[float]:
        with self._lock:
            return [v * 1e3 for v in self._values]


class Counters:
    """Thread-safe named counters (frames in/out, rejections by reason)."""

    def __init__(self) -> None:
        self._c: Counter[str] = Counter()
        self._lock = threading.Lock()

    def inc(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._c[key] += n

    def get(self, key: str) -> int:
        with self._lock:
            return self._c[key]

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._c)

    def total(self, prefix: str) -> int:
        with self._lock:
            return sum(v for k, v in self._c.items() if k.startswith(prefix))


class Throttle:
    """Allows one event per key every ``period_s`` seconds (throttled warnings)."""

    def __init__(self, period_s: float = 5.0) -> None:
        self.period_s = float(period_s)
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def ready(self, key: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.period_s:
                return False
            self._last[key] = now
            return True


def stamp_to_ns(sec: int, nanosec: int) -> int:
    """builtin_interfaces/Time fields -> integer nanoseconds (the pairing key)."""
    return int(sec) * 1_000_000_000 + int(nanosec)
