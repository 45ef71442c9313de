"""Print two models' `v2v eval --json` reports on the same splits side by side, as a markdown table.

    python tools/compare_reports.py reports/compare/A reports/compare/B dev_two dev_two_seq ...

Each folder holds one ``SPLIT.json`` per split (what ``tools/compare_two_hands.sh`` writes). A cell
is what docs/multi_target.md reports for that kind of split: hands found of those in view, the share
of frames with every hand found, false targets and the mean error; with a tracker also identity
switches and handedness.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def cell(report: dict[str, Any]) -> str:
    """One report as a table cell (the multi-target figures; a report without them: its mean error)."""
    m = report.get("multi_target")
    if m is None:
        return f"{report['mean_error_mm']:.2f} mm"
    parts = [f"{m['found']} of {m['targets_in_view']}"]
    if m.get("all_hands_found_rate") is not None:
        parts.append(f"both {100 * m['all_hands_found_rate']:.1f} %")
    parts.append(f"{m['false_targets']} false")
    parts.append(f"{m['mean_error_mm']:.2f} mm" if m.get("mean_error_mm") is not None else "no match")
    if m.get("id_switches") is not None:
        parts.append(f"{m['id_switches']} switches")
    if m.get("handedness_accuracy") is not None:
        parts.append(f"sides {100 * m['handedness_accuracy']:.2f} %")
    return ", ".join(parts)


def table(a: Path, b: Path, splits: list[str]) -> str:
    """Markdown table: one row per split, one column per report folder."""
    rows = [f"| split | {a.name} | {b.name} |", "|---|---|---|"]
    for split in splits:
        cells = []
        for folder in (a, b):
            path = folder / f"{split}.json"
            cells.append(cell(json.loads(path.read_text())) if path.is_file() else "missing")
        rows.append(f"| {split} | {cells[0]} | {cells[1]} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", type=Path, help="report folder of the first model")
    ap.add_argument("b", type=Path, help="report folder of the second model")
    ap.add_argument("splits", nargs="+", help="split names (SPLIT.json in each folder)")
    args = ap.parse_args(argv)
    print(table(args.a, args.b, args.splits))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
