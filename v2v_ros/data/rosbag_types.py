"""A ``rosbags`` typestore that knows this package's messages (no ROS installation needed).

The bag writer of ``v2v synth --bag`` and the bag evaluator both need to
(de)serialise ``v2v_ros/msg/Skeleton3DArray``; rosbags only ships the standard
ROS 2 types, so the package's ``.msg`` files are parsed and registered here.
"""

from __future__ import annotations

import os
from pathlib import Path

from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

PACKAGE = "v2v_ros"
MESSAGES = ("Keypoint3D", "Skeleton3D", "Skeleton3DArray")


def find_msg_dir() -> Path:
    """The folder with the package's ``.msg`` files: the wheel's package data, the source tree, then the
    ament install prefixes (``v2v_ros.resources.data_roots``)."""
    from v2v_ros.resources import data_roots  # noqa: PLC0415

    candidates = [root / "msg" for root in data_roots()]
    for c in candidates:
        if all((c / f"{name}.msg").is_file() for name in MESSAGES):
            return c
    raise FileNotFoundError(f"{PACKAGE} .msg files not found in any of {[str(c) for c in candidates]}")


def typestore_with_v2v_msgs(store: Stores = Stores.ROS2_HUMBLE, msg_dir: str | os.PathLike[str] | None = None
                            ) -> Typestore:
    """Standard ROS 2 types of ``store`` plus ``v2v_ros/msg/{Keypoint3D,Skeleton3D,Skeleton3DArray}``.

    Humble's definitions are the default because the standard messages we use
    (Image, CameraInfo, Header, Point) are identical in later distributions.
    """
    folder = Path(msg_dir) if msg_dir is not None else find_msg_dir()
    typestore = get_typestore(store)
    types: dict = {}
    for name in MESSAGES:
        types.update(get_types_from_msg((folder / f"{name}.msg").read_text(), f"{PACKAGE}/msg/{name}"))
    typestore.register(types)
    return typestore
