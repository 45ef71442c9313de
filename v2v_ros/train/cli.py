"""`v2v train` and the companion networks' training sub-commands (`v2v train-refiner`, ...)."""

from __future__ import annotations

import argparse
from typing import Any

import yaml

# What a wrong config, a missing folder or a bad --set value raise: one line, exit status 2
# (like `v2v eval`), not a traceback. Errors of the training itself still raise.
USER_ERRORS = (OSError, ValueError, KeyError, yaml.YAMLError)


def _fail(command: str, exc: BaseException) -> int:
    import sys  # noqa: PLC0415

    msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        msg = f"{exc.filename}: {exc.strerror}"
    print(f"{command}: {msg}", file=sys.stderr)
    return 2


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

    q = sub.add_parser("train-presence", help="train the hand-presence classifier (no skeleton on hand-free frames)")
    q.add_argument("--config", required=True, help="YAML file, e.g. config/train/presence_synthetic.yaml")
    q.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override config keys")
    q.add_argument("--recalibrate", default=None, metavar="WEIGHTS",
                   help="do not train: set the threshold of this x.presence.safetensors from val_data and "
                        "target_false_positive (rewrites its .json)")
    q.set_defaults(func=_train_presence)

    s = sub.add_parser("train-separator", help="train the two-hand separator (which pixels around a hand are another hand's)")
    s.add_argument("--config", required=True, help="YAML file, e.g. config/train/separator_two_hands.yaml")
    s.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override config keys")
    s.set_defaults(func=_train_separator)


def _train(args: argparse.Namespace) -> int:
    from v2v_ros.train.config import TrainConfig  # noqa: PLC0415
    from v2v_ros.train.loop import train  # noqa: PLC0415

    try:
        cfg = TrainConfig.from_yaml(args.config, _overrides(args.set))
        out, _ = train(cfg)
    except USER_ERRORS as exc:
        return _fail("train", exc)
    print(f"checkpoints in {out}")
    return 0


def _train_small(args: argparse.Namespace, command: str, module: str, config_cls: str, train_fn: str,
                 what: str) -> int:
    """A companion network's training command: config ``config_cls`` and function ``train_fn`` of ``module``
    (imported here: torch only once the arguments are parsed)."""
    import importlib  # noqa: PLC0415

    mod = importlib.import_module(module)
    try:
        cfg = getattr(mod, config_cls).from_yaml(args.config, _overrides(args.set))
        out = getattr(mod, train_fn)(cfg)
    except USER_ERRORS as exc:
        return _fail(command, exc)
    print(f"{what} written to {out}")
    return 0


def _train_refiner(args: argparse.Namespace) -> int:
    return _train_small(args, "train-refiner", "v2v_ros.train.refiner", "RefinerConfig", "train_refiner", "refiner")


def _train_detector(args: argparse.Namespace) -> int:
    return _train_small(args, "train-detector", "v2v_ros.train.detector", "DetectorConfig", "train_detector",
                        "detector")


def _train_separator(args: argparse.Namespace) -> int:
    return _train_small(args, "train-separator", "v2v_ros.train.separator", "SeparatorConfig", "train_separator",
                        "separator")


def _train_presence(args: argparse.Namespace) -> int:
    from v2v_ros.train.presence import PresenceConfig, recalibrate_presence, train_presence  # noqa: PLC0415

    try:
        cfg = PresenceConfig.from_yaml(args.config, _overrides(args.set))
        out = recalibrate_presence(args.recalibrate, cfg) if args.recalibrate else train_presence(cfg)
    except USER_ERRORS as exc:
        return _fail("train-presence", exc)
    print(f"presence classifier written to {out}")
    return 0
