"""``v2v eval-predictions`` (score community text files) and ``v2v eval`` (run a checkpoint over a dataset).

Both print a readable table, or with ``--json`` exactly one JSON object on
stdout (progress and messages go to stderr), so scripts can pipe the output.
Heavy imports (torch via the estimator, matplotlib, the shard reader) happen
only inside the command that needs them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

COMMUNITY_DATASETS = ("nyu", "icvl", "msra")
EVAL_DATASETS = ("synthetic", "msra", "nyu", "icvl", "hands2017", "itop", "itop_front", "itop_top")


def register(subparsers: Any) -> None:
    """Add the ``eval-predictions`` and ``eval`` sub-commands to the ``v2v`` parser."""
    p = subparsers.add_parser(
        "eval-predictions", help="score a community 'u v d' prediction file against ground truth",
        description="Mean 3D error, per-joint error and success-frame rate of a prediction file in the "
                    "community text format (one frame per line, u v d per joint).",
    )
    p.add_argument("--dataset", required=True, choices=COMMUNITY_DATASETS)
    p.add_argument("--pred", required=True, type=Path, help="predictions, u v d per joint")
    p.add_argument("--gt", required=True, type=Path, help="ground truth, same format and frame order")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--plots", type=Path, default=None, help="also write success_curve.png and per_joint_error.png here")
    p.set_defaults(func=cmd_eval_predictions)

    e = subparsers.add_parser(
        "eval", help="run a checkpoint over a dataset and write a report folder",
        description="Evaluate a V2V-PoseNet checkpoint (or an epoch ensemble) on the synthetic shards or a "
                    "public dataset stored under --root.",
    )
    e.add_argument("--checkpoint", required=True, type=Path)
    e.add_argument("--ensemble", nargs="+", type=Path, default=[], metavar="CKPT",
                   help="more checkpoints whose outputs are averaged with --checkpoint (epoch ensemble)")
    e.add_argument("--dataset", required=True, choices=EVAL_DATASETS)
    e.add_argument("--root", required=True, type=Path, help="dataset folder (for synthetic: the 'v2v synth' output)")
    e.add_argument("--split", default="test", help="dataset split (default: test)")
    e.add_argument("--test-subject", type=int, default=0, help="MSRA: held-out subject 0..8 (default 0)")
    e.add_argument("--centers", default=None,
                   help="reference points: a V2V release centre file (one 'x y z' line per frame of the split in the "
                        "release's frame of the dataset, converted to ours; 'invalid' lines: self-localise), "
                        "or 'gt' for the true joints' mean (isolates the pose network)")
    e.add_argument("--no-refiner", action="store_true",
                   help="localise with the depth-band centre of mass only (the paper's Table 2 baseline)")
    e.add_argument("--limit", type=int, default=None, help="evaluate only the first N frames")
    e.add_argument("--out", type=Path, default=None, help="report folder (metrics.json, PNGs, predictions.npz)")
    e.add_argument("--overlays", type=int, default=4, help="number of overlay images in the report (default 4)")
    e.add_argument("--device", default="auto", help="torch device for the estimator (default auto)")
    e.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16", "int8"],
                   help="network arithmetic (auto: bf16 where the hardware does it natively, else fp32)")
    e.add_argument("--backend", default="torch", choices=["torch", "onnxruntime"], help="inference backend")
    e.add_argument("--no-detector", action="store_true",
                   help="localise with the depth-band localiser instead of the whole-image detector")
    e.add_argument("--no-presence", action="store_true",
                   help="do not run the hand-presence classifier (x.presence.safetensors); it never runs with "
                        "--centers, which isolates the pose network")
    e.add_argument("--separator", default="auto", metavar="auto|none|PATH",
                   help="two-hand separator (v2v_ros.core.separator) for cubes re-posed without the other hands: "
                        "auto (x.separator.safetensors when next to the model; none is shipped), none (the pixels "
                        "near the other hands' poses are removed), or a file from v2v train-separator")
    e.add_argument("--hypotheses", type=int, default=8,
                   help="candidate centres (detector peaks, body objects) the pose network may verify when the "
                        "first one's pose is doubtful (confidence below --verify-below); 1 trusts the first "
                        "(default 8, as the node)")
    e.add_argument("--verify-below", type=float, default=0.7,
                   help="confidence under which the detector's best peak is doubted (default 0.7)")
    e.add_argument("--tracking", action="store_true",
                   help="play the frames as a 30 Hz stream and follow the target from frame to frame, as the node "
                        "does with tracking.enabled (meant for `v2v synth --sequence` datasets)")
    e.add_argument("--redetect-every", type=int, default=30, help="with --tracking: frames between detections")
    e.add_argument("--max-targets", type=int, default=2,
                   help="data with several targets per frame (v2v synth --hands): at most this many targets "
                        "per frame are estimated (PoseEstimator.estimate_all; with --tracking each gets an id); "
                        "scored by minimum-cost matching (v2v_ros.evaluate.multi)")
    e.add_argument("--opposite-hands-prior", type=float, default=None, metavar="P",
                   help="with several targets: how likely two hands seen together are one person's left and right hand "
                        "(the node's opposite_hands_prior, default 0.99); 0.5 decides each hand's side alone")
    e.add_argument("--single", action="store_true",
                   help="on data with several targets per frame, run the single-target estimator anyway "
                        "(scores the nearest/most visible hand as before)")
    e.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    e.set_defaults(func=cmd_eval)


def _err(message: str) -> None:
    print(f"v2v: {message}", file=sys.stderr)


def format_table(report: dict[str, Any]) -> str:
    """Human-readable summary of a metrics dict."""
    def num(v: Any, fmt: str = "{:.3f}") -> str:
        return "n/a" if v is None else fmt.format(v)

    lines = [
        f"dataset: {report.get('dataset') or '-'}   frames: {report['frames']}"
        f" (invalid predictions: {report.get('invalid_frames', 0)}, skipped: {report.get('skipped_frames', 0)})",
        f"mean 3D error: {num(report['mean_error_mm'])} mm",
    ]
    if "map_10cm" in report:
        lines.append(f"mAP (10 cm rule): {num(report['map_10cm'], '{:.4f}')}")
    lines.append("success-frame rate (max joint error <= tau):")
    lines.append("  " + "  ".join(f"{k:>5}" for k in report["success_rate"]) + "   (mm)")
    lines.append("  " + "  ".join(f"{num(v, '{:.3f}'):>5}" for v in report["success_rate"].values()))
    names = report.get("joint_names") or [str(i) for i in range(len(report["per_joint_error_mm"]))]
    ap = report.get("ap_10cm_per_joint")
    lines.append("per joint:" + ("" if ap is None else "   error (mm)   AP@10cm"))
    for i, (name, err) in enumerate(zip(names, report["per_joint_error_mm"], strict=False)):
        extra = "" if ap is None else f"   {num(ap[i], '{:.4f}')}"
        lines.append(f"  {i:2d} {name:<14} {num(err, '{:8.3f}')}{extra}")
    if report.get("ap_10cm_per_part"):
        lines.append("AP (10 cm) per body part, as in the paper's Table 5:")
        lines.extend(f"  {part:<10} {num(v, '{:.4f}')}" for part, v in report["ap_10cm_per_part"].items())
    det = report.get("detection")
    if det and det.get("frames_without_hand"):
        lines.append(f"hand detection: precision {num(det['precision'], '{:.4f}')}, recall {num(det['recall'], '{:.4f}')}"
                     f" ({det['frames_with_hand']} hand frames, {det['frames_without_hand']} hand-free; "
                     f"{det['false_positives']} hand-free frames published a skeleton)")
        lines.append("  hand-free frames publishing a skeleton, by scene: " + ", ".join(
            f"{k} {v['published']}/{v['frames']}" for k, v in det["hand_free_by_scene"].items()))
    elif det:
        lines.append(f"hand frames publishing a skeleton: {det['true_positives']}/{det['frames_with_hand']}")
    if report.get("timings_ms"):
        lines.append("timings (ms/frame): " + ", ".join(f"{k} {v:.2f}" for k, v in report["timings_ms"].items()))
    if report.get("report_dir"):
        lines.append(f"report: {report['report_dir']}")
    return "\n".join(lines)


def _emit(report: dict[str, Any], as_json: bool) -> None:
    print(json.dumps(report) if as_json else format_table(report))


def cmd_eval_predictions(args: argparse.Namespace) -> int:
    """Score a community prediction file; exit code 0 on success, 2 on bad input."""
    from v2v_ros.data.datasets import get_dataset
    from v2v_ros.evaluate.metrics import evaluate_arrays, joint_errors
    from v2v_ros.evaluate.predictions import load_xyz

    spec = get_dataset(args.dataset)
    try:
        pred = load_xyz(args.pred, spec)
        gt = load_xyz(args.gt, spec)
    except (OSError, ValueError) as exc:
        _err(str(exc))
        return 2
    if pred.shape != gt.shape:
        _err(f"{args.pred} has {len(pred)} frames x {pred.shape[1]} joints, {args.gt} has {len(gt)} x {gt.shape[1]}")
        return 2
    report = evaluate_arrays(pred, gt, joint_names=spec.eval_joint_names, kind=spec.kind)
    report["dataset"] = spec.name
    if args.plots is not None:
        from v2v_ros.evaluate import plots

        plots.plot_success_curve({spec.name: joint_errors(pred, gt)}, args.plots / "success_curve.png")
        plots.plot_per_joint_errors(report["per_joint_error_mm"], spec.eval_joint_names,
                                    args.plots / "per_joint_error.png")
    _emit(report, args.json)
    return 0


def _open_frames(args: argparse.Namespace) -> tuple[Any, Any]:
    """(spec, frames) of the requested dataset."""
    from v2v_ros.data.datasets import get_dataset, open_dataset

    spec = get_dataset(args.dataset)
    if spec.name == "synthetic":
        try:
            from v2v_ros.data.shards import ShardDataset
        except ImportError as exc:
            raise RuntimeError(f"the synthetic shard reader (v2v_ros.data.shards) is not available: {exc}") from exc
        return spec, ShardDataset(args.root)
    kwargs: dict[str, Any] = {"test_subject": args.test_subject} if spec.name == "msra" else {}
    split = args.split
    if spec.name == "hands2017":
        return spec, open_dataset(spec.name, str(args.root), **kwargs)
    return spec, open_dataset(spec.name, str(args.root), split=split, **kwargs)


def _load_estimator(args: argparse.Namespace) -> Any:
    try:
        from v2v_ros.core.estimator import PoseEstimator
    except ImportError as exc:
        raise RuntimeError(f"the pose estimator (v2v_ros.core.estimator) is not available: {exc}") from exc
    paths = [args.checkpoint, *args.ensemble]
    for path in paths:
        if not Path(path).is_file():
            raise FileNotFoundError(f"checkpoint {path} not found")
    from v2v_ros.data.calibration import synthetic_calibration_source  # noqa: PLC0415
    from v2v_ros.evaluate.tool_options import separator_option  # noqa: PLC0415

    # Several checkpoints: one estimator whose vmapped forward averages them (epoch ensemble).
    est = PoseEstimator.load([str(p) for p in paths], device=args.device,
                             refiner=False if args.no_refiner else "auto",
                             detector=False if args.no_detector else "auto",
                             presence=False if getattr(args, "no_presence", False) or getattr(args, "centers", None)
                             else "auto",
                             separator=separator_option(getattr(args, "separator", "auto")),
                             precision=args.precision, backend=args.backend,
                             calibration=synthetic_calibration_source,  # int8 only
                             hypotheses=getattr(args, "hypotheses", 8),
                             verify_below=getattr(args, "verify_below", 0.7))
    if not getattr(args, "tracking", False):
        return est
    from v2v_ros.core.tracking import TrackingConfig, TrackingEstimator

    return TrackingEstimator(est, TrackingConfig(enabled=True, redetect_every=args.redetect_every))


def _read_centers_for(path: Path, spec: Any, frames: Any) -> np.ndarray:
    """A V2V centre file as one optical-frame mm row per frame of ``frames`` (NaN: self-localise).

    The release writes one line per frame of the whole split, in its own frame of the
    dataset (``read_centers(path, spec)`` converts it). Readers that skip frames (ITOP's
    invalid ones) say which they kept in ``indices``; those lines are picked. A file
    of another length belongs to another split or subject: refused, since a shifted
    centre per frame would silently score the wrong cubes.
    """
    from v2v_ros.data.centers import read_centers

    centers, _ = read_centers(path, spec)
    kept = getattr(frames, "indices", None)
    if kept is not None and len(centers) == len(getattr(frames, "ids", ())) != len(frames):
        centers = centers[np.asarray(kept)]
    if len(centers) != len(frames):
        raise ValueError(f"{path}: {len(centers)} centre lines for {len(frames)} frames of {spec.name}")
    return centers


class _AllTargets:
    """``estimate_all`` of a plain estimator with the command line's ``--max-targets``."""

    def __init__(self, estimator: Any, max_targets: int) -> None:
        self.estimator, self.max_targets = estimator, max_targets

    def estimate_all(self, depth: Any, intrinsics: Any) -> Any:
        return self.estimator.estimate_all(depth, intrinsics, self.max_targets)


