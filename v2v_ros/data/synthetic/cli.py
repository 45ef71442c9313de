"""``v2v synth``: generate a synthetic hand (or, with ``--body``, people) dataset (shards, optionally a rosbag2).

Frames are generated in parallel (``--workers``) but written in index order, and
each depends only on (seed, index), so the output is identical for any worker count.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

from v2v_ros.core.skeletons import BODY_ITOP15, HAND_MSRA21

DEFAULT_CUBE_MM = 320.0
# Bodies: the 2 m cube plus room for the training augmentation (scale 0.8, translation).
DEFAULT_BODY_CUBE_MM = 3200.0
BODY_CUBE_M = 2.0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("synth", help="generate a synthetic depth hand dataset (shards and/or a rosbag2)",
                              description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", required=True, type=Path, help="dataset folder (shards + meta.json; bag in OUT/bag)")
    p.add_argument("--n", required=True, type=int, help="number of frames")
    p.add_argument("--seed", type=int, default=0, help="dataset seed; frame i depends only on (seed, i)")
    p.add_argument("--preset", choices=["realsense", "msra", "nyu", "icvl"], default="realsense",
                   help="camera intrinsics and resolution preset (hands; bodies use ITOP's camera)")
    p.add_argument("--body", action="store_true",
                   help="people (ITOP 15 joints, 2 m cube) in a room instead of hands (v2v_ros.data.synthetic.body)")
    p.add_argument("--view", choices=["front", "top", "both"], default=None,
                   help="with --body: ITOP-like front camera (default), top camera, or both (even frames front, "
                        "odd top)")
    for name, typ in (("width", int), ("height", int), ("fx", float), ("fy", float), ("cx", float), ("cy", float)):
        p.add_argument(f"--{name}", type=typ, default=None, help=f"override the preset's {name}")
    p.add_argument("--depth-min", type=float, default=250.0, help="nearest hand centre depth, mm")
    p.add_argument("--depth-max", type=float, default=1000.0, help="farthest hand centre depth, mm")
    p.add_argument("--full-frame", action="store_true", help="store whole images instead of crops around the hand")
    p.add_argument("--crop-cube-mm", type=float, default=None,
                   help=f"edge of the cube whose projection is stored (default {DEFAULT_CUBE_MM:.0f}, "
                        f"bodies {DEFAULT_BODY_CUBE_MM:.0f})")
    p.add_argument("--shard-size", type=int, default=256, help="frames per shard file")
    p.add_argument("--no-clutter", action="store_true",
                   help="hand and forearm only: no table, body or objects (bodies: no furniture)")
    p.add_argument("--sequence", type=int, default=0, metavar="L",
                   help="clips of L consecutive frames of one smoothly moving hand (bodies: one person "
                        "walking, turning and changing pose in a fixed room); a camera stream, for tracking; "
                        "0 = independent frames")
    p.add_argument("--bag", action="store_true", help="also write a rosbag2 of full frames + ground truth to OUT/bag")
    p.add_argument("--bag-format", choices=["sqlite3", "mcap"], default="sqlite3", help="rosbag2 storage plugin")
    p.add_argument("--workers", type=int, default=1, help="generator processes")
    p.add_argument("--scale-min", type=float, default=0.8,
                   help="smallest hand (x an adult hand of 185 mm wrist to middle fingertip; ~0.65 = a child's)")
    p.add_argument("--scale-max", type=float, default=1.2, help="largest hand (same unit)")
    p.add_argument("--cameras", default=None, metavar="P,P",
                   help="draw each frame's (clip's) camera from these presets (intrinsics and resolution), e.g. "
                        "realsense,nyu,icvl,msra; default: the --preset camera for every frame")
    p.add_argument("--sensor-jitter", type=float, default=0.0, metavar="J",
                   help="0..1: vary noise level (up to 4x either way at 1), edge dropouts, flying pixels and "
                        "grazing-angle losses per frame")
    p.add_argument("--sleeve", type=float, default=0.0, metavar="P",
                   help="probability of a loose sleeve over the forearm (ends 2-12 cm before the wrist)")
    p.add_argument("--no-hand-fraction", type=float, default=0.0, metavar="F",
                   help="make each frame a hand-free scene with probability F (table, wall, cup, box, a forearm or "
                        "person with the hand out of view, ...; v2v_ros.data.synthetic.negatives): joints are NaN, "
                        "info['scene'] names the kind; 1 = hand-free frames only. Needs --full-frame")
    p.add_argument("--no-hand-kinds", default=None, metavar="K,K",
                   help="hand-free scene kinds to draw from (comma-separated; default all: "
                        "empty,wall,table,cup,box,disc,arm,body,clutter,speckle)")
    p.add_argument("--hands", default=None, metavar="N|MIN-MAX",
                   help="several hands per frame, each a target with its own labels (v2v_ros.data.synthetic.multi): "
                        "'2' = two hands (a left and a right: apart, touching, one occluding the other; in clips also "
                        "crossing), '0-2' = zero, one or two; shards gain per-target arrays, bags one ground-truth "
                        "skeleton per hand. Needs --full-frame, or --crop-cube-mm (the box enclosing every hand's cube, for "
                        "training); default: the single-hand generator")
    p.add_argument("--people", default=None, metavar="N|MIN-MAX",
                   help="with --body: several people per frame (front view, standing side by side or one behind "
                        "another; v2v_ros.data.synthetic.multi_body), each a target like --hands; '1-3' = one to "
                        "three. Needs --full-frame")
    p.add_argument("--solo", action="store_true",
                   help="with --hands: each hand of each scene rendered alone in the same scene (one frame per "
                        "hand, --n counts scenes): the single-hand reference for the same hands")
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> Any:
    from v2v_ros.data.synthetic import SynthConfig

    if getattr(args, "body", False):
        return body_config_from_args(args)
    cfg = SynthConfig.preset(args.preset)
    overrides = {k: getattr(args, k) for k in ("width", "height", "fx", "fy", "cx", "cy") if getattr(args, k) is not None}
    if ("width" in overrides or "height" in overrides) and "cx" not in overrides:
        overrides["cx"] = (overrides.get("width", cfg.width) - 1) / 2.0
    if ("width" in overrides or "height" in overrides) and "cy" not in overrides:
        overrides["cy"] = (overrides.get("height", cfg.height) - 1) / 2.0
    if "fx" in overrides and "fy" not in overrides:
        overrides["fy"] = overrides["fx"]
    if args.sequence < 0:
        raise SystemExit(f"synth: --sequence must be >= 0, got {args.sequence}")
    cameras = tuple(c.strip() for c in args.cameras.split(",") if c.strip()) if args.cameras else ()
    return replace(cfg, **overrides, clutter=not args.no_clutter, depth_range=(args.depth_min, args.depth_max),
                   sequence_length=args.sequence, scale_range=(args.scale_min, args.scale_max), cameras=cameras,
                   sensor_jitter=args.sensor_jitter, sleeve_probability=args.sleeve)


def body_config_from_args(args: argparse.Namespace) -> Any:
    """BodyConfig: ITOP's camera unless --width/--fx/... override it."""
    from v2v_ros.data.synthetic.body import BodyConfig

    cfg = BodyConfig(view=args.view or "front", clutter=not args.no_clutter, sequence_length=args.sequence)
    overrides = {k: getattr(args, k) for k in ("width", "height", "fx", "fy", "cx", "cy") if getattr(args, k) is not None}
    if ("width" in overrides or "height" in overrides) and "cx" not in overrides:
        overrides["cx"] = (overrides.get("width", cfg.width) - 1) / 2.0
    if ("width" in overrides or "height" in overrides) and "cy" not in overrides:
        overrides["cy"] = (overrides.get("height", cfg.height) - 1) / 2.0
    if "fx" in overrides and "fy" not in overrides:
        overrides["fy"] = overrides["fx"]
    return replace(cfg, **overrides)


