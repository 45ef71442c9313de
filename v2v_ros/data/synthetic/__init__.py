"""Synthetic depth images of an articulated hand with exact 3-D joint labels.

Public API::

    from v2v_ros.data.synthetic import SynthConfig, render_frame, HandModel, sample_pose
    cfg = SynthConfig.preset("realsense")          # or SynthConfig(width=..., fx=...)
    frame = render_frame(seed=0, index=17, config=cfg)   # v2v_ros.data.shards.Frame, full image

Sample ``index`` of ``seed`` depends on nothing else (its generator is
``np.random.default_rng([seed, index])``), so any number of workers, in any order,
produce the same dataset.
"""

from __future__ import annotations

import functools
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from v2v_ros.core.camera import Intrinsics
from v2v_ros.core.skeletons import HAND_MSRA21
from v2v_ros.data.datasets import DatasetSpec, get_dataset
from v2v_ros.data.shards import Frame
from v2v_ros.data.synthetic.hand import (
    JOINT_LIMITS,
    POSE_PRESETS,
    HandModel,
    HandPose,
    HandShape,
    sample_pose,
    sample_shape,
)
from v2v_ros.data.synthetic.primitives import RoundCone
from v2v_ros.data.synthetic.render import IDEAL_SENSOR, SensorModel, apply_sensor, render_zbuffer
from v2v_ros.data.synthetic.scene import place_hand, sample_clutter

__all__ = [
    "CAMERA_PRESETS",
    "GENERATOR_VERSION",
    "IDEAL_SENSOR",
    "JOINT_LIMITS",
    "POSE_PRESETS",
    "Frame",
    "HandModel",
    "HandPose",
    "HandShape",
    "SensorModel",
    "SynthConfig",
    "measure_fps",
    "render_frame",
    "sample_pose",
    "sample_shape",
]


# Bumped whenever the same (seed, index, config) renders different pixels or joints; recorded
# in every dataset's meta.json. test/test_synthetic_golden.py holds checksums of a few frames,
# so a change to the generator's output cannot go unnoticed: update the goldens and this
# number together, then re-measure (or retrain) whatever was measured on the old output.
GENERATOR_VERSION = 1


def _camera(spec: DatasetSpec) -> tuple[int, int, float, float, float, float]:
    k = spec.intrinsics
    return (spec.width, spec.height, k.fx, k.fy, k.cx, k.cy)


# (width, height, fx, fy, cx, cy) of the cameras the public datasets were recorded with,
# taken from the one table of dataset facts so that synthetic data cannot drift from it
# ("realsense" is the table's synthetic camera).
CAMERA_PRESETS: dict[str, tuple[int, int, float, float, float, float]] = {
    preset: _camera(get_dataset(name))
    for preset, name in (("realsense", "synthetic"), ("msra", "msra"), ("icvl", "icvl"), ("nyu", "nyu"))
}


