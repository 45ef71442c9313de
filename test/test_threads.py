"""core.threads: the thread count follows the cores other processes leave free (no timing here:
speed under contention is measured by `v2v bench --contended`, docs/performance.md)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from v2v_ros.core import threads as th
from v2v_ros.core.threads import ThreadPolicy, read_cpu_busy, threads_for


@pytest.fixture(autouse=True)
def _restore_threads() -> Iterator[None]:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("cores, others, ceiling, expected", [
    (2, 0.0, None, 2),    # idle machine: every core
    (2, 0.25, None, 2),   # a driver's background noise costs nothing
    (2, 0.45, None, 1),   # a competitor squeezed to half a core by our spinning threads is still seen
    (2, 1.0, None, 1),    # one busy process: one core left
    (2, 3.0, None, 1),    # never fewer than one thread
    (8, 1.0, None, 7),
    (8, 2.6, None, 5),
    (8, 0.0, 3, 3),       # a lower count chosen by the user stays the ceiling
    (2, -0.2, None, 2),   # tick rounding can make "others" slightly negative
])
def test_threads_for(cores: int, others: float, ceiling: int | None, expected: int) -> None:
    assert threads_for(cores, others, ceiling) == expected


def test_read_cpu_busy_sums_the_affinity_cpus(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    stat.write_text(
        "cpu  999 0 999 999 0 0 0 0 0 0\n"  # the all-CPU line is not counted
        "cpu0 100 10 50 1000 70 5 5 20 0 0\n"  # user nice system idle iowait irq softirq steal
        "cpu1 200 0 100 900 0 0 0 0 0 0\n"
        "intr 12345\n")
    hz = th._HZ
    assert read_cpu_busy({0}, str(stat)) == pytest.approx((100 + 10 + 50 + 5 + 5 + 20) / hz)  # idle, iowait excluded
    assert read_cpu_busy({0, 1}, str(stat)) == pytest.approx((190 + 300) / hz)
    assert read_cpu_busy({5}, str(stat)) is None
    assert read_cpu_busy({0}, str(tmp_path / "missing")) is None


def test_policy_drops_and_restores_threads() -> None:
    torch.set_num_threads(2)
    pol = ThreadPolicy(0, cpus={0, 1})
    assert pol.ceiling == 2 and not pol.fixed
    assert pol.observe(1.0) == 1 and torch.get_num_threads() == 1
    assert pol.observe(0.05) == 2 and torch.get_num_threads() == 2
    assert pol.changes == 2


def test_a_count_set_by_the_user_wins() -> None:
    torch.set_num_threads(2)
    pol = ThreadPolicy(0, cpus={0, 1}, window_s=0.0)
    pol.observe(0.0)  # an idle machine (not measured: a busy or virtualised CI machine would say otherwise)
    assert torch.get_num_threads() == 2
    torch.set_num_threads(1)  # the user's own choice, after the policy started
    pol.update()
    assert pol.fixed
    pol.observe(0.0)  # an idle machine would have restored 2
    pol.update()
    assert torch.get_num_threads() == 1
    fixed = ThreadPolicy(1, cpus={0, 1})
    assert fixed.fixed and torch.get_num_threads() == 1 and fixed.describe() == "fixed 1"


def test_omp_num_threads_is_respected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert ThreadPolicy(0, cpus={0, 1}).fixed


def test_configure_threads_switches_the_process_policy() -> None:
    try:
        assert th.configure_threads(1).fixed and torch.get_num_threads() == 1
        pol = th.configure_threads(0)
        assert not pol.fixed and th.default_policy() is pol
        assert pol.ceiling == len(os.sched_getaffinity(0))
        assert th.configure_threads(0) is pol  # already adaptive: kept
        for bad in (lambda: ThreadPolicy(-1), lambda: th.configure_threads(-1)):
            with pytest.raises(ValueError, match="threads"):
                bad()
    finally:
        th.configure_threads(0)


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2
                    or read_cpu_busy(set(os.sched_getaffinity(0))) is None,
                    reason="needs Linux /proc/stat and at least 2 CPUs in this process's affinity")
def test_update_sees_a_busy_process_and_takes_a_thread_away() -> None:
    """A real competitor pinned to one of our cores: the policy measures about a core's worth of
    other CPU and runs one thread fewer; the machine's other load can only add to it."""
    cpus = set(os.sched_getaffinity(0))
    torch.set_num_threads(len(cpus))
    pol = ThreadPolicy(0, cpus=cpus, window_s=0.3)
    busy = subprocess.Popen([sys.executable, "-c", f"import os\nos.sched_setaffinity(0, {{{max(cpus)}}})\n"
                             "while True:\n    pass\n"])
    try:
        time.sleep(0.3)
        pol.update()
        time.sleep(0.6)
        assert pol.update() <= len(cpus) - 1
        assert pol.others > 0.5
    finally:
        busy.kill()
        busy.wait()
