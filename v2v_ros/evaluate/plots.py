"""Evaluation figures as PNG: success-frame curves and per-joint errors (paper Fig. 7), skeleton overlays.

Figures are built with ``matplotlib.figure.Figure`` directly (no pyplot), which
renders with Agg and never touches a display or global backend state -- safe on
headless machines and inside a ROS process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from v2v_ros.core.camera import Intrinsics
from v2v_ros.evaluate.metrics import SUCCESS_THRESHOLDS_MM, success_curve

Curve = tuple[Sequence[float], Sequence[float]]


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100)


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", bbox_inches="tight")
    return path


def plot_success_curve(curves: Mapping[str, Curve | np.ndarray] | Curve, path: str | Path,
                       title: str = "Success-frame rate") -> Path:
    """Success-frame rate (%) against the max-error threshold (mm), one line per method.

    A value may be (thresholds, rates) or an (N, J) error array (curve computed here).
    """
    if not isinstance(curves, Mapping):
        curves = {"": curves}
    fig = _figure(6, 4.5)
    ax = fig.add_subplot()
    for label, curve in curves.items():
        if isinstance(curve, np.ndarray) and curve.ndim == 2:
            thresholds, rates = success_curve(curve, SUCCESS_THRESHOLDS_MM)
        else:
            thresholds, rates = curve
        ax.plot(np.asarray(thresholds), 100.0 * np.asarray(rates, dtype=float), label=label or None, linewidth=2)
    ax.set_xlabel("Maximum allowed distance to GT (mm)")
    ax.set_ylabel("Fraction of frames within distance (%)")
    ax.set_xlim(0, 80)
    ax.set_ylim(0, 100)
    ax.grid(True, alpha=0.3)
    ax.set_title(title)
    if any(curves):
        ax.legend(loc="lower right")
    return _save(fig, path)


def plot_per_joint_errors(per_joint_mm: Sequence[float], joint_names: Sequence[str] | None, path: str | Path,
                          title: str = "Mean error per joint", unit: str = "mm") -> Path:
    """Bar chart of per-joint values (errors in mm, or AP fractions with ``unit='AP'``), plus their mean."""
    values = np.asarray(per_joint_mm, dtype=float)
    names = list(joint_names) if joint_names is not None else [str(i) for i in range(values.size)]
    fig = _figure(max(6.0, 0.35 * (values.size + 1)), 4.5)
    ax = fig.add_subplot()
    labels = names + ["mean"]
    ax.bar(np.arange(values.size + 1), np.append(values, np.nanmean(values) if values.size else np.nan),
           color=["tab:blue"] * values.size + ["tab:orange"])
    ax.set_xticks(np.arange(len(labels)))
    ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel(f"Mean error ({unit})" if unit == "mm" else unit)
    ax.grid(True, axis="y", alpha=0.3)
    ax.set_title(title)
    return _save(fig, path)


def overlay(depth: np.ndarray, intrinsics: Intrinsics, pred_joints: np.ndarray | None, gt_joints: np.ndarray | None,
            bones: Sequence[tuple[int, int]], path: str | Path, title: str = "", offset: tuple[int, int] = (0, 0),
            zoom: bool = True) -> Path:
    """Depth image with the true (green) and predicted (red) skeletons projected onto it.

    ``offset`` = (u0, v0) of ``depth[0, 0]`` in the full image, so a crop can be drawn.
    Joints with non-finite coordinates or z <= 0 are not drawn. With ``zoom`` the
    view is cut to the skeletons plus a margin, because a hand is a few percent of
    a 640x480 frame and would be unreadable otherwise.
    """
    depth = np.asarray(depth, dtype=np.float32)
    shown = np.where(depth > 0, depth, np.nan)
    fig = _figure(6, 6 * depth.shape[0] / max(depth.shape[1], 1))
    ax = fig.add_subplot()
    image = ax.imshow(shown, cmap="gray_r", interpolation="nearest")
    drawn: list[np.ndarray] = []
    for joints, color, label in ((gt_joints, "lime", "ground truth"), (pred_joints, "red", "prediction")):
        if joints is None:
            continue
        xyz = np.asarray(joints, dtype=np.float64)
        ok = np.isfinite(xyz).all(axis=1) & (xyz[:, 2] > 0)
        if not ok.any():
            continue
        uv = np.asarray(intrinsics.to_uvd(np.where(ok[:, None], xyz, 1.0)))[:, :2] - np.asarray(offset, float)
        for a, b in bones:
            if a < len(uv) and b < len(uv) and ok[a] and ok[b]:
                ax.plot(uv[[a, b], 0], uv[[a, b], 1], color=color, linewidth=1.5)
        ax.scatter(uv[ok, 0], uv[ok, 1], s=10, color=color, label=label, zorder=3)
        drawn.append(uv[ok])
    x0, x1, y0, y1 = -0.5, depth.shape[1] - 0.5, -0.5, depth.shape[0] - 0.5
    if zoom and drawn:
        pts = np.concatenate(drawn)
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        margin = max(20.0, 0.3 * float(np.max(hi - lo)))
        x0, x1 = max(x0, lo[0] - margin), min(x1, hi[0] + margin)
        y0, y1 = max(y0, lo[1] - margin), min(y1, hi[1] + margin)
        if x1 <= x0 or y1 <= y0:  # skeleton entirely outside the image: show the whole frame
            x0, x1, y0, y1 = -0.5, depth.shape[1] - 0.5, -0.5, depth.shape[0] - 0.5
    ax.set_xlim(x0, x1)
    ax.set_ylim(y1, y0)
    window = shown[max(int(y0), 0):int(y1) + 1, max(int(x0), 0):int(x1) + 1]
    if np.isfinite(window).any():  # contrast of the visible part, not of the far background
        lo_d, hi_d = np.nanpercentile(window, [1, 99])
        image.set_clim(lo_d, max(hi_d, lo_d + 1.0))
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)