@dataclass(frozen=True)
class SynthConfig:
    """Everything that defines a synthetic dataset besides (seed, index)."""

    width: int = 640
    height: int = 480
    fx: float = 615.0
    fy: float = 615.0
    cx: float = 319.5
    cy: float = 239.5
    depth_range: tuple[float, float] = (250.0, 1000.0)  # depth of the joint mean, mm
    scale_range: tuple[float, float] = (0.8, 1.2)
    left_probability: float = 0.5
    clutter: bool = True
    margin_px: float = 4.0
    sensor: SensorModel = field(default_factory=SensorModel)
    # 0: independent frames. L > 0: clips of L consecutive frames in which one hand moves
    # smoothly (pose, rotation and position interpolated between two nearby keyframes),
    # what a camera stream looks like; frame i is frame i % L of clip i // L.
    sequence_length: int = 0
    sequence_motion_mm: float = 60.0  # std of the keyframes' displacement per axis
    sequence_rotation_deg: float = 45.0  # largest rotation between the keyframes
    # Domain randomisation (training data that varies what real sensors vary). All off by
    # default, so the default output (and the held-out splits) stay as they are. Drawn per
    # frame, or per clip for sequences, from a generator of their own.
    cameras: tuple[str, ...] = ()  # camera presets to draw from (intrinsics and resolution); () = this config's
    sensor_jitter: float = 0.0  # 0..1: per-frame spread of noise level, edge dropouts and flying pixels
    sleeve_probability: float = 0.0  # chance of a loose sleeve over the forearm, ending 2-12 cm before the wrist

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "SynthConfig":
        try:
            w, h, fx, fy, cx, cy = CAMERA_PRESETS[name]
        except KeyError:
            raise KeyError(f"unknown camera preset {name!r}; known: {sorted(CAMERA_PRESETS)}") from None
        return replace(cls(width=w, height=h, fx=fx, fy=fy, cx=cx, cy=cy), **overrides)

    @property
    def intrinsics(self) -> Intrinsics:
        return Intrinsics(self.fx, self.fy, self.cx, self.cy)

    @property
    def size(self) -> tuple[int, int]:
        return (int(self.width), int(self.height))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready parameters (stored in the dataset's meta.json under "generator")."""
        d = asdict(self)
        d["depth_range"] = list(self.depth_range)
        d["scale_range"] = list(self.scale_range)
        d["cameras"] = list(self.cameras)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SynthConfig":
        """The config :meth:`to_dict` wrote: a dataset's frames can be rendered again from its ``meta.json``."""
        d = dict(d)
        d["depth_range"] = tuple(d["depth_range"])
        d["scale_range"] = tuple(d["scale_range"])
        d["cameras"] = tuple(d.get("cameras", ()))
        d["sensor"] = SensorModel(**d["sensor"])
        return cls(**d)


def render_frame(seed: int, index: int, config: SynthConfig | None = None) -> Frame:
    """Sample ``index`` of dataset ``seed``: the full depth image and the 21 MSRA joints (mm, camera frame)."""
    cfg = config or SynthConfig()
    rng = np.random.default_rng([int(seed), int(index)])
    domain_key = int(index) // cfg.sequence_length if cfg.sequence_length > 0 else int(index)
    dom = _domain(int(seed), domain_key, cfg)
    cfg = dom.config
    intr, size = cfg.intrinsics, cfg.size
    if cfg.sequence_length > 0:
        # The clip's hand, motion and scene come from the clip's generator; only the
        # sensor noise below is drawn per frame, from the frame's own.
        shape, pose, rot, trans, clutter_rng, anchor = _sequence_state(int(seed), int(index), cfg)
        model = HandModel(shape)
        joints_hand = model.joints(pose)
    else:
        shape = sample_shape(rng, cfg.scale_range, left_probability=cfg.left_probability)
        pose = sample_pose(rng)
        model = HandModel(shape)
        joints_hand = model.joints(pose)
        rot, trans = place_hand(rng, model, pose, joints_hand, intr, size, cfg.depth_range, cfg.margin_px)
        clutter_rng, anchor = rng, None
    joints = joints_hand @ rot.T + trans
    prims = model.primitives(pose, rot, trans)
    if dom.sleeve is not None:
        start, radius = dom.sleeve
        fdir = rot @ model.forearm_direction(pose)  # unit, camera frame (mirroring already applied)
        sc = shape.scale
        prims.append(RoundCone(trans + fdir * start * sc, trans + fdir * shape.forearm_length,
                               radius * 24.0 * sc, radius * 36.0 * sc))
    clutter: list[str] = []
    if cfg.clutter:
        extra, clutter = sample_clutter(clutter_rng, joints if anchor is None else anchor, intr, size)
        prims = prims + extra
    zbuf, cos = render_zbuffer(prims, intr, size)
    depth = apply_sensor(zbuf, cos, rng, cfg.sensor)
    info = {
        "seed": int(seed),
        "index": int(index),
        "handedness": shape.handedness,
        "pose": pose.name,
        "scale": round(float(shape.scale), 4),
        "angles": np.round(pose.angles, 3).tolist(),
        "wrist": np.round(pose.wrist, 3).tolist(),
        "clutter": clutter,
        "skeleton": HAND_MSRA21.name,
    }
    if dom.camera is not None:
        info["camera"] = dom.camera
    if dom.sleeve is not None:
        info["sleeve"] = True
    if cfg.sequence_length > 0:
        info["clip"] = int(index) // cfg.sequence_length
    return Frame(depth, (0, 0), intr, size, joints.astype(np.float32), info)


@dataclass(frozen=True)
class _Domain:
    """What domain randomisation drew for one frame (or clip)."""

    config: SynthConfig  # with the drawn camera and sensor
    camera: str | None  # preset name when drawn
    sleeve: tuple[float, float] | None  # (start behind the wrist in mm at scale 1, radius factor)


def _domain(seed: int, key: int, cfg: SynthConfig) -> _Domain:
    """Camera, sensor and sleeve of frame/clip ``key``, from their own generator (so turning
    randomisation on does not change any other draw of the frame)."""
    if not cfg.cameras and cfg.sensor_jitter <= 0 and cfg.sleeve_probability <= 0:
        return _Domain(cfg, None, None)
    rng = np.random.default_rng([seed, key, 7919])
    camera = None
    if cfg.cameras:
        camera = str(cfg.cameras[int(rng.integers(len(cfg.cameras)))])
        w, h, fx, fy, cx, cy = CAMERA_PRESETS[camera]
        cfg = replace(cfg, width=w, height=h, fx=fx, fy=fy, cx=cx, cy=cy)
    if cfg.sensor_jitter > 0:
        j = float(cfg.sensor_jitter)
        s = cfg.sensor
        noise = float(np.exp(rng.uniform(-1.0, 1.0) * j * np.log(4.0)))  # up to 4x less or more noise at j = 1
        cfg = replace(cfg, sensor=replace(
            s,
            noise_base=s.noise_base * noise,
            noise_quadratic=s.noise_quadratic * noise,
            edge_drop=float(np.clip(s.edge_drop * rng.uniform(1.0 - j, 1.0 + j), 0.0, 1.0)),
            flying=float(np.clip(s.flying * rng.uniform(1.0 - j, 1.0 + 1.5 * j), 0.0, 1.0)),
            grazing_cos=float(np.clip(s.grazing_cos * rng.uniform(1.0 - 0.5 * j, 1.0 + 0.5 * j), 0.1, 0.6)),
        ))
    sleeve = None
    if cfg.sleeve_probability > 0 and rng.random() < cfg.sleeve_probability:
        sleeve = (float(rng.uniform(20.0, 120.0)), float(rng.uniform(1.15, 1.5)))
    return _Domain(cfg, camera, sleeve)


def _axis_angle(axis: np.ndarray, deg: float) -> np.ndarray:
    """Rotation matrix of ``deg`` degrees about unit ``axis`` (Rodrigues)."""
    k = np.array([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]])
    a = np.radians(deg)
    return np.eye(3) + np.sin(a) * k + (1.0 - np.cos(a)) * (k @ k)


