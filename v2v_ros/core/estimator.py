"""PoseEstimator: depth image -> 3D keypoints. The one pipeline the node, the bag
evaluator, the benchmarks and the evaluation CLI all call, so they cannot disagree.

Stages (timed per call): input check -> hand localisation (depth band + CoM, then the
optional refinement CNN) -> hand-presence check (optional classifier, core.presence: a cube
without a hand ends here as an invalid result, reason "no_hand") -> crop to the cube's image
footprint -> back-projection -> voxelisation -> V2V-PoseNet -> heatmap decoding. Units: mm and
pixels throughout.
"""

from __future__ import annotations

import functools
import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Container, Sequence

import numpy as np
import torch

from v2v_ros.core.arrays import cupy_available, to_numpy, to_torch
from v2v_ros.core.camera import Intrinsics, cube_footprint
from v2v_ros.core.checkpoint import CheckpointError, ModelMeta, build_model, load_checkpoint
from v2v_ros.core.depth_decode import check_depth_units
from v2v_ros.core.detector import Detector
from v2v_ros.core.handedness import NUM_HAND_JOINTS, pose_side
from v2v_ros.core.inference import (
    BACKENDS,
    PRECISIONS,
    CalibrationSource,
    Engine,
    fold_batchnorm,
    make_engine,
    resolve_precision,
)
from v2v_ros.core.localize import BodyLocalizer, Localizer, localizer_for
from v2v_ros.core.model import input_channels
from v2v_ros.core.presence import NO_HAND, Presence
from v2v_ros.core.refiner import Refiner
from v2v_ros.core.separator import Separator
from v2v_ros.core.voxel import OTHER_TARGETS_CHANNEL, VoxelGrid, removed_depth

# A refiner maps (depth mm, intrinsics, initial centre mm) -> refined centre mm.
RefineFn = Callable[[np.ndarray, Intrinsics, np.ndarray], np.ndarray]

# Candidate verification (PoseEstimator._estimate_verified); v2v_ros.ros.params repeats these defaults.
DEFAULT_HYPOTHESES = 8  # held-out synthetic hands, independent frames: 1 -> 25.05 mm, 3 -> 13.47, 8 -> 10.56
DEFAULT_VERIFY_BELOW = 0.7
VERIFY_ROUND = 2  # rival candidates estimated per batched forward (PoseEstimator._estimate_verified)
MAX_PIXELS = 4096 * 4096  # larger "images" are rejected rather than allocated
# Several targets per frame (PoseEstimator.estimate_all); v2v_ros.ros.params repeats the default.
DEFAULT_MAX_TARGETS = 2  # two hands (of one person); each target costs one cube in the batched forward
DUPLICATE_MM = 60.0  # two cube centres (or joint means) closer than this are one target: less than a hand's width
DUPLICATE_CUBE_FRACTION = 0.2  # ... or than this share of the cube (bodies, 2 m cube: 400 mm, less than between people)
# Without a presence classifier (bodies) a candidate's pose is a target only when at least this confident
# (synthetic rooms with 1-3 people, validation seed 79: people's poses 0.67-0.93, other objects' mostly 0.16-0.56)
MIN_TARGET_SCORE = 0.6
RECENTRE_MM = 10.0  # a detected target whose pose's joint mean is farther than this from its cube centre is redone there
DUPLICATE_JOINTS_MM = 25.0  # two poses whose joints are this close on average are one target
NEAR_HAND_MM = 250.0  # a candidate the presence classifier doubts this close to a found hand is asked again
SECOND_CHANCE_SCORE = 0.4  # only a pose at least this confident (the trackers' bar) hides its hand's pixels
HAND_MASK_MM = 22.0  # pixels this close to a found hand's joints and bones are hidden from that second question
SEPARATE_KEEP = 1.0  # the pose estimated without the other hands replaces the first when at least as confident (validation seed 78: taking it always was worse)
# ... in rounds: the second masks each hand with the other's pose from the first round, better than the pose
# it had with both hands in its cube (validation seeds 78 and 86, two hands: 12.64 against 13.19 mm and 12.80
# against 13.24 mm, touching 17.20 against 18.61 and 16.95 against 18.13; 370 and 713 against 370 and 712
# hands found).
SEPARATE_ROUNDS = 2
OWN_HAND_CHECK_MM = 150.0  # second poses this close to a kept one are checked for being that hand (seen: 73-97 mm)
# A hand the "one more look" finds on the image without the found hands' pixels is kept at this confidence:
# a cube on what the mask left of a found hand (its forearm, a finger the mask missed) or on clutter still
# gives a pose, a less confident one (validation seeds 78, 80 and the same hands alone: such poses were
# 0.46-0.55, 29 poses on a hand 0.51-0.81; 0.45: 29 hands and 6 false targets, 0.55: 24 and 1, 0.6: 22 and 0)
MASKED_POSE_SCORE = 0.55
# The one more look keeps its poses from a lower bar, but not a pose centred on a found hand's wrist: what
# the mask leaves of that hand is its forearm, and a cube there gives a hand around the wrist (validation
# seeds 78, 86, 80 and the same hands alone, seeds 78 and 85, every look pose from 0.40 logged: 25 of the 29
# poses on no hand were centred 6-38 mm from a found hand's wrist; of the 84 on a hand the batch had missed,
# one was 38 mm from it (279 mm from the camera), the others 58 mm or more; 2026-12-07, the hand model's
# stage-3 weights). What the look does: docs/multi_target.md ("One more look").
LOOK_POSE_SCORE = 0.45
FOREARM_MM = 45.0
# Without a tracker, a hand after the most confident one is a target only from this confidence: that is
# where false targets are (validation seeds 78, 80 and the same hands alone: 10 of 11 false targets were
# a second target, at 0.16-0.54; of 211 second targets on a hand the least confident was at 0.33). A
# tracker applies its own bar to every target (tracking.min_score, 0.4), and since the 40³ hand_fast
# model the same 0.4 is the bar here too (validation seeds 78, 86, 80 and the same hands alone, false
# targets and hands found against 0.3: hand_default 10 and 1693 against 13 and 1694, hand_fast in int8
# 12 and 1696 against 16 and 1698; 0.5 left hand_fast 7 false targets but 11 fewer hands).
SECOND_TARGET_SCORE = 0.4
# Two touching hands often give one pose between them (the refiner pulls both hands' cubes towards the
# middle and each cube mixes the hands): the classifier's candidates sharing that pose's cube are then tried
# in pairs, each cube first without the pixels nearer the other candidate (PoseEstimator._split_pair).
PAIR_CANDIDATES = 3  # at most this many candidates, 3 pairs, two batched forwards for all of them
PAIR_SPLIT_MM = 120.0  # only pixels this close to the other candidate are given to it (a hand's length)
# A pair replaces the one pose only when its more confident pose is at least about as confident as that pose:
# on a single hand the split's poses of its parts are distinct and can pass MASKED_POSE_SCORE, but they are
# less confident than the hand's own pose (same hands alone, seed 901: 0.56-0.61 against 0.86), where two
# touching hands' mixed pose is less confident than the better of their separated poses.
PAIR_MARGIN = 0.05
# ... and is tried only on a pose less confident than this: touching hands' one pose was under it on every
# frame where the split gave two poses (validation seed 78: 15 frames, 6 of them from 0.8), while on a single
# hand, where the classifier often passes two candidates (palm, fingers), each try costs two forwards of two
# cubes or more and splits nothing (the same hands alone, seed 78: 166 tries in 400 frames, 90 under 0.85).
SPLIT_BELOW = 0.85
# A pair's first poses (each candidate's cube without the other's side) go on to the second forward only
# when they are two hands: both at least this confident and their joints this far apart on average. On
# the validation frames every pair that split had both first poses from 0.42 and joints from 92 mm apart,
# while on single hands most pairs' first poses were weaker or the same hand (seeds 78 and 86, two hands;
# 78 and 85 alone).
PAIR_FIRST_SCORE = 0.35
PAIR_FIRST_JOINTS_MM = 80.0
# Candidates the classifier scored from this up to its threshold are refined and asked again
# (PoseEstimator._doubted); 0.05 found the same hands with the same false targets on the validation frames
# (seed 78, the same hands alone, 0-2 hands of seed 80) and refines more candidates.
DOUBTED_PRESENCE = 0.2
# A doubted candidate the classifier still doubts once refined, away from every found hand, is estimated
# anyway and kept from this confidence (PoseEstimator._doubted_poses): some hands scored 0.24-0.89 there.
# Validation seeds 78, 86, 80, the same hands alone (seed 78) and 1000 hand-free frames (seed 29), every
# such candidate's pose logged: the 7 on a hand nothing had found scored 0.66-0.86, those on no hand at
# most 0.53 (hand-free) and 0.69 (68 mm from a found hand). The one more look poses the candidates the
# classifier doubts on its masked image too, with the same bar (seeds 78, 86, 80 and 78 alone logged: 6 on
# a hand nothing had found at 0.62-0.82; on no hand, away from a found wrist, at most 0.47).
DOUBTED_POSE_SCORE = 0.6
SEARCH_PEAKS = 16  # detector peaks placed in 3D when looking for every target (cheap: no network)
REFINE_TRUST_MM = 50.0  # a refinement moving a peak farther than this went to another hand: the peak stays