def check_args(args: argparse.Namespace) -> str | None:
    """The first problem with the command line (one line naming the option), or None.

    Checked before anything is written, so a bad value never leaves a half-made ``--out``
    behind nor ends in a traceback from deep inside the generator.
    """
    if args.n < 0:
        return "--n must be >= 0"
    if args.out.exists() and not args.out.is_dir():
        return f"--out {args.out} exists and is not a folder"
    if args.shard_size < 1:
        return f"--shard-size must be >= 1, got {args.shard_size}"
    if args.sequence < 0:
        return f"--sequence must be >= 0, got {args.sequence}"
    for name in ("width", "height"):
        value = getattr(args, name)
        if value is not None and value < 1:
            return f"--{name} must be >= 1, got {value}"
    for name in ("fx", "fy"):
        value = getattr(args, name)
        if value is not None and (value == 0 or value != value):
            return f"--{name} must be non-zero, got {value}"
    if not getattr(args, "body", False):
        if not 0 < args.scale_min <= args.scale_max:
            return f"--scale-min/--scale-max must satisfy 0 < min <= max, got {args.scale_min}, {args.scale_max}"
        if args.cameras is not None:
            from v2v_ros.data.synthetic import CAMERA_PRESETS

            names = [c.strip() for c in args.cameras.split(",") if c.strip()]
            unknown = [c for c in names if c not in CAMERA_PRESETS]
            if not names or unknown:
                return f"--cameras {args.cameras!r}: known presets are {','.join(sorted(CAMERA_PRESETS))}"
        if not 0.0 <= args.sensor_jitter <= 1.0:
            return f"--sensor-jitter must be in [0, 1], got {args.sensor_jitter}"
        if not 0.0 <= args.sleeve <= 1.0:
            return f"--sleeve must be in [0, 1], got {args.sleeve}"
        if not 0 < args.depth_min <= args.depth_max:
            return f"--depth-min/--depth-max must satisfy 0 < min <= max (mm), got {args.depth_min}, {args.depth_max}"
    if args.view is not None and not getattr(args, "body", False):
        return f"--view {args.view} applies to people only: add --body (hands have no camera view preset)"
    if args.crop_cube_mm is not None and not args.crop_cube_mm > 0:
        return f"--crop-cube-mm must be > 0, got {args.crop_cube_mm}"
    return _no_hand_problem(args) or _hands_problem(args)


