"""How many CPU threads the networks use when other processes share the cores.

Why this exists: PyTorch's CPU build parallelises every layer with OpenMP, one thread
per core, and OpenMP threads meet at a barrier after each parallel region. When another
process runs on one of those cores (a camera driver, a planner, another engineer's
training job), the thread that lives there gets only part of the core and every
barrier waits for it, while the other threads spin. With one busy process on one of 2
cores the 32³ forward became several times slower with 2 threads than with 1
(measured with ``v2v bench --contended``, docs/performance.md, "A shared CPU").

:class:`ThreadPolicy` therefore chooses the intra-op thread count from what the cores
are doing *now*: before a forward (at most every ``window_s``) it reads how much CPU
time the cores this process may run on (``os.sched_getaffinity``) spent busy
(``/proc/stat``), subtracts this process's own CPU time, and uses the cores left over
(at least 1). The load average would be the obvious signal but it is a minute-long
average of *runnable* tasks: it reacts in tens of seconds and counts our own threads.

A count fixed by the user is respected: ``OMP_NUM_THREADS`` in the environment, an
explicit count (the node's ``threads: N``, ``v2v bench --threads N``) or a
``torch.set_num_threads`` call that the policy did not make turns adaptation off; a
count lowered before the policy starts is its ceiling.
"""

from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass

import torch

# Share of a core that other processes may use before one thread is taken away. Our own
# spinning OpenMP threads squeeze a competitor to about half a core while they share
# its core, so the threshold must be well below 0.5 for one busy process to be seen.
TOLERATED = 0.3
WINDOW_S = 0.25  # /proc/stat counts in 10 ms ticks: 0.25 s keeps the error under ~0.1 core on 2 cores


@dataclass
class CpuSample:
    """Busy seconds of the given CPUs (all processes) and of this process, at a monotonic time."""

    t: float
    busy_s: float
    own_s: float


def _clock_ticks() -> int:
    try:
        return int(os.sysconf("SC_CLK_TCK"))
    except (ValueError, OSError, AttributeError):
        return 100


_HZ = _clock_ticks()


def read_cpu_busy(cpus: set[int], path: str = "/proc/stat") -> float | None:
    """Seconds the CPUs in ``cpus`` have spent not idle since boot (None where /proc/stat is unreadable).

    Busy = user + nice + system + irq + softirq + steal: steal is time the hypervisor
    gave to someone else, just as unavailable to us as another process's time.
    """
    try:
        with open(path, "rb") as fh:
            text = fh.read().decode("ascii", "replace")
    except OSError:
        return None
    total = 0
    found = False
    for line in text.splitlines():
        if not line.startswith("cpu") or line.startswith("cpu "):
            continue
        name, *fields = line.split()
        try:
            cpu = int(name[3:])
        except ValueError:
            continue
        if cpu not in cpus or len(fields) < 8:
            continue
        v = [int(x) for x in fields[:8]]
        total += v[0] + v[1] + v[2] + v[5] + v[6] + v[7]  # user nice system (idle iowait) irq softirq steal
        found = True
    return total / _HZ if found else None


def threads_for(cores: int, others: float, ceiling: int | None = None, tolerated: float = TOLERATED) -> int:
    """Threads to use on ``cores`` cores when other processes use ``others`` cores' worth of CPU.

    One thread per core that others leave free, at most ``ceiling`` (default ``cores``),
    at least 1; others may use up to ``tolerated`` of a core before it stops counting as
    free, so a competing process taking a core costs one thread and background noise (a
    driver at a few percent) costs none.
    """
    free = math.floor(cores - max(0.0, others) + tolerated)
    return max(1, min(cores if ceiling is None else ceiling, free))