@functools.lru_cache(maxsize=16)
def _clip_keyframes(seed: int, clip: int, cfg: SynthConfig) -> dict[str, Any]:
    """The two keyframes of one clip: a hand placed in view, and where it moves to (cached: read-only)."""
    rng = np.random.default_rng([seed, clip, 1])
    shape = sample_shape(rng, cfg.scale_range, left_probability=cfg.left_probability)
    pose_a, pose_b = sample_pose(rng), sample_pose(rng)
    model = HandModel(shape)
    joints_a = model.joints(pose_a)
    intr, size = cfg.intrinsics, cfg.size
    rot, trans = place_hand(rng, model, pose_a, joints_a, intr, size, cfg.depth_range, cfg.margin_px)
    centre = joints_a.mean(axis=0) @ rot.T + trans
    axis = rng.standard_normal(3)
    axis /= np.linalg.norm(axis)
    angle = rng.uniform(0.0, cfg.sequence_rotation_deg)
    move = rng.normal(0.0, cfg.sequence_motion_mm, 3)
    # keep the end point's depth in range and in front of the camera
    move[2] = np.clip(centre[2] + move[2], *cfg.depth_range) - centre[2]
    # the clutter is placed around the clip's first frame, so the scene stays put while the hand moves
    return {"shape": shape, "pose_a": pose_a, "pose_b": pose_b, "rot": rot, "trans": trans, "centre": centre,
            "axis": axis, "angle": angle, "move": move, "clutter_seed": int(rng.integers(2**31)),
            "anchor": joints_a @ rot.T + trans}


def _sequence_state(seed: int, index: int, cfg: SynthConfig
                    ) -> tuple[Any, HandPose, np.ndarray, np.ndarray, Any, np.ndarray]:
    """Shape, pose, placement, clutter generator and clutter anchor (joints of the clip's first
    frame) of frame ``index`` of a clip (smooth ease-in/ease-out motion)."""
    length = cfg.sequence_length
    k = _clip_keyframes(seed, index // length, cfg)
    t = (index % length) / max(length - 1, 1)
    s = 0.5 - 0.5 * np.cos(np.pi * t)  # zero velocity at both keyframes
    a, b = k["pose_a"], k["pose_b"]
    pose = HandPose(angles=(1 - s) * a.angles + s * b.angles, wrist=(1 - s) * a.wrist + s * b.wrist,
                    name=f"seq:{a.name}->{b.name}")
    turn = _axis_angle(k["axis"], s * k["angle"])
    rot = turn @ k["rot"]
    # rotate about the hand centre, then move the centre along the clip's displacement
    trans = turn @ (k["trans"] - k["centre"]) + k["centre"] + s * k["move"]
    return k["shape"], pose, rot, trans, np.random.default_rng(k["clutter_seed"]), k["anchor"]


def measure_fps(n: int = 200, config: SynthConfig | None = None, seed: int = 0) -> dict[str, float]:
    """Speed of :func:`render_frame` in this process (NumPy runs it on one core), after one warm-up frame.

    Returns frames/s by wall clock and by this process's CPU time; the latter is
    the single-core figure when other jobs share the machine. Usage:
    ``python -c "from v2v_ros.data.synthetic import measure_fps; print(measure_fps())"``.
    """
    render_frame(seed, 0, config)
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(1, n + 1):
        render_frame(seed, i, config)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"frames": float(n), "fps_wall": n / wall, "fps_cpu": n / max(cpu, 1e-9)}