def _hands_problem(args: argparse.Namespace) -> str | None:
    """--hands / --people checks: a crop around one target would cut the others away."""
    people = getattr(args, "people", None)
    if people is not None:
        from v2v_ros.data.synthetic.multi_body import PeopleSpec

        try:
            PeopleSpec.parse(people)
        except ValueError as exc:
            return f"--people: {exc}"
        if not getattr(args, "body", False):
            return "--people needs --body"
        if not args.full_frame:
            return "--people needs --full-frame (a crop around one person would cut the others away)"
        if args.sequence > 0 or (args.view or "front") != "front":
            return "--people makes independent front-view frames: no --sequence, no --view top/both"
    text = getattr(args, "hands", None)
    if text is None:
        return "--solo needs --hands" if getattr(args, "solo", False) else None
    from v2v_ros.data.synthetic.multi import HandsSpec

    try:
        HandsSpec.parse(text)
    except ValueError as exc:
        return f"--hands: {exc}"
    if not args.full_frame and args.crop_cube_mm is None:
        return ("--hands needs --full-frame, or --crop-cube-mm (crops then enclose every hand's cube: a crop "
                "around one hand would cut the others away)")
    if getattr(args, "solo", False) and args.bag:
        return "--solo cannot be combined with --bag (a bag is one stream; solo frames repeat its scenes)"
    for flag, on in (("--body", getattr(args, "body", False)), ("--no-hand-fraction", args.no_hand_fraction > 0),
                     ("--sleeve", args.sleeve > 0), ("--cameras", args.cameras is not None),
                     ("--sensor-jitter", args.sensor_jitter > 0)):
        if on:
            return f"--hands cannot be combined with {flag}"
    return None