@dataclass
class PoseResult:
    """Keypoints of one target in the camera frame (mm) with their provenance."""

    joints: np.ndarray  # (J, 3) mm
    confidence: np.ndarray  # (J,) peak heatmap values, clipped to [0, 1]
    reference_point: np.ndarray  # (3,) mm, centre of the voxelised cube
    joint_names: tuple[str, ...]
    skeleton: str
    cube_size: float  # mm
    valid: bool
    reason: str = ""  # why the result is invalid (empty when valid)
    timings: dict[str, float] = field(default_factory=dict)  # ms per stage
    points_in_cube: int = 0
    tracked: bool = False  # cube centred on the previous frame's estimate (core.tracking), not a detection
    candidates: int = 1  # cube centres estimated for this frame (> 1: the first was doubted and verified)
    presence: float = float("nan")  # hand-presence probability of the cube (NaN: no presence classifier ran)
    # "left" / "right" from the pose's chirality (core.handedness), "" for bodies and invalid results
    handedness: str = ""
    handedness_confidence: float = 0.0  # in [0.5, 1] when handedness is set
    track_id: int = -1  # identity given by a multi-target tracker (core.tracking.MultiTracker); -1: none

    @property
    def score(self) -> float:
        """Mean keypoint confidence (0 for invalid results)."""
        return float(self.confidence.mean()) if self.valid and self.confidence.size else 0.0


def check_depth(depth_mm: Any) -> np.ndarray:
    """Validate a depth image and return it as float32 mm with invalid pixels = 0.

    Raises ValueError naming the problem for wrong types, shapes and sizes; NaN,
    inf and negative depths are not errors, they are invalid pixels.
    """
    if not isinstance(depth_mm, np.ndarray):
        raise ValueError(f"depth must be a numpy array, got {type(depth_mm).__name__}")
    if depth_mm.ndim != 2:
        raise ValueError(f"depth must be 2-D (H, W), got shape {depth_mm.shape}")
    if depth_mm.size == 0:
        raise ValueError(f"depth is empty, shape {depth_mm.shape}")
    if depth_mm.size > MAX_PIXELS:
        raise ValueError(f"depth has {depth_mm.size} pixels, more than the limit {MAX_PIXELS}")
    if depth_mm.dtype.kind not in "uif" or depth_mm.dtype.itemsize > 8:
        raise ValueError(f"depth dtype must be an unsigned/signed integer or float, got {depth_mm.dtype}")
    depth = depth_mm.astype(np.float32, copy=False)
    if depth_mm.dtype.kind == "f" or depth_mm.dtype.kind == "i":
        # min and max prove the common clean image clean (both are NaN if any pixel is);
        # only a dirty image pays for the element-wise mask and the copy.
        if not (depth.min() >= 0 and depth.max() < np.inf):
            bad = ~np.isfinite(depth) | (depth < 0)
            depth = np.where(bad, np.float32(0), depth)
    return depth


