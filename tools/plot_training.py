"""Plot a run's training curves (loss per logged step, validation error per epoch) from its log.csv.

    python tools/plot_training.py runs/hand_grid48_dr/log.csv models/hand_default.training.png

The model card shows this plot; log.csv is written by ``v2v train`` (one row per
``log_every`` steps, one per finished epoch with the validation error).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(csv.DictReader(Path(argv[0]).open()))
    steps_per_epoch = max(int(r["step"]) for r in rows)
    loss = [((int(r["epoch"]) - 1) * steps_per_epoch + int(r["step"]), float(r["loss"]))
            for r in rows if r["loss"] != "nan"]
    # a resumed run repeats the steps it had logged after its last save point: keep the latest
    latest: dict[int, float] = {}
    for x, y in loss:
        latest[x] = y
    val = [(int(r["epoch"]), float(r["val_mean_error_mm"])) for r in rows if r["val_mean_error_mm"] != "nan"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
    xs = sorted(latest)
    a.plot([x / steps_per_epoch for x in xs], [latest[x] for x in xs], lw=0.8)
    a.set_yscale("log")
    a.set_xlabel("epoch")
    a.set_ylabel("training loss (MSE)")
    b.plot([e for e, _ in val], [v for _, v in val], "o-")
    b.set_xlabel("epoch")
    b.set_ylabel("validation error, true centre (mm)")
    for e, v in val:
        b.annotate(f"{v:.2f}", (e, v), textcoords="offset points", xytext=(4, 4))
    fig.suptitle(Path(argv[0]).parent.name)
    fig.tight_layout()
    fig.savefig(argv[1], dpi=90)
    print(f"wrote {argv[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