def _no_hand_problem(args: argparse.Namespace) -> str | None:
    """--no-hand-fraction/--no-hand-kinds checks: hand-free frames have no hand to crop around or label."""
    from v2v_ros.data.synthetic.negatives import NEGATIVE_KINDS

    fraction = getattr(args, "no_hand_fraction", 0.0)
    kinds = getattr(args, "no_hand_kinds", None)
    if not 0.0 <= fraction <= 1.0:
        return f"--no-hand-fraction must be in [0, 1], got {fraction}"
    if kinds is not None:
        unknown = [k for k in kinds.split(",") if k not in NEGATIVE_KINDS]
        if unknown or not kinds:
            return f"--no-hand-kinds: unknown kind(s) {', '.join(unknown) or '(none)'}; known: {','.join(NEGATIVE_KINDS)}"
        if fraction == 0.0:
            return "--no-hand-kinds needs --no-hand-fraction > 0"
    if fraction > 0.0:
        for flag, on in (("--full-frame", not args.full_frame), ("--body", getattr(args, "body", False)),
                         ("--sequence", args.sequence > 0), ("--bag", args.bag)):
            if on:
                return ("--no-hand-fraction needs --full-frame (hand-free frames have no hand to crop around)"
                        if flag == "--full-frame" else f"--no-hand-fraction cannot be combined with {flag}")
    return None


def _work(job: tuple[Any, ...]) -> Any:
    """Render one frame in a worker; crop there (smaller to send back) unless the full image is needed."""
    from v2v_ros.data.shards import crop_to_cube
    from v2v_ros.data.synthetic import render_frame
    from v2v_ros.data.synthetic.body import BodyConfig, render_body_frame
    from v2v_ros.data.synthetic.negatives import NEGATIVE_KINDS, is_negative, render_negative

    seed, index, cfg, cube = job[:4]
    no_hand, kinds = job[4] if len(job) > 4 else (0.0, None)  # --no-hand-fraction, --no-hand-kinds
    hands = job[5] if len(job) > 5 else None  # --hands: a multi.HandsSpec (--people: a multi_body.PeopleSpec)
    if hands is not None and type(hands).__name__ == "PeopleSpec":
        from v2v_ros.data.synthetic.multi_body import render_people_frame

        return render_people_frame(seed, index, cfg, hands)
    if hands is not None:
        from v2v_ros.data.synthetic.multi import render_multi_frame, render_solo_frames

        if len(job) > 6 and job[6]:
            solo = render_solo_frames(seed, index, cfg, hands)
            return solo if cube is None else [crop_to_cube(f, cube) for f in solo]
        multi = render_multi_frame(seed, index, cfg, hands)
        return crop_to_cube(multi, cube) if cube is not None else multi  # the box around every hand's cube
    if no_hand > 0 and is_negative(seed, index, no_hand):
        return render_negative(seed, index, cfg, kinds or NEGATIVE_KINDS)
    frame = render_body_frame(seed, index, cfg) if isinstance(cfg, BodyConfig) else render_frame(seed, index, cfg)
    return crop_to_cube(frame, cube) if cube is not None else frame


