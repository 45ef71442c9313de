"""Evidence that a shipped checkpoint and the committed generator still agree.

A checkpoint's recorded validation error is only worth something if anyone can get it
again. :func:`reproduction_record` renders the first ``frames`` frames of a synthetic
split in memory (no files, so a test can do it in seconds), fingerprints them with the
same digest the shard writer records, and measures the network alone on them (cube on
the true joint mean, fp32), exactly as the training loop's validation does.
``tools/ship_model.py`` stores the record in the model's JSON; ``test/test_reproduce.py``
recomputes it on every CI run, so a change to the generator, the voxeliser, the decoder
or the weights that moves the number cannot land unnoticed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from v2v_ros.core.checkpoint import build_model, load_checkpoint
from v2v_ros.core.voxel import VoxelGrid

# The validation split every hand training config uses: `v2v synth --out data/hand_val --n 200 --seed 3
# --full-frame` (default camera and generator settings).
VAL_SEED = 3


def render_split(seed: int, frames: int, preset: str = "realsense") -> list[Any]:
    """Frames 0..frames-1 of `v2v synth --seed SEED --full-frame --preset PRESET`, rendered in memory."""
    from v2v_ros.data.synthetic import SynthConfig, render_frame  # noqa: PLC0415

    cfg = SynthConfig.preset(preset)
    return [render_frame(seed, i, cfg) for i in range(frames)]


def frames_fingerprint(frames: list[Any]) -> str:
    """The shard writer's fingerprint of these frames written as one full-frame shard."""
    import tempfile  # noqa: PLC0415

    from v2v_ros.data.shards import ShardWriter  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as tmp:
        with ShardWriter(Path(tmp) / "d", joint_names=[f"j{k}" for k in range(len(frames[0].joints))],
                         skeleton="x", shard_size=max(len(frames), 1)) as w:
            for f in frames:
                w.add(f)
        return w.fingerprint


def network_error(checkpoint: str | Path, frames: list[Any]) -> float:
    """Mean joint error (mm) of the checkpoint's network on ``frames``, cube on the true joint mean, fp32 CPU."""
    from v2v_ros.train.loop import frames_error  # noqa: PLC0415

    state, meta = load_checkpoint(checkpoint)
    model = build_model(state, meta, str(checkpoint))  # the metadata's joints and input channels
    grid = VoxelGrid(meta.cube_size, meta.grid_size)
    return frames_error(model, frames, grid, torch.device("cpu"))


def reproduction_record(checkpoint: str | Path, frames: int = 50, seed: int = VAL_SEED,
                        preset: str = "realsense") -> dict[str, Any]:
    """What ``tools/ship_model.py`` stores under ``provenance.reproduce``."""
    data = render_split(seed, frames, preset)
    return {
        "command": f"v2v synth --out DIR --n {frames} --seed {seed} --full-frame --preset {preset}",
        "seed": seed, "frames": frames, "preset": preset,
        "fingerprint": frames_fingerprint(data),
        "val_mean_error_mm": round(network_error(checkpoint, data), 4),
        "generator_version": _generator_version(),
    }


def _generator_version() -> int:
    from v2v_ros.data.synthetic import GENERATOR_VERSION  # noqa: PLC0415

    return GENERATOR_VERSION
