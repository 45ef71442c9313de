"""Body preset end to end: synthetic people, body localisation, per-part AP, synth CLI, and a tiny
body model trained for two steps that the node loads with config/body_pose.yaml and runs over DDS."""

from __future__ import annotations

import ast
import contextlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml

from v2v_ros.core.localize import BodyLocalizer, Localizer, localizer_for
from v2v_ros.core.skeletons import BODY_ITOP15
from v2v_ros.data.synthetic.body import (
    BODY_LIMITS,
    POSE_PRESETS,
    BodyConfig,
    BodyModel,
    BodyPose,
    mirror_pose,
    render_body_frame,
    render_body_ideal,
    sample_body_pose,
    sample_body_shape,
)
from v2v_ros.evaluate.metrics import BODY_PARTS, ap_per_part, evaluate_arrays

ROOT = Path(__file__).resolve().parents[1]
J = {n: i for i, n in enumerate(BODY_ITOP15.joint_names)}
ARGS = {"namespace", "depth_topic", "camera_info_topic", "params_file", "use_sim_time", "log_level"}


# -- generator ----------------------------------------------------------------------------------
def test_render_is_deterministic_per_seed_and_index() -> None:
    a, b = render_body_frame(5, 3), render_body_frame(5, 3)
    np.testing.assert_array_equal(a.depth, b.depth)
    np.testing.assert_array_equal(a.joints, b.joints)
    assert a.info == b.info and a.info["skeleton"] == "body_itop15"
    c = render_body_frame(5, 4)
    assert not np.array_equal(a.joints, c.joints)
    both = BodyConfig(view="both")
    assert render_body_frame(1, 0, both).info["view"] == "front" and render_body_frame(1, 1, both).info["view"] == "top"


def test_body_sequences_move_one_person_smoothly_within_a_clip() -> None:
    cfg = BodyConfig(view="both", sequence_length=10)
    frames = [render_body_frame(6, i, cfg) for i in range(20)]
    assert [f.info["clip"] for f in frames] == [0] * 10 + [1] * 10
    assert [f.info["view"] for f in frames] == ["front"] * 10 + ["top"] * 10  # 'both' alternates per clip
    # one person, camera and room per clip
    for clip in (frames[:10], frames[10:]):
        assert len({(f.info["height_mm"], tuple(f.info["camera_position_mm"]), tuple(f.info["scene"]))
                    for f in clip}) == 1
        for a, b in ((1, 0), (4, 6), (9, 11), (11, 13)):  # bones (neck-head, forearm, thigh, shin) keep lengths
            lengths = [np.linalg.norm(f.joints[a] - f.joints[b]) for f in clip]
            np.testing.assert_allclose(lengths, lengths[0], rtol=1e-4)
    steps = np.linalg.norm(np.diff(np.stack([f.joints for f in frames]), axis=0), axis=2).max(axis=1)
    within, across = np.delete(steps, 9), steps[9]
    assert within.max() < 150.0 and across > within.max()  # smooth inside, a cut between clips
    assert within[0] < within[4]  # eases in
    again = render_body_frame(6, 13, cfg)
    np.testing.assert_array_equal(again.depth, frames[13].depth)
    # independent frames are not affected by the sequence machinery
    np.testing.assert_array_equal(render_body_frame(6, 3).joints, render_body_frame(6, 3, BodyConfig()).joints)


def test_poses_respect_joint_limits_and_bone_lengths() -> None:
    rng = np.random.default_rng(0)
    for preset in POSE_PRESETS.values():
        assert BodyPose(preset).within_limits()
        np.testing.assert_allclose(mirror_pose(mirror_pose(preset)), preset)
    shape = sample_body_shape(rng)
    model = BodyModel(shape)
    rest = model.joints(BodyPose(np.zeros(len(BODY_LIMITS))))
    names = set()
    for _ in range(200):
        pose = sample_body_pose(rng)
        names.add(pose.name.split(":")[0])
        assert pose.within_limits(), pose.name
        j = model.joints(pose)
        for a, b in BODY_ITOP15.bones:  # kinematics moves joints, never stretches bones (except the spine's torso split)
            if {a, b} & {J["torso"]}:
                continue
            assert np.linalg.norm(j[a] - j[b]) == pytest.approx(np.linalg.norm(rest[a] - rest[b]), abs=1e-6)
    assert {"stand", "walk", "sit", "bend", "blend", "free_arms"} <= names | {n.split(":")[0] for n in POSE_PRESETS}
    with pytest.raises(ValueError):
        BodyConfig(view="side")