class ThreadPolicy:
    """Adapts ``torch.set_num_threads`` to the CPU left by other processes (see module doc).

    ``threads > 0`` fixes the count (set once); ``threads == 0`` adapts between 1 and
    ``ceiling`` (default: torch's count when the policy is made, i.e. one per core unless
    the caller lowered it: a lower count set by the user stays an upper bound). Call
    :meth:`update` before CPU work that uses torch's thread pool; it is cheap (a clock
    read) except once per ``window_s`` (a /proc/stat read, tens of microseconds).
    Thread-safe; torch's thread count is process-wide, so one policy serves the process
    (:func:`default_policy`).
    """

    def __init__(self, threads: int = 0, window_s: float = WINDOW_S, tolerated: float = TOLERATED,
                 cpus: set[int] | None = None, ceiling: int | None = None) -> None:
        if threads < 0:
            raise ValueError(f"threads must be >= 0 (0 = adapt to the free cores), got {threads}")
        self.window_s = float(window_s)
        self.tolerated = float(tolerated)
        self._cpus = set(cpus) if cpus is not None else _affinity()
        self._lock = threading.Lock()
        self._last: CpuSample | None = None
        self.others = 0.0  # cores' worth of CPU other processes used in the last window
        self.changes = 0  # how often the count changed (diagnostics, bench)
        self.fixed = threads > 0 or "OMP_NUM_THREADS" in os.environ
        if threads > 0:
            torch.set_num_threads(threads)
        elif ceiling is not None:
            torch.set_num_threads(ceiling)
        self._set = torch.get_num_threads()
        self.ceiling = self._set
        if not self.fixed:  # first sample now: the first forward (after model loading) can already decide
            self._sample(time.monotonic())

    @property
    def cores(self) -> int:
        return len(self._cpus)

    @property
    def threads(self) -> int:
        return torch.get_num_threads()

    def describe(self) -> str:
        """'adaptive (1 of 2 cores; others used 0.9)' or 'fixed 2', for logs and the bench."""
        if self.fixed:
            return f"fixed {self.threads}"
        return f"adaptive ({self.threads} of {self.cores} cores; others used {self.others:.2f})"

    def update(self, now: float | None = None) -> int:
        """Re-decide the thread count if a window has passed; returns the count in use."""
        if self.fixed:
            return self.threads
        now = time.monotonic() if now is None else now
        last = self._last
        if last is not None and now - last.t < self.window_s:
            return self._set
        with self._lock:
            if torch.get_num_threads() != self._set:
                self.fixed = True  # someone called torch.set_num_threads: their choice wins from now on
                return self.threads
            sample = self._sample(now)
            if sample is None:
                return self.threads
            if last is None or sample.t <= last.t:
                return self._set
            self.observe(((sample.busy_s - last.busy_s) - (sample.own_s - last.own_s)) / (sample.t - last.t))
            return self._set

    def _sample(self, now: float) -> CpuSample | None:
        busy = read_cpu_busy(self._cpus)
        if busy is None:
            self.fixed = True  # no /proc/stat (not Linux): keep torch's count
            return None
        self._last = CpuSample(now, busy, time.process_time())
        return self._last

    def observe(self, others: float) -> int:
        """Use the count for ``others`` cores' worth of competing CPU (the measurement step, split out for tests)."""
        self.others = max(0.0, others)
        n = threads_for(self.cores, self.others, self.ceiling, self.tolerated)
        if n != self._set:
            torch.set_num_threads(n)
            self._set = n
            self.changes += 1
        return n


def _affinity() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return set(range(os.cpu_count() or 1))


_DEFAULT: ThreadPolicy | None = None
_DEFAULT_LOCK = threading.Lock()


def default_policy() -> ThreadPolicy:
    """The process-wide adaptive policy the CPU engines consult before each forward."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = ThreadPolicy(0)
        return _DEFAULT


def configure_threads(threads: int) -> ThreadPolicy:
    """Set the process-wide policy: ``threads > 0`` a fixed count, ``0`` adaptive (the default).

    What the node's ``threads`` parameter and ``v2v bench --threads`` call. Adaptive after
    a fixed count (or after a ``torch.set_num_threads`` of the caller's) starts again from
    every core; the first adaptive policy of a process keeps torch's count as its ceiling,
    so a process that lowered it before (a test runner, an embedding application) keeps that.
    """
    global _DEFAULT
    if threads < 0:
        raise ValueError(f"threads must be >= 0 (0 = adapt to the free cores), got {threads}")
    with _DEFAULT_LOCK:
        if threads > 0:
            _DEFAULT = ThreadPolicy(threads)
        elif _DEFAULT is None:
            _DEFAULT = ThreadPolicy(0)
        elif _DEFAULT.fixed:
            _DEFAULT = ThreadPolicy(0, ceiling=len(_affinity()))
        return _DEFAULT
