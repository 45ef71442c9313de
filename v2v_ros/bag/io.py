"""Reading and writing rosbag2 folders (sqlite3 and mcap) with ``rosbags``.

Messages are deserialised with the typestore that has our Skeleton types
registered (v2v_ros.data.rosbag_types), Humble definitions by default: the message
layouts we read (Image, CameraInfo, CompressedImage, Header) did not change between
Humble, Jazzy and Kilted, so bags recorded by ``ros2 bag record`` on any of them read.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
from rosbags.rosbag2 import Reader, StoragePlugin, Writer

from v2v_ros.core.estimator import PoseResult
from v2v_ros.data.rosbag_types import typestore_with_v2v_msgs

STORAGE = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}
SKELETONS_TYPE = "v2v_ros/msg/Skeleton3DArray"


class BagError(RuntimeError):
    """A bag that cannot be read as asked (missing, unknown topic, unknown type)."""


def open_reader(path: str | os.PathLike[str]) -> Reader:
    p = Path(path)
    if not p.exists():
        raise BagError(f"bag not found: {p}")
    if p.is_file() and p.suffix in (".db3", ".mcap"):
        p = p.parent  # a bag is a folder with metadata.yaml; accept its storage file too
    try:
        reader = Reader(p)
        reader.open()
    except Exception as exc:
        raise BagError(f"{p}: cannot open as rosbag2 ({exc})") from exc
    return reader


def bag_storage(path: str | os.PathLike[str]) -> str:
    """'mcap' or 'sqlite3', from the storage files in the bag folder."""
    p = Path(path)
    folder = p.parent if p.is_file() else p
    return "mcap" if any(folder.glob("*.mcap")) or p.suffix == ".mcap" else "sqlite3"


def topic_types(path: str | os.PathLike[str]) -> dict[str, tuple[str, int]]:
    """{topic: (message type, message count)} of a bag."""
    reader = open_reader(path)
    try:
        return {c.topic: (c.msgtype, c.msgcount) for c in reader.connections}
    finally:
        reader.close()


def iter_messages(path: str | os.PathLike[str], topics: Sequence[str], typestore: Any = None
                  ) -> Iterator[tuple[str, int, Any]]:
    """(topic, receive time ns, deserialised message) in bag order for the given topics."""
    ts = typestore or typestore_with_v2v_msgs()
    reader = open_reader(path)
    try:
        present = {c.topic for c in reader.connections}
        missing = [t for t in topics if t not in present]
        if missing:
            raise BagError(f"{path}: topic(s) {missing} not in the bag (it has {sorted(present)})")
        conns = [c for c in reader.connections if c.topic in topics]
        stores = {c.id: _recorded_store(c, ts) for c in conns}
        for conn, t, raw in reader.messages(connections=conns):
            yield conn.topic, t, stores[conn.id].deserialize_cdr(raw, conn.msgtype)
    finally:
        reader.close()


def _recorded_store(conn: Any, ts: Any) -> Any:
    """The typestore to read ``conn`` with: ``ts``, unless the bag recorded another definition of our type.

    Why: this package's messages gained fields (``Skeleton3D.handedness``,
    ``handedness_confidence``); a bag recorded before carries the older layout, and reading it
    with the new one fails. rosbag2 stores each connection's definition, so such a bag is read
    with the definition it was written with (the new fields are then simply absent).
    """
    if not str(conn.msgtype).startswith("v2v_ros/"):
        return ts
    msgdef = getattr(conn, "msgdef", None)
    data = getattr(msgdef, "data", msgdef)
    if not isinstance(data, str) or not data.strip():
        return ts
    try:
        if ts.generate_msgdef(conn.msgtype)[0].strip() == data.strip():
            return ts
        from rosbags.typesys import Stores, get_types_from_msg, get_typestore  # noqa: PLC0415

        own = get_typestore(Stores.ROS2_HUMBLE)
        own.register(get_types_from_msg(data, conn.msgtype))
        return own
    except Exception:  # an unparsable stored definition: ours is the best guess left
        return ts


class SkeletonBagWriter:
    """Writes PoseResults as ``v2v_ros/msg/Skeleton3DArray`` (metres) with the input image's header."""

    def __init__(self, path: str | os.PathLike[str], topic: str = "/v2v_pose_node/skeletons",
                 storage: str = "sqlite3") -> None:
        if storage not in STORAGE:
            raise ValueError(f"storage must be one of {sorted(STORAGE)}, got {storage!r}")
        self.path = Path(path)
        if self.path.exists():
            raise BagError(f"{self.path} exists; rosbag2 writers need a new folder")
        self.ts = typestore_with_v2v_msgs()
        self.topic = topic
        self._writer = Writer(self.path, version=8, storage_plugin=STORAGE[storage])
        self._writer.open()
        self._conn = self._writer.add_connection(topic, SKELETONS_TYPE, typestore=self.ts)
        self.count = 0

    def write(self, header: Any, results: Sequence[PoseResult], time_ns: int | None = None,
              ids: Sequence[int] | None = None) -> None:
        """One array per input frame (empty when nothing was found); ``ids``: the skeletons' ids (default 0, 1, ...)."""
        t = self.ts.types
        hdr = t["std_msgs/msg/Header"](
            stamp=t["builtin_interfaces/msg/Time"](sec=header.stamp.sec, nanosec=header.stamp.nanosec),
            frame_id=header.frame_id)
        msg = t[SKELETONS_TYPE](header=hdr, skeletons=[self._skeleton(r, i if ids is None else int(ids[i]))
                                                        for i, r in enumerate(results)])
        stamp = time_ns if time_ns is not None else header.stamp.sec * 1_000_000_000 + header.stamp.nanosec
        self._writer.write(self._conn, stamp, self.ts.serialize_cdr(msg, SKELETONS_TYPE))
        self.count += 1

    def write_raw(self, data: bytes, time_ns: int) -> None:
        """A Skeleton3DArray already serialised as CDR (e.g. recorded from DDS by rclpy)."""
        self._writer.write(self._conn, time_ns, data)
        self.count += 1

    def write_message(self, msg: Any, time_ns: int) -> None:
        """An already built Skeleton3DArray (rosbags type)."""
        self._writer.write(self._conn, time_ns, self.ts.serialize_cdr(msg, SKELETONS_TYPE))
        self.count += 1

    def _skeleton(self, r: PoseResult, i: int) -> Any:
        t = self.ts.types
        point = t["geometry_msgs/msg/Point"]
        joints = np.asarray(r.joints, np.float64) / 1000.0
        ref = np.asarray(r.reference_point, np.float64) / 1000.0
        return t["v2v_ros/msg/Skeleton3D"](
            id=i, skeleton_type=str(r.skeleton), joint_names=[str(n) for n in r.joint_names],
            keypoints=[t["v2v_ros/msg/Keypoint3D"](position=point(x=float(p[0]), y=float(p[1]), z=float(p[2])),
                                                   confidence=float(c)) for p, c in zip(joints, r.confidence, strict=False)],
            reference_point=point(x=float(ref[0]), y=float(ref[1]), z=float(ref[2])),
            cube_size=float(r.cube_size) / 1000.0, score=float(r.score), valid=bool(r.valid),
            handedness=str(getattr(r, "handedness", "") or ""),
            handedness_confidence=float(getattr(r, "handedness_confidence", 0.0)))

    def close(self) -> None:
        self._writer.close()

    def __enter__(self) -> "SkeletonBagWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def skeleton_array_to_mm(msg: Any) -> np.ndarray | None:
    """First skeleton of a Skeleton3DArray as (J, 3) mm, or None when the array is empty."""
    if not msg.skeletons:
        return None
    sk = msg.skeletons[0]
    return np.array([[k.position.x, k.position.y, k.position.z] for k in sk.keypoints], np.float64) * 1000.0


def stamp_ns_of(msg: Any) -> int:
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)