def test_standing_height_and_shape_range() -> None:
    rng = np.random.default_rng(1)
    for _ in range(20):
        shape = sample_body_shape(rng)
        assert 1500 <= shape.height <= 1950 and 0.85 <= shape.girth <= 1.3
        model = BodyModel(shape)
        pose = BodyPose(POSE_PRESETS["stand"])
        head_top = model.joints(pose)[J["head"]][1] + 0.074 * shape.height
        standing = head_top - model.lowest_point(pose)
        assert abs(standing - shape.height) < 0.08 * shape.height


@pytest.mark.parametrize("view", ["front", "top"])
def test_rendered_depth_agrees_with_joints(view: str) -> None:
    """Joints lie inside the body: the surface seen through a joint's pixel is never behind the joint,
    and for most joints it is the person's own surface (within a limb's thickness; from above the
    torso hides the hips, knees and feet, so fewer)."""
    cfg = BodyConfig(view=view)
    close = []
    for i in range(6):
        f = render_body_ideal(2, i, cfg)
        uvd = f.intrinsics.to_uvd(f.joints)
        u, v = np.round(uvd[:, 0]).astype(int), np.round(uvd[:, 1]).astype(int)
        w, h = f.image_size
        assert np.all((u >= 0) & (u < w) & (v >= 0) & (v < h)), "every joint is inside the image"
        seen = f.depth[v, u]
        assert np.all(seen > 0)
        assert np.all(seen <= f.joints[:, 2] + 1.0), f"a surface behind a joint in frame {i}"
        close.append(np.mean(f.joints[:, 2] - seen < 250.0))
    assert np.mean(close) > (0.7 if view == "front" else 0.4)


def test_front_and_top_views_see_the_person() -> None:
    for i in range(6):
        f = render_body_frame(3, i, BodyConfig(view="front"))
        jz = f.joints[:, 2]
        assert 1000 < jz.mean() < 5500
        # roughly horizontal camera: a person on their feet (every preset: stand, walk, reach, sit,
        # bend, crouch; none lies down) has the head above the feet in the image
        uvd = f.intrinsics.to_uvd(f.joints)
        assert uvd[J["head"], 1] < uvd[[J["r_foot"], J["l_foot"]], 1].min(), f.info["pose"]
        person = np.abs(f.depth - jz.mean()) < 600
        assert person.sum() > 300, "the person covers the image around its joints"
        assert "floor" in f.info["scene"]
    for i in range(6):
        f = render_body_frame(3, i, BodyConfig(view="top"))
        jz = f.joints[:, 2]
        assert jz[J["head"]] < jz[[J["r_foot"], J["l_foot"]]].max(), "seen from above the head is nearest"
        height = f.info["camera_position_mm"][1]
        assert 2500 <= height <= 3500 + 2000  # retries may lift the camera a little
        assert (f.depth > 0).mean() > 0.8  # the floor fills the view


# -- localisation -----------------------------------------------------------------------------
@pytest.mark.parametrize("view", ["front", "top"])
def test_body_localizer_finds_the_person_with_floor_and_walls(view: str) -> None:
    loc = BodyLocalizer()
    cfg = BodyConfig(view=view, clutter=False)
    errors = []
    for i in range(8):
        f = render_body_frame(11, i, cfg)
        assert {"floor"} <= set(f.info["scene"])
        c = loc.locate(f.depth, f.intrinsics)
        errors.append(np.inf if c is None else float(np.linalg.norm(c - f.joints.mean(axis=0))))
    errors_arr = np.array(errors)
    assert np.median(errors_arr) < 150.0, errors
    assert np.mean(errors_arr < 250.0) >= 0.75, errors


