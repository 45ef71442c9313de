"""Left or right hand, decided from the 21 estimated joints (MSRA order) alone.

Why from the pose: a left hand is the mirror image of a right hand, and mirroring flips
the sign of every triple product. Put the joints in a frame built from the hand itself
(origin at the wrist, y towards the middle knuckle, x from the little to the index
knuckle): its z axis ``x × y`` is a fixed side of the palm for a right hand and the other
side for a left hand, and fingers flex (and the thumb sits) on the palm side. So the
joints' z coordinates in that frame, scaled by the hand's size, change sign between a
hand and its mirror image, whatever the hand's orientation in the camera frame.

A weighted sum of those coordinates (a logistic regression without bias, so a hand and
its mirror image get exactly opposite scores) gives the side; its probability is the
confidence. The weights were fitted on the synthetic hand model's joints with 8 mm of
noise per joint (``python tools/fit_handedness.py``, which prints the table below), not
on any test split; on 5000 other such hands (seed 1001) they are right for 96.9 % with 8 mm
noise and 98.3 % without. The rest is not the weights' fault: a hand whose joints lie nearly in
one plane (flat, thumb alongside) is its own mirror image, so no function of its joints can
tell the side; trackers should pool the evidence of several frames. A flat hand seen edge-on gives coordinates near zero and a confidence
near 0.5: a pose that does not show its side is reported as uncertain, not guessed. So is a pose
the pose network itself doubts (:func:`pose_side`): its joints are not where the hand's are.
"""

from __future__ import annotations

import numpy as np

WRIST, INDEX_MCP, MIDDLE_MCP, LITTLE_MCP = 0, 1, 5, 13
NUM_HAND_JOINTS = 21

# Logistic-regression weights on the z coordinates of joints 1..20 in the hand frame (units of the
# wrist-to-middle-knuckle length); positive score = right hand. From tools/fit_handedness.py.
WEIGHTS = np.array([
    -0.5790, -0.5623, -0.0645, 0.4541, -0.0000, -0.3534, 0.1358, 0.5211, -0.5054, 0.0232,
    0.4027, 0.6930, -0.5790, -0.0101, 0.3542, 0.5890, 0.5003, 0.5658, 0.8625, 1.0000,
])
SCALE = 2.4967


def hand_frame_depths(joints: np.ndarray) -> np.ndarray | None:
    """(20,) z coordinates of joints 1..20 in the hand's own frame, in units of its palm length; None if degenerate."""
    j = np.asarray(joints, np.float64)
    if j.shape != (NUM_HAND_JOINTS, 3) or not np.isfinite(j).all():
        return None
    y = j[MIDDLE_MCP] - j[WRIST]
    length = float(np.linalg.norm(y))
    if length < 1e-6:
        return None
    y /= length
    x = j[INDEX_MCP] - j[LITTLE_MCP]
    x -= y * float(x @ y)
    width = float(np.linalg.norm(x))
    if width < 1e-6:
        return None
    x /= width
    z = np.cross(x, y)
    return ((j[1:] - j[WRIST]) @ z) / length


def handedness(joints: np.ndarray, weights: np.ndarray = WEIGHTS, scale: float = SCALE) -> tuple[str, float]:
    """("left" | "right", confidence in [0.5, 1]) of a 21-joint hand; ("", 0.0) when the joints say nothing."""
    z = hand_frame_depths(joints)
    if z is None:
        return "", 0.0
    score = float(scale * (z @ weights))
    p_right = 1.0 / (1.0 + np.exp(-np.clip(score, -50.0, 50.0)))
    return ("right", p_right) if p_right >= 0.5 else ("left", 1.0 - p_right)


# A pose whose mean joint confidence is under this shows its side about as well as a coin toss, however
# sure the regression is of it (tracked validation streams, seeds 79, 81 and 83, 4,438 poses on a hand:
# mean joint confidence under 0.5: 53 % right, 0.5-0.6: 85 %, 0.6-0.65: 95 %, 0.65-0.7: 97 %, 0.7 and
# above: 98 %; of the poses under 0.5 whose side the regression was at least 80 % sure of, 54 %).
DOUBTFUL_POSE_SCORE = 0.6

# The largest side confidence a pose of each score may claim: under the bar, 0.5 (a guess); just above
# it, still no surer than poses of that confidence turned out to be, the share whose side was right
# (`python tools/side_reliability.py` on four validation streams, one and two hands, seeds 79 and 81,
# the stage-5 weights of hand_default: 0.6-0.65 88.7 % of 71 poses, 0.65-0.7 97.7 % of 130, 0.7-0.8
# 99.7 % of 811; from 0.8, 97.2 % of 1,509, where the misses are flat hands the regression itself
# is unsure of).
SIDE_RELIABILITY = ((DOUBTFUL_POSE_SCORE, 0.5), (0.65, 0.9), (0.7, 0.97))  # (pose score below, largest side confidence)


def pose_side(joints: np.ndarray, pose_score: float) -> tuple[str, float]:
    """:func:`handedness` of an estimated pose, its confidence 0.5 (a guess) when the pose is doubtful.

    ``pose_score`` is the pose's mean joint confidence (``PoseResult.score``). Why: a doubtful pose's
    sure-looking side would otherwise be published, and pooled by a tracker, as if it were known; one
    such hand followed for a second settled its track on the wrong side. On those streams, leaving
    doubtful poses out of the pooled side took handedness from 99.0 / 96.4 / 95.3 % to
    99.3 / 97.3 / 97.7 % of the matched hands (``v2v eval --tracking``, bf16). A pose just above the
    bar counts for no more than poses of its confidence were worth (``SIDE_RELIABILITY``): a few
    mirrored poses at 0.6-0.65 must not outvote a track's sure ones.
    """
    side, confidence = handedness(joints)
    if side:
        for below, most in SIDE_RELIABILITY:
            if pose_score < below:
                return side, min(confidence, most)
    return side, confidence
