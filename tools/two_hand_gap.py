"""Where a touching or occluded hand's extra error comes from: the other hand in its cube, or what it hides.

    python tools/two_hand_gap.py data/multi_test data/multi_test_solo [--checkpoint M] [--precision P] [--json]

The first folder holds two-hand frames (``v2v synth --hands 2 --full-frame``), the second the same
hands rendered alone (the same command with ``--solo``: frame ``2i + k`` is hand ``k`` of frame
``i``). Every hand of a frame whose two hands are both at least half visible gets a cube at its
true centre (the joint mean), voxelised on each of these images:

* ``two_hands``: the frame as it is (both hands in the cube when they touch);
* ``other_removed``: the frame without the other hand's pixels, those within
  :data:`v2v_ros.core.estimator.HAND_MASK_MM` of its *true* joints and bones, as the estimator removes
  a hand with its *estimated* pose (:func:`v2v_ros.core.estimator.without_hands`);
* ``exactly_removed``: the frame without every pixel the renderer says the other hand (forearm
  included) shows, and the pixels next to them (:func:`v2v_ros.data.synthetic.multi.hand_pixels`,
  one pixel wider for the sensor's flying pixels at its edges): the best any mask can do;
* ``split``: the frame without the pixels nearer the other hand's *true* skeleton (bones and
  forearm) than this hand's, within 60 mm of it (:func:`v2v_ros.core.hand_masks.without_nearer_hands`):
  a mask drawn from both poses, which leaves this hand's fingers where the two touch;
* ``other_removed_as_estimated``, ``split_as_estimated``: the same two masks drawn with the poses
  the network gives, not the true ones: both hands posed on the frame as it is, then
  :data:`ROUNDS` times each on the frame without the other hand as the other's last pose places
  it (the estimator's crowded cubes, at the true centres): what the masks win with the poses
  there are;
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
from typing import Any, Sequence

import numpy as np

from v2v_ros.evaluate.tool_options import add_model_options, load_estimator

IMAGES = ("two_hands", "other_removed", "split", "exactly_removed", "other_removed_as_estimated",
          "split_as_estimated", "alone")
# images a mask made (what it removed: channel 2)
MASKED = ("other_removed", "split", "exactly_removed", "other_removed_as_estimated", "split_as_estimated",
          "separated")
ROUNDS = 2  # as the estimator's crowded cubes (core.estimator.SEPARATE_ROUNDS)
WITHIN_CUBES = 1.5  # a split mask is drawn this many cube widths around the cube's centre (all it sees)
MIN_VISIBLE = 0.5


def _masked(kind: str, depth: np.ndarray, intrinsics: Any, poses: Sequence[np.ndarray], k: int,
            within: tuple[np.ndarray, float]) -> np.ndarray:
    """``depth`` for hand ``k``'s cube without the other hand as ``poses`` place it: ``drawn`` (balls
    around its joints and bones, the estimator's mask) or ``split`` (nearer its skeleton than this hand's)."""
    from v2v_ros.core.estimator import without_hands
    from v2v_ros.core.hand_masks import without_nearer_hands

    if kind == "drawn":
        return without_hands(depth, intrinsics, [poses[1 - k]])
    return without_nearer_hands(depth, intrinsics, np.asarray(poses[k], np.float64),
                                [np.asarray(poses[1 - k], np.float64)], within=within)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("two", help="two-hand frames (v2v synth --hands 2 --full-frame)")
    ap.add_argument("solo", help="the same hands alone (the same command with --solo)")
    ap.add_argument("--empty-removed-channel", action="store_true",
                    help="a two-channel model's second channel stays empty (what it gains from the removed pixels)")
    add_model_options(ap)
    args = ap.parse_args(argv)

    from scipy.ndimage import binary_dilation

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
        centres = [np.nanmean(g, axis=0) for g in gt]
        within = [(c, WITHIN_CUBES * est.grid.cube_size) for c in centres]
        first = [r.joints for r in est.estimate_many(depth, frame.intrinsics, centres)]
        as_estimated = {}
        full = None if args.empty_removed_channel else depth
        for name, kind in (("other_removed_as_estimated", "drawn"), ("split_as_estimated", "split")):
            poses = first
            for _ in range(ROUNDS):
                images = [_masked(kind, depth, frame.intrinsics, poses, k, within[k]) for k in range(2)]
                poses = [est.estimate_many(images[k], frame.intrinsics, [centres[k]], full_mm=full)[0].joints
                         for k in range(2)]
            as_estimated[name] = images
        for k in range(2):
            alone = solo[2 * i + k]
            if alone.info.get("index") != frame.info.get("index") or alone.info.get("solo") != k:
                print(f"{args.solo} frame {2 * i + k} is not hand {k} of frame {i} alone", file=sys.stderr)
                return 2
            exact = depth.copy()
            exact[binary_dilation(shown[1 - k])] = 0.0
            centre = centres[k]
            images = [depth, _masked("drawn", depth, frame.intrinsics, gt, k, within[k]),
                      _masked("split", depth, frame.intrinsics, gt, k, within[k]), exact,
                      as_estimated["other_removed_as_estimated"][k], as_estimated["split_as_estimated"][k],
                      frame_image(alone)]
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
        widths = [max(17, len(n) + 2) for n in names]
        print(f"{'arrangement':<12}{'hands':>6}" + "".join(f"{n:>{w}}" for n, w in zip(names, widths, strict=True))
              + "   (mean joint error, mm)")
        for a, r in report.items():
            print(f"{a:<12}{r['hands']:>6}"
                  + "".join(f"{r[f'{n}_mm']:>{w}.2f}" for n, w in zip(names, widths, strict=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
