"""Where a touching or occluded hand's extra error comes from: the other hand in its cube, or what it hides.

    python tools/two_hand_gap.py data/multi_test data/multi_test_solo [--checkpoint M] [--precision P] [--json]

The first folder holds two-hand frames (``v2v synth --hands 2 --full-frame``), the second the same
hands rendered alone (the same command with ``--solo``: frame ``2i + k`` is hand ``k`` of frame
``i``). Every hand of a frame whose two hands are both at least half visible gets a cube at its
true centre (the joint mean), voxelised on three images:

* ``two_hands``: the frame as it is (both hands in the cube when they touch);
* ``other_removed``: the frame without the other hand's pixels, those within
  :data:`v2v_ros.core.estimator.HAND_MASK_MM` of its *true* joints and bones, as the estimator removes
  a hand with its *estimated* pose (:func:`v2v_ros.core.estimator.without_hands`);
* ``exactly_removed``: the frame without every pixel the renderer says the other hand (forearm
  included) shows, and the pixels next to them (:func:`v2v_ros.data.synthetic.multi.hand_pixels`,
  one pixel wider for the sensor's flying pixels at its edges): the best any mask can do;
* ``alone``: the same hand rendered alone;
* ``separated`` (models with a two-hand separator, :mod:`v2v_ros.core.separator`): the frame
  without the pixels the separator assigns to the other hand, given both hands' *true* poses:
  what the estimator's masks remove with a separator, with perfect poses.

The mean joint error per arrangement (apart, occluding, touching) separates the cost of sharing the
cube (``two_hands`` against ``exactly_removed``: what a better mask or pose of the other hand can
win; ``other_removed`` is what the estimator's kind of mask wins with a perfect pose) from the cost
of the gap the other hand leaves (``exactly_removed`` against ``alone``: what only the pose network,
trained on such cubes, can win, and for a hand behind the other what the camera does not see). The
detector, refiner and presence classifier are not involved: every cube sits at the true centre and
is posed.

A model with two input channels (``input_channels: 2``) gets the pixels the two masks removed in its
second channel, as the estimator gives them; ``--empty-removed-channel`` leaves that channel empty
instead, which says how much the model uses it.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from v2v_ros.evaluate.tool_options import add_model_options, load_estimator

IMAGES = ("two_hands", "other_removed", "exactly_removed", "alone")
MASKED = ("other_removed", "exactly_removed", "separated")  # images a mask made (what it removed: channel 2)
MIN_VISIBLE = 0.5


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("two", help="two-hand frames (v2v synth --hands 2 --full-frame)")
    ap.add_argument("solo", help="the same hands alone (the same command with --solo)")
    ap.add_argument("--empty-removed-channel", action="store_true",
                    help="a two-channel model's second channel stays empty (what it gains from the removed pixels)")
    add_model_options(ap)
    args = ap.parse_args(argv)

    from scipy.ndimage import binary_dilation

    from v2v_ros.core.estimator import without_hands
    from v2v_ros.data.shards import ShardDataset
    from v2v_ros.data.synthetic import SynthConfig
    from v2v_ros.data.synthetic.multi import HandsSpec, hand_pixels
    from v2v_ros.evaluate.multi import frame_targets_of
    from v2v_ros.evaluate.runner import frame_image

    est = load_estimator(args, presence=False)  # every cube is posed, hand seen or not
    two, solo = ShardDataset(args.two), ShardDataset(args.solo)
    if len(solo) != 2 * len(two):
        print(f"{args.solo} has {len(solo)} frames, {args.two} {len(two)}: expected twice as many alone",
              file=sys.stderr)
        return 2
    generator = (two.meta or {}).get("generator", {})
    if generator.get("name") != "v2v_ros.data.synthetic.multi" or generator.get("hands", {}).get("solo"):
        print(f"{args.two} was not made by v2v synth --hands 2 (without --solo)", file=sys.stderr)
        return 2
    config, spec = SynthConfig.from_dict(generator["config"]), HandsSpec.from_dict(generator["hands"])
    errors: dict[str, dict[str, list[float]]] = {}
    names = IMAGES + (("separated",) if est.separator is not None else ())
    for i in range(len(two)):
        frame = two[i]
        gt, visible, _, _ = frame_targets_of(frame)
        if len(gt) != 2 or float(np.min(visible)) < MIN_VISIBLE:
            continue
        depth = frame_image(frame)
        shown = hand_pixels(int(frame.info["seed"]), int(frame.info["index"]), config, spec)
        arrangement = str(frame.info.get("arrangement", "-"))
        for k in range(2):
            alone = solo[2 * i + k]
            if alone.info.get("index") != frame.info.get("index") or alone.info.get("solo") != k:
                print(f"{args.solo} frame {2 * i + k} is not hand {k} of frame {i} alone", file=sys.stderr)
                return 2
            exact = depth.copy()
            exact[binary_dilation(shown[1 - k])] = 0.0
            centre = np.nanmean(gt[k], axis=0)
            images = [depth, without_hands(depth, frame.intrinsics, [gt[1 - k]]), exact, frame_image(alone)]
            if est.separator is not None:
                images += est.separator(depth, frame.intrinsics, [centre], [gt[k]], [[gt[1 - k]]])
            for name, image in zip(names, images, strict=True):
                # a two-channel model sees what a mask removed, as in the estimator's masked cubes
                full = depth if name in MASKED and not args.empty_removed_channel else None
                (r,) = est.estimate_many(image, frame.intrinsics, [centre], full_mm=full)
                e = float(np.nanmean(np.linalg.norm(np.asarray(r.joints) - gt[k], axis=-1))) if r.valid else np.nan
                for key in (arrangement, "all"):
                    errors.setdefault(key, {n: [] for n in names})[name].append(e)
    report = {a: {"hands": len(v["alone"]), **{f"{n}_mm": float(np.nanmean(v[n])) for n in names}}
              for a, v in sorted(errors.items(), key=lambda kv: (kv[0] == "all", kv[0]))}
    if args.json:
        print(json.dumps({"checkpoint": args.checkpoint, "precision": est.precision,
                          "input_channels": est.meta.input_channels,
                          "removed_channel": est.meta.input_channels > 1 and not args.empty_removed_channel,
                          "by_arrangement": report}, indent=2))
    else:
        print(f"{'arrangement':<12}{'hands':>6}" + "".join(f"{n:>17}" for n in names) + "   (mean joint error, mm)")
        for a, r in report.items():
            print(f"{a:<12}{r['hands']:>6}" + "".join(f"{r[f'{n}_mm']:>17.2f}" for n in names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
