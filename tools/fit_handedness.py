"""Fit the handedness weights of v2v_ros/core/handedness.py on the synthetic hand model's joints.

    python tools/fit_handedness.py [--n 20000] [--noise-mm 8] [--seed 1]

Samples hand shapes and poses as `v2v synth` does (both sides, all pose presets), adds
Gaussian noise per joint (the estimator's joints are never exact), computes the hand-frame
z coordinates (``hand_frame_depths``) and fits a logistic regression without bias
(Newton's method, light L2), so a hand and its mirror image get opposite scores. Prints
the weights to paste into ``WEIGHTS`` and the accuracy on a second, independently drawn
set (seed + 1000). Depends only on the generator, not on any test split or network.
"""

from __future__ import annotations

import argparse

import numpy as np

from v2v_ros.core.handedness import hand_frame_depths, handedness
from v2v_ros.data.synthetic.hand import HandModel, sample_pose, sample_shape


def sample(n: int, seed: int, noise_mm: float) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    feats, labels, joints = [], [], []
    while len(feats) < n:
        shape = sample_shape(rng)
        j = HandModel(shape).joints(sample_pose(rng)) + rng.normal(0.0, noise_mm, (21, 3))
        z = hand_frame_depths(j)
        if z is None:
            continue
        feats.append(z)
        labels.append(1.0 if shape.handedness == "right" else -1.0)
        joints.append(j)
    return np.stack(feats), np.array(labels), joints


def fit(x: np.ndarray, y: np.ndarray, l2: float = 1e-3, steps: int = 30) -> np.ndarray:
    """Logistic regression of sign y on x without intercept (Newton's method)."""
    w = np.zeros(x.shape[1])
    for _ in range(steps):
        m = y * (x @ w)
        p = 1.0 / (1.0 + np.exp(np.clip(m, -50, 50)))  # = 1 - sigmoid(margin)
        grad = -(x * (y * p)[:, None]).mean(axis=0) + l2 * w
        hess = (x * (p * (1 - p))[:, None]).T @ x / len(x) + l2 * np.eye(x.shape[1])
        w -= np.linalg.solve(hess, grad)
    return w


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--noise-mm", type=float, default=8.0)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    x, y, _ = sample(args.n, args.seed, args.noise_mm)
    w = fit(x, y)
    scale = float(np.abs(w).max())
    weights = w / scale
    xt, yt, jt = sample(5000, args.seed + 1000, args.noise_mm)
    acc = float(((xt @ w > 0) == (yt > 0)).mean())
    sides = [handedness(j, weights, scale)[0] for j in jt]
    acc_fn = float(np.mean([(s == "right") == (t > 0) for s, t in zip(sides, yt, strict=True)]))
    print("WEIGHTS = np.array([")
    print("    " + ", ".join(f"{v:.4f}" for v in weights) + ",")
    print("])")
    print(f"SCALE = {scale:.4f}")
    print(f"held-out accuracy ({len(yt)} hands, seed {args.seed + 1000}, {args.noise_mm} mm noise): "
          f"{acc:.4f} (handedness() with these weights: {acc_fn:.4f})")


if __name__ == "__main__":
    main()
