"""Reproducibility guards: the generator's output and the shipped model's recorded error.

Both fail on purpose when something changes what the numbers in models/*.md were measured
on. If a change to the generator is intended: bump ``GENERATOR_VERSION``, update
``GOLDEN`` below, and re-measure (or retrain) and re-ship the models, whose cards then
get new numbers from ``make reproduce-hand``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from v2v_ros.data.synthetic import GENERATOR_VERSION, SynthConfig, render_frame
from v2v_ros.data.synthetic.body import BodyConfig, render_body_frame

ROOT = Path(__file__).resolve().parents[1]

RANDOMISED = SynthConfig(cameras=("realsense", "nyu", "icvl", "msra"), sensor_jitter=0.6, sleeve_probability=0.3,
                         scale_range=(0.65, 1.2))
CASES = {
    "default_seed2_0": lambda: render_frame(2, 0),
    "default_seed2_1": lambda: render_frame(2, 1),
    "default_seed3_7": lambda: render_frame(3, 7),
    "sequence_seed5_33": lambda: render_frame(5, 33, SynthConfig(sequence_length=30)),
    "randomised_seed21_4": lambda: render_frame(21, 4, RANDOMISED),
    "nyu_seed1_2": lambda: render_frame(1, 2, SynthConfig.preset("nyu")),
    "body_front_seed0_3": lambda: render_body_frame(seed=0, index=3, config=BodyConfig(view="front")),
    "body_top_seed0_4": lambda: render_body_frame(seed=0, index=4, config=BodyConfig(view="top")),
}
GOLDEN_VERSION = 1
GOLDEN = {
    "default_seed2_0": "f1c9564f33987ae573590825cae07dd6",
    "default_seed2_1": "a2c589a02f00ba70d2048beeb35e5466",
    "default_seed3_7": "3b85b1013f63b35bc73de4e9ce607918",
    "sequence_seed5_33": "d296e7aba815dc509ac6dc9237502bde",
    "randomised_seed21_4": "e8b9904eb904ec2de2f3b768ef595fbf",
    "nyu_seed1_2": "602c6adb7a981b62ae5a7cc12f3c043f",
    "body_front_seed0_3": "6968b4d1dfe652ffd6f335268e36904e",
    "body_top_seed0_4": "e7ee4697da8254e4283412649471389b",
}


def frame_digest(frame) -> str:  # noqa: ANN001 - a shards.Frame
    """Depth in whole millimetres and joints to 1 µm: what the sensor model outputs, with last-bit
    differences of the joint arithmetic rounded away."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(np.rint(frame.depth).astype(np.uint16)).tobytes())
    h.update(np.round(np.asarray(frame.joints, np.float64), 3).tobytes())
    return h.hexdigest()[:32]


def test_golden_version_is_the_generator_version() -> None:
    assert GENERATOR_VERSION == GOLDEN_VERSION, "generator version bumped: update GOLDEN and re-measure the models"


@pytest.mark.parametrize("name", sorted(CASES))
def test_generator_output_matches_golden(name: str) -> None:
    assert frame_digest(CASES[name]()) == GOLDEN[name], (
        f"{name}: the generator's output changed. If intended, bump GENERATOR_VERSION, update GOLDEN, and "
        f"re-measure/retrain the shipped models (make reproduce-hand)")


def test_randomised_frames_really_vary() -> None:
    """Domain randomisation must reach the frames: cameras, sleeves and sizes differ across 24 frames."""
    frames = [render_frame(21, i, RANDOMISED) for i in range(24)]
    assert len({f.info["camera"] for f in frames}) >= 3
    assert {f.image_size for f in frames} >= {(640, 480), (320, 240)}
    assert 0 < sum(bool(f.info.get("sleeve")) for f in frames) < 24
    assert min(f.info["scale"] for f in frames) < 0.8  # children's hands, below the default range


@pytest.mark.parametrize("model", ["hand_default", "hand_fast"])
def test_shipped_hand_model_reproduces_its_recorded_error(model: str) -> None:
    """Each shipped hand model's recorded true-centre error on 50 freshly rendered validation frames (within
    0.3 mm), on exactly the frames it was recorded on (fingerprint)."""
    from v2v_ros.train.reproduce import frames_fingerprint, network_error, render_split

    meta = json.loads((ROOT / "models" / f"{model}.json").read_text())
    rec = meta["provenance"]["reproduce"]
    frames = render_split(rec["seed"], rec["frames"], rec["preset"])
    assert frames_fingerprint(frames) == rec["fingerprint"], "the validation frames differ from the recorded ones"
    err = network_error(ROOT / "models" / f"{model}.safetensors", frames)
    assert abs(err - rec["val_mean_error_mm"]) <= 0.3, (err, rec["val_mean_error_mm"])