def test_body_hypotheses_start_with_the_located_person_and_add_other_objects() -> None:
    loc = BodyLocalizer()
    more = 0
    for i in range(6):
        f = render_body_frame(12, i, BodyConfig(view="front"))  # with furniture
        hyps = list(loc.hypotheses(f.depth, f.intrinsics, 3))
        first = loc.locate(f.depth, f.intrinsics)
        assert 1 <= len(hyps) <= 3
        np.testing.assert_allclose(hyps[0], first)
        for a in range(len(hyps)):
            for b in range(a):
                assert np.linalg.norm(hyps[a] - hyps[b]) >= 300.0
        more += len(hyps) > 1
        assert len(list(loc.hypotheses(f.depth, f.intrinsics, 1))) == 1
    assert more >= 2  # furnished rooms do offer alternatives
    assert list(loc.hypotheses(np.zeros_like(f.depth), f.intrinsics, 3)) == []


def test_body_localizer_ignores_empty_rooms_and_keeps_the_hand_path() -> None:
    loc = BodyLocalizer()
    f = render_body_frame(0, 0)
    assert loc.locate(np.zeros_like(f.depth), f.intrinsics) is None
    # a room without anybody: floor and walls are removed and nothing person-sized is left
    from v2v_ros.data.synthetic.body import transform_primitive  # noqa: PLC0415
    from v2v_ros.data.synthetic.primitives import Plane  # noqa: PLC0415
    from v2v_ros.data.synthetic.render import render_zbuffer  # noqa: PLC0415

    rot = np.array([[1.0, 0, 0], [0, -1.0, 0], [0, 0, -1.0]])  # camera looking along -z (world), y down
    cam = np.array([0.0, 1500.0, 3000.0])
    room = [Plane(np.zeros(3), np.array([0, 1.0, 0])), Plane(np.array([0, 0, -1500.0]), np.array([0, 0, 1.0]))]
    z, _ = render_zbuffer([transform_primitive(p, rot, -rot @ cam) for p in room], f.intrinsics, f.image_size)
    assert loc.locate(np.where(np.isfinite(z), z, 0).astype(np.float32), f.intrinsics) is None

    class Meta:
        skeleton, cube_size = "body_itop15", 2000.0

    class HandMeta:
        skeleton, cube_size = "hand_msra21", 200.0

    assert isinstance(localizer_for(Meta), BodyLocalizer) and localizer_for(Meta).cube_size == 2000.0
    assert type(localizer_for(HandMeta)) is Localizer


# -- evaluation ----------------------------------------------------------------------------------
def test_per_part_ap_like_table5() -> None:
    rng = np.random.default_rng(0)
    gt = rng.normal(0, 500, (40, 15, 3)) + np.array([0, 0, 3000.0])
    pred = gt.copy()
    pred[:20, J["r_hand"]] += 150.0  # half the frames miss the right hand
    pred[:, J["l_foot"], 0] += 150.0  # every frame misses the left foot
    pred[5] = np.nan  # an invalid prediction misses every joint
    report = evaluate_arrays(pred, gt, BODY_ITOP15.joint_names, kind="body")
    parts = report["ap_10cm_per_part"]
    assert list(parts) == [*BODY_PARTS, "mean"]
    assert parts["hands"] == pytest.approx((20 / 40 + 39 / 40) / 2)  # frame 5 is among the first 20
    assert parts["feet"] == pytest.approx((39 / 40 + 0.0) / 2)
    assert parts["head"] == pytest.approx(39 / 40)
    assert parts["mean"] == pytest.approx(report["map_10cm"])
    assert 0.0 <= report["map_10cm"] <= 1.0
    assert ap_per_part(np.ones(3), ["head", "neck", "x"]) == {"head": 1.0, "neck": 1.0, "mean": 1.0}


