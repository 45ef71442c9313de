"""``make demo`` / ``v2v demo``: the whole live pipeline on the shipped default model.

Steps: generate a small synthetic rosbag (depth + camera_info + ground truth), start
``v2v_pose_node`` as a separate process (``python -m v2v_ros.ros.node --ros-args
--params-file config/hand_pose.yaml``), replay the bag into it over DDS on loopback
with its original 30 Hz timing, record the node's skeletons and diagnostics, score
them against the ground truth by stamp, and write a report folder (metrics.json,
success curve, per-joint errors, depth image with the predicted skeleton, the
recorded predictions bag, the node's log). Frames the node drops because inference
is slower than 30 Hz count as failures in the success rate, exactly as live.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from v2v_ros.data.synthetic.bag import DEPTH_TOPIC, GT_TOPIC, INFO_TOPIC

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = ROOT / "models" / "hand_default.safetensors"  # the --model default; resolved by _shipped()
DEPTH, INFO, GT = DEPTH_TOPIC, INFO_TOPIC, GT_TOPIC  # the topics `v2v synth --bag` writes
OUT_TOPIC = "/v2v_pose_node/skeletons"


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("demo", help="end-to-end demo: synthetic bag -> live node over DDS -> metrics",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("reports/demo"), help="report folder (replaced)")
    p.add_argument("--frames", type=int, default=90, help="synthetic frames (30 Hz)")
    p.add_argument("--seed", type=int, default=2024)
    p.add_argument("--sequence", type=int, default=30, metavar="L",
                   help="the bag is a camera stream of L-frame clips of one moving hand or person (v2v synth "
                        "--sequence); 0 = unrelated frames")
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    p.add_argument("--bag", type=Path, default=None, help="use this bag instead of generating one")
    p.add_argument("--rate", type=float, default=1.0, help="replay speed factor")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default=None, choices=["auto", "fp32", "bf16", "fp16", "int8"],
                   help="the node's precision (default: the parameter file's); int8 with models/hand_fast for "
                        "two hands above 20 frames/s on a CPU (docs/multi_target.md)")
    p.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID (default: derived from the pid)")
    p.add_argument("--hands", type=int, default=1, choices=[1, 2],
                   help="2: a stream of two moving hands (v2v synth --hands 2: apart, touching, occluding, crossing), "
                        "the node with max_targets 2; the summary adds detection, identity switches and handedness")
    p.add_argument("--max-targets", type=int, default=None, choices=range(1, 17), metavar="N",
                   help="the node's max_targets (default: the parameter file's, or 2 with --hands 2)")
    p.add_argument("--body", action="store_true",
                   help="people instead of hands: v2v synth --body, config/body_pose.yaml, models/body_default "
                        "(unless --model), mAP (10 cm) per body part in the report (default --out reports/demo_body)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import importlib.util  # noqa: PLC0415

    if importlib.util.find_spec("rclpy") is None:  # e.g. after `pip install v2v_ros` without ROS
        print("demo: needs ROS 2's rclpy and this package's built messages: run `make demo` in a checkout "
              "(sets both up) or source a ROS 2 install first", file=sys.stderr)
        return 2
    body = bool(getattr(args, "body", False))
    hands = int(getattr(args, "hands", 1))
    if body and hands > 1:
        print("demo: --hands 2 is for hands; people are one per stream (--body)", file=sys.stderr)
        return 2
    if Path(args.model) == DEFAULT_MODEL:  # the shipped model, wherever this install keeps it
        args.model = _shipped("models/" + ("body_default" if body else "hand_default") + ".safetensors")
    if body and Path(args.out) == Path("reports/demo"):
        args.out = Path("reports/demo_body")
    params_file = _shipped("config/" + ("body_pose.yaml" if body else "hand_pose.yaml"))
    model = Path(args.model)
    if not model.with_suffix(".safetensors").is_file() or not model.with_suffix(".json").is_file():
        print(f"demo: the default model is missing: {model.with_suffix('.safetensors')} (+ .json).\n"
              "      Train it or copy it there (see docs/), or pass --model PATH.", file=sys.stderr)
        return 2
    # 1..101: the IDs whose DDS ports stay below Linux's ephemeral range (ROS 2 domain ID docs).
    domain = args.domain_id if args.domain_id is not None else 1 + os.getpid() % 101
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_DOMAIN_ID=str(domain))
    os.environ.update(ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_DOMAIN_ID=str(domain))
    out: Path = args.out
    if out.exists():
        import shutil  # noqa: PLC0415

        shutil.rmtree(out)
    out.mkdir(parents=True)
    t_all = time.monotonic()

    bag = args.bag
    if bag is None:
        print(f"[demo] generating {args.frames} synthetic frames ...", flush=True)
        bag = out / "data" / "bag"
        r = subprocess.run([sys.executable, "-m", "v2v_ros.cli", "synth", "--out", str(out / "data"), "--n",
                            str(args.frames), "--seed", str(args.seed), "--bag"]
                           + (["--body"] if body else []) + ["--sequence", str(args.sequence)]
                           + (["--hands", str(hands), "--full-frame"] if hands > 1 else []),
                           env=env, capture_output=True, text=True)
        if r.returncode != 0:
            print(r.stdout + r.stderr, file=sys.stderr)
            return 1

    print(f"[demo] starting v2v_pose_node (ROS_DOMAIN_ID={domain}, loopback only) ...", flush=True)
    log = open(out / "node.log", "w")  # noqa: SIM115  (closed in finally)
    node_cmd = [sys.executable, "-m", "v2v_ros.ros.node", "--ros-args", "--params-file",
                str(params_file), "-p", f"model_path:={model.resolve()}",
                "-p", f"device:={args.device}", "-r", f"depth/image:={DEPTH}", "-r", f"depth/camera_info:={INFO}",
                # The player is local and reliable: a reliable subscription (QoS override) makes
                # DDS deliver every frame, so the drops reported are the node's own (newest wins).
                "-p", f"qos_overrides.{DEPTH}.subscription.reliability:=reliable",
                "-p", f"qos_overrides.{INFO}.subscription.reliability:=reliable"]
    max_targets = getattr(args, "max_targets", None) or (hands if hands > 1 else None)
    if max_targets is not None:  # otherwise the shipped parameter file's, as a user runs it
        node_cmd += ["-p", f"max_targets:={max_targets}"]
    if getattr(args, "precision", None):
        node_cmd += ["-p", f"precision:={args.precision}"]
    node = subprocess.Popen(node_cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT))
    try:
        from v2v_ros.ros.record import replay_and_record  # noqa: PLC0415  (rclpy lives in v2v_ros.ros)

        result = replay_and_record(bag, node, args.rate, domain, DEPTH, INFO, OUT_TOPIC)
    finally:
        node.send_signal(signal.SIGINT)
        try:
            node.wait(10)
        except subprocess.TimeoutExpired:
            node.kill()
        log.close()
    if result is None:
        print(f"[demo] the node did not come up; see {out / 'node.log'}:\n" + (out / "node.log").read_text()[-2000:],
              file=sys.stderr)
        return 1
    # hands: every published skeleton scored too (with max_targets > 1 the node may publish several)
    summary = _evaluate(bag, out, result, model, body=body, multi=not body)
    summary["total_s"] = time.monotonic() - t_all
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print("\n" + format_demo_summary(summary, body=body))
    print(f"\n[demo] report: {out}/ (summary.json, metrics.json, success_curve.png, per_joint_error.png, "
          f"overlay.png, predictions/, node.log) in {summary['total_s']:.0f} s")
    return 0


def _evaluate(bag: Path, out: Path, rec: dict[str, Any], model: Path, body: bool = False,
              multi: bool = False) -> dict[str, Any]:
    import numpy as np  # noqa: PLC0415

    from v2v_ros.bag.evaluate import BagRun, score, write_plots  # noqa: PLC0415
    from v2v_ros.bag.io import SkeletonBagWriter, iter_messages, skeleton_array_to_mm, stamp_ns_of  # noqa: PLC0415
    from v2v_ros.core.depth_decode import image_msg_to_mm, info_msg_to_intrinsics  # noqa: PLC0415
    from v2v_ros.core.skeletons import BODY_ITOP15, HAND_MSRA21  # noqa: PLC0415
    from v2v_ros.evaluate.metrics import evaluate_arrays, to_jsonable  # noqa: PLC0415

    skeleton = BODY_ITOP15 if body else HAND_MSRA21

    msgs = rec["messages"]
    with SkeletonBagWriter(out / "predictions", OUT_TOPIC) as w:
        for _, m, raw in msgs:
            w.write_raw(raw, stamp_ns_of(m))
    run = BagRun(joint_names=list(skeleton.joint_names))
    depth_msgs: dict[int, Any] = {}
    info_msgs: dict[int, Any] = {}
    for topic, _, m in iter_messages(bag, [DEPTH, INFO, GT]):
        s = stamp_ns_of(m)
        if topic == GT:
            j = skeleton_array_to_mm(m)
            if j is not None:
                run.gt[s] = j
            run.multi_gt[s] = list(m.skeletons)
        elif topic == DEPTH:
            depth_msgs[s] = m
            run.pred[s] = None  # frames the node dropped or did not answer count as failures
        else:
            info_msgs[s] = m
    for _, m, _ in msgs:
        run.pred[stamp_ns_of(m)] = skeleton_array_to_mm(m)
        run.multi_pred[stamp_ns_of(m)] = [_published(sk) for sk in m.skeletons]
    report, pred, gt = score(run.pred, run.gt, run.joint_names)
    kind = "body" if body else "hand"
    if body and len(gt):  # mAP with the 10 cm rule, per joint and per body part (Table 5)
        report = evaluate_arrays(pred, gt, run.joint_names, kind=kind)
    # The same metrics over the frames the node answered with a pose only: what the network achieves
    # when it runs, apart from the frames lost to dropping (newest frame wins) or to "nothing found".
    posed = np.isfinite(pred).all(axis=(1, 2)) if len(gt) else np.zeros(0, bool)
    report_posed = evaluate_arrays(pred[posed], gt[posed], run.joint_names, kind=kind) if posed.any() else None
    # overlay: the frame with the median error among answered frames
    stamps = sorted(s for s in run.gt if s in run.pred)
    err = np.array([np.nanmean(np.linalg.norm(pred[i] - gt[i], axis=1)) if np.isfinite(pred[i]).all() else np.nan
                    for i in range(len(stamps))])
    if np.isfinite(err).any():
        k = int(np.nanargmin(np.abs(err - np.nanmedian(err))))
        s = stamps[k]
        depth = image_msg_to_mm(depth_msgs[s])
        run.overlay = {"stamp": s, "depth": depth, "intrinsics": info_msg_to_intrinsics(info_msgs[s], depth.shape)}
    write_plots(out, report, run, skeleton.bones)
    times = [t for t, _, _ in msgs]
    diag = rec["diag"]

    def num(key: str) -> float | None:
        try:
            v = float(diag[key])
            return v if np.isfinite(v) else None
        except (KeyError, ValueError):
            return None

    summary = {
        "frames_in": len(depth_msgs),
        "frames_received_by_node": int(num("frames_in") or 0),
        "frames_out": len(msgs),
        "dropped": int(num("dropped") or 0),
        "rejected": {k: int(v) for k, v in diag.items() if k.startswith("rejected.")},
        # how the node found each cube centre (present when tracking.enabled)
        "reference": {k.split(".", 1)[1]: int(v) for k, v in diag.items() if k.startswith("reference.")},
        "latency_ms": {"p50": num("latency_p50_ms"), "p95": num("latency_p95_ms")},
        "throughput_fps": (len(msgs) - 1) / (times[-1] - times[0]) if len(times) > 1 else None,
        "replay_s": rec["play_s"],
        "device": diag.get("device"),
        "model": str(model),
        "metrics": report,  # over every replayed frame: dropped or unanswered frames are misses
        "metrics_posed": report_posed,  # over the frames the node answered with a pose
        "frames_posed": int(posed.sum()),
    }
    if multi:  # every published target matched to the ground truth's (v2v_ros.evaluate.multi)
        from v2v_ros.bag.evaluate import score_multi_bag  # noqa: PLC0415

        summary["multi_target"] = score_multi_bag(run)
    summary = to_jsonable(summary)
    (out / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary



def _published(sk: Any) -> Any:
    """A published Skeleton3D as the multi-target scorer reads results (joints mm, side, id)."""
    from types import SimpleNamespace  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415

    joints = np.array([[k.position.x, k.position.y, k.position.z] for k in sk.keypoints], np.float64) * 1000.0
    return SimpleNamespace(joints=joints, handedness=str(sk.handedness), track_id=int(sk.id))


def _shipped(relative: str) -> Path:
    """A shipped model or config (checkout, wheel or share/v2v_ros); the checkout path when none has it,
    so that the missing-model message below names the usual place."""
    from v2v_ros.resources import find_data  # noqa: PLC0415

    try:
        return find_data(relative)
    except FileNotFoundError:
        return ROOT / relative


def format_demo_summary(s: dict[str, Any], body: bool = False) -> str:
    """The demo's printout: what happened to the frames, then each accuracy figure twice, over the
    frames the node answered with a pose and over every replayed frame (dropped, rejected and
    "nothing found" frames count as misses there, as they would live). The two differ by exactly the
    frames lost, which is why both are shown. Hands: mean error and success @20 mm (all joints of a
    frame within 20 mm); bodies: mAP with the 10 cm rule (the hands' success rate does not apply)."""
    m = s.get("metrics") or {}
    mp = s.get("metrics_posed") or {}
    n_in, n_posed = s.get("frames_in") or 0, s.get("frames_posed") or 0
    lat = s.get("latency_ms") or {}

    def pct(v: Any) -> str:
        return "n/a" if v is None else f"{100 * v:.1f} %"

    def num(v: Any, unit: str = "") -> str:
        return "n/a" if v is None else f"{v:.1f}{unit}"

    rejected = sum((s.get("rejected") or {}).values())
    rows = [("frames", f"{n_in} replayed, {s.get('frames_out')} answered ({n_posed} with a "
                       f"{'person' if body else 'hand'}), {s.get('dropped', 0)} dropped (newest frame wins), "
                       f"{rejected} rejected")]
    if s.get("reference"):
        rows.append(("cube centres", ", ".join(f"{k} {v}" for k, v in s["reference"].items())))
    cols = f"over the {n_posed} posed frames | over all {n_in} frames (a frame without a pose is a miss)"
    if body:
        rows += [("accuracy", cols),
                 ("  mAP (10 cm rule)", f"{pct(mp.get('map_10cm'))} | {pct(m.get('map_10cm'))}")]
        parts = m.get("ap_10cm_per_part") or {}
        if parts:
            rows.append(("  per part, all frames", ", ".join(f"{k} {100 * v:.0f}" for k, v in parts.items()
                                                            if v is not None and k != "mean")))
    elif not (s.get("multi_target") or {}).get("frames_with_all_hands_in_view"):
        # one hand per frame (with several, the first skeleton need not be the first true hand)
        rows += [("accuracy", cols),
                 ("  success @20 mm", f"{pct((mp.get('success_rate') or {}).get('20'))} | "
                                      f"{pct((m.get('success_rate') or {}).get('20'))}"),
                 ("  mean error", f"{num(mp.get('mean_error_mm'), ' mm')} (over the posed frames only: a miss "
                                  "has no distance)")]
    mt = s.get("multi_target")
    if mt:  # every published skeleton matched to the true hands (with --hands 2 the only accuracy rows)
        rows += [("every target", f"{mt['found']} of {mt['targets_in_view']} hands found (recall "
                                  f"{pct(mt['recall'])}), precision {pct(mt['precision'])}, "
                                  f"{mt['false_targets']} false targets"),
                 ("  matched mean error", num(mt.get("mean_error_mm"), " mm")),
                 ("  handedness", f"{pct(mt.get('handedness_accuracy'))} correct"),
                 ("  identity switches", f"{mt.get('id_switches')} "
                                         f"({num(mt.get('id_switches_per_100_frames'))} per 100 frames)")]
    rows += [("latency p50 / p95", f"{num(lat.get('p50'))} / {num(lat.get('p95'))} ms (depth received to "
                                   "skeletons published)"),
             ("throughput", f"{num(s.get('throughput_fps'))} frames/s out")]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)
