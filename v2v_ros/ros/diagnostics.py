"""``/diagnostics`` status of the pose pipeline (what ``rqt_runtime_monitor`` shows).

Values come from the pure statistics in :mod:`v2v_ros.core.stream`; this module only
formats them as a ``diagnostic_msgs/DiagnosticStatus``. Counter keys are stable
(``rejected.<reason>``, ``dropped.<reason>``) so tests and dashboards can parse them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from std_msgs.msg import Header

from v2v_ros.core.presence import NO_HAND


@dataclass
class PipelineSnapshot:
    """Everything the status reports, gathered by the node at publish time."""

    node_name: str
    state: str
    device: str
    model: str
    input_rate_hz: float
    output_rate_hz: float
    latency_p50_ms: float
    latency_p95_ms: float
    counters: dict[str, int] = field(default_factory=dict)
    queue: dict[str, int] = field(default_factory=dict)
    last_problem: str = ""


def build_status(s: PipelineSnapshot) -> DiagnosticStatus:
    """OK while frames flow, WARN on recent problems or no input, ERROR when not active."""
    if s.state != "active":
        level, message = DiagnosticStatus.ERROR, f"node is {s.state}"
    elif s.input_rate_hz == 0.0:
        level, message = DiagnosticStatus.WARN, "no depth frames received"
    elif s.last_problem:
        level, message = DiagnosticStatus.WARN, s.last_problem
    else:
        level, message = DiagnosticStatus.OK, "running"
    values = {
        "state": s.state,
        "device": s.device,
        "model": s.model,
        "input_rate_hz": _f(s.input_rate_hz),
        "output_rate_hz": _f(s.output_rate_hz),
        "latency_p50_ms": _f(s.latency_p50_ms),
        "latency_p95_ms": _f(s.latency_p95_ms),
        "frames_in": str(s.counters.get("frames_in", 0)),
        "frames_out": str(s.counters.get("frames_out", 0)),
        "dropped": str(s.counters.get("dropped", 0)),
        "no_hand": str(s.counters.get("no_hand", 0)),  # processed, no skeleton published (no_hand.<cause>)
        "rejected": str(sum(v for k, v in s.counters.items() if k.startswith("rejected."))),
    }
    for key in sorted(s.counters):
        if key.startswith(("rejected.", "dropped.", "warn.", "reference.", "no_hand.", "camera_info.", "frames.", "lost.")):
            values[key] = str(s.counters[key])
    for key, v in s.queue.items():
        values[f"queue.{key}"] = str(v)
    return DiagnosticStatus(
        level=level, name=f"{s.node_name}: pose pipeline", message=message, hardware_id=s.device,
        values=[KeyValue(key=k, value=v) for k, v in values.items()],
    )


def build_array(header: Header, s: PipelineSnapshot) -> DiagnosticArray:
    return DiagnosticArray(header=header, status=[build_status(s)])


def no_hand_cause(result: Any) -> str:
    """Why a processed frame published no skeleton (the ``no_hand.<cause>`` counter key).

    ``absent``: the hand-presence classifier found no hand (core.presence); ``low_confidence``:
    a pose below ``min_confidence``; ``invalid``: no pose at all (no depth near the candidate,
    too few points in the cube, a non-finite network output).
    """
    if result.valid:
        return "low_confidence"
    return "absent" if result.reason == NO_HAND else "invalid"


def status_values(status: DiagnosticStatus) -> dict[str, str]:
    """KeyValues of a status as a dict (tests, demo)."""
    return {kv.key: kv.value for kv in status.values}


def _f(x: float) -> str:
    return "nan" if x is None or not math.isfinite(x) else f"{x:.2f}"
