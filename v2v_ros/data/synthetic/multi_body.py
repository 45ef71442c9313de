"""Synthetic rooms with several people, each labelled as its own target (``v2v synth --body --people``).

Why a separate module: :func:`v2v_ros.data.synthetic.body.render_body_frame` is guarded by
golden checksums, so several people are a new code path that reuses its parts (body model,
camera placement, room, furniture, sensor) with a generator of its own.

People stand (a seated pose without its chair would hover) side by side or one behind the
other, 0.6-1.6 m apart sideways and up to 1.2 m apart in depth, so one may hide part of
another; a front camera (ITOP's) is placed so that every joint of every person is in view.
Each target carries its 15 ITOP joints, an id and the visible share of its surface
(``visible``, rendered alone and compared with the scene's z-buffer). ``joints`` of the frame
are the most visible person's, as in :mod:`v2v_ros.data.synthetic.multi`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from v2v_ros.core.skeletons import BODY_ITOP15
from v2v_ros.data.shards import Frame
from v2v_ros.data.synthetic.body import (
    BodyConfig,
    BodyModel,
    _clutter,
    _place_camera,
    _room,
    _sample_yaw,
    _standing_offset,
    sample_body_pose,
    sample_body_shape,
    transform_primitive,
)
from v2v_ros.data.synthetic.hand import rot_y
from v2v_ros.data.synthetic.multi import visible_fraction
from v2v_ros.data.synthetic.render import apply_sensor, render_zbuffer

PEOPLE_STREAM = 5171  # extra generator key: no draw of render_body_frame's streams is reused
MAX_PEOPLE = 3


@dataclass(frozen=True)
class PeopleSpec:
    """How many people a multi-person dataset shows."""

    min_people: int = 1
    max_people: int = 3

    def __post_init__(self) -> None:
        if not 0 <= self.min_people <= self.max_people <= MAX_PEOPLE:
            raise ValueError(f"people must satisfy 0 <= min <= max <= {MAX_PEOPLE}, "
                             f"got {self.min_people}-{self.max_people}")

    @classmethod
    def parse(cls, text: str) -> "PeopleSpec":
        """``"2"`` -> exactly two people, ``"1-3"`` -> one to three (uniformly)."""
        try:
            lo, _, hi = str(text).partition("-")
            return cls(int(lo), int(hi or lo))
        except ValueError as exc:
            raise ValueError(f"people must be N or MIN-MAX with 0 <= MIN <= MAX <= {MAX_PEOPLE}, "
                             f"got {text!r}") from exc

    def to_dict(self) -> dict[str, Any]:
        return {"min": self.min_people, "max": self.max_people}


def render_people_frame(seed: int, index: int, config: BodyConfig | None = None,
                        people: PeopleSpec | None = None) -> Frame:
    """Frame ``index`` of multi-person dataset ``seed`` (front view): full depth image, every person a target."""
    cfg = config or BodyConfig()
    spec = people or PeopleSpec()
    rng = np.random.default_rng([int(seed), int(index), PEOPLE_STREAM])
    n = int(rng.integers(spec.min_people, spec.max_people + 1))
    bodies = []
    x = 0.0
    for k in range(max(n, 1)):  # a room without people is still arranged around where one would stand
        shape = sample_body_shape(rng, cfg.height_range, cfg.girth_range)
        pose = sample_body_pose(rng)
        for _ in range(20):
            if not pose.seated:
                break
            pose = sample_body_pose(rng)
        model = BodyModel(shape)
        body_rot = rot_y(_sample_yaw(rng))
        offset = np.array([x, 0.0, rng.uniform(-600.0, 600.0) if k else 0.0])
        body_t = _standing_offset(model, pose) + offset
        bodies.append((model, pose, body_rot, body_t))
        x += rng.uniform(600.0, 1600.0) * (1.0 if rng.random() < 0.5 or k == 0 else -1.0)
    bodies = bodies[:n]
    joints_w = [m.joints(p) @ r.T + t for m, p, r, t in bodies]
    anchor = np.concatenate(joints_w) if joints_w else np.zeros((1, 3)) + np.array([0.0, 1000.0, 0.0])
    rot, cam = _place_camera(rng, "front", anchor, cfg)
    t = -rot @ cam
    own = [[transform_primitive(p, rot, t) for p in m.primitives(pp, r, tt)] for m, pp, r, tt in bodies]
    # the back wall goes behind the farthest person (measured from the camera), not behind the group's middle
    back = anchor[np.argmax(((anchor - cam) @ rot.T)[:, 2])]
    room, names = _room(rng, "front", np.array([anchor[:, 0].mean(), anchor[:, 1].mean(), back[2]]), cam, cfg.walls)
    extras: list[str] = []
    if cfg.clutter:
        objs, extras = _clutter(rng, anchor, rot, cam, cfg.intrinsics)
        room += objs
    prims = [p for ps in own for p in ps] + [transform_primitive(p, rot, t) for p in room]
    zbuf, cos = render_zbuffer(prims, cfg.intrinsics, cfg.size)
    depth = apply_sensor(zbuf, cos, rng, cfg.sensor)
    joints = [(j @ rot.T + t).astype(np.float32) for j in joints_w]
    visible = [visible_fraction(ps, zbuf, cfg.intrinsics, cfg.size) for ps in own]
    targets_info = [{"id": k, "visible": round(v, 4), "height_mm": round(m.shape.height, 1)}
                    for k, ((m, _, _, _), v) in enumerate(zip(bodies, visible, strict=True))]
    main = int(np.argmax(visible)) if bodies else -1
    info: dict[str, Any] = {"seed": int(seed), "index": int(index), "view": "front", "people": len(bodies),
                            "arrangement": f"{len(bodies)} people", "targets": targets_info,
                            "scene": names + extras, "skeleton": BODY_ITOP15.name}
    nan = np.full((BODY_ITOP15.num_joints, 3), np.nan, np.float32)
    targets = np.stack(joints) if joints else np.zeros((0, BODY_ITOP15.num_joints, 3), np.float32)
    return Frame(depth, (0, 0), cfg.intrinsics, cfg.size, joints[main] if bodies else nan, info, targets=targets)
