"""How large the hand cube must be: joints outside cubes of several sizes, at the real localiser's centres.

    python tools/cube_coverage.py --root data/synth_test --frames 300 [--checkpoint models/hand_default.safetensors]

For each frame the shipped pipeline (detector -> verification -> refiner) picks the cube
centre exactly as the node does; a joint farther than half the cube's edge from that
centre on any axis cannot be predicted (the heatmaps end at the cube's faces). Prints,
per cube edge, the share of joints and of frames with a joint outside, plus the centre
error itself; frames the pipeline rejects are left out (they have no centre).
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", required=True, help="full-frame synthetic shard folder (v2v synth --full-frame)")
    ap.add_argument("--checkpoint", default="models/hand_default.safetensors")
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--cubes", default="200,225,250,275,300")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    from v2v_ros.core.estimator import PoseEstimator
    from v2v_ros.data.shards import ShardDataset

    est = PoseEstimator.load(args.checkpoint)
    ds = ShardDataset(args.root)
    offsets, centre_err = [], []
    for i in range(min(args.frames, len(ds))):
        f = ds[i]
        res = est.estimate(f.full_depth(), f.intrinsics)
        if not np.all(np.isfinite(res.reference_point)) or not res.reference_point.any():
            continue
        offsets.append(np.asarray(f.joints) - res.reference_point)
        centre_err.append(float(np.linalg.norm(np.asarray(f.joints).mean(axis=0) - res.reference_point)))
    off = np.abs(np.stack(offsets))
    out = {"frames": len(offsets), "centre_error_mm": {"median": float(np.median(centre_err)),
                                                        "p90": float(np.percentile(centre_err, 90))},
           "cubes": {}}
    for s in (float(c) for c in args.cubes.split(",")):
        outside = (off > s / 2).any(axis=-1)
        out["cubes"][f"{s:g}"] = {"joints_outside_pct": 100 * float(outside.mean()),
                                  "frames_with_joint_outside_pct": 100 * float(outside.any(axis=1).mean())}
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"{out['frames']} frames; centre error median {out['centre_error_mm']['median']:.1f} mm, "
          f"90th percentile {out['centre_error_mm']['p90']:.1f} mm")
    print(f"{'cube mm':>8} {'joints outside':>15} {'frames with one outside':>24}")
    for s, r in out["cubes"].items():
        print(f"{s:>8} {r['joints_outside_pct']:>14.2f}% {r['frames_with_joint_outside_pct']:>23.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