# -- configs, launch -----------------------------------------------------------------------------
def test_body_yaml_and_launch_file() -> None:
    text = (ROOT / "launch" / "body_pose.launch.py").read_text()
    tree = ast.parse(text)
    strings = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    assert not [s for s in strings if s.startswith("/") and not s.startswith(("/camera", "/compressedDepth"))]
    declared = {n.args[0].value for n in ast.walk(tree) if isinstance(n, ast.Call)
                and getattr(n.func, "id", "") == "DeclareLaunchArgument"}
    assert ARGS <= declared and "body_pose.yaml" in text
    params = yaml.safe_load((ROOT / "config" / "body_pose.yaml").read_text())["/**"]["ros__parameters"]
    assert params["model_path"] == "models/body_default.safetensors"
    assert params["markers"]["joint_radius"] > 0.02 and params["max_depth_mm"] >= 5000
    pytest.importorskip("rcl_interfaces")
    from v2v_ros.ros.params import BY_NAME, validate  # noqa: PLC0415

    def flat(d: dict, prefix: str = "") -> dict:
        out: dict = {}
        for k, v in d.items():
            out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
        return out

    values = flat(params)
    assert not set(values) - set(BY_NAME)
    for name, v in values.items():
        assert type(v) is type(BY_NAME[name].default), name
        assert validate(name, v, values) is None
    from v2v_ros.train.config import TrainConfig  # noqa: PLC0415
    from v2v_ros.train.refiner import RefinerConfig  # noqa: PLC0415

    stages = {}
    for name, grid in (("body_synthetic", 32), ("body_grid40", 40), ("body_grid48", 48),
                       ("body_grid48_top", 48)):  # each seeds the next
        tc = stages[name] = TrainConfig.from_yaml(ROOT / f"config/train/{name}.yaml")
        assert tc.skeleton == "body_itop15" and tc.cube_size == 2000.0 and tc.grid_size == grid
        assert tc.translation_voxels * tc.cube_size / tc.grid_size == pytest.approx(8 * 2000.0 / 88, rel=0.05)
    assert stages["body_grid40"].init_from == f"{stages['body_synthetic'].out_dir}/last.pt"
    assert stages["body_grid48"].init_from == f"{stages['body_grid40'].out_dir}/last.pt"
    assert stages["body_grid48_top"].init_from == f"{stages['body_grid48'].out_dir}/last.pt"
    assert len({tc.out_dir for tc in stages.values()}) == 4
    assert RefinerConfig.from_yaml(ROOT / "config/train/refiner_body.yaml").cube_size == 2000.0


# -- synth CLI, tiny training, eval, node over DDS ---------------------------------------------------
@pytest.fixture(scope="module")
def body_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from v2v_ros.cli import main  # noqa: PLC0415

    out = tmp_path_factory.mktemp("body") / "synth"
    with contextlib.redirect_stderr(io.StringIO()):
        assert main(["synth", "--body", "--view", "both", "--out", str(out), "--n", "6", "--seed", "4", "--bag"]) == 0
    return out


def test_synth_cli_body_shards_and_bag(body_data: Path) -> None:
    from v2v_ros.bag.io import iter_messages  # noqa: PLC0415
    from v2v_ros.data.shards import ShardDataset  # noqa: PLC0415

    ds = ShardDataset(body_data)
    assert ds.skeleton == "body_itop15" and ds.joint_names == list(BODY_ITOP15.joint_names) and len(ds) == 6
    assert ds.meta["generator"]["crop_cube_mm"] == 3200.0
    np.testing.assert_allclose(ds[2].joints, render_body_frame(4, 2, BodyConfig(view="both")).joints, atol=1e-3)
    gts = [m for _, _, m in iter_messages(body_data / "bag", ["/ground_truth/skeletons"])]
    assert len(gts) == 6
    sk = gts[0].skeletons[0]
    assert sk.skeleton_type == "body_itop15" and sk.cube_size == pytest.approx(2.0) and len(sk.keypoints) == 15