def resolve_device(device: str) -> torch.device:
    """'auto' -> CUDA when available else CPU; anything else is parsed by torch."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    return dev


class PoseEstimator:
    """V2V-PoseNet inference on depth images (mm) with known intrinsics."""

    def __init__(
        self,
        model: torch.nn.Module,
        meta: ModelMeta,
        device: str | torch.device = "cpu",
        localizer: Localizer | BodyLocalizer | None = None,
        refiner: RefineFn | None = None,
        detector: Callable[[np.ndarray, Intrinsics], np.ndarray | None] | None = None,
        min_points: int = 50,
        precision: str = "fp32",
        name: str = "",
        backend: str = "torch",
        hypotheses: int = DEFAULT_HYPOTHESES,
        verify_below: float = DEFAULT_VERIFY_BELOW,
        calibration: np.ndarray | CalibrationSource | None = None,
        presence: Presence | None = None,
        separator: Separator | None = None,
    ) -> None:
        if not isinstance(hypotheses, int) or not 1 <= hypotheses <= 16:
            raise ValueError(f"hypotheses must be an integer in [1, 16], got {hypotheses!r}")
        if not 0.0 <= float(verify_below) <= 1.0:
            raise ValueError(f"verify_below must be in [0, 1], got {verify_below!r}")
        self.meta = meta
        # Candidate centres (detector peaks, body objects) verified by the pose network when
        # the first one looks doubtful (see _estimate_verified); 1 trusts the first alone.
        self.hypotheses = hypotheses
        self.verify_below = float(verify_below)
        self.device = resolve_device(device) if isinstance(device, str) else device
        self.grid = VoxelGrid(meta.cube_size, meta.grid_size, meta.stride)
        self.localizer = localizer or localizer_for(meta)  # bodies: floor/wall removal, hands: depth band
        self.refiner = refiner
        self.detector = detector  # learned whole-image localisation; the localiser is its fallback
        # Hand-presence classifier (core.presence): a cube it judges hand-free gives an invalid result
        # (reason NO_HAND) without reaching the pose network, whatever the pose's confidence would be.
        self.presence = presence
        # Two-hand separator (core.separator): when present, a cube re-posed without the other hands (crowded
        # cubes, split pairs, a tracker's followed hands) loses the pixels it assigns to another hand instead
        # of those near the other hands' poses (without_hands).
        self.separator = separator
        self.min_points = min_points
        # estimate_all: re-estimate each newly detected target in a cube centred on its first pose (one more
        # batched forward on the frames that search for targets; tracked targets never need it)
        self.recentre = True
        # estimate_all: on frames that search, targets whose cubes overlap are estimated again, each without
        # the other hands' pixels (one more forward; followed frames of a tracked stream never pay it)
        self.separate = True
        # int8 calibration volumes, or a source called with (grid, cube mm, skeleton) when int8 is built;
        # the caller's (e.g. v2v_ros.data.calibration.synthetic_calibration_source): the core renders nothing.
        self.calibration = calibration
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        self._backend = backend
        self.precision = precision
        self.name = name
        self.model = model.to(self.device).eval()
        # GPU voxelisation (CuPy -> DLPack -> torch, no copy) when the whole forward is on CUDA.
        self.gpu_voxels = self.device.type == "cuda" and backend == "torch" and cupy_available()

    # -- inference engine (core.inference): rebuilt lazily when model/precision/backend change --
    @property
    def precision(self) -> str:
        return self._precision

    @precision.setter
    def precision(self, value: str) -> None:
        value = resolve_precision(value, self.device)  # "auto": bf16 where the hardware does it natively
        if value not in PRECISIONS:
            raise ValueError(f"precision must be auto or one of {', '.join(PRECISIONS)}, got {value!r}")
        self._precision = value
        self._engine = None

    @property
    def backend(self) -> str:
        return self._backend

    @property
    def model(self) -> torch.nn.Module:
        return self._model

    @model.setter
    def model(self, value: torch.nn.Module) -> None:
        self._model = value
        self._engine = None

    @property
    def engine(self) -> Engine:
        """The forward engine (BN folded, oneDNN/cuDNN, precision, CUDA graphs), built on first use."""
        if self._engine is None:
            calib = self.calibration
            if callable(calib):  # a CalibrationSource: volumes for this model's grid, cube and skeleton
                calib = functools.partial(calib, self.meta.grid_size, self.meta.cube_size, self.meta.skeleton)
                if self.meta.input_channels > 1:  # (one-channel sources need not know the argument)
                    calib = functools.partial(calib, channels=self.meta.input_channels)
            self._engine = make_engine(self._model, self.device, self._precision, self._backend,
                                       grid_size=self.meta.grid_size, calibration=calib)
        return self._engine

    @classmethod
    def load(
        cls,
        path: str | Path | Sequence[str | Path],
        device: str = "auto",
        refiner: str | Path | bool = "auto",
        detector: str | Path | bool = "auto",
        presence: str | Path | bool = "auto",
        separator: str | Path | bool = "auto",
        **kwargs: Any,
    ) -> "PoseEstimator":
        """Load a checkpoint (``x.safetensors`` + ``x.json``); fails loudly if anything is off.

        Several paths make an epoch ensemble (paper Table 2): their coordinates are
        averaged, computed in one batched (vmapped) forward. ``refiner``: ``"auto"``
        uses ``x.refiner.safetensors`` when it exists, ``True`` requires it, ``False``
        disables it, a path names another file; ``detector`` (``x.detector.safetensors``,
        the whole-image hand detector) and ``presence`` (``x.presence.safetensors``, the
        hand-presence classifier, :mod:`v2v_ros.core.presence`) and ``separator``
        (``x.separator.safetensors``, the two-hand separator, :mod:`v2v_ros.core.separator`)
        work the same way. ``precision`` (fp32/bf16/fp16/int8)
        and ``backend`` (torch/onnxruntime) choose the inference engine
        (``core.inference``); other keyword arguments go to the constructor.
        """
        paths = [path] if isinstance(path, (str, Path)) else list(path)
        if not paths:
            raise ValueError("no checkpoint given")
        models, meta = [], None
        for p in paths:
            state, m = load_checkpoint(p)
            if meta is not None and (m.joint_names, m.grid_size, m.cube_size, m.input_channels) != (
                meta.joint_names, meta.grid_size, meta.cube_size, meta.input_channels
            ):
                raise CheckpointError(f"{p}: ensemble members must share joints, grid_size, cube_size and "
                                      "input_channels")
            meta = meta or m
            models.append(build_model(state, m, str(p)))
        dev = resolve_device(device)
        # Ensemble members get BN folded before stacking (the vmapped forward runs eagerly).
        model = models[0] if len(models) == 1 else EnsembleNet([fold_batchnorm(m).to(dev) for m in models])
        ref = _companion(Refiner, paths[0], refiner, dev, meta.companions)
        det = _companion(Detector, paths[0], detector, dev, meta.companions)
        pres = _companion(Presence, paths[0], presence, dev, meta.companions)
        sep = _companion(Separator, paths[0], separator, dev, meta.companions)
        name = Path(paths[0]).stem + (f"+{len(paths) - 1}" if len(paths) > 1 else "")
        return cls(model, meta, device=dev, refiner=ref, detector=det, presence=pres, separator=sep, name=name,
                   **kwargs)

    @property
    def joint_names(self) -> tuple[str, ...]:
        return tuple(self.meta.joint_names)

    # -- public API --------------------------------------------------------------------
    def estimate(self, depth_mm: np.ndarray, intrinsics: Intrinsics, reference_point: Any = None,
                 prior: Any = None) -> PoseResult:
        """Keypoints of the target nearest the camera (or in the cube at ``reference_point``).

        ``prior`` (3,) mm, optional: where context says the target is (the tracker's last
        estimate when it re-detects). The detector still has the first word; the prior is
        the first rival tried if that detection is doubtful (see :meth:`_estimate_verified`).
        """
        if reference_point is None and self.hypotheses > 1 and hasattr(self._hypothesis_source, "hypotheses"):
            return self._estimate_verified(depth_mm, intrinsics, None if prior is None else _check_point(prior, "prior"))
        refs = None if reference_point is None else [reference_point]
        return self.estimate_many(depth_mm, intrinsics, refs)[0]

    @property
    def _hypothesis_source(self) -> Any:
        """What proposes target centres: the learned detector when there is one, else the localiser."""
        return self.detector if self.detector is not None else self.localizer

    def _estimate_verified(self, depth_mm: np.ndarray, intrinsics: Intrinsics,
                           prior: np.ndarray | None = None) -> PoseResult:
        """Candidate centres checked by the pose network itself: the most confident pose wins.

        Why: on independent frames most of the mean error comes from the few per cent
        where the first candidate is a distractor (held-out synthetic hands: 3 % of the
        frames, over half of the error; bodies: a cabinet instead of the person). The
        pose network's heatmaps are sharp on its target and flat elsewhere, so its mean
        confidence tells them apart. The first candidate (the detector's best peak, the
        body localiser's person) is estimated alone; only when its confidence is below
        ``verify_below`` are the next ones refined and estimated, two per batched forward,
        until one is confident or ``hypotheses`` have been tried; confident frames cost
        nothing extra. A ``prior`` centre is the first rival, so a re-detection that lands
        on a distractor falls back to the followed target in one round.
        """
        timings: dict[str, float] = {}  # one dict for the frame: every round adds its cost
        depth = self._checked(depth_mm, intrinsics, timings)
        t = time.perf_counter()
        source = self._hypothesis_source
        proposals = source.hypotheses(depth, intrinsics, self.hypotheses)
        first = next(proposals, None)
        if first is None and source is not self.localizer:  # nothing for the detector: the localiser decides
            first = self.localizer.locate(depth, intrinsics)
        _lap(timings, "localize", t)
        if first is None:
            return self._invalid(np.full(3, np.nan), "no valid depth to localise a target", timings)
        best = self._estimate_cubes(depth, intrinsics, [self._refined(depth, intrinsics, first, timings)], timings)[0]
        tried = 1
        if prior is not None:  # the first rival; refined like the others (the refiner is trained on jittered centres)
            proposals = itertools.chain([prior], proposals)
        # Rivals in rounds of two (one batched forward each) until a pose is confident: a
        # frame with one distractor pays one round, a cluttered one keeps looking.
        while best.score < self.verify_below:
            t = time.perf_counter()
            found = list(itertools.islice(proposals, VERIFY_ROUND))
            _lap(timings, "localize", t)
            if not found:
                break
            rivals = self._estimate_cubes(depth, intrinsics, [self._refined(depth, intrinsics, c, timings)
                                                              for c in found], timings)
            tried += len(found)
            best = max([best, *rivals], key=lambda r: r.score)  # ties keep the proposal order
        timings["total"] = sum(v for k, v in timings.items() if k != "total")  # the last look for rivals too
        best.candidates = tried
        return best

    def _refined(self, depth: np.ndarray, intrinsics: Intrinsics, center: np.ndarray,
                 timings: dict[str, float]) -> np.ndarray:
        """``center`` moved by the refinement CNN when there is one (timed as 'refine')."""
        if self.refiner is None:
            return np.asarray(center, dtype=np.float64)
        t = time.perf_counter()
        out = np.asarray(self.refiner(depth, intrinsics, center), dtype=np.float64)
        _lap(timings, "refine", t)
        return out

    def estimate_many(
        self, depth_mm: np.ndarray, intrinsics: Intrinsics, reference_points: Sequence[Any] | None = None,
        full_mm: np.ndarray | None = None,
    ) -> list[PoseResult]:
        """Several targets of one frame in ONE batched forward (cheaper than k calls).

        ``full_mm``: the image ``depth_mm`` was made from by zeroing another target's pixels, when it
        was; a model with two input channels then sees those pixels in its second channel.
        """
        timings: dict[str, float] = {}
        depth = self._checked(depth_mm, intrinsics, timings)
        full = None if full_mm is None else self._checked(full_mm, intrinsics, {})
        if full is not None and full.shape != depth.shape:
            raise ValueError(f"full_mm has shape {full.shape}, depth_mm {depth.shape}: expected the same image")
        if reference_points is None:
            t = time.perf_counter()
            center = self.detector(depth, intrinsics) if self.detector is not None else None
            if center is None:
                center = self.localizer.locate(depth, intrinsics)
            _lap(timings, "localize", t)
            if center is None:
                return [self._invalid(np.full(3, np.nan), "no valid depth to localise a target", timings)]
            centers = [self._refined(depth, intrinsics, center, timings)]
        else:
            centers = [_check_point(p) for p in reference_points]
            if not centers:
                return []
        return self._estimate_cubes(depth, intrinsics, centers, timings, full=full)

    def estimate_all(self, depth_mm: np.ndarray, intrinsics: Intrinsics, max_targets: int = DEFAULT_MAX_TARGETS,
                     priors: Sequence[Any] = (), search: bool = True, one_at_a_time: bool = False,
                     prior_poses: Sequence[Any] = ()) -> list[PoseResult]:
        """Every target in view (at most ``max_targets``), each from its own cube, all in ONE batched forward.

        Candidates: the ``priors`` first (cube centres a tracker followed from the previous frame,
        used as they are), then, with ``search``, the detector's peaks (the body localiser's objects)
        best first. A peak within :data:`DUPLICATE_MM` of a kept or rejected candidate is the same
        object and is skipped before anything is spent on it; the others are refined and, with a
        presence classifier, kept only when it sees a hand there (the classifier, not the pose
        network's confidence, is what tells a second hand from a cup: the pose network finds a
        pose in any cube). Refined centres that converge onto a kept one are dropped too. The
        kept cubes go through the pose network together; poses whose joint means are closer than
        DUPLICATE_MM, or whose joints overlap (mean distance < DUPLICATE_JOINTS_MM), are one
        target and the more confident one stays. Returns the valid results, most confident first
        (an empty list: nothing found); their ``timings`` (one dict) hold the frame's whole cost.

        With presence and priors (a tracker following some targets) or ``one_at_a_time`` (a tracker
        acquiring), hands are searched one at a time instead: the followed cubes, or the first
        candidate alone, go through the network first, and the other candidates are then checked on
        the image without those hands' pixels, so only another hand gets a cube. A search then costs
        about one cube per hand in view instead of twice ``max_targets`` (with one hand in view and
        ``max_targets`` 2 on a CPU: about the cost of a followed frame), at the price of a little
        recall on hands touching the first one (validation seed 78, independent two-hand frames:
        88.3 % against 89.4 %): a stream searches again a few frames later, an independent frame
        does not, so the batch is the default for frames without a tracker. With ``one_at_a_time`` a
        prior the presence classifier turns down (its hand moved away or left) also makes the frame
        search, as the single-target tracker re-acquires in the frame that lost its target.

        Without a tracker the batch also refines the candidates the classifier doubted and asks again
        (:meth:`_doubted`), keeps the confident poses of those it still doubts away from the found
        hands (:meth:`_doubted_poses`), and one pose found where the classifier passed two candidates
        may be two touching hands, which :meth:`_split_pair` separates.

        ``prior_poses`` (a tracker's predicted pose of each prior, aligned with ``priors``): each
        followed cube that holds another followed hand is voxelised without that hand's pixels, in
        the same forward (:meth:`_followed`).

        Why not ``estimate`` in a loop: each call would run the detector again and its own
        forward; here the detector runs once, priors skip it entirely when ``search`` is off, and
        the network sees all cubes in one batch (on a GPU two cubes cost far less than twice one).
        """
        if not isinstance(max_targets, int) or not 1 <= max_targets <= 16:
            raise ValueError(f"max_targets must be an integer in [1, 16], got {max_targets!r}")
        timings: dict[str, float] = {}
        depth = self._checked(depth_mm, intrinsics, timings)
        kept = [_check_point(p, "prior") for p in priors][:max_targets]
        poses = list(prior_poses)[: len(kept)] if len(prior_poses) == len(priors) else []
        probs = [float("nan")] * len(kept)
        seen: list[np.ndarray] = []  # the image each followed cube is seen on (_followed_images), once checked
        rejected: list[np.ndarray] = []  # turned down by the presence classifier (asked again below)
        if kept and self.presence is not None:  # a followed cube that lost its hand is no target any more
            # Each followed cube is checked on the image its pose will be estimated on (without the other
            # followed hands' predicted pixels, _followed): the classifier learnt one hand per crop and
            # turns down a hand half hidden behind another, which then cost a search and three more cubes.
            images = self._followed_images(depth, intrinsics, kept, poses, timings)
            t = time.perf_counter()
            probs = [float(p) for p in self.presence(images, intrinsics, kept)]
            _lap(timings, "presence", t)
            here = [i for i, p in enumerate(probs) if p >= self.presence.threshold]
            rejected = [kept[i] for i in range(len(kept)) if i not in here]
            kept, probs = [kept[i] for i in here], [probs[i] for i in here]
            poses = [poses[i] for i in here] if poses else []
            # the masks hold for the forward only while every followed hand stays (else _followed redraws them)
            seen = images if len(here) == len(images) else []
        n_priors = len(kept)  # followed cubes: centred on last frame's joint mean already
        # A followed cube without its hand (it moved away, or a new scene): look for the targets in this
        # frame rather than the next, as the single-target tracker re-acquires (the refused cube cost
        # no pose forward).
        search = search or (self.presence is not None and len(rejected) > 0 and one_at_a_time)
        results: list[PoseResult] = []
        accepted: list[tuple[np.ndarray, float]] = []  # the batch's candidates the classifier passed, as detected
        doubted: list[tuple[np.ndarray, float]] = []  # ... and those it doubted even once refined (refined centres)
        if search and len(kept) < max_targets:
            candidates = self._candidates(depth, intrinsics, max_targets, kept, timings)
            if self.presence is None or not (kept or one_at_a_time):
                rejected += self._search(depth, intrinsics, candidates, 2 * max_targets - len(kept), kept, probs,
                                         timings, accepted=accepted, doubt=True, doubted=doubted)
            else:
                # One hand at a time: the most likely hand first (or the followed ones), then the others on
                # the image without its pixels, so a peak on its fingers or forearm costs no cube (_search).
                first: list[np.ndarray] = []
                if not kept:
                    first = self._search(depth, intrinsics, candidates, 1, kept, probs, timings)
                results = self._followed(depth, intrinsics, kept, poses, timings, seen) if kept else []
                hidden = [r.joints for r in results if r.valid and r.score >= SECOND_CHANCE_SCORE]
                rest = [c for c in candidates if all(np.linalg.norm(c - k) >= self._duplicate_mm for k in kept)]
                if hidden and rest and len(kept) < max_targets:
                    masked = _timed_without_hands(depth, intrinsics, hidden, timings)
                    self._search(depth, intrinsics, rest, max_targets - len(kept), kept, probs, timings, masked)
                else:
                    rejected += first
        if len(kept) > len(results):  # the followed cubes lead ``kept`` while ``results`` is empty
            results += self._followed(depth, intrinsics, kept[len(results):], [] if results else poses, timings,
                                      [] if results else seen)
        for p, r in zip(probs, results, strict=True):
            r.presence = p
        # Second batch, one forward: (a) newly detected targets re-estimated in a cube centred on their
        # first pose (a detected centre is only roughly on its hand, more so with two hands close
        # together; not for a tracker, one_at_a_time, which centres the next frame's cube there anyway);
        # (b) candidates the presence classifier turned down next to a found hand, asked again with that
        # hand's pixels removed: it learnt one hand per crop, and a second hand in front of or touching
        # the first makes it doubt both.
        recentre = self.recentre and not one_at_a_time
        again = [i for i, r in enumerate(results) if i >= n_priors and r.valid
                 and np.linalg.norm(r.joints.mean(axis=0) - kept[i]) > RECENTRE_MM] if recentre else []
        second = self._second_chance(depth, intrinsics, rejected, results, timings) if rejected else []
        centres = [results[i].joints.mean(axis=0) for i in again] + [c for c, _ in second]
        if centres:
            redo = self._estimate_cubes(depth, intrinsics, centres, timings, check_presence=False)
            for i, r in zip(again, redo, strict=False):
                if r.valid and r.score >= results[i].score:
                    r.presence = results[i].presence
                    results[i] = r
            for (_, p), r in zip(second, redo[len(again):], strict=True):
                r.presence = p
                results.append(r)
        floor = MIN_TARGET_SCORE if self.presence is None else 0.0
        found = _distinct(sorted((r for r in results if r.valid and r.score >= floor), key=lambda r: -r.score),
                          self._duplicate_mm)
        found = self._own_hands(depth, intrinsics, found, timings)[:max_targets]
        if (len(found) == 1 < max_targets and len(accepted) > 1 and len(found[0].joints) == NUM_HAND_JOINTS
                and found[0].score < SPLIT_BELOW):
            found = self._split_pair(depth, intrinsics, found, accepted, timings)
        if doubted and len(found) < max_targets:
            found = self._doubted_poses(depth, intrinsics, max_targets, found, doubted, timings)
        if search and not one_at_a_time and 0 < len(found) < max_targets:
            found = self._one_more_look(depth, intrinsics, max_targets, found, timings)
        # Crowded cubes, on frames that search (bodies: no, the masks are drawn for hands). A tracker
        # (one_at_a_time) redoes only the targets new in this frame: followed frames never pay it, and a
        # search frame costing four cubes on a CPU that cannot keep up makes the next frame late, a search.
        if self.separate and search and len(found) > 1 and len(found[0].joints) == NUM_HAND_JOINTS:
            followed = {id(r) for r in results[:n_priors]} if one_at_a_time else set()
            found = self._separated(depth, intrinsics, found, timings, skip=followed)
        if not one_at_a_time and self.presence is not None:
            found = found[:1] + [r for r in found[1:] if r.score >= SECOND_TARGET_SCORE]
        timings["total"] = sum(v for k, v in timings.items() if k != "total")
        return found

    @property
    def _duplicate_mm(self) -> float:
        """Distance under which two centres are one target: a hand's width, or a share of a large cube."""
        return max(DUPLICATE_MM, DUPLICATE_CUBE_FRACTION * float(self.grid.cube_size))

    def _candidates(self, depth: np.ndarray, intrinsics: Intrinsics, max_targets: int, kept: list[np.ndarray],
                    timings: dict[str, float]) -> list[np.ndarray]:
        """Where new targets may be (mm, best first): the detector's peaks placed in 3D, one per ball.

        Why many: a near hand lights up several detector peaks a hand width apart (over its palm,
        fingers and forearm), so the best peaks can all lie on one hand and hide the second. The
        peaks are thinned to one per :data:`DUPLICATE_MM` ball, away from the ``kept`` centres.
        """
        t = time.perf_counter()
        source = self._hypothesis_source
        if isinstance(source, Detector):
            peaks = source.peaks(depth, SEARCH_PEAKS)
            raw = (source.center(depth, intrinsics, peaks, i) for i in range(len(peaks.cells)))
        elif hasattr(source, "hypotheses"):
            raw = source.hypotheses(depth, intrinsics, max(self.hypotheses, 2 * max_targets))
        else:
            raw = iter([source.locate(depth, intrinsics)])
        found: list[np.ndarray] = []
        for c in raw:
            if c is None or not np.all(np.isfinite(c)) or c[2] <= 0:
                continue
            c = np.asarray(c, np.float64)
            if all(np.linalg.norm(c - o) >= self._duplicate_mm for o in [*kept, *found]):
                found.append(c)
        if not found and not kept and source is not self.localizer:  # nothing for the detector: the localiser
            c = self.localizer.locate(depth, intrinsics)
            found = [] if c is None else [np.asarray(c, np.float64)]
        _lap(timings, "localize", t)
        return found

    def _search(self, depth: np.ndarray, intrinsics: Intrinsics, candidates: list[np.ndarray], budget: int,
                kept: list[np.ndarray], probs: list[float], timings: dict[str, float],
                masked: np.ndarray | None = None, accepted: list[tuple[np.ndarray, float]] | None = None,
                doubt: bool = False, doubted: list[tuple[np.ndarray, float]] | None = None) -> list[np.ndarray]:
        """Add at most ``budget`` of the ``candidates`` to ``kept`` (refined), those with a hand at them.

        The presence classifier checks the candidates in one batch; the survivors, in the detector's
        order, are refined and go to the pose network (with a budget of twice the targets, its poses
        then settle which are distinct hands). Returns the candidates it turned down.

        With ``masked`` (the image without the pixels of the hands already found in this frame,
        :func:`without_hands`) the classifier looks at that image: the peaks on a found hand then
        find no hand and only other hands get a cube, the most likely ones first. Candidates turned
        down there have had their second look already: none are returned.

        ``accepted`` receives (candidate as detected, probability) of every candidate the classifier
        passed, beyond the budget too (:meth:`_split_pair` starts from them). With ``doubt`` (the
        batch of a frame without a tracker) the candidates it doubted are refined and asked again
        (:meth:`_doubted`); ``doubted`` receives (refined centre, probability) of those it still doubts
        (with ``masked``: the candidates it doubted there, as placed). Both need the classifier.
        """
        t = time.perf_counter()
        found = list(candidates)
        p_found = [float("nan")] * len(found)
        rejected: list[np.ndarray] = []
        if found and self.presence is not None:
            p_found = [float(p) for p in self.presence(depth if masked is None else masked, intrinsics, found)]
            _lap(timings, "presence", t)
            here = [i for i, p in enumerate(p_found) if p >= self.presence.threshold]
            refined: dict[int, np.ndarray] = {}
            if doubt and masked is None:
                for i, (r, q) in self._doubted(depth, intrinsics, found, p_found, timings, doubted).items():
                    refined[i], p_found[i] = r, q
                here = sorted({*here, *refined})
            if masked is not None:
                here.sort(key=lambda i: -p_found[i])
                if doubted is not None:  # not refined: the look poses them where the classifier saw them
                    doubted += [(found[i], p_found[i]) for i in range(len(found))
                                if i not in here and DOUBTED_PRESENCE <= p_found[i]]
            else:
                rejected = [found[i] for i in range(len(found)) if i not in here]
            pre = [refined.get(i) for i in here]
            found, p_found = [found[i] for i in here], [p_found[i] for i in here]
            if accepted is not None:
                accepted += zip(found, p_found, strict=True)
        else:
            pre = [None] * len(found)
        for c, p, r0 in zip(found[: max(0, budget)], p_found, pre, strict=False):
            if r0 is not None:  # refined already (_doubted); a centre that converged onto a kept one is that hand
                if all(np.linalg.norm(r0 - k) >= self._duplicate_mm for k in kept):
                    kept.append(r0)
                    probs.append(p)
                continue
            r = self._refined(depth, intrinsics, c, timings)
            # The refiner was trained on one hand per crop: next to another hand it pulls the centre onto
            # that hand, or between the two. The peak's own centre is then the better start for this one.
            if (not (np.all(np.isfinite(r)) and r[2] > 0) or np.linalg.norm(r - c) > REFINE_TRUST_MM
                    or any(np.linalg.norm(r - k) < self._duplicate_mm for k in kept)):
                r = c
            kept.append(r)
            probs.append(p)
        return rejected

    def _doubted(self, depth: np.ndarray, intrinsics: Intrinsics, candidates: list[np.ndarray], probs: list[float],
                 timings: dict[str, float], still: list[tuple[np.ndarray, float]] | None = None
                 ) -> dict[int, tuple[np.ndarray, float]]:
        """{index: (refined centre, probability there)} of the candidates the classifier doubted (a probability
        in [DOUBTED_PRESENCE, threshold)) and passes once the refiner has centred them.

        Why: the classifier learnt on refined centres (``v2v_ros.train.presence``), while the batch asks
        it about the detector's peaks as placed, which can sit 45-120 mm off their hand: on a hand
        280 mm from the camera (validation seed 78) the peak's depth is the near surface and the hand's
        centre lies deeper, and its two peaks scored 0.44 and 0.33 where their refined centres scored 1.0.
        """
        assert self.presence is not None
        out: dict[int, np.ndarray] = {}
        for i, p in enumerate(probs):
            if DOUBTED_PRESENCE <= p < self.presence.threshold:
                r = np.asarray(self._refined(depth, intrinsics, candidates[i], timings), np.float64)
                if np.all(np.isfinite(r)) and r[2] > 0:
                    out[i] = r
        if not out:
            return {}
        t = time.perf_counter()
        again = self.presence(depth, intrinsics, list(out.values()))
        _lap(timings, "presence", t)
        if still is not None:
            still += [(r, float(q)) for r, q in zip(out.values(), again, strict=True) if q < self.presence.threshold]
        return {i: (r, float(q)) for (i, r), q in zip(out.items(), again, strict=True) if q >= self.presence.threshold}

    def _doubted_poses(self, depth: np.ndarray, intrinsics: Intrinsics, max_targets: int, found: list[PoseResult],
                       doubted: list[tuple[np.ndarray, float]], timings: dict[str, float]) -> list[PoseResult]:
        """``found`` plus the confident poses (:data:`DOUBTED_POSE_SCORE`) at the refined centres the classifier
        still doubted (``doubted``, best first), away from every found hand: one more batched forward.

        Why: the classifier turns down some hands (validation: 0.24-0.89 at their refined centres),
        which no later look asks about again; the pose network poses them confidently, while its
        poses on what the classifier rightly doubted (clutter, an arm) stay low. Within
        :data:`OWN_HAND_CHECK_MM` of a found hand such a pose is most often that hand again, and the
        one more look, which sees the image without it, asks there instead.
        """
        means = [np.asarray(r.joints, np.float64).mean(axis=0) for r in found]
        centres: list[np.ndarray] = []
        probs: list[float] = []
        for c, p in sorted(doubted, key=lambda cp: -cp[1]):
            if all(np.linalg.norm(c - m) >= OWN_HAND_CHECK_MM for m in means) and all(
                    np.linalg.norm(c - o) >= self._duplicate_mm for o in centres):
                centres.append(c)
                probs.append(p)
        centres, probs = centres[: max_targets - len(found)], probs[: max_targets - len(found)]
        if not centres:
            return found
        extra = self._estimate_cubes(depth, intrinsics, centres, timings, check_presence=False)
        for p, r in zip(probs, extra, strict=True):
            r.presence = p
        confident = [r for r in extra if r.valid and r.score >= DOUBTED_POSE_SCORE]
        if not confident:
            return found
        kept = _distinct(sorted([*found, *confident], key=lambda r: -r.score), self._duplicate_mm)
        return self._own_hands(depth, intrinsics, kept, timings)[:max_targets]

    def _separated(self, depth: np.ndarray, intrinsics: Intrinsics, found: list[PoseResult],
                   timings: dict[str, float], skip: Container[int] = frozenset()) -> list[PoseResult]:
        """Targets whose cubes overlap, estimated again (one batched forward) each on an image without the
        other targets' hand pixels; the more confident pose of the two passes is kept. Results whose
        ``id`` is in ``skip`` keep their pose.

        Why: the pose network learnt one hand per cube. With a second hand inside the cube (touching,
        in front, crossing) its heatmaps mix the two; with that hand's pixels removed the cube shows
        what the network knows, a hand with a gap in the background.
        """
        out = list(found)
        for _ in range(SEPARATE_ROUNDS):
            means = [np.asarray(r.joints, np.float64).mean(axis=0) for r in out]
            crowded = [i for i in range(len(out)) if id(out[i]) not in skip and any(
                j != i and self._share_cube(means[i], means[j]) for j in range(len(out)))]
            if not crowded:
                break
            t = time.perf_counter()
            images = self._without_others(depth, intrinsics, [means[i] for i in crowded],
                                          [out[i].joints for i in crowded],
                                          [[out[j].joints for j in range(len(out)) if j != i] for i in crowded])
            _lap(timings, "presence", t)
            redo = self._estimate_cubes(images, intrinsics, [means[i] for i in crowded], timings,  # type: ignore[arg-type]
                                        check_presence=False, full=depth)
            changed = False
            for i, r in zip(crowded, redo, strict=True):
                if r.valid and r.score >= SEPARATE_KEEP * out[i].score:
                    r.presence = out[i].presence
                    out[i], changed = r, True
            if not changed:  # the next round would see the same images and cubes again
                break
        return sorted(out, key=lambda r: -r.score)

    def _split_pair(self, depth: np.ndarray, intrinsics: Intrinsics, found: list[PoseResult],
                    accepted: list[tuple[np.ndarray, float]], timings: dict[str, float]) -> list[PoseResult]:
        """``found`` (one pose), or the two touching hands that pose mixed, each from its own cube.

        Why: with two hands touching, the classifier passes a candidate on each, but the refiner
        (which learnt one hand per crop) pulls both towards the middle and both cubes give one pose
        between the hands, a duplicate of itself: one hand is lost and the other's pose is wrong,
        and masking that pose's pixels hides both hands from every later look. Centred on a hand
        with the other hand's pixels removed, the network poses each well and more confidently.
        The accepted candidates (as detected, not refined) that share the pose's cube are taken in
        pairs: each candidate's cube is first voxelised without the pixels nearer the other
        candidate (:func:`without_nearer`), then each resulting pose's cube again without the
        other pose's hand (:func:`without_hands`), two batched forwards for all pairs (the second
        only for pairs whose first poses may be two hands: :func:`_two_hands`). The pair
        whose weaker pose is the most confident replaces the one pose when both are distinct hands
        and at least :data:`MASKED_POSE_SCORE` confident (poses from masked images: a cube on a
        part of one hand gives a pose too, a less confident one).
        """
        mean = np.asarray(found[0].joints, np.float64).mean(axis=0)
        near = [(c, p) for c, p in accepted if self._share_cube(c, mean)][:PAIR_CANDIDATES]
        pairs = list(itertools.combinations(range(len(near)), 2))
        if not pairs:
            return found
        t = time.perf_counter()
        images = [without_nearer(depth, intrinsics, near[a][0], near[b][0]) for i, j in pairs for a, b in ((i, j), (j, i))]
        _lap(timings, "presence", t)
        first = self._estimate_cubes(images, intrinsics, [near[a][0] for pair in pairs for a in pair], timings,
                                     check_presence=False, full=depth)
        posed = [k for k in range(len(pairs)) if _two_hands(first[2 * k], first[2 * k + 1])]
        if not posed:
            return found
        t = time.perf_counter()
        centres = [first[2 * k + s].joints.mean(axis=0) for k in posed for s in (0, 1)]
        images = self._without_others(depth, intrinsics, centres,
                                      [first[2 * k + s].joints for k in posed for s in (0, 1)],
                                      [[first[2 * k + 1 - s].joints] for k in posed for s in (0, 1)])
        _lap(timings, "presence", t)
        second = self._estimate_cubes(images, intrinsics, centres, timings, check_presence=False, full=depth)
        best: list[PoseResult] = []
        for n, k in enumerate(posed):
            two = second[2 * n: 2 * n + 2]
            if (all(r.valid and r.score >= MASKED_POSE_SCORE for r in two)
                    and max(r.score for r in two) >= found[0].score - PAIR_MARGIN
                    and len(_distinct(two, self._duplicate_mm)) == 2
                    and (not best or min(r.score for r in two) > min(r.score for r in best))):
                for r, a in zip(two, pairs[k], strict=True):
                    r.presence = near[a][1]
                best = two
        return sorted(best, key=lambda r: -r.score) if best else found

    def _share_cube(self, a: np.ndarray, b: np.ndarray) -> bool:
        """Whether cubes centred at ``a`` and ``b`` overlap (each may hold part of the other's hand)."""
        return bool(np.all(np.abs(a - b) < self.grid.cube_size))

    def _followed(self, depth: np.ndarray, intrinsics: Intrinsics, centres: list[np.ndarray],
                  poses: list[Any], timings: dict[str, float], seen: Sequence[np.ndarray] = ()
                  ) -> list[PoseResult]:
        """The cubes at ``centres`` in one forward; each of the first ``len(poses)`` (the followed ones)
        that overlaps another followed cube, or that a nearer followed hand may hide, is voxelised
        without that hand's pixels (:meth:`_followed_images`; ``seen``: those images, already drawn).

        ``poses`` are the tracker's predictions of the followed hands (last pose moved with the
        track), aligned with the first centres. Why: the pose network learnt one hand per cube; a
        second hand inside it (touching, crossing) pulls joints onto that hand, and the tracker
        already knows where that hand is. Removing its predicted pixels costs no cube, unlike
        estimating again on a masked image (:meth:`_separated`). Validation streams (``v2v synth
        --hands 2 --sequence 60 --n 960 --seed 81``, tracked): both hands found in 88.8 % of the
        frames against 84.9 %, error 11.77 against 13.25 mm (touching 8.35 against 11.95), identity
        switches 0 against 6. Restoring the pixels near the cube's own predicted pose found fewer
        hands (seed 79: 870 against 875 of 910); keeping a hand more than 60 mm in front in the cube
        of the one behind it was no better (seed 81: 88.3 %, 12.02 mm).
        """
        images = list(seen[: len(centres)]) if seen else self._followed_images(depth, intrinsics, centres, poses,
                                                                                 timings)
        images += [depth] * (len(centres) - len(images))
        return self._estimate_cubes(images, intrinsics, centres, timings,  # type: ignore[arg-type]
                                    check_presence=False, full=depth)

    def _followed_images(self, depth: np.ndarray, intrinsics: Intrinsics, centres: list[np.ndarray],
                         poses: list[Any], timings: dict[str, float]) -> list[np.ndarray]:
        """The image each cube at ``centres`` is seen on: for each of the first ``len(poses)`` (followed)
        cubes, ``depth`` without the predicted pixels of the other followed hands that share its cube
        or may hide part of it (:meth:`_hides`).

        Only hands (21 joints) are masked; bodies and single cubes see ``depth`` itself. The masks are
        timed as 'presence' (they serve the same purpose as the classifier's masks).
        """
        if len(poses) < 2 or len(np.asarray(poses[0])) != NUM_HAND_JOINTS:
            return [depth] * len(centres)
        t = time.perf_counter()
        images: list[np.ndarray] = [depth] * len(centres)
        others = {i: [poses[j] for j in range(len(poses)) if j != i and (
            self._share_cube(centres[i], centres[j]) or self._hides(intrinsics, centres[j], centres[i]))]
            for i in range(min(len(centres), len(poses)))}
        masked = [i for i, o in others.items() if o]
        for i, image in zip(masked, self._without_others(depth, intrinsics, [centres[i] for i in masked],
                                                         [poses[i] for i in masked], [others[i] for i in masked]),
                            strict=True):
            images[i] = image
        _lap(timings, "presence", t)
        return images

    def _without_others(self, depth: np.ndarray, intrinsics: Intrinsics, centres: Sequence[np.ndarray],
                        own: Sequence[np.ndarray], others: Sequence[Sequence[np.ndarray]]) -> list[np.ndarray]:
        """For each cube at ``centres``, ``depth`` without the other hands' pixels: those the separator
        assigns to another hand than the cube's own (one batch for all cubes; it sees the cube's own pose
        ``own`` and the other hands' poses ``others`` too), or without one, those near the other hands'
        poses (:func:`without_hands`). The separator draws hand poses: other skeletons keep the latter."""
        if self.separator is not None and len(centres) and len(np.asarray(own[0])) == NUM_HAND_JOINTS:
            return self.separator(depth, intrinsics, list(centres), list(own), list(others))
        return [without_hands(depth, intrinsics, o) for o in others]

    def _hides(self, intrinsics: Intrinsics, front: np.ndarray, back: np.ndarray) -> bool:
        """Whether a hand at ``front`` may hide part of the one at ``back`` from the camera: nearer, and
        its centre less than a cube's width (at the back hand's depth) from the back one's in the image.

        Why besides :meth:`_share_cube`: a hand held well in front of the other (more than a cube
        apart in depth) is outside the back cube's voxels, but the hole it leaves in the back hand
        made the presence classifier turn that hand down (synthetic occluding frames, seed 21: 0.0-0.2
        on the image, 0.9-1.0 without the front hand's pixels).
        """
        if not 0 < float(front[2]) < float(back[2]):
            return False
        (uf, vf), (ub, vb, zb) = intrinsics.to_uvd(front)[:2], intrinsics.to_uvd(back)
        width = self.grid.cube_size / zb
        return bool(abs(uf - ub) < abs(intrinsics.fx) * width and abs(vf - vb) < abs(intrinsics.fy) * width)

    def _one_more_look(self, depth: np.ndarray, intrinsics: Intrinsics, max_targets: int,
                       found: list[PoseResult], timings: dict[str, float]) -> list[PoseResult]:
        """``found`` plus the hands the batch missed: the other candidates checked again on the image
        without the found hands' pixels, the most likely ones estimated there (one more forward).

        Why: the presence classifier learnt one hand per crop and doubts a hand that touches or
        hides part of another; without the found hand's pixels it sees the second one. The
        second chance above asks again only about candidates it turned down near a found hand;
        this looks at every remaining candidate, ranked. Independent two-hand frames of the
        validation split (seed 78): both hands found in 85.4 % against 78.4 % of the frames.
        Hands only: the classifier and the masks are drawn for hands.

        When fewer candidates pass than hands are missing, the ones it doubted there (from
        :data:`DOUBTED_PRESENCE`) get the remaining cubes of the same forward, their poses kept from
        :data:`DOUBTED_POSE_SCORE`: a hand half hidden behind the found one scored 0.38-0.88 at the
        detector's peaks on the masked image and up to 1.0 at its own centre.

        The new cubes are voxelised on that image too, and their poses kept from
        :data:`LOOK_POSE_SCORE` unless centred on a found hand's wrist (:data:`FOREARM_MM`: the mask
        leaves that hand's forearm, and a cube there poses a hand around it). A cube next to a found
        hand, voxelised with it, gives that hand's pose again (the network follows the more visible
        hand), which is then dropped as a duplicate and the second hand is lost. Validation seed 78 (independent two-hand frames):
        both hands found in 85.9 % against 83.8 % of the frames, false targets in 1.0 % against
        1.5 %; the stream frames of seed 79 scored one by one: 90.0 % against 88.6 %, false targets
        0.0 % against 1.9 % (the confidence bar also drops the low poses the plain cubes gave);
        0-2 hands (seed 80): 79.6 % against 77.8 %.

        The detector's peaks are placed on that image too: a near hand takes the 16 peaks of the
        whole image, and a far or hidden hand has none until the near one's pixels are gone. With
        the bar at 0.55 (clutter and a found hand's remains give such a pose too): validation seed 78,
        359 → 360 of 385 hands, both found 85 → 87 % of the frames, false targets 2 → 3; 0-2 hands
        (seed 80) 185 → 187 of 197, false 1 → 0; the same hands alone, false 5 → 4; the stream frames
        of seed 79 one by one, 863 → 876 of 910. The price: a cube on a candidate the mask leaves
        (a forearm, clutter) in one frame in ten with one hand in view (seed 78 alone: 43 cubes in
        400 frames against 5), a cost that trackers, which never take this look, do not pay. The
        doubted candidates add such cubes (held-out, the same hands alone: 151 against 137 ms per
        frame, 2026-12-07, the hand model's stage-3 weights).
        """
        hidden = [r.joints for r in found if r.score >= SECOND_CHANCE_SCORE]
        if self.presence is None or not hidden or len(found[0].joints) != NUM_HAND_JOINTS:
            return found
        # The detector's peaks on the image without the found hands, thinned around them (not around the
        # batch's candidates, whose balls may have swallowed a peak on the hand the batch missed): a near
        # hand takes all of the image's peaks and hides a far one, whose peaks come back once it is gone.
        means = [np.asarray(r.joints, np.float64).mean(axis=0) for r in found]
        masked = _timed_without_hands(depth, intrinsics, hidden, timings)
        rest = self._candidates(masked, intrinsics, max_targets, means, timings)
        centres: list[np.ndarray] = []
        probs: list[float] = []
        if not rest:
            return found
        doubted: list[tuple[np.ndarray, float]] = []
        budget = max_targets - len(found)
        self._search(depth, intrinsics, rest, budget, centres, probs, timings, masked, doubted=doubted)
        passed = len(centres)
        for c, p in sorted(doubted, key=lambda cp: -cp[1])[: budget - passed]:  # in the same forward
            centres.append(c)
            probs.append(p)
        if not centres:
            return found
        extra = self._estimate_cubes(masked, intrinsics, centres, timings, check_presence=False, full=depth)
        for p, r in zip(probs, extra, strict=True):
            r.presence = p
        new = [r for k, r in enumerate(extra) if r.valid and not _at_wrist(r, found)
               and r.score >= (LOOK_POSE_SCORE if k < passed else DOUBTED_POSE_SCORE)]
        more = sorted([*found, *new], key=lambda r: -r.score)
        return self._own_hands(depth, intrinsics, _distinct(more, self._duplicate_mm), timings)[:max_targets]

    def _own_hands(self, depth: np.ndarray, intrinsics: Intrinsics, found: list[PoseResult],
                   timings: dict[str, float]) -> list[PoseResult]:
        """``found`` (most confident first) without the poses whose hand is one already found.

        Why: next to a hand, a second cube on its forearm or fingers yields a plausible, displaced pose
        of the same hand (its joint mean 70-100 mm off, beyond the duplicate distance, yet on no other
        hand). With the pixels of the more confident poses removed, the presence classifier sees no hand
        at such a pose, while a second real hand, touching or not, keeps its own pixels and passes.
        """
        if len(found) < 2 or self.presence is None:
            return found
        t = time.perf_counter()
        kept = [found[0]]
        for r in found[1:]:
            centre = np.asarray(r.joints).mean(axis=0)
            if all(np.linalg.norm(centre - np.asarray(k.joints).mean(axis=0)) > OWN_HAND_CHECK_MM for k in kept):
                kept.append(r)  # far from every kept hand: cannot be one of them (and costs no check)
                continue
            masked = without_hands(depth, intrinsics, [k.joints for k in kept])
            if float(self.presence(masked, intrinsics, [r.joints.mean(axis=0)])[0]) >= self.presence.threshold:
                kept.append(r)
        _lap(timings, "presence", t)
        return kept

    def _second_chance(self, depth: np.ndarray, intrinsics: Intrinsics, rejected: list[np.ndarray],
                       results: list[PoseResult], timings: dict[str, float]) -> list[tuple[np.ndarray, float]]:
        """(centre, presence) of the turned-down candidates that a found hand's pixels hid from the classifier.

        Only candidates near a confident pose qualify (within :data:`NEAR_HAND_MM` of its joint mean but
        not on it); the classifier then sees the depth with every found hand's pixels removed.
        """
        assert self.presence is not None
        poses = [r.joints for r in results if r.valid and r.score >= SECOND_CHANCE_SCORE]
        if not poses:
            return []
        means = [p.mean(axis=0) for p in poses]
        near = []
        for c in rejected:
            dist = [float(np.linalg.norm(c - m)) for m in means]
            if min(dist) >= DUPLICATE_MM and min(dist) < NEAR_HAND_MM and all(
                    np.linalg.norm(c - o) >= DUPLICATE_MM for o in near):
                near.append(c)
        if not near:
            return []
        t = time.perf_counter()
        masked = without_hands(depth, intrinsics, poses)
        p = self.presence(masked, intrinsics, near)
        _lap(timings, "presence", t)
        return [(c, float(q)) for c, q in zip(near, p, strict=True) if q >= self.presence.threshold]

    def _checked(self, depth_mm: Any, intrinsics: Any, timings: dict[str, float]) -> np.ndarray:
        """The validated depth image (see :func:`check_depth`), timed as 'input'."""
        t = time.perf_counter()
        depth = check_depth(depth_mm)
        check_depth_units(depth, depth_mm.dtype)  # metres, mm-as-metres or 8-bit data: a reasoned error
        if not isinstance(intrinsics, Intrinsics):
            raise ValueError(f"intrinsics must be an Intrinsics, got {type(intrinsics).__name__}")
        _lap(timings, "input", t)
        return depth

    def _estimate_cubes(self, depth: np.ndarray, intrinsics: Intrinsics, centers: list[np.ndarray],
                        timings: dict[str, float], check_presence: bool = True,
                        full: np.ndarray | None = None) -> list[PoseResult]:
        """Voxelise, forward (one batch) and decode the cubes at ``centers`` of a checked image.

        The stages are added to ``timings``, which every result shares: a frame estimated
        in several rounds reports what all of them cost. With a presence classifier, every
        cube is first checked for a hand ('presence' stage, one batched forward); the cubes
        without one become invalid results (reason NO_HAND) and cost no pose forward. Why
        here: detected, verified, tracked and given centres all pass through this method,
        so none of them can publish a hand the classifier did not see.

        ``full``: the checked image that ``depth`` (one image, or one per cube) was masked from.
        A model with two input channels gets the pixels the masks removed in its second channel
        (core.voxel.removed_depth); without ``full`` nothing counts as removed.
        """
        if check_presence and self.presence is not None and centers:
            t = time.perf_counter()
            probs = self.presence(depth, intrinsics, centers)
            _lap(timings, "presence", t)
            here = [i for i, p in enumerate(probs) if p >= self.presence.threshold]
            found = self._estimate_cubes(depth, intrinsics, [centers[i] for i in here], timings, False,
                                         full) if here else []
            results: list[PoseResult] = []
            for i, c in enumerate(centers):
                r = found[here.index(i)] if i in here else self._invalid(c, NO_HAND, timings)
                r.presence = float(probs[i])
                results.append(r)
            timings["total"] = sum(v for k, v in timings.items() if k != "total")
            return results
        if not self.gpu_voxels:
            return self._cubes(depth, intrinsics, centers, timings, full)
        import cupy  # noqa: PLC0415 - optional, only with CUDA

        # CuPy allocates on its *current* device, torch on ``self.device``: on cuda:N (N > 0)
        # the volumes, the DLPack heatmaps and the decoding must all live on device N.
        index = self.device.index if self.device.index is not None else torch.cuda.current_device()
        with cupy.cuda.Device(index):
            return self._cubes(depth, intrinsics, centers, timings, full)

    def _cubes(self, depth: np.ndarray, intrinsics: Intrinsics, centers: list[np.ndarray],
               timings: dict[str, float], full: np.ndarray | None = None) -> list[PoseResult]:
        """:meth:`_estimate_cubes` on NumPy, or on CuPy inside the engine's CUDA device."""
        t = time.perf_counter()
        n = self.grid.size
        xp = np
        if self.gpu_voxels:
            import cupy as xp  # noqa: PLC0415 - optional, only with CUDA
        channels = self.meta.input_channels
        batch = xp.zeros((len(centers), channels, n, n, n), dtype=xp.float32)
        counts = []
        per_cube = isinstance(depth, list)  # estimate_all: each cube may see its own image (other hands removed)
        h, w = (depth[0] if per_cube else depth).shape
        for i, c in enumerate(centers):
            u0, v0, u1, v1 = cube_footprint(intrinsics, c, self.grid.cube_size, w, h)
            image = depth[i] if per_cube else depth
            crop = image[v0:v1, u0:u1]
            removed = None
            if channels > 1 and full is not None and image is not full:  # a masked image: what went?
                removed = removed_depth(full[v0:v1, u0:u1], crop)
                if not removed.any():  # the mask took nothing from this cube
                    removed = None
            if xp is not np:
                crop = xp.asarray(np.ascontiguousarray(crop))  # upload the cube's footprint only
                if removed is not None:
                    removed = xp.asarray(np.ascontiguousarray(removed))
            # Back-projection and voxelisation in one pass over the cube's z slab (core.voxel).
            self.grid.voxelize_depth(crop, intrinsics, c, offset=(u0, v0), out=batch[i, 0])
            if removed is not None:
                self.grid.voxelize_depth(removed, intrinsics, c, offset=(u0, v0), out=batch[i, OTHER_TARGETS_CHANNEL])
            counts.append(int(batch[i, 0].sum()))
        t = _lap(timings, "voxelize", t)

        ok = [k >= self.min_points for k in counts]
        results: list[PoseResult | None] = [None] * len(centers)
        if any(ok):
            sel = [i for i, good in enumerate(ok) if good]
            vox = batch if len(sel) == len(centers) else batch[sel]
            if xp is np:
                heat = self.forward(vox)
            else:  # CuPy volume -> torch via DLPack -> heatmaps back to CuPy, decoded on the GPU
                heat = xp.from_dlpack(self.engine(to_torch(vox)))
            t = _lap(timings, "forward", t)
            joints, conf = (to_numpy(a) for a in self._decode(heat, np.stack([centers[i] for i in sel])))
            t = _lap(timings, "decode", t)
            # A non-finite heatmap (fp16 overflow, a corrupt engine) makes its joint's peak NaN or +inf
            # (argmax returns the first NaN); clipped, that would read as a confident pose at a cube corner.
            finite = np.isfinite(conf).all(axis=-1)
            for k, i in enumerate(sel):
                if not finite[k]:
                    results[i] = self._invalid(centers[i], "network output is not finite (NaN/inf heatmaps)", timings)
                    results[i].points_in_cube = counts[i]
                    continue
                results[i] = PoseResult(
                    joints=joints[k], confidence=np.clip(conf[k], 0.0, 1.0).astype(np.float32),
                    reference_point=np.asarray(centers[i], dtype=np.float64), joint_names=self.joint_names,
                    skeleton=self.meta.skeleton, cube_size=self.grid.cube_size, valid=True,
                    timings=timings, points_in_cube=counts[i],
                )
                if joints.shape[1] == NUM_HAND_JOINTS and not self.meta.skeleton.startswith("body"):
                    results[i].handedness, results[i].handedness_confidence = pose_side(joints[k], results[i].score)
        for i, good in enumerate(ok):
            if not good:
                results[i] = self._invalid(
                    centers[i], f"only {counts[i]} occupied voxels in the cube (need {self.min_points})", timings
                )
                results[i].points_in_cube = counts[i]
        timings["total"] = sum(v for k, v in timings.items() if k != "total")
        return [r for r in results if r is not None]

    def forward(self, voxels: np.ndarray) -> np.ndarray:
        """(B, C, N, N, N) occupancy -> (B, J, N/2, N/2, N/2) heatmaps as float32 NumPy (via the engine)."""
        return self.engine.run_numpy(voxels)

    def _decode(self, heat: np.ndarray, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Decode (B, J, ...) heatmaps, or (M, B, J, ...) from an ensemble averaging over M."""
        if heat.ndim == 5:
            return self.grid.decode(heat, centers)
        m, b = heat.shape[:2]
        joints, conf = self.grid.decode(heat.reshape(m * b, *heat.shape[2:]), np.tile(centers, (m, 1)))
        return joints.reshape(m, b, -1, 3).mean(axis=0), conf.reshape(m, b, -1).mean(axis=0)

    def warm_up(self, rounds: int = 2) -> float:
        """Run every stage on a synthetic frame so that the first real frame is not the slow one.

        Why: the first call pays for lazy imports, engine building (BN folding, quantisation,
        ONNX export, CUDA-graph capture), oneDNN/cuDNN primitive creation per batch shape and
        library pages read from a cold disk: up to seconds on a fresh machine (a CI run
        measured a 2.3 s first frame). A live node would charge that to its first frames and
        to every frame queued behind them. The frame is a disc of the target's size facing the
        camera, estimated once from the detector/localiser (refiner, verification rounds) and
        once in a cube given explicitly, which reaches the network even if nothing is detected.
        Returns the seconds spent.
        """
        t = time.perf_counter()
        h, w, f = 240, 320, 240.0
        intr = Intrinsics(fx=f, fy=f, cx=w / 2, cy=h / 2)
        z = 3.0 * self.grid.cube_size  # the cube's footprint covers about a third of the image
        v, u = np.mgrid[0:h, 0:w]
        radius_px = 0.3 * self.grid.cube_size * f / z
        depth = np.where((u - w / 2) ** 2 + (v - h / 2) ** 2 <= radius_px**2, z, 0.0).astype(np.float32)
        centre = np.array([0.0, 0.0, z])
        for _ in range(max(1, rounds)):
            self.estimate(depth, intr)
            self._estimate_cubes(depth, intr, [centre], {}, check_presence=False)  # the disc is no hand
        return time.perf_counter() - t

    # -- helpers -------------------------------------------------------------------------
    def _invalid(self, center: np.ndarray, reason: str, timings: dict[str, float]) -> PoseResult:
        j = self.meta.num_joints
        return PoseResult(
            joints=np.full((j, 3), np.nan), confidence=np.zeros(j, dtype=np.float32),
            reference_point=np.asarray(center, dtype=np.float64), joint_names=self.joint_names,
            skeleton=self.meta.skeleton, cube_size=self.grid.cube_size, valid=False, reason=reason, timings=timings,
        )


class EnsembleNet(torch.nn.Module):
    """Several checkpoints of one architecture evaluated in one vmapped forward.

    Input (B, C, N, N, N) -> (M, B, J, S, S, S). The stacked weights live in buffers
    so ``.to(device)`` moves them; the template module holds no data.
    """

    def __init__(self, models: Sequence[torch.nn.Module]) -> None:
        super().__init__()
        import copy  # noqa: PLC0415

        from torch.func import stack_module_state  # noqa: PLC0415

        params, buffers = stack_module_state([m.eval() for m in models])
        self._names = {"p": list(params), "b": list(buffers)}
        for i, (_k, v) in enumerate({**params, **buffers}.items()):
            self.register_buffer(f"w{i}", v.detach())
        self._keys = list(params) + list(buffers)
        self.template = [copy.deepcopy(models[0]).to("meta").eval()]  # list: not a registered submodule
        self.members = len(models)
        self.input_channels = input_channels(models[0])  # the template is not a submodule: say it here

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from torch.func import functional_call  # noqa: PLC0415

        tensors = dict(zip(self._keys, (getattr(self, f"w{i}") for i in range(len(self._keys))), strict=False))
        params = {k: tensors[k] for k in self._names["p"]}
        buffers = {k: tensors[k] for k in self._names["b"]}
        base = self.template[0]

        def one(p: dict, b: dict, inp: torch.Tensor) -> torch.Tensor:
            return functional_call(base, (p, b), (inp,))

        return torch.vmap(one, in_dims=(0, 0, None))(params, buffers, x)


def _companion(kind: Any, pose_path: str | Path, option: str | Path | bool, device: torch.device,
               shared: str = "") -> Any:
    """Load a network stored next to a pose model (refiner, detector, presence) as ``option`` asks.

    ``"auto"``: when the file exists; ``True``: required; ``False``: never; a path: that file.
    With ``"auto"`` or ``True``, the pose model's own ``x.<role>.safetensors`` comes first, then
    that of the model it shares its companions with (``shared``, :attr:`ModelMeta.companions`).
    """
    if option is False:
        return None
    if option in ("auto", True):
        candidates = [kind.paths(pose_path)[0]]
        if shared:  # the same folder: the other model's weights are named like its stem
            candidates.append(kind.paths(candidates[0].with_name(f"{shared}.safetensors"))[0])
        path = next((c for c in candidates if c.exists()), candidates[-1])
    else:
        path = Path(option)
    if path.exists():
        return kind.load(path, device)
    if option != "auto":
        raise CheckpointError(f"{kind.role} weights not found: {path}")
    return None


def without_hands(depth: np.ndarray, intrinsics: Intrinsics, poses: Sequence[np.ndarray],
                   radius_mm: float = HAND_MASK_MM) -> np.ndarray:
    """A copy of ``depth`` with the pixels of the given poses' hands set to 0 (no reading).

    A pixel belongs to a hand when its 3D point lies within ``radius_mm`` of a joint or of a point
    along one of the pose's bones (joint to next joint): a finger's radius plus the pose's error.
    """
    out = depth.copy()
    h, w = depth.shape
    index = np.arange(max(h, w))  # pixel coordinates, sliced per window (np.ogrid cost more than the test itself)
    for joints in poses:
        j = np.asarray(joints, np.float64)
        pts = [j]
        if len(j) == NUM_HAND_JOINTS:  # MSRA chains: wrist -> each finger's 4 joints
            for f in range(5):
                chain = [0, *range(1 + 4 * f, 5 + 4 * f)]
                a, b = j[chain[:-1]], j[chain[1:]]
                pts += [a + (b - a) * s for s in (0.25, 0.5, 0.75)]
        h_r = radius_mm
        for q in np.concatenate(pts):  # a sphere per point, drawn in its own small window of the image
            if q[2] <= h_r:
                continue
            r_px = abs(intrinsics.fx) * h_r / q[2]
            uc, vc = intrinsics.fx * q[0] / q[2] + intrinsics.cx, intrinsics.fy * q[1] / q[2] + intrinsics.cy
            u0, u1 = max(int(uc - r_px), 0), min(int(uc + r_px) + 2, w)
            v0, v1 = max(int(vc - r_px), 0), min(int(vc + r_px) + 2, h)
            if u0 >= u1 or v0 >= v1:
                continue
            win = out[v0:v1, u0:u1]
            vv, uu = index[v0:v1, None], index[None, u0:u1]
            disk = (uu - uc) ** 2 + (vv - vc) ** 2 <= r_px**2
            win[disk & (np.abs(win - q[2]) < h_r)] = 0.0
    return out


def without_nearer(depth: np.ndarray, intrinsics: Intrinsics, keep: Any, other: Any,
                   radius_mm: float = PAIR_SPLIT_MM) -> np.ndarray:
    """A copy of ``depth`` without the pixels whose 3D point is nearer ``other`` than ``keep`` and within
    ``radius_mm`` of ``other`` (mm, the camera's optical frame).

    Why: a first split of two touching hands before either pose is known: each candidate centre
    keeps the surface on its side of the plane halfway to the other (:meth:`PoseEstimator._split_pair`).
    Only the footprint of the cube around that ball (:func:`cube_footprint`) is back-projected.
    """
    out = depth.copy()
    keep, other = np.asarray(keep, np.float64), np.asarray(other, np.float64)
    h, w = depth.shape
    u0, v0, u1, v1 = cube_footprint(intrinsics, other, 2.0 * radius_mm, w, h)
    if u0 >= u1 or v0 >= v1:
        return out
    win = out[v0:v1, u0:u1]
    z = win.astype(np.float64)
    x = (np.arange(u0, u1)[None, :] - intrinsics.cx) * z / intrinsics.fx
    y = (np.arange(v0, v1)[:, None] - intrinsics.cy) * z / intrinsics.fy
    d_other = (x - other[0]) ** 2 + (y - other[1]) ** 2 + (z - other[2]) ** 2
    d_keep = (x - keep[0]) ** 2 + (y - keep[1]) ** 2 + (z - keep[2]) ** 2
    win[(z > 0) & (d_other < d_keep) & (d_other < radius_mm**2)] = 0.0
    return out


def _timed_without_hands(depth: np.ndarray, intrinsics: Intrinsics, poses: Sequence[np.ndarray],
                         timings: dict[str, float]) -> np.ndarray:
    """:func:`without_hands`, its time added to the 'presence' stage (the masks serve the classifier's questions)."""
    t = time.perf_counter()
    out = without_hands(depth, intrinsics, poses)
    _lap(timings, "presence", t)
    return out


def _distinct(results: list[PoseResult], duplicate_mm: float = DUPLICATE_MM) -> list[PoseResult]:
    """``results`` (most confident first) without the ones that repeat an earlier, more confident target."""
    out: list[PoseResult] = []
    for r in results:
        centre = np.asarray(r.joints, np.float64).mean(axis=0)
        if any(np.linalg.norm(centre - np.asarray(o.joints).mean(axis=0)) < duplicate_mm
               or np.linalg.norm(np.asarray(r.joints) - np.asarray(o.joints), axis=1).mean() < DUPLICATE_JOINTS_MM
               for o in out):
            continue
        out.append(r)
    return out


def _at_wrist(r: PoseResult, found: Sequence[PoseResult]) -> bool:
    """Whether ``r``'s joint mean lies within :data:`FOREARM_MM` of a found hand's wrist (joint 0, MSRA)."""
    centre = np.asarray(r.joints, np.float64).mean(axis=0)
    return any(float(np.linalg.norm(centre - np.asarray(f.joints, np.float64)[0])) < FOREARM_MM for f in found)


def _two_hands(a: PoseResult, b: PoseResult) -> bool:
    """Whether the split's first poses of a pair may be two hands (:data:`PAIR_FIRST_SCORE`, :data:`PAIR_FIRST_JOINTS_MM`)."""
    return (a.valid and b.valid and min(a.score, b.score) >= PAIR_FIRST_SCORE
            and float(np.linalg.norm(a.joints - b.joints, axis=1).mean()) >= PAIR_FIRST_JOINTS_MM)


def _check_point(p: Any, name: str = "reference_point") -> np.ndarray:
    arr = np.asarray(p, dtype=np.float64).reshape(-1)
    if arr.shape != (3,) or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be 3 finite numbers (mm), got {p!r}")
    if arr[2] <= 0:
        raise ValueError(f"{name} must be in front of the camera (z > 0 mm), got z={arr[2]}")
    return arr


def _lap(timings: dict[str, float], name: str, t0: float) -> float:
    now = time.perf_counter()
    timings[name] = timings.get(name, 0.0) + (now - t0) * 1e3
    return now
