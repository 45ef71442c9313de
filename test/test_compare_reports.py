"""tools/compare_reports.py: two models' reports on the same splits, side by side."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tool_loader import load_tool

from v2v_ros.evaluate.multi import FrameTargets, score_multi


def _hand(x_mm: float) -> np.ndarray:
    return np.stack([np.linspace(0.0, 80.0, 21) + x_mm, np.zeros(21), np.full(21, 500.0)], axis=1)


def _frame(pred_x: list[float], ids: list[int], sides: list[str], clip: int = 0) -> FrameTargets:
    """Two true hands at x = 0 and 300 mm (left, right); predictions at ``pred_x``."""
    return FrameTargets(gt=np.stack([_hand(0.0), _hand(300.0)]), visible=np.array([1.0, 1.0]), gt_ids=[0, 1],
                        gt_sides=["left", "right"],
                        pred=np.stack([_hand(x) for x in pred_x]) if pred_x else np.zeros((0, 21, 3)),
                        pred_sides=sides, pred_ids=ids, clip=clip, arrangement="apart")


def test_a_cell_says_what_the_multi_target_report_says(tmp_path: Path) -> None:
    tool = load_tool("compare_reports")
    # Independent frames: both found at 3 mm; one hand missed; a false target 150 mm beside the right hand.
    frames = [_frame([3.0, 303.0], [-1, -1], ["left", "right"]), _frame([0.0], [-1], ["right"]),
              _frame([0.0, 300.0, 450.0], [-1, -1, -1], ["left", "right", "left"])]
    plain = {"multi_target": score_multi(frames)}
    # A tracker whose id of the left hand changes once; every side right.
    tracked = {"multi_target": score_multi([_frame([0.0, 300.0], [1, 2], ["left", "right"]),
                                            _frame([0.0, 300.0], [3, 2], ["left", "right"])])}
    a, b = tmp_path / "cand", tmp_path / "base"
    for folder in (a, b):
        folder.mkdir()
        (folder / "two.json").write_text(json.dumps(plain))
    (a / "seq.json").write_text(json.dumps(tracked))
    (a / "single.json").write_text(json.dumps({"mean_error_mm": 6.634}))
    lines = tool.table(a, b, ["two", "seq", "single"]).splitlines()
    assert lines[0] == "| split | cand | base |"
    two = "5 of 6, both 66.7 %, 1 false, 1.20 mm, sides 80.00 %"  # 5 matches: 3, 3, 0, 0, 0 mm; 4 of 5 sides
    assert lines[2] == f"| two | {two} | {two} |"
    assert lines[3] == "| seq | 4 of 4, both 100.0 %, 0 false, 0.00 mm, 1 switches, sides 100.00 % | missing |"
    assert lines[4] == "| single | 6.63 mm | missing |"
