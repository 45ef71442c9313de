"""Turn training checkpoints into the shipped model files (fp16 weights, ≤ ~15 MB).

    python tools/ship_model.py runs/hand_default/epoch_08.safetensors models/hand_default \
        [--companions hand_default] [--refiner runs/refiner/hand_default.refiner.safetensors]
        [--detector runs/detector/hand_default.detector.safetensors] [--note key=value ...]

Writes ``DEST.safetensors`` + ``DEST.json`` (provenance kept, ``shipped_from`` added)
and, with --refiner / --detector, ``DEST.refiner.*`` / ``DEST.detector.*``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from v2v_ros.core.checkpoint import load_checkpoint, save_checkpoint
from v2v_ros.core.detector import Detector
from v2v_ros.core.refiner import Refiner
from v2v_ros.train.reproduce import reproduction_record


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("dest", help="destination without suffix, e.g. models/hand_default")
    ap.add_argument("--refiner", default=None)
    ap.add_argument("--detector", default=None)
    ap.add_argument("--fp32", action="store_true", help="keep float32 weights")
    ap.add_argument("--companions", default="", metavar="STEM",
                    help="use the refiner, detector and presence classifier of the model STEM in the same "
                         "folder (e.g. hand_default) instead of copies")
    ap.add_argument("--note", nargs="*", default=[], metavar="KEY=VALUE", help="extra provenance entries")
    ap.add_argument("--no-reproduce", action="store_true",
                    help="do not record provenance.reproduce (the network's error on 50 freshly rendered "
                         "validation frames, which test/test_reproduce.py recomputes on every CI run)")
    args = ap.parse_args(argv)
    state, meta = load_checkpoint(args.checkpoint)
    reship = Path(args.checkpoint).with_suffix("").resolve() == Path(args.dest).resolve()
    source = meta.provenance.get("shipped_from", str(args.checkpoint)) if reship else str(args.checkpoint)
    meta.provenance = dict(meta.provenance, shipped_from=source, **dict(n.split("=", 1) for n in args.note))
    if args.companions:
        if not (Path(args.dest).parent / f"{args.companions}.safetensors").is_file():
            ap.error(f"--companions {args.companions}: no {args.companions}.safetensors next to {args.dest}")
        meta.companions = args.companions
    out = save_checkpoint(Path(args.dest + ".safetensors"), state, meta, half=not args.fp32)
    if not args.no_reproduce and meta.skeleton.startswith("hand"):
        # Measured on the weights as shipped (fp16 or not), so the test compares like with like.
        record = reproduction_record(out)
        meta.provenance = dict(meta.provenance, reproduce=record)
        save_checkpoint(out, state, meta, half=not args.fp32)
        print(f"reproduce: {record['val_mean_error_mm']:.3f} mm on {record['frames']} fresh frames "
              f"(seed {record['seed']}, {record['fingerprint'][:19]}...)")
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
    for kind, src in ((Refiner, args.refiner), (Detector, args.detector)):
        if src:
            kind.load(src)  # validate before copying
            dst, dst_meta = kind.paths(out)
            shutil.copyfile(src, dst)
            shutil.copyfile(Path(src).with_suffix(".json"), dst_meta)
            print(f"wrote {dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
