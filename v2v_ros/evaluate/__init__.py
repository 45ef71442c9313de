"""Evaluation: the paper's metrics (sec. 8.2), community prediction files, plots and the eval loop.

Importing this package is cheap (numpy only); matplotlib and the estimator are
imported by the functions that need them.
"""

from v2v_ros.evaluate.metrics import (
    SUCCESS_THRESHOLDS_MM,
    ap_per_joint,
    evaluate_arrays,
    joint_errors,
    mean_error,
    per_joint_error,
    success_curve,
    success_rate_dict,
)

__all__ = [
    "SUCCESS_THRESHOLDS_MM",
    "ap_per_joint",
    "evaluate_arrays",
    "joint_errors",
    "mean_error",
    "per_joint_error",
    "success_curve",
    "success_rate_dict",
]