def generate(seed: int, n: int, cfg: Any, cube: float | None, workers: int,
             no_hand: tuple[float, tuple[str, ...] | None] = (0.0, None), hands: Any = None,
             solo: bool = False) -> Iterator[Any]:
    """Frames 0..n-1 in order (crops when ``cube`` is given), from ``workers`` processes; ``no_hand``:
    (fraction of hand-free frames, their kinds or None for all); ``hands``: a ``multi.HandsSpec`` for
    scenes with several hands (None: the single-hand generator); ``solo``: each of their hands alone, one
    frame per hand (so more frames than ``n``)."""
    jobs = ((seed, i, cfg, cube, no_hand, hands, solo) for i in range(n))
    if workers <= 1:
        out: Iterator[Any] = map(_work, jobs)
    else:
        pool = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn").Pool(workers)
        out = pool.imap(_work, jobs, chunksize=4)
    try:
        for item in out:
            if isinstance(item, list):
                yield from item
            else:
                yield item
    finally:
        if workers > 1:
            pool.terminate()


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from v2v_ros.data.shards import ShardWriter, crop_to_cube
    from v2v_ros.data.synthetic import GENERATOR_VERSION

    problem = check_args(args)
    if problem:
        print(f"synth: {problem}", file=sys.stderr)
        return 2
    if (args.out / "meta.json").exists():
        print(f"synth: {args.out / 'meta.json'} exists; choose a new --out", file=sys.stderr)
        return 1
    bag_path = args.out / "bag"
    if args.bag and bag_path.exists():
        print(f"synth: {bag_path} exists; choose a new --out", file=sys.stderr)
        return 1
    if args.bag:  # rosbags (pure Python) writes the bag, no ROS needed, but it must read our .msg files
        from v2v_ros.data.rosbag_types import find_msg_dir

        try:
            find_msg_dir()
        except FileNotFoundError as exc:
            print(f"synth: --bag needs this package's message definitions: {exc}", file=sys.stderr)
            return 2
    cfg = config_from_args(args)
    body = bool(getattr(args, "body", False))
    skeleton = BODY_ITOP15 if body else HAND_MSRA21
    crop = args.crop_cube_mm if args.crop_cube_mm is not None else (DEFAULT_BODY_CUBE_MM if body else DEFAULT_CUBE_MM)
    cube = None if args.full_frame else float(crop)
    meta = {
        "seed": args.seed,
        "generator": {"name": "v2v_ros.data.synthetic" + (".body" if body else ""), "version": GENERATOR_VERSION,
                      "config": cfg.to_dict(),
                      "full_frame": bool(args.full_frame), "crop_cube_mm": cube},
    }
    if _no_hand(args)[0] > 0:
        meta["generator"]["no_hand"] = {"fraction": _no_hand(args)[0], "kinds": list(_no_hand(args)[1] or ())}
    hands = None
    if getattr(args, "people", None) is not None:
        from v2v_ros.data.synthetic.multi_body import PeopleSpec

        hands = PeopleSpec.parse(args.people)
        meta["generator"]["name"] = "v2v_ros.data.synthetic.multi_body"
        meta["generator"]["people"] = hands.to_dict()
    if getattr(args, "hands", None) is not None:
        from v2v_ros.data.synthetic.multi import HandsSpec

        hands = HandsSpec.parse(args.hands)
        meta["generator"]["name"] = "v2v_ros.data.synthetic.multi"
        meta["generator"]["hands"] = {**hands.to_dict(), "solo": bool(getattr(args, "solo", False))}
    worker_cube = None if args.bag else cube  # the bag needs full images: crop here instead
    t0 = time.perf_counter()
    bag_cm: Any = None
    with ShardWriter(args.out, joint_names=skeleton.joint_names, skeleton=skeleton.name, meta_extra=meta,
                     shard_size=args.shard_size) as writer:
        if args.bag:
            from v2v_ros.data.synthetic.bag import FrameBagWriter

            extra_bag: dict[str, Any] = {"cube_size_m": BODY_CUBE_M} if body else {}
            bag_cm = FrameBagWriter(bag_path, storage=args.bag_format, skeleton_type=skeleton.name,
                                    joint_names=list(skeleton.joint_names), **extra_bag).__enter__()
        try:
            for frame in tqdm(generate(args.seed, args.n, cfg, worker_cube, args.workers, _no_hand(args), hands,
                                       bool(getattr(args, "solo", False))), total=args.n,
                              unit="frame", desc="synth", dynamic_ncols=True):
                if bag_cm is not None:
                    bag_cm.add(frame)
                    if cube is not None:
                        frame = crop_to_cube(frame, cube)
                writer.add(frame)
        finally:
            if bag_cm is not None:
                bag_cm.__exit__(None, None, None)
    dt = time.perf_counter() - t0
    print(f"synth: {writer.count} frames in {len(writer.shards)} shard(s) -> {args.out}"
          + (f", bag -> {bag_path} ({args.bag_format})" if args.bag else "")
          + f" [{dt:.1f} s, {args.n / max(dt, 1e-9):.1f} frames/s]")
    print(f"synth: fingerprint {writer.fingerprint} (generator version {GENERATOR_VERSION})")
    return 0


def _no_hand(args: argparse.Namespace) -> tuple[float, tuple[str, ...] | None]:
    """(--no-hand-fraction, --no-hand-kinds as a tuple or None)."""
    kinds = getattr(args, "no_hand_kinds", None)
    return float(getattr(args, "no_hand_fraction", 0.0)), tuple(kinds.split(",")) if kinds else None