@pytest.fixture(scope="module")
def body_model(body_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from v2v_ros.train.config import TrainConfig  # noqa: PLC0415
    from v2v_ros.train.loop import train  # noqa: PLC0415

    out = tmp_path_factory.mktemp("body_run")
    cfg = TrainConfig.from_yaml(ROOT / "config/train/body_synthetic.yaml", {
        "train_data": str(body_data), "val_data": "", "out_dir": str(out), "grid_size": 16, "epochs": 1,
        "steps_per_epoch": 2, "batch_size": 2, "threads": 1, "workers": 0, "device": "cpu", "log_every": 1,
    })
    with contextlib.redirect_stderr(io.StringIO()):
        folder, _ = train(cfg)
    ckpts = sorted(Path(folder).glob("epoch_*.safetensors"))
    assert ckpts, "training wrote no checkpoint"
    # config/body_pose.yaml requires the body refinement CNN next to the model: train one for 2 steps
    from v2v_ros.core.refiner import Refiner  # noqa: PLC0415
    from v2v_ros.train.refiner import RefinerConfig, train_refiner  # noqa: PLC0415

    rcfg = RefinerConfig.from_yaml(ROOT / "config/train/refiner_body.yaml", {
        "train_data": str(body_data), "val_data": "", "out": str(Refiner.paths(ckpts[-1])[0]), "steps": 2,
        "batch_size": 2,
    })
    with contextlib.redirect_stderr(io.StringIO()):
        train_refiner(rcfg)
    return ckpts[-1]


def test_eval_cli_reports_map_per_joint_and_part(body_data: Path, body_model: Path) -> None:
    from v2v_ros.cli import main  # noqa: PLC0415

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
        rc = main(["eval", "--checkpoint", str(body_model), "--dataset", "synthetic", "--root", str(body_data),
                   "--limit", "2", "--device", "cpu", "--json"])
    assert rc == 0
    report = json.loads(buf.getvalue())
    assert 0.0 <= report["map_10cm"] <= 1.0 and len(report["ap_10cm_per_joint"]) == 15
    assert report["joint_names"] == list(BODY_ITOP15.joint_names)
    assert set(report["ap_10cm_per_part"]) == {*BODY_PARTS, "mean"}


@pytest.mark.ros
def test_node_runs_the_body_preset_over_dds(body_model: Path) -> None:
    pytest.importorskip("rclpy", reason="rclpy not importable (run `make setup`)")
    try:
        from v2v_ros.msg import Skeleton3DArray  # noqa: F401, PLC0415
    except ImportError as exc:  # pragma: no cover
        pytest.skip(f"v2v_ros.msg not built ({exc})")
    from visualization_msgs.msg import Marker  # noqa: PLC0415

    from v2v_ros.ros.convert import make_camera_info, make_image  # noqa: PLC0415
    from v2v_ros.ros.testing import FRAME, Harness, wait_for  # noqa: PLC0415

    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    domain = 1 + (os.getpid() * 13 + 29) % 101  # 1..101: the IDs ROS calls safe on Linux
    h = Harness(domain, {"model_path": str(body_model), "device": "cpu"},
                params_file=str(ROOT / "config" / "body_pose.yaml"))
    try:
        assert h.node.state == "active", h.node.last_error
        assert h.wait_connected(), "DDS discovery did not complete"
        assert isinstance(h.node._main_estimator.localizer, BodyLocalizer)
        assert h.node._main_estimator.refiner is not None  # the body refinement CNN, as config/body_pose.yaml asks
        f = render_body_frame(9, 0, BodyConfig(view="front", clutter=False))
        stamp = 1_700_000_123_000_000_000
        h.publish(make_image(f.depth, stamp, FRAME), make_camera_info(f.intrinsics, *f.image_size, stamp, FRAME))

        def got() -> bool:
            return any(m.header.stamp.sec * 10**9 + m.header.stamp.nanosec == stamp and m.skeletons
                       for m in list(h.skeletons))

        assert wait_for(got, 20.0), "no body Skeleton3DArray"
        msg = next(m for m in list(h.skeletons) if m.skeletons)
        sk = msg.skeletons[0]
        assert sk.skeleton_type == "body_itop15" and list(sk.joint_names) == list(BODY_ITOP15.joint_names)
        assert len(sk.keypoints) == 15 and sk.cube_size == pytest.approx(2.0)
        ref = np.array([sk.reference_point.x, sk.reference_point.y, sk.reference_point.z]) * 1000.0
        # the localiser finds the person; the node's centre is what the same core computes offline
        # (the 2-step refiner moves it somewhere, deterministically)
        assert np.linalg.norm(BodyLocalizer().locate(f.depth, f.intrinsics) - f.joints.mean(axis=0)) < 250.0
        from v2v_ros.core.estimator import PoseEstimator  # noqa: PLC0415

        offline = PoseEstimator.load(body_model, device="cpu", refiner=True).estimate(f.depth, f.intrinsics)
        np.testing.assert_allclose(ref, offline.reference_point, atol=1.0)
        assert wait_for(lambda: any(len(m.markers) > 1 for m in list(h.markers)), 10.0)
        arr = next(m for m in list(h.markers) if len(m.markers) > 1)
        spheres = [m for m in arr.markers if m.type == Marker.SPHERE_LIST]
        assert spheres and spheres[0].scale.x == pytest.approx(0.06)
        assert {m.ns for m in arr.markers} >= {"bones/right_arm", "bones/left_leg", "bones/torso"}
    finally:
        h.close()
