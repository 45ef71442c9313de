"""The options the evaluation scripts under ``tools/`` share: which checkpoint, which precision, JSON out.

Why here: each script loads the shipped hand model the same way ``v2v eval`` does (on the CPU,
int8 calibrated on synthetic hands), so their figures compare with the CLI's.
"""

from __future__ import annotations

import argparse
from typing import Any

DEFAULT_CHECKPOINT = "models/hand_default.safetensors"


def add_model_options(ap: argparse.ArgumentParser) -> None:
    """``--checkpoint``, ``--precision``, ``--json`` and ``--separator``."""
    ap.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT)
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--separator", default="auto", metavar="auto|none|PATH",
                    help="two-hand separator (v2v_ros.core.separator): auto (next to the model), none, or a file")


def separator_option(value: str) -> str | bool:
    """``--separator`` as :meth:`~v2v_ros.core.estimator.PoseEstimator.load` takes it: "auto", False
    ("none") or a path."""
    return False if value == "none" else value


def load_estimator(args: argparse.Namespace, presence: bool | str = "auto") -> Any:
    """The :class:`~v2v_ros.core.estimator.PoseEstimator` the options name, on the CPU (``presence``: as
    :meth:`~v2v_ros.core.estimator.PoseEstimator.load`; ``False`` poses every given cube)."""
    from v2v_ros.core.estimator import PoseEstimator  # noqa: PLC0415 - torch only once parsed
    from v2v_ros.data.calibration import synthetic_calibration_source  # noqa: PLC0415

    return PoseEstimator.load(args.checkpoint, device="cpu", precision=args.precision, presence=presence,
                              separator=separator_option(args.separator), calibration=synthetic_calibration_source)
