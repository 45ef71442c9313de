"""Print the hand model card's tables from the reports that tools/reproduce_hand.sh writes.

    python tools/hand_card.py reports/hand_default [--model models/hand_default.safetensors]

Every number in the card's results section comes from here, so a fresh clone running
``make reproduce-hand`` prints the same tables (within the noise of timing columns).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROWS = (
    ("realsense", "held-out, RealSense-like camera, self-localised (shipped pipeline)"),
    ("realsense_gt_centres", "same frames, cube on the true joint centre (network alone)"),
    ("stream_tracking", "camera streams, tracking (the node's default)"),
    ("stream_every_frame", "camera streams, every frame localised from scratch"),
    ("nyu", "held-out, NYU camera (640×480, f 588)"),
    ("icvl", "held-out, ICVL camera (320×240, f 241)"),
    ("msra", "held-out, MSRA camera (320×240, f 241)"),
)


def _load(folder: Path, name: str) -> dict[str, Any] | None:
    p = folder / f"{name}.json"
    return json.loads(p.read_text()) if p.exists() else None


def summary(folder: Path) -> str:
    lines = ["| data (v2v eval ...) | frames | mean error | success ≤ 20 mm | ≤ 40 mm | ≤ 80 mm | answered "
             "| time per frame | data fingerprint |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, label in ROWS:
        r = _load(folder, name)
        if r is None:
            continue
        s = r["success_rate"]
        fp = r.get("data", {}).get("fingerprint", "")[7:19]
        lines.append(f"| {label} | {r['frames']} | **{r['mean_error_mm']:.2f} mm** | {100 * s['20']:.1f} % | "
                     f"{100 * s['40']:.1f} % | {100 * s['80']:.1f} % | {r['valid_frames']} | "
                     f"{r['wall_ms_per_frame']:.1f} ms | `{fp}` |")
    return "\n".join(lines)


def per_joint(r: dict[str, Any]) -> str:
    vis = r.get("visibility", {}).get("per_joint_visible_fraction")
    lines = ["| joint | mean error | visible in the depth |", "|---|---|---|"]
    for k, (name, err) in enumerate(zip(r["joint_names"], r["per_joint_error_mm"], strict=True)):
        v = f"{100 * vis[k]:.0f} %" if vis else "-"
        lines.append(f"| {name} | {err:.2f} mm | {v} |")
    return "\n".join(lines)


def per_visibility(r: dict[str, Any]) -> str:
    v = r.get("visibility")
    if not v:
        return "(no visibility block)"
    s = v["success_rate_visible_joints"]
    return "\n".join([
        "| | value |", "|---|---|",
        f"| joints visible in the depth | {100 * v['visible_fraction']:.1f} % |",
        f"| frames with all 21 joints visible | {100 * v['frames_all_visible']:.1f} % |",
        f"| mean error, visible joints | {v['mean_error_visible_mm']:.2f} mm |",
        f"| mean error, occluded joints | {v['mean_error_occluded_mm']:.2f} mm |",
        f"| frames whose worst joint is occluded | {100 * v['worst_joint_occluded_fraction']:.1f} % |",
        f"| success ≤ 20 mm over visible joints only | {100 * s['20']:.1f} % |",
    ])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("reports", type=Path)
    ap.add_argument("--model", default="models/hand_default.safetensors")
    args = ap.parse_args(argv)
    main_r = _load(args.reports, "realsense")
    if main_r is None:
        print(f"hand_card: {args.reports}/realsense.json not found (run tools/reproduce_hand.sh)", file=sys.stderr)
        return 2
    meta = json.loads(Path(args.model).with_suffix(".json").read_text())
    rec = meta.get("provenance", {}).get("reproduce", {})
    print(f"## Results of {args.model} ({meta['grid_size']}³ grid, {meta['cube_size']:.0f} mm cube, "
          f"precision {main_r.get('precision')})\n")
    print(summary(args.reports))
    if rec:
        print(f"\nNetwork alone on the {rec['frames']} validation frames recorded in the model's JSON "
              f"(`{rec['command']}`): {rec['val_mean_error_mm']:.2f} mm.")
    print("\n### Per joint (held-out, RealSense-like camera, self-localised)\n")
    print(per_joint(main_r))
    print("\n### Visible vs occluded joints (same frames)\n")
    print(per_visibility(main_r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
