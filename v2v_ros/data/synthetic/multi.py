"""Synthetic scenes with 0, 1 or 2 hands, each labelled as its own target.

Why a separate module: :func:`v2v_ros.data.synthetic.render_frame` is guarded by golden
checksums (its output is what the shipped models were trained and measured on), so
scenes with several hands are a new code path that reuses its parts (``HandModel``,
``place_hand``, ``sample_clutter``, ``render_zbuffer``, ``apply_sensor``) and draws from
generators of its own: turning it on changes nothing that existed before.

A two-hand scene is one of four arrangements, because each stresses a different part of
a multi-target pipeline:

* ``apart``: two hands anywhere in view (the easy case; tests that both are found);
* ``touching``: the second hand's centre 80-140 mm from the first, at a similar depth
  (the two cubes overlap; tests duplicate suppression);
* ``occluding``: the second hand 120-300 mm in front of the first, shifted sideways so
  that it hides part of it (tests partial visibility);
* ``crossing`` (clips only): the hands trade image positions during the clip at
  different depths (tests that identities do not swap).

Every target carries its joints (21, MSRA order, mm), handedness, and the fraction of
its hand surface the camera sees in the final image (``visible``, computed by rendering
the hand alone and comparing with the scene's z-buffer), so an evaluation can require
detection only of hands that are at least half visible.

The returned :class:`~v2v_ros.data.shards.Frame` keeps the single-target fields
meaningful for readers that know nothing about targets: ``joints`` are the most visible
hand's (NaN without a hand), ``info['handedness']`` its side; ``targets`` (K, 21, 3) and
``info['targets']`` hold every hand.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from v2v_ros.core.camera import Intrinsics
from v2v_ros.core.skeletons import HAND_MSRA21
from v2v_ros.data.shards import Frame
from v2v_ros.data.synthetic import SynthConfig, _axis_angle
from v2v_ros.data.synthetic.hand import HandModel, HandPose, HandShape, random_rotation, sample_pose, sample_shape
from v2v_ros.data.synthetic.render import apply_sensor, render_zbuffer
from v2v_ros.data.synthetic.scene import place_hand, sample_clutter

MULTI_STREAM = 4241  # extra generator key: no draw of render_frame's streams is reused
ARRANGEMENTS = ("apart", "touching", "occluding")
SEQUENCE_ARRANGEMENTS = ("apart", "touching", "occluding", "crossing")
VISIBLE_TOLERANCE_MM = 3.0  # a hand pixel is seen when the scene's surface there is no nearer than this
OFF_IMAGE_MARGIN = 0.5  # the hand alone is rendered this share of the image's size beyond every edge (visible_fraction)


@dataclass(frozen=True)
class HandsSpec:
    """How many hands a multi-hand dataset shows, and how two of them relate."""

    min_hands: int = 0
    max_hands: int = 2
    same_side_probability: float = 0.1  # two hands of one side (two people) rather than a left and a right

    def __post_init__(self) -> None:
        if not 0 <= self.min_hands <= self.max_hands <= 2:
            raise ValueError(f"hands must satisfy 0 <= min <= max <= 2, got {self.min_hands}-{self.max_hands}")
        if not 0.0 <= self.same_side_probability <= 1.0:
            raise ValueError(f"same_side_probability must be in [0, 1], got {self.same_side_probability}")

    @classmethod
    def parse(cls, text: str) -> "HandsSpec":
        """``"2"`` -> exactly two hands, ``"0-2"`` -> zero, one or two (uniformly)."""
        try:
            lo, _, hi = str(text).partition("-")
            spec = cls(int(lo), int(hi or lo))
        except ValueError as exc:
            raise ValueError(f"hands must be N or MIN-MAX with 0 <= MIN <= MAX <= 2, got {text!r}") from exc
        return spec

    def to_dict(self) -> dict[str, Any]:
        return {"min": self.min_hands, "max": self.max_hands, "same_side_probability": self.same_side_probability}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "HandsSpec":
        """The spec :meth:`to_dict` wrote (a dataset's ``meta.json`` ``generator.hands``)."""
        return cls(int(d["min"]), int(d["max"]), float(d.get("same_side_probability", cls.same_side_probability)))


@dataclass
class _Hand:
    """One placed hand: model, pose and rigid placement (x_cam = rot @ x_hand + trans)."""

    model: HandModel
    pose: HandPose
    rot: np.ndarray
    trans: np.ndarray

    @property
    def joints(self) -> np.ndarray:
        return self.model.joints(self.pose) @ self.rot.T + self.trans

    @property
    def handedness(self) -> str:
        return self.model.shape.handedness


def _shape(rng: np.random.Generator, cfg: SynthConfig, side: str | None) -> HandShape:
    if side is None:
        return sample_shape(rng, cfg.scale_range, left_probability=cfg.left_probability)
    return sample_shape(rng, cfg.scale_range, left_probability=1.0 if side == "left" else 0.0)


def _inside(joints: np.ndarray, intr: Intrinsics, size: tuple[int, int], margin: float) -> bool:
    z = joints[:, 2]
    if np.any(z <= 100.0):
        return False
    u = intr.fx * joints[:, 0] / z + intr.cx
    v = intr.fy * joints[:, 1] / z + intr.cy
    return bool(np.all((u >= margin) & (u <= size[0] - 1 - margin) & (v >= margin) & (v <= size[1] - 1 - margin)))


def _place_at(rng: np.random.Generator, model: HandModel, pose: HandPose, centre: np.ndarray, intr: Intrinsics,
              size: tuple[int, int], margin: float) -> tuple[np.ndarray, np.ndarray] | None:
    """A rotation putting the joints' mean at ``centre`` with every joint in view (forearm away from the
    camera, as :func:`place_hand` requires), or None when 100 tries found none."""
    jh = model.joints(pose)
    mean = jh.mean(axis=0)
    fdir = model.forearm_direction(pose)
    for _ in range(100):
        rot = random_rotation(rng)
        if (rot @ fdir)[2] < -0.35:
            continue
        trans = centre - rot @ mean
        if _inside(jh @ rot.T + trans, intr, size, margin):
            return rot, trans
    return None


def _second_centre(rng: np.random.Generator, first: np.ndarray, arrangement: str) -> np.ndarray:
    """Where the second hand's joint mean goes, relative to the first hand's (mm, camera frame)."""
    ang = rng.uniform(0.0, 2.0 * np.pi)
    if arrangement == "touching":
        r = rng.uniform(80.0, 140.0)
        return first + np.array([r * np.cos(ang), r * np.sin(ang), rng.uniform(-40.0, 40.0)])
    # occluding: nearer to the camera, shifted sideways by less than a hand width
    dz = rng.uniform(120.0, 300.0)
    near = first * (first[2] - dz) / first[2]  # on the ray through the first hand's centre
    r = rng.uniform(30.0, 90.0)
    return near + np.array([r * np.cos(ang), r * np.sin(ang), 0.0])


def _place_pair(rng: np.random.Generator, cfg: SynthConfig, shapes: list[HandShape], arrangement: str
                ) -> list[_Hand]:
    """Two hands in the given arrangement; ``apart`` when the geometry does not fit the view in 20 tries."""
    intr, size = cfg.intrinsics, cfg.size
    a_model, b_model = HandModel(shapes[0]), HandModel(shapes[1])
    a_pose, b_pose = sample_pose(rng), sample_pose(rng)
    lo, hi = cfg.depth_range
    if arrangement == "occluding":  # the farther hand needs room in front of it
        lo = min(hi, lo + 300.0)
    rot, trans = place_hand(rng, a_model, a_pose, a_model.joints(a_pose), intr, size, (lo, hi), cfg.margin_px)
    first = _Hand(a_model, a_pose, rot, trans)
    centre_a = first.joints.mean(axis=0)
    if arrangement != "apart":
        for _ in range(20):
            c = _second_centre(rng, centre_a, arrangement)
            placed = _place_at(rng, b_model, b_pose, c, intr, size, cfg.margin_px) if c[2] > 200.0 else None
            if placed is not None:
                return [first, _Hand(b_model, b_pose, *placed)]
    second = None
    for _ in range(20):  # apart: more than a hand width between the centres
        rot, trans = place_hand(rng, b_model, b_pose, b_model.joints(b_pose), intr, size, cfg.depth_range,
                                cfg.margin_px)
        second = _Hand(b_model, b_pose, rot, trans)
        if np.linalg.norm(second.joints.mean(axis=0) - centre_a) > 160.0:
            break
    assert second is not None
    return [first, second]


def _sides(rng: np.random.Generator, n: int, spec: HandsSpec, cfg: SynthConfig) -> list[str | None]:
    if n < 2:
        return [None] * n
    first = "left" if rng.random() < cfg.left_probability else "right"
    other = "left" if first == "right" else "right"
    return [first, first if rng.random() < spec.same_side_probability else other]


def _count(rng: np.random.Generator, spec: HandsSpec) -> int:
    return int(rng.integers(spec.min_hands, spec.max_hands + 1))


def _scene_hands(seed: int, index: int, cfg: SynthConfig, spec: HandsSpec) -> tuple[list[_Hand], str, Any]:
    """The hands of an independent frame, their arrangement and the generator the rest of the frame uses."""
    rng = np.random.default_rng([int(seed), int(index), MULTI_STREAM])
    n = _count(rng, spec)
    shapes = [_shape(rng, cfg, s) for s in _sides(rng, n, spec, cfg)]
    if n == 0:
        return [], "none", rng
    if n == 1:
        model = HandModel(shapes[0])
        pose = sample_pose(rng)
        rot, trans = place_hand(rng, model, pose, model.joints(pose), cfg.intrinsics, cfg.size, cfg.depth_range,
                                cfg.margin_px)
        return [_Hand(model, pose, rot, trans)], "single", rng
    arrangement = ARRANGEMENTS[int(rng.integers(len(ARRANGEMENTS)))]
    return _place_pair(rng, cfg, shapes, arrangement), arrangement, rng


@functools.lru_cache(maxsize=8)
def _clip(seed: int, clip: int, cfg: SynthConfig, spec: HandsSpec) -> dict[str, Any]:
    """Keyframes of one clip: the hands at its start and where each moves and turns to (cached: read-only)."""
    rng = np.random.default_rng([seed, clip, MULTI_STREAM, 1])
    n = _count(rng, spec)
    shapes = [_shape(rng, cfg, s) for s in _sides(rng, n, spec, cfg)]
    intr, size = cfg.intrinsics, cfg.size
    arrangement = "none" if n == 0 else "single"
    if n == 1:
        model = HandModel(shapes[0])
        pose = sample_pose(rng)
        rot, trans = place_hand(rng, model, pose, model.joints(pose), intr, size, cfg.depth_range, cfg.margin_px)
        hands = [_Hand(model, pose, rot, trans)]
    elif n == 2:
        arrangement = SEQUENCE_ARRANGEMENTS[int(rng.integers(len(SEQUENCE_ARRANGEMENTS)))]
        hands = _place_pair(rng, cfg, shapes, "apart" if arrangement == "crossing" else arrangement)
    else:
        hands = []
    centres = [h.joints.mean(axis=0) for h in hands]
    motions = []
    for k in range(len(hands)):
        axis = rng.standard_normal(3)
        axis /= np.linalg.norm(axis)
        if arrangement == "crossing":
            # towards where the other hand starts, passing it 100-160 mm nearer or farther
            move = centres[1 - k] - centres[k]
            move[2] += (1.0 if k == 0 else -1.0) * rng.uniform(100.0, 160.0)
        else:
            move = rng.normal(0.0, cfg.sequence_motion_mm, 3)
        move[2] = np.clip(centres[k][2] + move[2], *cfg.depth_range) - centres[k][2]
        motions.append({"axis": axis, "angle": rng.uniform(0.0, cfg.sequence_rotation_deg), "move": move,
                        "pose_b": sample_pose(rng)})
    anchor = np.concatenate([h.joints for h in hands]) if hands else _virtual_joints(rng, cfg)
    return {"hands": hands, "centres": centres, "motions": motions, "arrangement": arrangement,
            "clutter_seed": int(rng.integers(2**31)), "anchor": anchor}


def _clip_hands(seed: int, index: int, cfg: SynthConfig, spec: HandsSpec) -> tuple[list[_Hand], str, Any, np.ndarray]:
    """Hands of frame ``index`` of a clip (ease-in/ease-out motion, as single-hand clips move)."""
    length = cfg.sequence_length
    k = _clip(seed, index // length, cfg, spec)
    t = (index % length) / max(length - 1, 1)
    s = 0.5 - 0.5 * np.cos(np.pi * t)
    hands = []
    for h, c, m in zip(k["hands"], k["centres"], k["motions"], strict=True):
        a, b = h.pose, m["pose_b"]
        pose = HandPose(angles=(1 - s) * a.angles + s * b.angles, wrist=(1 - s) * a.wrist + s * b.wrist,
                        name=f"seq:{a.name}->{b.name}")
        turn = _axis_angle(m["axis"], s * m["angle"])
        hands.append(_Hand(h.model, pose, turn @ h.rot, turn @ (h.trans - c) + c + s * m["move"]))
    return hands, k["arrangement"], np.random.default_rng(k["clutter_seed"]), k["anchor"]


def _virtual_joints(rng: np.random.Generator, cfg: SynthConfig) -> np.ndarray:
    """Joints of a hand that is not rendered: where the clutter of a hand-free scene is arranged around."""
    model = HandModel(HandShape.default())
    pose = sample_pose(rng)
    rot, trans = place_hand(rng, model, pose, model.joints(pose), cfg.intrinsics, cfg.size, cfg.depth_range,
                            cfg.margin_px)
    return model.joints(pose) @ rot.T + trans


def render_solo_frames(seed: int, index: int, config: SynthConfig | None = None,
                       hands: HandsSpec | None = None) -> list[Frame]:
    """Every hand of multi-hand frame ``index`` rendered alone in its scene (one frame per hand)."""
    count = int(render_hand_count(seed, index, config, hands))
    return [render_multi_frame(seed, index, config, hands, only=k) for k in range(count)]


def render_hand_count(seed: int, index: int, config: SynthConfig | None = None, hands: HandsSpec | None = None) -> int:
    """How many hands frame ``index`` shows (without rendering it)."""
    cfg = config or SynthConfig()
    spec = hands or HandsSpec()
    if cfg.sequence_length > 0:
        return len(_clip(int(seed), int(index) // cfg.sequence_length, cfg, spec)["hands"])
    return len(_scene_hands(int(seed), int(index), cfg, spec)[0])


def visible_fraction(hand_prims: list[Any], scene_z: np.ndarray, intr: Intrinsics, size: tuple[int, int]) -> float:
    """Share of a hand's own surface pixels (without its forearm) that the scene's z-buffer shows.

    Why measured, not assumed: a hand behind the other, or turned so that its own
    fingers hide the palm, may still be "in view" by its joints' projections while the
    camera sees little of it; detection targets are only fair on hands one can see.
    The hand alone is rendered on a canvas larger than the image (:data:`OFF_IMAGE_MARGIN`
    on every side), so that its surface outside the image counts as not seen: a hand
    leaving the frame at its top edge, with a sliver of palm left in the image, is not
    "fully visible" because that sliver is unoccluded.
    """
    width, height = size
    pu, pv = int(round(width * OFF_IMAGE_MARGIN)), int(round(height * OFF_IMAGE_MARGIN))
    canvas = replace(intr, cx=intr.cx + pu, cy=intr.cy + pv)
    alone, _ = render_zbuffer(hand_prims, canvas, (width + 2 * pu, height + 2 * pv))
    total = int(np.isfinite(alone).sum())
    if total == 0:
        return 0.0
    inside = alone[pv:pv + height, pu:pu + width]
    own = np.isfinite(inside)
    return float((scene_z[own] >= inside[own] - VISIBLE_TOLERANCE_MM).sum() / total)


def _scene(seed: int, index: int, cfg: SynthConfig, spec: HandsSpec, only: int | None
           ) -> tuple[list[_Hand], list[int], str, list[list[Any]], list[Any], list[str]]:
    """Frame ``index``'s hands (hand ``only`` alone when given), their ids and arrangement, each hand's
    primitives (its forearm last), every primitive of the scene and the clutter's names."""
    if cfg.sequence_length > 0:
        placed, arrangement, clutter_rng, anchor = _clip_hands(int(seed), int(index), cfg, spec)
    else:
        placed, arrangement, clutter_rng = _scene_hands(int(seed), int(index), cfg, spec)
        anchor = np.concatenate([h.joints for h in placed]) if placed else _virtual_joints(clutter_rng, cfg)
    ids = list(range(len(placed)))
    if only is not None:
        if not 0 <= only < len(placed):
            raise ValueError(f"frame {index} of seed {seed} has {len(placed)} hand(s); no hand {only}")
        placed, ids = [placed[only]], [only]
    hand_prims = [h.model.primitives(h.pose, h.rot, h.trans) for h in placed]
    prims = [p for ps in hand_prims for p in ps]
    clutter: list[str] = []
    if cfg.clutter:
        extra, clutter = sample_clutter(clutter_rng, anchor, cfg.intrinsics, cfg.size)
        prims = prims + extra
    return placed, ids, arrangement, hand_prims, prims, clutter


def hand_pixels(seed: int, index: int, config: SynthConfig | None = None,
                hands: HandsSpec | None = None) -> list[np.ndarray]:
    """Each hand's pixels in multi-hand frame ``index``: a (H, W) bool mask per hand, where that hand
    (forearm included) is the surface the camera sees, before sensor noise.

    Why: the exact segmentation of the frame, which no estimator has: removing the other hand's
    pixels with it measures what the best possible mask would leave of a hand's error
    (``tools/two_hand_gap.py``).
    """
    cfg = config or SynthConfig()
    _, _, _, hand_prims, prims, _ = _scene(seed, index, cfg, hands or HandsSpec(), None)
    scene, _ = render_zbuffer(prims, cfg.intrinsics, cfg.size)
    out = []
    for ps in hand_prims:
        alone, _ = render_zbuffer(ps, cfg.intrinsics, cfg.size)
        out.append(np.isfinite(alone) & (alone <= scene + VISIBLE_TOLERANCE_MM))
    return out


def render_multi_frame(seed: int, index: int, config: SynthConfig | None = None,
                       hands: HandsSpec | None = None, only: int | None = None) -> Frame:
    """Frame ``index`` of multi-hand dataset ``seed``: full depth image and every hand as a target.

    Depends only on (seed, index, config, hands), like :func:`render_frame`. With
    ``config.sequence_length`` L > 0, frames come in clips of L in which the same hands move
    (ids stay with their hand for the whole clip; ``info['clip']`` numbers the clips).

    ``only`` = k renders the same scene with hand k alone (the other hands removed, everything else
    in place): the single-hand reference the same hands are measured against.
    """
    cfg = config or SynthConfig()
    spec = hands or HandsSpec()
    intr, size = cfg.intrinsics, cfg.size
    frame_rng = np.random.default_rng([int(seed), int(index), MULTI_STREAM, 2])  # sensor noise
    placed, ids, arrangement, hand_prims, prims, clutter = _scene(seed, index, cfg, spec, only)
    zbuf, cos = render_zbuffer(prims, intr, size)
    depth = apply_sensor(zbuf, cos, frame_rng, cfg.sensor)
    joints = [h.joints.astype(np.float32) for h in placed]
    visible = [visible_fraction(ps[:-1], zbuf, intr, size) for ps in hand_prims]  # [-1]: the forearm
    targets_info = [{"id": ids[k], "handedness": h.handedness, "visible": round(v, 4), "scale": round(h.model.shape.scale, 4)}
                    for k, (h, v) in enumerate(zip(placed, visible, strict=True))]
    main = int(np.argmax(visible)) if placed else -1
    nan = np.full((HAND_MSRA21.num_joints, 3), np.nan, np.float32)
    info: dict[str, Any] = {
        "seed": int(seed), "index": int(index), "hands": len(placed), "arrangement": arrangement,
        "targets": targets_info, "clutter": clutter, "skeleton": HAND_MSRA21.name,
        "handedness": placed[main].handedness if placed else None, "hand": bool(placed),
    }
    if not placed:
        info["scene"] = "no_hand"
    if only is not None:
        info["solo"] = int(only)
    if cfg.sequence_length > 0:
        info["clip"] = int(index) // cfg.sequence_length
    targets = np.stack(joints) if joints else np.zeros((0, HAND_MSRA21.num_joints, 3), np.float32)
    return Frame(depth, (0, 0), intr, size, joints[main] if placed else nan, info, targets=targets)
