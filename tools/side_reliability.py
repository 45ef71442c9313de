"""How often a pose's side (left/right) is right, by the pose's mean joint confidence, on tracked streams.

    python tools/side_reliability.py data/dev_two_seq data/dev_seq1 data/dev_seq1b data/dev_two_seq81 \
        [--checkpoint models/hand_default.safetensors] [--json]

Each folder is a ``v2v synth --sequence N --full-frame`` stream split (one or two hands). The
streams are followed as ``v2v eval --tracking`` follows them (``max_targets`` 2); every pose
matched to a true hand is scored for the side the regression of ``core.handedness`` reads from
its joints (not the track's pooled side). The table per score bin is what
``core.handedness.DOUBTFUL_POSE_SCORE`` and ``SIDE_RELIABILITY`` are read from: a pose's side is
published no surer than poses of its confidence turned out to be. Use validation splits only.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from v2v_ros.evaluate.tool_options import add_model_options, load_estimator

BINS = ((0.0, 0.5), (0.5, 0.6), (0.6, 0.65), (0.65, 0.7), (0.7, 0.75), (0.75, 0.8), (0.8, 1.01))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("roots", nargs="+", help="stream shard folders (v2v synth --sequence N --full-frame)")
    add_model_options(ap)
    args = ap.parse_args(argv)

    from v2v_ros.core.handedness import handedness
    from v2v_ros.core.tracking import MultiTracker, TrackingConfig
    from v2v_ros.data.shards import ShardDataset
    from v2v_ros.evaluate.multi import LOCATE_MM, MATCH_MM, match_targets, run_multi

    est = load_estimator(args)
    scores: list[float] = []
    right: list[bool] = []
    for root in args.roots:  # each folder followed from its first frame, as `v2v eval --tracking` does
        run = run_multi(MultiTracker(est, TrackingConfig(enabled=True), max_targets=2), ShardDataset(root))
        for f in run.frames:
            for p, g, _ in match_targets(f.pred, f.gt, MATCH_MM, LOCATE_MM):
                side, _ = handedness(f.pred[p])
                if side and f.gt_sides[g]:
                    scores.append(f.pred_scores[p])
                    right.append(side == f.gt_sides[g])
    s, ok = np.asarray(scores), np.asarray(right)
    table = []
    for lo, hi in BINS:
        k = (s >= lo) & (s < hi)
        table.append({"score_from": lo, "score_below": hi, "poses": int(k.sum()),
                      "side_right": float(ok[k].mean()) if k.any() else None})
    if args.json:
        json.dump({"checkpoint": args.checkpoint, "roots": args.roots, "bins": table}, sys.stdout)
        print()
        return 0
    print(f"{len(s)} matched poses with a side, {args.checkpoint}")
    print("| mean joint confidence | poses | side right |")
    print("|---|---|---|")
    for row in table:
        share = "-" if row["side_right"] is None else f"{100.0 * row['side_right']:.1f} %"
        print(f"| {row['score_from']:.2f}-{min(row['score_below'], 1.0):.2f} | {row['poses']} | {share} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
