"""Frame-to-frame tracking of the reference point: detect once, then follow the target.

In a camera stream the target moves a few millimetres between frames, so the mean of
the joints just estimated is a better cube centre for the next frame than a fresh
detection, and it is free: the whole-image detector and the refinement CNN (together
most of the time spent around the network, docs/performance.md) then run only to
acquire the target, to re-check it every ``redetect_every`` frames, and to recover
when the followed cube no longer holds a confident pose.

The live node and the offline bag evaluator both wrap their estimator in
:class:`TrackingEstimator`, so a bag evaluation measures exactly what the node does.
Pure Python/NumPy: no ROS here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from v2v_ros.core.camera import Intrinsics
from v2v_ros.core.estimator import PoseResult


@dataclass(frozen=True)
class TrackingConfig:
    """When a frame may reuse the previous frame's estimate as its cube centre."""

    enabled: bool = False
    # Frames further apart than this (or out of order) start over with a detection.
    max_gap_s: float = 0.25
    # Detect anyway every N tracked frames, so a track that drifted onto another
    # object is corrected within N frames (0 = only when the track is lost).
    redetect_every: int = 30
    # A followed cube whose pose scores below this (mean peak confidence) is treated
    # as lost: the same frame is estimated again from a fresh detection.
    min_score: float = 0.4

    def __post_init__(self) -> None:
        if not self.max_gap_s > 0:
            raise ValueError(f"tracking max_gap_s must be > 0 s, got {self.max_gap_s}")
        if self.redetect_every < 0:
            raise ValueError(f"tracking redetect_every must be >= 0 frames, got {self.redetect_every}")
        if not 0.0 <= self.min_score <= 1.0:
            raise ValueError(f"tracking min_score must be in [0, 1], got {self.min_score}")


class TrackingEstimator:
    """Wraps a :class:`~v2v_ros.core.estimator.PoseEstimator`: same ``estimate``, plus a stamp.

    ``stats`` counts frames by how their cube centre was found: ``detected`` (no track),
    ``tracked``, ``redetected`` (periodic check) and ``reacquired`` (the followed cube
    failed, the frame was re-estimated from a detection).
    """

    follows_stream = True  # evaluators feed it frames in order, with stamps

    def __init__(self, estimator: Any, config: TrackingConfig | None = None) -> None:
        self.estimator = estimator
        self.config = config or TrackingConfig()
        # verified: frames whose first candidate centre was doubted and its rivals estimated
        self.stats = {"detected": 0, "tracked": 0, "redetected": 0, "reacquired": 0, "verified": 0}
        self._centre: np.ndarray | None = None
        self._stamp_ns: int | None = None
        self._since_detect = 0

    def __getattr__(self, name: str) -> Any:
        # joint_names, meta, grid, precision, ... of the wrapped estimator
        if name == "estimator":
            raise AttributeError(name)
        return getattr(self.estimator, name)

    def reset(self) -> None:
        """Forget the track (new stream, lifecycle transition, parameter change)."""
        self._centre, self._stamp_ns, self._since_detect = None, None, 0

    def estimate(self, depth_mm: np.ndarray, intrinsics: Intrinsics, stamp_ns: int | None = None) -> PoseResult:
        """Estimate one frame; ``stamp_ns`` (the image's stamp) decides whether the track still holds."""
        seed = self._seed(stamp_ns)
        if seed is None:
            kind = "redetected" if self.config.enabled and self._centre is not None else "detected"
            # A periodic re-detection keeps the followed centre as the first rival: if the detector
            # is doubtful there, the track survives in one verification round (not several).
            prior = self._centre if kind == "redetected" and self._fresh(stamp_ns) else None
            result = self.estimator.estimate(depth_mm, intrinsics, prior=prior)
        else:
            result = self.estimator.estimate(depth_mm, intrinsics, reference_point=seed)
            kind = "tracked"
            if not self._holds(result):
                followed = result
                result = self.estimator.estimate(depth_mm, intrinsics)
                kind = "reacquired"
                result.timings = _summed(followed.timings, result.timings)
        self.stats[kind] += 1
        self.stats["verified"] += int(getattr(result, "candidates", 1) > 1)
        self._since_detect = self._since_detect + 1 if kind == "tracked" else 0
        self._stamp_ns = stamp_ns
        centre = np.asarray(result.joints, np.float64).mean(axis=0) if self._holds(result) else None
        # A centre at or behind the camera plane cannot seed a cube: the estimator refuses such a
        # reference point (ValueError), so following it would turn the next frame into an error.
        self._centre = centre if centre is not None and centre[2] > 0 else None
        return replace(result, tracked=kind == "tracked")

    def _holds(self, result: PoseResult) -> bool:
        """Whether a pose is confident enough to follow (and to centre the next cube on)."""
        return bool(result.valid and result.score >= self.config.min_score and np.all(np.isfinite(result.joints)))

    def _fresh(self, stamp_ns: int | None) -> bool:
        """Whether the last estimate is recent enough to say where the target is now."""
        if stamp_ns is None or self._stamp_ns is None:
            return True
        gap = (stamp_ns - self._stamp_ns) * 1e-9
        return 0 < gap <= self.config.max_gap_s

    def _seed(self, stamp_ns: int | None) -> np.ndarray | None:
        cfg = self.config
        if not cfg.enabled or self._centre is None or not self._fresh(stamp_ns):
            return None
        if cfg.redetect_every and self._since_detect >= cfg.redetect_every:
            return None
        return self._centre