def _eval_multi(args: argparse.Namespace, estimator: Any, frames: Any, extra: dict[str, Any]) -> int:
    """Several targets per frame: every target estimated (and tracked with --tracking), then matched and scored."""
    from v2v_ros.core.tracking import MultiTracker, TrackingEstimator, checked_opposite_prior
    from v2v_ros.evaluate.multi import evaluate_multi, format_multi

    if args.centers is not None:
        _err("--centers gives one cube per frame; data with several targets per frame needs --single for that")
        return 2
    if not 1 <= args.max_targets <= 16:
        _err(f"--max-targets must be in [1, 16], got {args.max_targets}")
        return 2
    try:
        checked_opposite_prior(args.opposite_hands_prior)
    except ValueError as exc:
        _err(f"--opposite-hands-prior: {exc}")
        return 2
    if isinstance(estimator, TrackingEstimator):
        runner: Any = MultiTracker(estimator.estimator, estimator.config, max_targets=args.max_targets,
                                   opposite_prior=args.opposite_hands_prior)
    else:
        runner = _AllTargets(estimator, args.max_targets)
    # a pose within 50 mm (mean joint distance) or centred within 60 mm is that hand's; people: within 200 mm
    # (the body network's errors are several times a hand network's, and people stand far more than 200 mm apart)
    body = str(getattr(frames, "skeleton", "")).startswith("body")
    gates = {"match_mm": 200.0, "locate_mm": 200.0} if body else {"match_mm": 50.0, "locate_mm": 60.0}
    report = evaluate_multi(runner, frames, limit=args.limit, progress=sys.stderr.isatty(), **gates,
                            extra={**extra, "max_targets": args.max_targets,
                                   "tracking": isinstance(runner, MultiTracker)})
    if isinstance(runner, MultiTracker):
        report["reference"] = dict(runner.stats)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
        report["report_dir"] = str(args.out)
    print(json.dumps(report) if args.json else format_multi(report))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """Run a checkpoint over a dataset; exit code 0 on success, 2 on a setup error."""
    from v2v_ros.evaluate.runner import evaluate_estimator

    if getattr(args, "tracking", False) and args.centers is not None:
        _err("--tracking finds its own cube centres; it cannot be combined with --centers")
        return 2
    try:
        spec, frames = _open_frames(args)
        centers = None
        if args.centers == "gt":
            n = len(frames) if args.limit is None else min(len(frames), args.limit)
            centers = np.stack([frames[i].joints.mean(axis=0) for i in range(n)])
        elif args.centers is not None:
            centers = _read_centers_for(Path(args.centers), spec, frames)
        estimator = _load_estimator(args)
    except (OSError, RuntimeError, ValueError, KeyError) as exc:
        _err(str(exc))
        return 2
    extra = {"checkpoints": [str(p) for p in [args.checkpoint, *args.ensemble]], "split": args.split,
             "centers": str(args.centers or "estimated"),
             # With every centre given (--centers gt) neither localisation network runs.
             "refiner": getattr(estimator, "refiner", None) is not None and args.centers != "gt",
             "detector": getattr(estimator, "detector", None) is not None and args.centers != "gt",
             "presence": getattr(estimator, "presence", None) is not None,
             "separator": getattr(estimator, "separator", None) is not None,
             "precision": getattr(estimator, "precision", "fp32")}
    # Lazy imports, engine building and oneDNN primitives would otherwise land on the first
    # frames' timings (the node warms up the same way before its first frame).
    warm_up = getattr(estimator, "warm_up", None)
    if callable(warm_up):
        warm_up()
    if int((getattr(frames, "meta", None) or {}).get("max_targets", 0)) and not getattr(args, "single", False):
        return _eval_multi(args, estimator, frames, extra)
    try:
        report = evaluate_estimator(estimator, frames, spec=spec, limit=args.limit, centers=centers, out_dir=args.out,
                                    num_overlays=args.overlays, progress=sys.stderr.isatty(), extra=extra)
    except (ValueError, OSError) as exc:  # e.g. --out names a file
        _err(str(exc))
        return 2
    if getattr(estimator, "follows_stream", False):
        report["reference"] = dict(estimator.stats)
    _emit(report, args.json)
    return 0
