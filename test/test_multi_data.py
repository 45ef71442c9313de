"""Scenes with several hands (v2v_ros.data.synthetic.multi), their per-target shard arrays and bag ground truth."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from v2v_ros.cli import main
from v2v_ros.core.skeletons import HAND_MSRA21
from v2v_ros.data.shards import Frame, ShardDataset, ShardWriter
from v2v_ros.data.synthetic import SynthConfig, render_frame
from v2v_ros.data.synthetic.multi import HandsSpec, render_multi_frame

NAMES = list(HAND_MSRA21.joint_names)


def test_two_hand_frames_label_a_left_and_a_right_hand_in_view() -> None:
    cfg = SynthConfig()
    sides, arrangements = [], set()
    for i in range(12):
        f = render_multi_frame(4, i, cfg, HandsSpec(2, 2))
        assert f.targets is not None and f.targets.shape == (2, 21, 3)
        assert np.isfinite(f.targets).all()
        for t in f.targets:  # every joint projects into the image, in front of the camera
            uvd = cfg.intrinsics.to_uvd(t.astype(np.float64))
            assert (uvd[:, 2] > 100).all()
            assert (uvd[:, 0] >= 0).all() and (uvd[:, 0] <= cfg.width - 1).all()
        info = f.info["targets"]
        assert [d["id"] for d in info] == [0, 1]
        assert all(0.0 <= d["visible"] <= 1.0 for d in info)
        sides.append(tuple(sorted(d["handedness"] for d in info)))
        arrangements.add(f.info["arrangement"])
        # the single-target joints are the most visible hand's
        best = int(np.argmax([d["visible"] for d in info]))
        np.testing.assert_array_equal(f.joints, f.targets[best])
    assert sides.count(("left", "right")) >= 9  # a left and a right hand, apart from the odd two-people frame
    assert len(arrangements) >= 2


def test_occluding_hand_hides_part_of_the_far_one() -> None:
    seen = []
    for i in range(40):
        f = render_multi_frame(6, i, SynthConfig(), HandsSpec(2, 2))
        if f.info["arrangement"] == "occluding":
            seen.append(min(d["visible"] for d in f.info["targets"]))
    assert seen and min(seen) < 0.8  # at least one far hand is partly hidden


def test_frames_are_reproducible_and_counts_follow_the_spec() -> None:
    a = render_multi_frame(1, 5, hands=HandsSpec(0, 2))
    b = render_multi_frame(1, 5, hands=HandsSpec(0, 2))
    np.testing.assert_array_equal(a.depth, b.depth)
    np.testing.assert_array_equal(a.targets, b.targets)
    counts = {render_multi_frame(1, i, hands=HandsSpec(0, 2)).info["hands"] for i in range(15)}
    assert counts == {0, 1, 2}
    empty = next(render_multi_frame(1, i, hands=HandsSpec(0, 2)) for i in range(15)
                 if render_multi_frame(1, i, hands=HandsSpec(0, 2)).info["hands"] == 0)
    assert np.isnan(empty.joints).all() and empty.targets is not None and empty.targets.shape[0] == 0


def test_the_single_hand_generator_is_untouched_by_the_multi_module() -> None:
    before = render_frame(3, 2)
    render_multi_frame(3, 2, hands=HandsSpec(2, 2))
    after = render_frame(3, 2)
    np.testing.assert_array_equal(before.depth, after.depth)
    assert before.targets is None


def test_clips_keep_each_hand_on_its_id_and_move_it_smoothly() -> None:
    cfg = replace(SynthConfig(), sequence_length=10)
    frames = [render_multi_frame(2, i, cfg, HandsSpec(2, 2)) for i in range(10)]
    sides = {tuple(d["handedness"] for d in f.info["targets"]) for f in frames}
    assert len(sides) == 1  # the same hand keeps its id for the whole clip
    centres = np.stack([f.targets.mean(axis=1) for f in frames])  # (10, 2, 3)
    step = np.linalg.norm(np.diff(centres, axis=0), axis=-1)
    assert step.max() < 80.0  # no jumps between consecutive frames
    assert {f.info["clip"] for f in frames} == {0}


@pytest.mark.parametrize("hands", ["2", "0-2"])
def test_hands_spec_parses(hands: str) -> None:
    spec = HandsSpec.parse(hands)
    assert spec.max_hands == 2


@pytest.mark.parametrize("bad", ["3", "2-1", "x", "-1"])
def test_hands_spec_rejects_bad_values(bad: str) -> None:
    with pytest.raises(ValueError):
        HandsSpec.parse(bad)


def test_shards_store_every_target_and_old_readers_keep_working(tmp_path: Path) -> None:
    frames = [render_multi_frame(8, i, hands=HandsSpec(0, 2)) for i in range(5)]
    with ShardWriter(tmp_path / "m", NAMES, "hand_msra21", shard_size=2) as w:
        for f in frames:
            w.add(f)
    ds = ShardDataset(tmp_path / "m")
    assert ds.meta["max_targets"] == max(f.info["hands"] for f in frames)
    for f, g in zip(frames, ds, strict=True):
        assert g.targets is not None and g.targets.shape == f.targets.shape
        np.testing.assert_array_equal(g.targets, f.targets)
        assert g.info["targets"] == f.info["targets"]
    # single-target data: no target arrays, no meta key, frames read with targets None
    single = Frame(np.ones((4, 4), np.float32), (0, 0), frames[0].intrinsics, (640, 480),
                   np.zeros((21, 3), np.float32), {})
    with ShardWriter(tmp_path / "s", NAMES, "hand_msra21") as w:
        w.add(single)
    ds = ShardDataset(tmp_path / "s")
    assert "max_targets" not in ds.meta and "targets" not in ds.shard_arrays(0)
    assert ds[0].targets is None


def test_synth_cli_hands_writes_targets_and_a_bag_with_one_skeleton_per_hand(tmp_path: Path) -> None:
    from v2v_ros.bag.io import iter_messages
    from v2v_ros.data.synthetic.bag import GT_TOPIC

    out = tmp_path / "two"
    assert main(["synth", "--out", str(out), "--n", "3", "--seed", "3", "--hands", "2", "--full-frame", "--bag"]) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["max_targets"] == 2 and meta["generator"]["hands"]["min"] == 2
    counts = [len(msg.skeletons) for _, _, msg in iter_messages(out / "bag", [GT_TOPIC])]
    assert counts == [2, 2, 2]
    ids = [[s.id for s in msg.skeletons] for _, _, msg in iter_messages(out / "bag", [GT_TOPIC])]
    assert ids == [[0, 1]] * 3  # one scene per frame: clip 0


@pytest.mark.parametrize("extra", [[], ["--full-frame", "--body"], ["--full-frame", "--hands", "3"],
                                   ["--crop-cube-mm", "400", "--sleeve", "0.3"]])
def test_synth_cli_rejects_hands_without_full_frames_or_with_bodies(tmp_path: Path, extra: list[str]) -> None:
    args = ["synth", "--out", str(tmp_path / "x"), "--n", "1"] + (["--hands", "2"] if "--hands" not in extra else [])
    assert main(args + extra) == 2
    assert not (tmp_path / "x" / "meta.json").exists()


def test_solo_frames_show_each_hand_alone_with_the_same_labels() -> None:
    from v2v_ros.data.synthetic.multi import render_solo_frames

    spec = HandsSpec(2, 2)
    both = render_multi_frame(5, 3, hands=spec)
    solo = render_solo_frames(5, 3, hands=spec)
    assert len(solo) == 2
    for k, f in enumerate(solo):
        assert f.info["solo"] == k and f.info["targets"][0]["id"] == k
        np.testing.assert_array_equal(f.targets[0], both.targets[k])
        assert f.info["targets"][0]["visible"] >= both.info["targets"][k]["visible"] - 1e-6  # nothing hides it more
    assert not np.array_equal(solo[0].depth, both.depth)
    with pytest.raises(ValueError):
        render_multi_frame(5, 3, hands=spec, only=2)


def test_people_frames_label_every_person_in_view(tmp_path: Path) -> None:
    from v2v_ros.core.skeletons import BODY_ITOP15
    from v2v_ros.data.synthetic.body import BodyConfig
    from v2v_ros.data.synthetic.multi_body import PeopleSpec, render_people_frame

    cfg = BodyConfig()
    counts = set()
    for i in range(6):
        f = render_people_frame(2, i, cfg, PeopleSpec(1, 3))
        n = f.info["people"]
        counts.add(n)
        assert f.targets is not None and f.targets.shape == (n, BODY_ITOP15.num_joints, 3)
        for t in f.targets:
            uvd = cfg.intrinsics.to_uvd(t.astype(np.float64))
            assert (uvd[:, 2] > 500).all() and (uvd[:, 0] >= 0).all() and (uvd[:, 0] <= cfg.width - 1).all()
        means = f.targets.mean(axis=1)
        assert all(np.linalg.norm(means[a] - means[b]) > 500 for a in range(n) for b in range(a))
    assert len(counts) >= 2
    out = tmp_path / "people"
    assert main(["synth", "--out", str(out), "--n", "3", "--body", "--people", "2", "--full-frame"]) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["max_targets"] == 2 and meta["generator"]["people"] == {"min": 2, "max": 2}
    assert main(["synth", "--out", str(tmp_path / "x"), "--n", "1", "--people", "2", "--full-frame"]) == 2


def test_synth_cli_hands_crops_enclose_every_hands_cube(tmp_path: Path) -> None:
    """--hands with --crop-cube-mm (training data): each crop keeps both hands, smaller than the image."""
    from v2v_ros.data.shards import cube_box

    out = tmp_path / "two_crops"
    assert main(["synth", "--out", str(out), "--n", "4", "--seed", "41", "--hands", "2", "--crop-cube-mm", "400"]) == 0
    sizes = []
    for i, g in enumerate(ShardDataset(out)):
        full = render_multi_frame(41, i, hands=HandsSpec(2, 2))
        h, w = g.depth.shape
        sizes.append(h * w / full.depth.size)
        for t in full.targets:
            u0, v0, bw, bh = cube_box(t.mean(axis=0), 400.0, full.intrinsics, full.image_size)
            assert g.offset[0] <= u0 and g.offset[1] <= v0
            assert u0 + bw <= g.offset[0] + w and v0 + bh <= g.offset[1] + h
        np.testing.assert_array_equal(g.full_depth(), np.where(_inside(g, full), full.depth, 0))
        np.testing.assert_array_equal(g.targets, full.targets)
    assert min(sizes) < 0.8  # crops, not whole images (hands near the camera fill the view)


def _inside(g: Frame, full: Frame) -> np.ndarray:
    h, w = g.depth.shape
    m = np.zeros(full.depth.shape, bool)
    m[g.offset[1]:g.offset[1] + h, g.offset[0]:g.offset[0] + w] = True
    return m


def test_training_target_draws_a_visible_hand_of_a_two_hand_frame() -> None:
    from v2v_ros.train.stream import MIN_VISIBLE, training_target

    frame = render_multi_frame(41, 0, hands=HandsSpec(2, 2))
    rng = np.random.default_rng(0)
    picks = {int(np.argmin([np.abs(training_target(frame, rng) - t).max() for t in frame.targets])) for _ in range(40)}
    usable = {k for k, t in enumerate(frame.info["targets"]) if t["visible"] >= MIN_VISIBLE}
    assert picks == usable and usable
    # a hand below the visibility bar is never the target; no usable hand: no sample
    info = {**frame.info, "targets": [{**t, "visible": 0.2 if k == 0 else 0.9} for k, t in enumerate(frame.info["targets"])]}
    one = replace(frame, info=info)
    assert all(np.array_equal(training_target(one, rng), frame.targets[1]) for _ in range(10))
    none = replace(frame, info={**info, "targets": [{**t, "visible": 0.1} for t in info["targets"]]})
    assert training_target(none, rng) is None
    assert training_target(replace(frame, targets=np.zeros((0, 21, 3), np.float32),
                                   joints=np.full((21, 3), np.nan, np.float32)), rng) is None
    # single-target frames: their joints, and no draw from the generator (older runs stay reproducible)
    single = render_frame(3, 0)
    state = rng.bit_generator.state
    np.testing.assert_array_equal(training_target(single, rng), single.joints)
    assert rng.bit_generator.state == state


def test_masking_the_other_hand_removes_its_pixels_in_the_crop_and_keeps_the_target_hand() -> None:
    """Training with mask_other_hands: the other hand of a two-hand crop is cut out where it is (the crop's
    offset taken into account), the target hand is left whole, and a single-hand frame has no other hand."""
    from v2v_ros.train.config import TrainConfig
    from v2v_ros.train.stream import other_hands, without_other_hands

    cfg = SynthConfig()
    frame = next(f for f in (render_multi_frame(7, i, cfg, HandsSpec(2, 2)) for i in range(40))
                 if f.info["arrangement"] == "apart" and min(t["visible"] for t in f.info["targets"]) > 0.8)
    uv = [cfg.intrinsics.to_uvd(t.astype(np.float64))[:, :2] for t in frame.targets]
    lo = np.floor(np.min([p.min(0) for p in uv], axis=0)).astype(int) - 15
    hi = np.ceil(np.max([p.max(0) for p in uv], axis=0)).astype(int) + 15
    u0, v0 = max(int(lo[0]), 1), max(int(lo[1]), 1)
    full = frame.full_depth()
    crop = replace(frame, depth=full[v0:hi[1], u0:hi[0]].copy(), offset=(u0, v0))
    target, other = frame.targets[0], frame.targets[1]
    others = other_hands(crop, target)
    assert len(others) == 1 and np.array_equal(others[0], other)
    masked = without_other_hands(crop, others, np.random.default_rng(0))

    def on(joints: np.ndarray, image: np.ndarray) -> float:
        """Share of the hand's joints whose pixel has a reading within 30 mm of the joint's depth."""
        uvd = cfg.intrinsics.to_uvd(joints.astype(np.float64))
        px = np.round(uvd[:, :2]).astype(int) - [u0, v0]
        d = image[px[:, 1], px[:, 0]]
        return float(np.mean((d > 0) & (np.abs(d - uvd[:, 2]) < 30.0)))

    assert on(other, crop.depth) > 0.5 and on(other, masked) == 0.0  # the other hand is gone
    assert on(target, masked) == on(target, crop.depth) > 0.5  # the target hand is untouched
    assert other_hands(render_frame(3, 0), render_frame(3, 0).joints) == []
    with pytest.raises(ValueError, match="mask_other_hands"):
        TrainConfig.from_dict({"mask_other_hands": 1.5})


def test_presence_crops_of_two_hands_hold_each_hand_without_the_other() -> None:
    """The presence classifier's two-hand crops (v2v_ros.train.presence) include each visible hand on the
    image without the other hand, labelled a hand, and the other hand's centre there, labelled no hand: the
    estimator asks both questions once it has found a hand and masked it."""
    from dataclasses import asdict

    from v2v_ros.train import presence as P

    cfg = P.PresenceConfig()
    meta = {k: v for k, v in asdict(P._meta(cfg)).items() if k != "provenance"}
    P._init_worker(cfg.candidates_model, meta, cfg.hypotheses)
    f = render_multi_frame(27, 4, hands=HandsSpec(2, 2))  # touching, both hands in full view
    out = P._crops((27, 4, False, cfg.jitter_mm, cfg.positive_within_mm, cfg.negative_beyond_mm, P.TWO_HANDS))
    masked = out["source"] == 3
    visible = [d["visible"] >= P.MIN_VISIBLE for d in f.info["targets"]]
    assert visible == [True, True]
    # per visible hand: two jittered centres of that hand (a hand) and the other hand's centre (no hand)
    assert int((out["y"][masked] == 1).sum()) == 2 * sum(visible)
    assert int((out["y"][masked] == 0).sum()) >= sum(visible)
    # the first such "no hand" crop is the other hand's centre, its hand gone from the image
    other = f.targets[1].mean(axis=0).astype(np.float64)
    gone = out["x"][np.flatnonzero(masked & (out["y"] == 0))[0]]
    whole = np.rint(P.presence_input(f.depth, f.intrinsics, other, P._meta(cfg)) * 127).astype(np.int8)
    assert (gone != whole).mean() > 0.04  # 7.7 % of the crop: the hand, now background


def test_a_hand_leaving_the_image_is_not_counted_as_visible() -> None:
    """Its surface outside the image is not seen: a sliver of palm left at the edge is not a visible hand.

    Seed 902's one-hand stream (clips of 60 frames): frame 100 shows the whole hand; in the third
    clip the hand moves up and out of the image (frame 170: every joint above the top edge)."""
    cfg = SynthConfig(sequence_length=60)
    spec = HandsSpec(1, 1)
    for index, inside_at_least, visible_range in ((100, 1.0, (0.9, 1.0)), (170, 0.0, (0.0, 0.2))):
        f = render_multi_frame(902, index, cfg, spec)
        j, k = f.targets[0], f.intrinsics
        v = k.fy * j[:, 1] / j[:, 2] + k.cy
        u = k.fx * j[:, 0] / j[:, 2] + k.cx
        inside = float(np.mean((v >= 0) & (v < cfg.size[1]) & (u >= 0) & (u < cfg.size[0])))
        assert inside >= inside_at_least
        lo, hi = visible_range
        assert lo <= f.info["targets"][0]["visible"] <= hi, (index, f.info["targets"][0]["visible"])


def test_hand_pixels_are_where_each_hand_is_seen_and_nowhere_else() -> None:
    from v2v_ros.data.synthetic.multi import hand_pixels, render_solo_frames

    spec = HandsSpec(2, 2)
    # Seed 6: the first occluding frame, the near hand hiding part of the far one.
    i = next(i for i in range(40) if render_multi_frame(6, i, hands=spec).info["arrangement"] == "occluding")
    both = render_multi_frame(6, i, hands=spec)
    shown = hand_pixels(6, i, hands=spec)
    solo = render_solo_frames(6, i, hands=spec)
    assert len(shown) == 2 and all(m.shape == both.depth.shape and m.any() for m in shown)
    assert (shown[0] & shown[1]).sum() < 0.01 * min(m.sum() for m in shown)  # a pixel shows one surface
    near = int(np.argmin([t[:, 2].mean() for t in both.targets]))
    far = 1 - near
    for k in range(2):
        valid = shown[k] & (both.depth > 0) & (solo[k].depth > 0)
        # where hand k is seen, the frame reads hand k's surface as hand k alone does (up to sensor noise) ...
        assert np.median(np.abs(both.depth[valid] - solo[k].depth[valid])) < 3.0
    # ... and where the near hand hides the far one, the frame reads the near hand, well in front of it.
    hidden = shown[near] & (solo[far].depth > 0) & (both.depth > 0)
    assert hidden.sum() > 50
    assert np.median(solo[far].depth[hidden] - both.depth[hidden]) > 50.0


@pytest.mark.parametrize("config", [SynthConfig(), SynthConfig.preset("nyu", cameras=("nyu", "icvl"),
                                                                     sensor_jitter=0.5, sequence_length=30)])
def test_a_dataset_config_round_trips_through_its_meta(config: SynthConfig) -> None:
    stored = json.loads(json.dumps({"config": config.to_dict(), "hands": HandsSpec(0, 2, 0.25).to_dict()}))
    assert SynthConfig.from_dict(stored["config"]) == config
    assert HandsSpec.from_dict(stored["hands"]) == HandsSpec(0, 2, 0.25)
