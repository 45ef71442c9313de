"""`v2v train` and `v2v train-refiner` sub-commands."""

from __future__ import annotations

import argparse
from typing import Any

import yaml


def _overrides(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in pairs:
        if "=" not in item:
            raise SystemExit(f"--set expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        out[k] = yaml.safe_load(v)
    return out


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train V2V-PoseNet (one process, or many through torchrun)")
    p.add_argument("--config", required=True, help="YAML file, e.g. config/train/hand_synthetic.yaml")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override config keys")
    p.set_defaults(func=_train)

    r = sub.add_parser("train-refiner", help="train the reference-point refinement CNN (paper sec. 4)")
    r.add_argument("--config", required=True, help="YAML file, e.g. config/train/refiner_synthetic.yaml")
    r.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override config keys")
    r.set_defaults(func=_train_refiner)

    d = sub.add_parser("train-detector", help="train the whole-image hand detector (initial reference point)")
    d.add_argument("--config", required=True, help="YAML file, e.g. config/train/detector_synthetic.yaml")
    d.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override config keys")
    d.set_defaults(func=_train_detector)


def _train(args: argparse.Namespace) -> int:
    from v2v_ros.train.config import TrainConfig  # noqa: PLC0415
    from v2v_ros.train.loop import train  # noqa: PLC0415

    cfg = TrainConfig.from_yaml(args.config, _overrides(args.set))
    out, _ = train(cfg)
    print(f"checkpoints in {out}")
    return 0


def _train_refiner(args: argparse.Namespace) -> int:
    from v2v_ros.train.refiner import RefinerConfig, train_refiner  # noqa: PLC0415

    cfg = RefinerConfig.from_yaml(args.config, _overrides(args.set))
    out = train_refiner(cfg)
    print(f"refiner written to {out}")
    return 0


def _train_detector(args: argparse.Namespace) -> int:
    from v2v_ros.train.detector import DetectorConfig, train_detector  # noqa: PLC0415

    cfg = DetectorConfig.from_yaml(args.config, _overrides(args.set))
    out = train_detector(cfg)
    print(f"detector written to {out}")
    return 0