def _summed(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    """Per-stage timings of two passes over one frame (what the frame really cost)."""
    return {k: a.get(k, 0.0) + b.get(k, 0.0) for k in {**a, **b}}


OPPOSITE_PRIOR = 0.99  # two hands seen together are one person's left and right hand (MultiTracker._sides)


def checked_opposite_prior(value: float | None) -> float:
    """``value`` (None: :data:`OPPOSITE_PRIOR`) checked to be a probability in [0.5, 1): below 0.5 would
    favour two hands of one side, and 1 would forbid them (two people's right hands)."""
    prior = OPPOSITE_PRIOR if value is None else float(value)
    if not 0.5 <= prior < 1.0:
        raise ValueError(f"opposite_prior must be in [0.5, 1), got {value!r}")
    return prior


@dataclass
class _Track:
    """One followed target: where it is, how it moves, and what its poses said about its side."""

    id: int
    centre: np.ndarray  # (3,) mm, joint mean of the last pose
    velocity: np.ndarray  # (3,) mm/s
    stamp_ns: int | None
    joints: np.ndarray  # (J, 3) mm, the last pose (its hand's pixels are kept out of the other cubes)
    missed: int = 0  # camera frames (at NOMINAL_RATE_HZ, from the stamps) since its hand was last seen
    side_evidence: float = 0.0  # summed log-odds of "right" over the track's poses (core.handedness)

    def predicted(self, stamp_ns: int | None) -> np.ndarray:
        if stamp_ns is None or self.stamp_ns is None:
            return self.centre
        return self.centre + self.velocity * (stamp_ns - self.stamp_ns) * 1e-9


class MultiTracker:
    """Every target of a stream, each with an ``id`` that stays with it from frame to frame.

    Wraps a :class:`~v2v_ros.core.estimator.PoseEstimator`; :meth:`estimate_all` takes a frame and
    its stamp and returns the targets found, each result's ``track_id`` set. Per frame:

    * each live track's cube is centred where it is predicted to be now (last joint mean plus its
      velocity times the time elapsed), so two hands crossing keep their cubes apart; all the
      cubes and any new candidates go through one batched forward (``PoseEstimator.estimate_all``),
      each followed cube without the other followed hands' pixels (their last poses moved with
      their tracks), so touching or crossing hands do not mix in a cube;
    * the whole-image search for new targets (detector, refiner) runs only when there is no track,
      every ``redetect_every`` frames, on every frame while a followed track misses its target, on a
      late frame (a gap over ``max_gap_s``: the ids stay; over a second, or stamps going back, start
      over), and every ``search_every`` frames while fewer than ``max_targets`` are followed;
      otherwise the frame costs the followed cubes only. The search looks for hands one at a time
      (``estimate_all(one_at_a_time=True)``): the followed cubes first, then the other candidates on
      the image without the found hands' pixels, so with one hand in view it costs about a followed
      frame;
    * poses are assigned to tracks by minimum total distance between their joint mean and the
      tracks' predicted centres (Hungarian, gated at ``gate_mm``); an unassigned confident pose
      starts a new track (a new id); a track without a pose is kept ``hold_frames`` frames (a hand
      briefly hidden by the other comes back under its own id, its cube tried where it should be);
      missed frames are counted from the stamps, as frames of a 30 Hz camera (:func:`_frames_missed`),
      so a hold lasts as long on a CPU that answers every third frame;
    * a pose that no followed track claims is first offered to the tracks that lost their hand
      (up to ``remember_frames`` frames ago; no cube is spent on them after ``hold_frames``): it
      takes such a track's id when it lies within the gate widened by how far a hidden hand moves,
      or when its side agrees with the side that track settled on (a left and a right hand name
      themselves), so a hand missed for a second comes back under its id;
    * handedness is pooled over the track's poses (summed, clipped log-odds), because one pose of a
      flat hand can be its own mirror image but a track sees many poses of the same hand; two hands
      seen in one frame have their sides decided together, with a prior (``opposite_prior``) that
      they are one person's left and right hand (:meth:`_sides`).

    Why assignment on predicted centres rather than "nearest": with two hands, greedy nearest
    matching swaps ids as soon as one hand moves faster than half their distance per frame.
    """

    follows_stream = True

    def __init__(self, estimator: Any, config: TrackingConfig | None = None, max_targets: int = 2,
                 hold_frames: int = 10, search_every: int = 3, gate_mm: float = 120.0,
                 remember_frames: int = 90, opposite_prior: float | None = None) -> None:
        if not isinstance(max_targets, int) or not 1 <= max_targets <= 16:
            raise ValueError(f"max_targets must be an integer in [1, 16], got {max_targets!r}")
        if hold_frames < 0 or search_every < 1 or not gate_mm > 0 or remember_frames < hold_frames:
            raise ValueError("hold_frames must be >= 0, search_every >= 1, gate_mm > 0 and remember_frames >= hold_frames")
        # Imported here, not on the first frame with a target: SciPy's import takes 0.2-0.4 s, which
        # on a live stream held up that frame and dropped the next ten (newest frame wins).
        from scipy.optimize import linear_sum_assignment  # noqa: PLC0415

        self._linear_sum_assignment = linear_sum_assignment
        self.estimator = estimator
        self.config = config or TrackingConfig(enabled=True)
        self.max_targets = max_targets
        self.hold_frames = hold_frames
        self.search_every = search_every
        self.gate_mm = float(gate_mm)
        self.remember_frames = remember_frames
        self.opposite_prior = checked_opposite_prior(opposite_prior)
        self.stats = {"searched": 0, "followed": 0, "tracks_started": 0, "tracks_ended": 0}
        self._tracks: list[_Track] = []
        self._next_id = 0
        self._stamp_ns: int | None = None
        self._since_search = 0
        self._search_next = True

    def __getattr__(self, name: str) -> Any:
        if name == "estimator":
            raise AttributeError(name)
        return getattr(self.estimator, name)

    @property
    def tracks(self) -> list[tuple[int, np.ndarray, int]]:
        """(id, centre mm, frames missed) of the live tracks."""
        return [(t.id, t.centre.copy(), t.missed) for t in self._tracks]

    def reset(self) -> None:
        """Forget every track (ids keep counting up, so an old id never names a new target)."""
        self.stats["tracks_ended"] += len(self._tracks)
        self._tracks, self._stamp_ns, self._since_search, self._search_next = [], None, 0, True

    def estimate_all(self, depth_mm: np.ndarray, intrinsics: Intrinsics, stamp_ns: int | None = None
                     ) -> list[PoseResult]:
        """The targets of one frame, each with its ``track_id``; ``stamp_ns`` (the image's) dates the motion."""
        stale = False
        if self._stamp_ns is not None and stamp_ns is not None:
            gap = (stamp_ns - self._stamp_ns) * 1e-9
            if gap <= 0 or gap > max(self.config.max_gap_s, RESTART_GAP_S):
                self.reset()  # stamps going back (a bag replayed from its start) or a long pause: a new scene
            elif gap > self.config.max_gap_s:
                # A late frame (a busy CPU drops frames, a camera stalls): the hands' motion since is
                # unknown, so this frame searches and each track's cube waits where its hand was last
                # seen; the ids stay, and the hands found take them back by reach or side (_assign).
                stale = True
                for t in self._tracks:
                    t.velocity = np.zeros(3)
        cfg = self.config
        search = (stale or not self._active or self._search_next or not cfg.enabled
                  or (cfg.redetect_every and self._since_search >= cfg.redetect_every)
                  or (len(self._active) < self.max_targets and self._since_search + 1 >= self.search_every))
        followed = [(t.predicted(stamp_ns), t) for t in self._active] if cfg.enabled else []
        followed = [(p, t) for p, t in followed if np.all(np.isfinite(p)) and p[2] > 0]
        priors = [p for p, _ in followed]
        poses = [t.joints + (p - t.centre) for p, t in followed]
        results = self.estimator.estimate_all(depth_mm, intrinsics, self.max_targets, priors=priors, search=search,
                                               one_at_a_time=True, prior_poses=poses)
        self.stats["searched" if search else "followed"] += 1
        self._since_search = 0 if search else self._since_search + 1
        good = [r for r in results if r.score >= cfg.min_score and np.all(np.isfinite(r.joints))]
        assigned = self._assign(good, stamp_ns)
        sides = self._sides(assigned)
        out = [replace(r, track_id=t.id, tracked=not search, **side)
               for r, t, side in zip(good, assigned, sides, strict=True)]
        # A followed target missing: search the next frame too (while it stays missing, every frame:
        # a hand hidden or gone is looked for at once, and a search that finds nothing costs no cube)
        self._search_next = any(0 < t.missed for t in self._active)
        self._stamp_ns = stamp_ns
        return sorted(out, key=lambda r: r.track_id)

    def estimate(self, depth_mm: np.ndarray, intrinsics: Intrinsics, stamp_ns: int | None = None) -> PoseResult:
        """The most confident target of the frame (the single-target interface), or an invalid result."""
        found = self.estimate_all(depth_mm, intrinsics, stamp_ns)
        return max(found, key=lambda r: r.score) if found else _nothing(self.estimator)

    def _assign(self, results: list[PoseResult], stamp_ns: int | None) -> list[_Track]:
        """Match poses to tracks (minimum total distance to the predicted centres), start and end tracks."""
        centres = [np.asarray(r.joints, np.float64).mean(axis=0) for r in results]
        tracks = self._tracks
        pairs: dict[int, int] = {}
        active = [k for k, t in enumerate(tracks) if t.missed <= self.hold_frames]
        if active and centres:
            cost = np.array([[np.linalg.norm(c - tracks[k].predicted(stamp_ns)) for k in active] for c in centres])
            rows, cols = self._linear_sum_assignment(np.minimum(cost, 1e6))
            pairs = {int(r): active[int(c)] for r, c in zip(rows, cols, strict=True) if cost[r, c] <= self.gate_mm}
        hit = set(pairs.values())
        for i, c in enumerate(centres):  # a hand back after a gap: the held track it must be, by side or reach
            if i in pairs:
                continue
            held = [k for k, t in enumerate(tracks) if k not in hit and t.missed > 0 and self._same_hand(t, results[i], c)]
            if held:
                k = min(held, key=lambda k: float(np.linalg.norm(c - tracks[k].centre)))
                pairs[i] = k
                hit.add(k)
        out: list[_Track] = []
        for i, (r, c) in enumerate(zip(results, centres, strict=True)):
            if i in pairs:
                t = tracks[pairs[i]]
                if t.missed:
                    t.velocity = np.zeros(3)  # back after a miss: the jump from where it was lost is no motion
                elif t.stamp_ns is not None and stamp_ns is not None and stamp_ns > t.stamp_ns:
                    v = (c - t.centre) / ((stamp_ns - t.stamp_ns) * 1e-9)
                    t.velocity = 0.5 * t.velocity + 0.5 * v  # smoothed: one noisy pose must not fling the cube
                t.centre, t.stamp_ns, t.missed, t.joints = c, stamp_ns, 0, np.asarray(r.joints, np.float64)
            else:
                t = _Track(self._next_id, c, np.zeros(3), stamp_ns, np.asarray(r.joints, np.float64))
                self._next_id += 1
                self.stats["tracks_started"] += 1
                tracks.append(t)
            if r.handedness:  # a doubtful pose's side comes at 0.5 (core.handedness.pose_side): no evidence
                p = min(max(float(r.handedness_confidence), 0.5), 0.99)
                logit = float(np.log(p / (1.0 - p)))
                t.side_evidence = float(np.clip(t.side_evidence + (logit if r.handedness == "right" else -logit),
                                                -SIDE_EVIDENCE_CAP, SIDE_EVIDENCE_CAP))
            out.append(t)
        started = {id(t) for t in out}
        for k, t in enumerate(list(tracks)):
            if k in hit or id(t) in started:
                continue
            t.missed = _frames_missed(t, stamp_ns)
            t.velocity = np.zeros(3)  # a hidden hand is looked for where it was last seen
        # Tracks missed longer than hold_frames get no cube any more but are remembered (remember_frames) so
        # that their hand, found again by a search, gets its id back; the most recently seen are kept.
        kept = sorted((t for t in tracks if t.missed <= self.remember_frames), key=lambda t: t.missed)
        kept = kept[: 2 * self.max_targets]
        self.stats["tracks_ended"] += len(tracks) - len(kept)
        self._tracks = kept
        return out

    @property
    def _active(self) -> list[_Track]:
        """Tracks still followed with a cube (missed at most ``hold_frames``)."""
        return [t for t in self._tracks if t.missed <= self.hold_frames]

    @staticmethod
    def _settled_side(track: _Track) -> str:
        """The side a track's poses agree on ("" while they do not, at log-odds :data:`REACQUIRE_SIDE_EVIDENCE`)."""
        if abs(track.side_evidence) < REACQUIRE_SIDE_EVIDENCE:
            return ""
        return "right" if track.side_evidence > 0 else "left"

    def _same_hand(self, track: _Track, result: PoseResult, centre: np.ndarray) -> bool:
        """Can a pose no live track claimed be this held (missed) track's hand coming back?

        Yes when it lies within the gate widened by how far a hand moves while hidden
        (:data:`REACQUIRE_MM_PER_FRAME` per missed frame), or when its side agrees with the side
        the track settled on (log-odds at least :data:`REACQUIRE_SIDE_EVIDENCE`, the pose's own
        side at least :data:`REACQUIRE_SIDE_CONFIDENCE` sure). Why: a hand hidden behind the other,
        or missed for a while, comes back somewhere else; in a scene of one left and one right
        hand its side names it, and without this it would come back under a new id.
        """
        reach = min(self.gate_mm + REACQUIRE_MM_PER_FRAME * track.missed, REACQUIRE_MAX_MM)
        if float(np.linalg.norm(centre - track.centre)) <= reach:
            return True
        side = _sure_side(result)
        return bool(side) and side == self._settled_side(track)

    def _sides(self, tracks: list[_Track]) -> list[dict[str, Any]]:
        """Published handedness of this frame's tracks: each track's pooled evidence, two hands decided together.

        Two hands seen together are, with probability ``opposite_prior``, one person's left and right
        hand. Their sides then follow from both tracks' evidence: a track whose poses say little, or
        whose network keeps mirroring a hand it sees badly (a hand touching the other gave one left
        pose after another for two seconds), takes the side the other hand leaves it, unless its own
        evidence outweighs the prior. With ``opposite_prior`` 0.5 (two people's hands) each track
        decides alone. Validation streams (seeds 79, 81, 83; ``v2v eval --tracking
        --opposite-hands-prior P``), handedness of the matched hands pooled, decided alone (0.5) ->
        together (0.99): ``hand_default`` bf16 97.8 -> 98.7 %, ``hand_fast`` bf16 96.5 -> 97.0 %,
        int8 96.5 -> 97.2 % (docs/multi_target.md, "Two hands, one person").
        """
        evidence = [t.side_evidence for t in tracks]
        if len(tracks) == 2 and self.opposite_prior > 0.5 and any(evidence):
            a, b = evidence
            same = float(np.log((1.0 - self.opposite_prior) / self.opposite_prior))  # log-prior of one side twice
            # log-odds of "right" for each hand over the four (side, side) configurations
            evidence = [float(np.logaddexp(same + a + b, a) - np.logaddexp(b, same)),
                        float(np.logaddexp(same + a + b, b) - np.logaddexp(a, same))]
        return [_published_side(e) for e in evidence]


def _published_side(evidence: float) -> dict[str, Any]:
    """``handedness`` / ``handedness_confidence`` of a log-odds of "right" ({} without evidence)."""
    if evidence == 0.0:
        return {}
    p_right = 1.0 / (1.0 + np.exp(-evidence))
    return ({"handedness": "right", "handedness_confidence": float(p_right)} if p_right >= 0.5
            else {"handedness": "left", "handedness_confidence": float(1.0 - p_right)})


RESTART_GAP_S = 1.0  # a stream that paused longer than this (and tracking.max_gap_s) starts over: new ids
REACQUIRE_MM_PER_FRAME = 15.0  # how far a hidden hand may have moved per frame (0.45 m/s at 30 Hz)
REACQUIRE_MAX_MM = 300.0  # ... but never farther than this by distance alone (a cup must not take a hand's id)
REACQUIRE_SIDE_EVIDENCE = 3.0  # log-odds (95 %) a held track's side must reach to claim a returning hand by side
REACQUIRE_SIDE_CONFIDENCE = 0.8  # ... and how sure the returning pose's own side must be
SIDE_EVIDENCE_CAP = 20.0  # log-odds: a long track stays revisable by a few dozen contrary poses


NOMINAL_RATE_HZ = 30.0  # the camera rate hold_frames and remember_frames are counted at


def _frames_missed(track: _Track, stamp_ns: int | None) -> int:
    """Frames of a :data:`NOMINAL_RATE_HZ` camera since ``track``'s hand was last seen, at a frame that misses it.

    Why time, not the frames this tracker was given: a CPU that cannot keep up answers every third
    or fourth camera frame (newest frame wins), and a hold of 10 answered frames then lasted over a
    second, during which every frame searched for the missing hand, which made the CPU fall further
    behind. Counted from the stamps, a hold means the same time on every machine; on a stream
    without stamps each call is one frame. Two-hand ``make demo`` on 2 cores, three runs each,
    alternating: 44, 39 and 49 of 180 hands found (7-9 of 23-27 answered frames searching) against
    37, 35 and 42 (14-16 of 20-23) counted per answered frame.
    """
    frames = track.missed + 1
    if stamp_ns is not None and track.stamp_ns is not None and stamp_ns > track.stamp_ns:
        frames = max(frames, int(round((stamp_ns - track.stamp_ns) * 1e-9 * NOMINAL_RATE_HZ)))
    return frames


def _sure_side(result: Any) -> str:
    """A pose's own side when it is at least :data:`REACQUIRE_SIDE_CONFIDENCE` sure of it, else ""."""
    side = str(getattr(result, "handedness", "") or "")
    return side if float(getattr(result, "handedness_confidence", 0.0)) >= REACQUIRE_SIDE_CONFIDENCE else ""


def _nothing(estimator: Any) -> PoseResult:
    """An invalid result meaning "no target in this frame"."""
    meta = estimator.meta
    j = meta.num_joints
    return PoseResult(joints=np.full((j, 3), np.nan), confidence=np.zeros(j, np.float32),
                      reference_point=np.full(3, np.nan), joint_names=tuple(meta.joint_names),
                      skeleton=meta.skeleton, cube_size=float(meta.cube_size), valid=False, reason="no target found")
