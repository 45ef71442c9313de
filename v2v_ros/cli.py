"""The ``v2v`` command line: one sub-command per module, imported only when used.

Each module listed in :data:`COMMANDS` exposes ``register(subparsers)`` that adds
its sub-command(s) and sets ``func`` (called with the parsed namespace, returns an
exit code). Keeping the imports lazy means ``v2v --help`` and the light commands
start fast and do not need torch or ROS.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# (sub-command names, module that registers them). Order = order in --help.
COMMANDS: list[tuple[tuple[str, ...], str]] = [
    (("synth",), "v2v_ros.data.synthetic.cli"),
    (("train", "train-refiner", "train-detector"), "v2v_ros.train.cli"),
    (("eval", "eval-predictions"), "v2v_ros.evaluate.cli"),
    (("eval-bag",), "v2v_ros.bag.cli"),  # offline: rosbags + the core, no rclpy
    (("play",), "v2v_ros.ros.play_cli"),  # live DDS: rclpy, imported when the command runs
    (("bench",), "v2v_ros.bench"),
    (("export",), "v2v_ros.export"),
    (("demo",), "v2v_ros.demo"),
]


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Parser with every available sub-command (or just ``only``)."""
    parser = argparse.ArgumentParser(prog="v2v", description="V2V-PoseNet tools: data, training, evaluation, benchmarks.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for names, module in COMMANDS:
        if only is not None and only not in names:
            continue
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if only is not None or not exc.name or not exc.name.startswith("v2v_ros"):
                raise
            continue  # a sub-package that is not part of this install
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    known = {n for names, _ in COMMANDS for n in names}
    parser = build_parser(command if command in known else None)
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
