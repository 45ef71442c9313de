"""Camera streams in which the hand leaves: how many skeletons are published after it has gone.

Each 60-frame clip of a ``v2v synth --sequence 60 --full-frame`` dataset is played at 30 Hz
through the node's tracker and followed, in the same stream, by 30 hand-free frames
(``v2v_ros.data.synthetic.negatives``, seed 7). A tracker that keeps centring its cube
where the hand was would publish skeletons on them.

    python tools/presence_stream.py data/presence_seq            # with the shipped presence classifier
    python tools/presence_stream.py data/presence_seq --no-presence
"""

from __future__ import annotations

import argparse

from v2v_ros.core.estimator import PoseEstimator
from v2v_ros.core.tracking import TrackingConfig, TrackingEstimator
from v2v_ros.data.shards import ShardDataset
from v2v_ros.data.synthetic.negatives import render_negative

FRAME_NS = 33_333_333


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", help="a `v2v synth --sequence 60 --full-frame` dataset")
    ap.add_argument("--model", default="models/hand_default.safetensors")
    ap.add_argument("--no-presence", action="store_true")
    ap.add_argument("--clip", type=int, default=60, help="frames per clip of the dataset")
    ap.add_argument("--after", type=int, default=30, help="hand-free frames after each clip")
    args = ap.parse_args()
    est = PoseEstimator.load(args.model, presence=False if args.no_presence else "auto")
    est.warm_up()
    tracker = TrackingEstimator(est, TrackingConfig(enabled=True))
    seq = ShardDataset(args.root)
    stamp, hand, free, k = 0, 0, 0, 0
    clips = len(seq) // args.clip
    for c in range(clips):
        tracker.reset()
        for i in range(args.clip):
            f = seq[c * args.clip + i]
            hand += tracker.estimate(f.full_depth(), f.intrinsics, stamp_ns=stamp).valid
            stamp += FRAME_NS
        for _ in range(args.after):
            f = render_negative(7, k)
            k += 1
            free += tracker.estimate(f.depth, f.intrinsics, stamp_ns=stamp).valid
            stamp += FRAME_NS
    print(f"presence {'off' if args.no_presence else 'on'}: hand frames published {hand}/{clips * args.clip}, "
          f"hand-free frames after the hand published {free}/{clips * args.after}; tracker {tracker.stats}")


if __name__ == "__main__":
    main()
