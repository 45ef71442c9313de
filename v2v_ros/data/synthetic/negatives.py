"""Hand-free depth scenes: what the camera sees when there is no hand to report.

Why: a pose network always finds *some* pose in a cube, so the only way to learn and
to measure "there is no hand here" is a set of frames that certainly hold none, made of
the things a hand pipeline meets most: tables, walls, cups and boxes of hand size,
a forearm or a whole person whose hand is out of view, empty rooms. The scenes use the
hand generator's camera (:class:`SynthConfig`), shapes, ray caster and sensor model,
so they differ from hand frames in the hand alone.

Frame ``index`` of ``seed`` depends on nothing else (its generator is
``np.random.default_rng([seed, index, NEGATIVE_STREAM])``, a stream the hand frames
never use), so a mixed set can take hand frame i from :func:`render_frame` and
hand-free frame i from here without the two sharing random numbers. Joints are NaN:
the frame's label is "no hand".

Public API::

    from v2v_ros.data.synthetic.negatives import NEGATIVE_KINDS, render_negative, is_negative
    frame = render_negative(seed=3, index=7)              # kind drawn from NEGATIVE_KINDS
    frame = render_negative(3, 7, kinds=("cup",))         # only cups
    frame.info["scene"], frame.info["hand"]              # "cup", False
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from v2v_ros.core.skeletons import HAND_MSRA21
from v2v_ros.data.shards import Frame
from v2v_ros.data.synthetic import SynthConfig
from v2v_ros.data.synthetic.hand import random_rotation, rot_x, rot_y, rot_z
from v2v_ros.data.synthetic.primitives import Box, Cylinder, Ellipsoid, Plane, Primitive, RoundCone, Sphere
from v2v_ros.data.synthetic.render import apply_sensor, render_zbuffer
from v2v_ros.data.synthetic.scene import sample_clutter

NEGATIVE_STREAM = 0x6E6F68  # third seed word of hand-free frames ("noh")
MIX_STREAM = 0x6D6978  # third seed word of the hand / no-hand draw of a mixed set ("mix")

# Every kind of hand-free scene, in the order `v2v synth --no-hand-kinds` lists them.
NEGATIVE_KINDS: tuple[str, ...] = (
    "empty",  # nothing in range, or only a far background
    "wall",  # a plane facing the camera at any tilt and distance
    "table",  # a table top below where a hand would be, sometimes a wall behind
    "cup",  # a mug / can / bottle of hand size at hand distance, often on a table
    "box",  # a box of hand size at hand distance
    "disc",  # a flat disc or a ball facing the camera (the estimator's warm-up shape)
    "arm",  # a forearm and upper arm reaching into the image, the hand outside it, a torso behind
    "body",  # a person close to the camera with the hands not rendered (out of view)
    "clutter",  # a hand scene's table, body and objects without the hand
    "speckle",  # a patch of random depths (a broken or mis-scaled image)
)


def is_negative(seed: int, index: int, fraction: float) -> bool:
    """Whether frame ``index`` of a mixed set with ``seed`` is hand-free (probability ``fraction``).

    Drawn from its own stream so the answer for one frame does not depend on the others.
    """
    if fraction <= 0.0:
        return False
    if fraction >= 1.0:
        return True
    return bool(np.random.default_rng([int(seed), int(index), MIX_STREAM]).random() < fraction)


def render_negative(seed: int, index: int, config: SynthConfig | None = None,
                    kinds: Sequence[str] = NEGATIVE_KINDS) -> Frame:
    """Hand-free frame ``index`` of ``seed``: full depth image (mm), NaN joints, ``info['scene']`` its kind."""
    cfg = config or SynthConfig()
    unknown = [k for k in kinds if k not in _BUILDERS]
    if unknown or not kinds:
        raise ValueError(f"unknown hand-free scene kind(s) {unknown or '(none)'}; known: {', '.join(NEGATIVE_KINDS)}")
    rng = np.random.default_rng([int(seed), int(index), NEGATIVE_STREAM])
    kind = str(kinds[int(rng.integers(len(kinds)))])
    prims, names = _BUILDERS[kind](rng, cfg)
    intr, size = cfg.intrinsics, cfg.size
    if kind == "speckle":
        depth = _speckle(rng, cfg)
    elif prims:
        zbuf, cos = render_zbuffer(prims, intr, size)
        depth = apply_sensor(zbuf, cos, rng, cfg.sensor)
    else:
        depth = np.zeros((cfg.height, cfg.width), np.float32)
    info = {"seed": int(seed), "index": int(index), "hand": False, "scene": kind, "clutter": names,
            "skeleton": HAND_MSRA21.name}
    joints = np.full((HAND_MSRA21.num_joints, 3), np.nan, np.float32)
    return Frame(depth, (0, 0), intr, size, joints, info)


# -- scene builders: (rng, config) -> (primitives in the camera frame, names) -------------------------------
Scene = tuple[list[Primitive], list[str]]


def _hand_spot(rng: np.random.Generator, cfg: SynthConfig, margin: float = 0.1) -> np.ndarray:
    """A point where a hand could be: anywhere in the image (``margin`` of its size kept free) at hand depth."""
    u = rng.uniform(margin, 1.0 - margin) * (cfg.width - 1)
    v = rng.uniform(margin, 1.0 - margin) * (cfg.height - 1)
    z = rng.uniform(*cfg.depth_range)
    return cfg.intrinsics.to_xyz(np.array([u, v, z]))


def _facing_plane(rng: np.random.Generator, distance: float, max_tilt: float) -> Plane:
    """A plane ``distance`` mm in front of the camera whose normal is tilted up to ``max_tilt`` degrees."""
    n = rot_x(rng.uniform(-max_tilt, max_tilt)) @ rot_y(rng.uniform(-max_tilt, max_tilt)) @ np.array([0.0, 0.0, -1.0])
    return Plane(-n * distance, n)


def _table_below(rng: np.random.Generator, point: np.ndarray, gap: tuple[float, float] = (0.0, 200.0)) -> Plane | None:
    """A table top (normal from facing the camera to pointing up) ``gap`` mm behind/below ``point``."""
    tilt, az = np.radians(rng.uniform(10.0, 80.0)), rng.uniform(-25.0, 25.0)
    n = rot_z(az) @ np.array([0.0, -np.sin(tilt), -np.cos(tilt)])
    offset = float(point @ n) - rng.uniform(*gap)
    return Plane(n * offset, n) if offset < -50.0 else None  # camera on the visible side


def _scene_empty(rng: np.random.Generator, cfg: SynthConfig) -> Scene:
    if rng.random() < 0.4:
        return [], []
    return [_facing_plane(rng, rng.uniform(2500.0, 3400.0), 40.0)], ["far_wall"]


def _scene_wall(rng: np.random.Generator, cfg: SynthConfig) -> Scene:
    return [_facing_plane(rng, rng.uniform(300.0, 2000.0), 60.0)], ["wall"]


def _scene_table(rng: np.random.Generator, cfg: SynthConfig) -> Scene:
    prims: list[Primitive] = []
    names: list[str] = []
    table = _table_below(rng, _hand_spot(rng, cfg), (0.0, 150.0))
    if table is not None:
        prims.append(table)
        names.append("table")
    if rng.random() < 0.5 or not prims:
        prims.append(_facing_plane(rng, rng.uniform(900.0, 2500.0), 20.0))
        names.append("wall")
    return prims, names


def _on_table(rng: np.random.Generator, cfg: SynthConfig, obj: Primitive, centre: np.ndarray, name: str,
              p_table: float = 0.6) -> Scene:
    prims, names = [obj], [name]
    if rng.random() < p_table:
        _, r = obj.bounding_sphere()
        table = _table_below(rng, centre, (0.8 * r, 1.5 * r))  # touching it at most: the object stays visible
        if table is not None:
            prims.append(table)
            names.append("table")
    if rng.random() < 0.3:
        prims.append(_facing_plane(rng, centre[2] + rng.uniform(300.0, 1500.0), 20.0))
        names.append("wall")
    return prims, names


def _scene_cup(rng: np.random.Generator, cfg: SynthConfig) -> Scene:
    c = _hand_spot(rng, cfg)
    # upright in the world (camera -y) give or take a tilt; mugs, cans and bottles of hand size
    axis = rot_z(rng.uniform(-30.0, 30.0)) @ rot_x(rng.uniform(-50.0, 50.0)) @ np.array([0.0, -1.0, 0.0])
    half_h, radius = rng.uniform(35.0, 110.0), rng.uniform(25.0, 50.0)
    cup = Cylinder(c - axis * half_h, c + axis * half_h, radius)
    prims, names = _on_table(rng, cfg, cup, c, "cup")
    if rng.random() < 0.5:  # a handle: a short thick capsule on the side
        side = np.cross(axis, [0.0, 0.0, 1.0])
        side = side / max(float(np.linalg.norm(side)), 1e-9) * (1 if rng.random() < 0.5 else -1)
        a = c + side * (radius + 8.0) + axis * 0.4 * half_h
        b = c + side * (radius + 8.0) - axis * 0.4 * half_h
        prims.append(RoundCone(a, b, 7.0, 7.0))
        names.append("handle")
    return prims, names


def _scene_box(rng: np.random.Generator, cfg: SynthConfig) -> Scene:
    c = _hand_spot(rng, cfg)
    box = Box(c, rng.uniform(20.0, 100.0, 3), random_rotation(rng))
    return _on_table(rng, cfg, box, c, "box")


def _scene_disc(rng: np.random.Generator, cfg: SynthConfig) -> Scene:
    c = _hand_spot(rng, cfg)
    if rng.random() < 0.3:
        return _on_table(rng, cfg, Sphere(c, rng.uniform(30.0, 90.0)), c, "ball")
    normal = rot_x(rng.uniform(-35.0, 35.0)) @ rot_y(rng.uniform(-35.0, 35.0)) @ np.array([0.0, 0.0, 1.0])
    half_t = rng.uniform(1.0, 8.0)
    disc = Cylinder(c - normal * half_t, c + normal * half_t, rng.uniform(35.0, 110.0))
    return _on_table(rng, cfg, disc, c, "disc", p_table=0.3)


def _scene_arm(rng: np.random.Generator, cfg: SynthConfig) -> Scene:
    """Upper arm and forearm reaching into the image from a torso; the wrist is just outside the image."""
    k = cfg.intrinsics
    w, h = cfg.width, cfg.height
    edge = int(rng.integers(4))
    out = rng.uniform(0.02, 0.15)  # how far beyond the border the wrist is, in image widths
    t = rng.uniform(0.05, 0.95)
    u, v = ((-out * w, t * h), ((1 + out) * w, t * h), (t * w, -out * w), (t * w, h + out * w))[edge]
    z = rng.uniform(*cfg.depth_range)
    wrist = k.to_xyz(np.array([u, v, z]))
    into = cfg.intrinsics.to_xyz(np.array([w / 2, h / 2, z])) - wrist
    into[2] = rng.uniform(0.0, 0.8) * np.linalg.norm(into)  # the elbow is further from the camera
    into = into / np.linalg.norm(into)
    into = rot_z(rng.uniform(-35.0, 35.0)) @ into
    scale = rng.uniform(0.85, 1.2)
    elbow = wrist + into * rng.uniform(230.0, 290.0) * scale
    up = into + rng.normal(0.0, 0.5, 3)
    up[2] = abs(up[2]) + 0.3
    shoulder = elbow + up / np.linalg.norm(up) * rng.uniform(260.0, 320.0) * scale
    prims: list[Primitive] = [RoundCone(wrist, elbow, 24.0 * scale, 36.0 * scale),
                              RoundCone(elbow, shoulder, 38.0 * scale, 48.0 * scale)]
    names = ["forearm", "upper_arm"]
    if rng.random() < 0.8:
        torso = shoulder + np.array([rng.uniform(-200, 200), rng.uniform(50, 250), rng.uniform(80, 200)])
        prims.append(Ellipsoid(torso, np.array([rng.uniform(150, 200), rng.uniform(220, 300), rng.uniform(90, 130)]),
                               rot_y(rng.uniform(-30, 30)) @ rot_z(rng.uniform(-15, 15))))
        names.append("torso")
    if rng.random() < 0.4:
        table = _table_below(rng, 0.5 * (wrist + elbow), (40.0, 150.0))
        if table is not None:
            prims.append(table)
            names.append("table")
    return prims, names


def _scene_body(rng: np.random.Generator, cfg: SynthConfig) -> Scene:
    """A person facing the camera from 0.5-2 m, hands not rendered: torso, arms, head fill the view."""
    from v2v_ros.data.synthetic.body import BodyModel, sample_body_pose, sample_body_shape, transform_primitive

    shape = sample_body_shape(rng)
    pose = sample_body_pose(rng)
    model = BodyModel(shape)
    # body frame: +y up, +z forward, +x the person's left -> camera frame (y down, z away): facing the camera
    rot = np.diag([1.0, -1.0, -1.0]) @ rot_y(rng.uniform(-60.0, 60.0))
    chest_body = np.array([0.0, 0.2 * shape.height, 0.0])
    target = _hand_spot(rng, cfg, margin=0.25)
    target[2] = rng.uniform(max(cfg.depth_range[0], 500.0), 2000.0)
    trans = target - rot @ chest_body
    prims = [transform_primitive(p, rot, trans) for name, p in model._parts(pose) if not name.endswith("hand")]
    return prims, ["body"]


def _scene_clutter(rng: np.random.Generator, cfg: SynthConfig) -> Scene:
    """The clutter of a hand frame (table, body, objects), placed around where the hand would have been."""
    spot = _hand_spot(rng, cfg)
    ghost = spot + rng.normal(0.0, 40.0, (HAND_MSRA21.num_joints, 3))  # stands in for the absent hand's joints
    prims, names = sample_clutter(rng, ghost, cfg.intrinsics, cfg.size, p_table=0.7, p_body=0.5, max_objects=4)
    if not prims:
        prims, names = [_facing_plane(rng, rng.uniform(900.0, 2500.0), 20.0)], ["wall"]
    return prims, names


def _scene_speckle(rng: np.random.Generator, cfg: SynthConfig) -> Scene:
    return [], ["speckle"]


def _speckle(rng: np.random.Generator, cfg: SynthConfig) -> np.ndarray:
    """Random depths over a random rectangle: what a broken or mis-scaled depth image looks like."""
    depth = np.zeros((cfg.height, cfg.width), np.float32)
    h0, w0 = int(rng.integers(0, cfg.height // 2)), int(rng.integers(0, cfg.width // 2))
    h1, w1 = int(rng.integers(h0 + 20, cfg.height + 1)), int(rng.integers(w0 + 20, cfg.width + 1))
    lo = rng.uniform(100.0, 1000.0)
    depth[h0:h1, w0:w1] = np.rint(rng.uniform(lo, lo + rng.uniform(50.0, 2000.0), (h1 - h0, w1 - w0)))
    return depth


_BUILDERS: dict[str, Callable[[np.random.Generator, SynthConfig], Scene]] = {
    "empty": _scene_empty, "wall": _scene_wall, "table": _scene_table, "cup": _scene_cup, "box": _scene_box,
    "disc": _scene_disc, "arm": _scene_arm, "body": _scene_body, "clutter": _scene_clutter,
    "speckle": _scene_speckle,
}
assert set(_BUILDERS) == set(NEGATIVE_KINDS)
