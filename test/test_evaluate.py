"""Evaluation: published-number oracles, metric unit tests and properties, plots, the eval loop and CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from v2v_ros.core.camera import Intrinsics
from v2v_ros.data.datasets import DatasetFrame, get_dataset
from v2v_ros.evaluate import metrics
from v2v_ros.evaluate.predictions import load_xyz, read_uvd_file, uvd_to_xyz, write_uvd_file, xyz_to_uvd


def _oracle_dir() -> Path | None:
    """shared/oracles beside the repository (CI layout), else $V2V_ORACLES."""
    here = Path(__file__).resolve().parents[1].parent / "shared" / "oracles"
    if here.is_dir():
        return here
    env = os.environ.get("V2V_ORACLES")
    return Path(env) if env and Path(env).is_dir() else None


ORACLES = _oracle_dir()
needs_oracles = pytest.mark.skipif(
    ORACLES is None, reason="oracle files not found: no ../shared/oracles beside the repo and V2V_ORACLES unset"
)

# (dataset, published mean error as computed to 3 decimals, published success rate at 20 mm)
PUBLISHED = [("nyu", 8.419, 0.712), ("icvl", 6.284, 0.846)]


def _run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    from v2v_ros.cli import main

    code = main(argv)
    return code, capsys.readouterr().out


# --------------------------------------------------------------------------- oracles


@needs_oracles
@pytest.mark.parametrize(("dataset", "mean_mm", "success20"), PUBLISHED)
def test_reproduces_published_numbers(dataset: str, mean_mm: float, success20: float,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert ORACLES is not None
    folder = ORACLES / dataset
    pred = folder / f"CVPR18_{dataset.upper()}_V2V_PoseNet.txt"
    gt = folder / f"{dataset}_test_groundtruth_label.txt"
    code, out = _run_cli(["eval-predictions", "--dataset", dataset, "--pred", str(pred), "--gt", str(gt), "--json"],
                         capsys)
    assert code == 0
    report = json.loads(out)  # exactly one JSON object on stdout
    assert report["mean_error_mm"] == pytest.approx(mean_mm, abs=5e-4)
    assert round(report["mean_error_mm"], 2) == round(mean_mm, 2)  # the paper's 8.42 / 6.28
    assert round(report["success_rate"]["20"], 3) == success20
    assert list(report["success_rate"]) == [str(t) for t in range(0, 81, 10)]
    spec = get_dataset(dataset)
    assert report["frames"] == len(read_uvd_file(gt)) and len(report["per_joint_error_mm"]) == spec.num_eval_joints
    assert np.mean(report["per_joint_error_mm"]) == pytest.approx(report["mean_error_mm"])
    # The table output carries the same number.
    code, table = _run_cli(["eval-predictions", "--dataset", dataset, "--pred", str(pred), "--gt", str(gt)], capsys)
    assert code == 0 and f"{mean_mm:.3f} mm" in table


@needs_oracles
def test_nyu_eval_camera_flips_y() -> None:
    """The files' fy < 0 gives NYU's y-up frame; the real camera (fy > 0) gives our y-down one.

    A y flip is an isometry, so distances (and every score) agree; only the frame differs.
    """
    assert ORACLES is not None
    pred = read_uvd_file(ORACLES / "nyu" / "CVPR18_NYU_V2V_PoseNet.txt", 14)[:50]
    gt = read_uvd_file(ORACLES / "nyu" / "nyu_test_groundtruth_label.txt", 14)[:50]
    flipped = metrics.joint_errors(get_dataset("nyu").intrinsics.to_xyz(pred), get_dataset("nyu").intrinsics.to_xyz(gt))
    ours = metrics.joint_errors(uvd_to_xyz(pred, "nyu"), uvd_to_xyz(gt, "nyu"))
    np.testing.assert_allclose(flipped, ours)
    assert (uvd_to_xyz(gt, "nyu")[..., 1] * get_dataset("nyu").intrinsics.to_xyz(gt)[..., 1] <= 0).all()


# --------------------------------------------------------------------------- metrics on hand-made cases


def test_metrics_hand_made() -> None:
    gt = np.zeros((4, 2, 3))
    pred = gt.copy()
    pred[0, 0, 0] = 3.0  # frame 0: errors (3, 0), max 3
    pred[1, :, 1] = 4.0  # frame 1: errors (4, 4), max 4
    pred[2, 1] = [0.0, 30.0, 40.0]  # frame 2: errors (0, 50), max 50
    # frame 3: perfect
    errors = metrics.joint_errors(pred, gt)
    np.testing.assert_allclose(errors, [[3, 0], [4, 4], [0, 50], [0, 0]])
    assert metrics.mean_error(errors) == pytest.approx(61 / 8)
    np.testing.assert_allclose(metrics.per_joint_error(errors), [7 / 4, 54 / 4])
    thresholds, rates = metrics.success_curve(errors, [0, 3, 4, 49.9, 50, 80])
    np.testing.assert_allclose(rates, [0.25, 0.5, 0.75, 0.75, 1.0, 1.0])  # "<= tau" is inclusive
    sr = metrics.success_rate_dict(errors)
    assert sr == {"0": 0.25, "10": 0.75, "20": 0.75, "30": 0.75, "40": 0.75, "50": 1.0, "60": 1.0, "70": 1.0,
                  "80": 1.0}
    np.testing.assert_allclose(metrics.ap_per_joint(errors, threshold=10), [1.0, 0.75])


def test_invalid_prediction_policy() -> None:
    gt = np.zeros((3, 2, 3))
    pred = np.zeros((3, 2, 3))
    pred[0, 0, 2] = 10.0
    pred[1, 1, 0] = np.nan  # one NaN joint makes the whole frame invalid
    gt[2, 0, 0] = np.nan  # unscorable frame: dropped
    report = metrics.evaluate_arrays(pred, gt, joint_names=["a", "b"], kind="body")
    assert report["frames"] == 2 and report["invalid_frames"] == 1 and report["skipped_frames"] == 1
    assert report["mean_error_mm"] == pytest.approx(5.0)  # only the valid frame has distances
    assert report["per_joint_error_mm"] == [10.0, 0.0]
    assert report["success_rate"]["80"] == 0.5  # the invalid frame fails at every threshold
    assert report["ap_10cm_per_joint"] == [0.5, 0.5] and report["map_10cm"] == 0.5
    json.dumps(report, allow_nan=False)  # strict JSON
    all_bad = metrics.evaluate_arrays(np.full((2, 2, 3), np.nan), np.zeros((2, 2, 3)))
    assert all_bad["mean_error_mm"] is None and all_bad["success_rate"]["80"] == 0.0
    assert "map_10cm" not in all_bad  # hands report no body metric


def test_body_map_10cm_rule() -> None:
    gt = np.zeros((5, 3, 3))
    pred = gt.copy()
    pred[:, 0, 0] = [0, 50, 99, 100, 150]  # joint 0 within 10 cm in 4 of 5 frames
    pred[:, 1, 1] = 200  # never
    report = metrics.evaluate_arrays(pred, gt, kind="body")
    np.testing.assert_allclose(report["ap_10cm_per_joint"], [0.8, 0.0, 1.0])
    assert report["map_10cm"] == pytest.approx(0.6)
    assert all(0.0 <= a <= 1.0 for a in report["ap_10cm_per_joint"])


def test_shape_errors() -> None:
    with pytest.raises(ValueError):
        metrics.joint_errors(np.zeros((2, 3, 3)), np.zeros((2, 4, 3)))


# --------------------------------------------------------------------------- properties

_frames = arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 5), st.just(3)),
                 elements=st.floats(-100, 100, allow_nan=False))


@settings(max_examples=40, deadline=None)
@given(pred=_frames, noise_seed=st.integers(0, 2**16), perm_seed=st.integers(0, 2**16))
def test_metric_properties(pred: np.ndarray, noise_seed: int, perm_seed: int) -> None:
    rng = np.random.default_rng(noise_seed)
    gt = pred + rng.normal(scale=20.0, size=pred.shape)
    errors = metrics.joint_errors(pred, gt)
    _, rates = metrics.success_curve(errors)
    assert np.all(np.diff(rates) >= 0) and 0.0 <= rates[0] and rates[-1] <= 1.0  # monotone fractions
    if errors.max() <= 80:
        assert rates[-1] == 1.0
    perm = np.random.default_rng(perm_seed).permutation(pred.shape[1])
    permuted = metrics.joint_errors(pred[:, perm], gt[:, perm])
    assert metrics.mean_error(permuted) == pytest.approx(metrics.mean_error(errors))
    np.testing.assert_allclose(metrics.per_joint_error(permuted), metrics.per_joint_error(errors)[perm])
    np.testing.assert_allclose(metrics.success_curve(permuted)[1], rates)
    assert metrics.mean_error(metrics.joint_errors(gt, pred)) == pytest.approx(metrics.mean_error(errors))


@settings(max_examples=30, deadline=None)
@given(uvd=arrays(np.float64, st.tuples(st.integers(1, 4), st.just(14), st.just(3)),
                  elements=st.floats(1, 639, allow_nan=False)))
def test_uvd_xyz_roundtrip_nyu(uvd: np.ndarray) -> None:
    uvd[..., 2] += 200.0  # depth in front of the camera
    xyz = uvd_to_xyz(uvd, "nyu")
    # our optical frame = the files' frame with y negated; projecting it with the real camera gives the pixels back
    ours = xyz * np.array([1.0, -1.0, 1.0])
    np.testing.assert_allclose(xyz_to_uvd(ours, "nyu"), uvd, rtol=1e-9, atol=1e-6)


def test_text_format_roundtrip(tmp_path: Path) -> None:
    uvd = np.random.default_rng(0).uniform(1, 300, size=(3, 16, 3))
    write_uvd_file(tmp_path / "p.txt", uvd)
    np.testing.assert_allclose(read_uvd_file(tmp_path / "p.txt", 16), uvd, atol=5e-4)
    assert load_xyz(tmp_path / "p.txt", "icvl").shape == (3, 16, 3)
    with pytest.raises(ValueError, match="expected 14"):
        read_uvd_file(tmp_path / "p.txt", 14)
    (tmp_path / "ragged.txt").write_text("1 2 3 4 5 6\n1 2 3\n")
    with pytest.raises(ValueError, match="ragged.txt:2"):
        read_uvd_file(tmp_path / "ragged.txt")


def test_eval_predictions_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_uvd_file(tmp_path / "a.txt", np.ones((3, 16, 3)))
    write_uvd_file(tmp_path / "b.txt", np.ones((2, 16, 3)))
    code, _ = _run_cli(["eval-predictions", "--dataset", "icvl", "--pred", str(tmp_path / "a.txt"),
                        "--gt", str(tmp_path / "b.txt")], capsys)
    assert code == 2
    code, _ = _run_cli(["eval-predictions", "--dataset", "nyu", "--pred", str(tmp_path / "a.txt"),
                        "--gt", str(tmp_path / "a.txt")], capsys)
    assert code == 2  # 16 joints is not NYU's 14


# --------------------------------------------------------------------------- plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_plots_write_pngs(tmp_path: Path) -> None:
    from v2v_ros.evaluate import plots

    spec = get_dataset("synthetic")
    errors = np.abs(np.random.default_rng(0).normal(scale=10, size=(20, 21)))
    paths = [
        plots.plot_success_curve({"ours": errors, "given": (np.arange(81), np.linspace(0, 1, 81))}, tmp_path / "s.png"),
        plots.plot_per_joint_errors(errors.mean(axis=0), spec.joint_names, tmp_path / "j.png"),
    ]
    gt = _hand(spec)
    depth = _render(spec, gt)
    paths.append(plots.overlay(depth, spec.intrinsics, gt + 5.0, gt, spec.bones, tmp_path / "o.png", title="t"))
    broken = gt.copy()
    broken[3] = np.nan
    paths.append(plots.overlay(depth, spec.intrinsics, broken, None, spec.bones, tmp_path / "o2.png"))
    for p in paths:
        assert p.read_bytes()[:8] == PNG_MAGIC and p.stat().st_size > 1000


# --------------------------------------------------------------------------- the eval loop with a fake estimator


def _hand(spec: Any, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.array([0.0, 0.0, 450.0]) + rng.normal(scale=30.0, size=(spec.num_eval_joints, 3))


def _render(spec: Any, joints: np.ndarray) -> np.ndarray:
    """A depth image with a small square at each joint (enough for overlays)."""
    depth = np.zeros(spec.image_size[::-1], np.float32)
    for u, v, z in spec.intrinsics.to_uvd(joints):
        ui, vi = int(round(u)), int(round(v))
        depth[max(vi - 2, 0):vi + 3, max(ui - 2, 0):ui + 3] = z
    return depth


class FakeEstimator:
    """Returns queued answers: (joints, valid) per call; records the reference points it was given."""

    def __init__(self, answers: list[tuple[np.ndarray, bool]], names: tuple[str, ...]) -> None:
        self.answers = list(answers)
        self.joint_names = names
        self.refs: list[Any] = []

    def estimate(self, depth_mm: np.ndarray, intrinsics: Intrinsics, reference_point: Any = None) -> Any:
        assert depth_mm.ndim == 2 and depth_mm.dtype == np.float32 and isinstance(intrinsics, Intrinsics)
        self.refs.append(reference_point)
        joints, valid = self.answers.pop(0)
        ref = np.asarray(joints, float).mean(axis=0) if reference_point is None else np.asarray(reference_point)
        return SimpleNamespace(joints=np.asarray(joints, float), confidence=np.ones(len(joints)),
                               reference_point=ref, joint_names=self.joint_names, valid=valid,
                               reason="" if valid else "no points in cube", timings={"network": 2.0, "total": 3.0})


def _frames(spec: Any, n: int) -> list[DatasetFrame]:
    out = []
    for i in range(n):
        gt = _hand(spec, seed=i)
        out.append(DatasetFrame(depth=_render(spec, gt), intrinsics=spec.intrinsics, joints=gt, name=f"f{i}"))
    return out


def test_evaluate_estimator_report(tmp_path: Path) -> None:
    from v2v_ros.evaluate.runner import evaluate_estimator

    spec = get_dataset("synthetic")
    frames = _frames(spec, 5)
    shift = np.array([3.0, 4.0, 0.0])  # 5 mm error on every joint
    answers = [(f.joints + shift, True) for f in frames]
    answers[2] = (frames[2].joints, False)
    est = FakeEstimator(answers, spec.joint_names)
    centers = np.array([[1.0, 2.0, 400.0], [np.nan] * 3, [0, 0, 300.0], [0, 0, 310.0]])
    report = evaluate_estimator(est, frames, spec=spec, limit=4, centers=centers, out_dir=tmp_path / "rep",
                                num_overlays=3)
    assert report["frames"] == 4 and report["invalid_frames"] == 1 and report["invalid_reasons"] == {
        "no points in cube": 1}
    assert report["mean_error_mm"] == pytest.approx(5.0)
    assert report["success_rate"]["0"] == 0.0 and report["success_rate"]["10"] == 0.75
    assert report["timings_ms"] == {"network": 2.0, "total": 3.0} and report["dataset"] == "synthetic"
    assert est.refs[0].tolist() == [1.0, 2.0, 400.0] and est.refs[1] is None
    rep = tmp_path / "rep"
    assert json.loads((rep / "metrics.json").read_text())["mean_error_mm"] == pytest.approx(5.0)
    for name in ("success_curve.png", "per_joint_error.png", "overlay_000.png", "overlay_002.png"):
        assert (rep / name).read_bytes()[:8] == PNG_MAGIC
    assert not (rep / "overlay_003.png").exists()
    saved = np.load(rep / "predictions.npz")
    assert saved["pred"].shape == (4, 21, 3) and np.isnan(saved["pred"][2]).all()
    assert saved["visible"].shape == (4, 21) and report["visibility"]["frames_all_visible"] is not None


def test_evaluate_estimator_body_and_joint_matching() -> None:
    from v2v_ros.evaluate.runner import evaluate_estimator, match_joints

    spec = get_dataset("itop_front")
    frames = _frames(spec, 3)
    # A model with extra joints in another order is matched by name.
    names = tuple(reversed(spec.joint_names)) + ("extra",)
    answers = [(np.vstack([f.joints[::-1] + [0, 0, 150.0], [[0, 0, 1.0]]]), True) for f in frames]
    report = evaluate_estimator(FakeEstimator(answers, names), frames, spec=spec)
    assert report["map_10cm"] == 0.0 and report["ap_10cm_per_joint"] == [0.0] * 15
    answers = [(np.vstack([f.joints[::-1] + [0, 0, 50.0], [[0, 0, 1.0]]]), True) for f in frames]
    report = evaluate_estimator(FakeEstimator(answers, names), frames, spec=spec)
    assert report["map_10cm"] == 1.0 and report["mean_error_mm"] == pytest.approx(50.0)
    with pytest.raises(ValueError, match="predicts 3 joints"):
        match_joints(np.zeros((3, 3)), ("a", "b", "c"), spec.joint_names, 15)


def test_eval_cli_with_fake_estimator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """`v2v eval` end to end on an ICVL-format fixture, the checkpoint loading replaced by a fake."""
    from v2v_ros.data.icvl import write_png16
    from v2v_ros.evaluate import cli

    spec = get_dataset("icvl")
    testing = tmp_path / "Testing"
    truth = []
    for seq in ("test_seq_1", "test_seq_2"):
        (testing / "Depth" / seq).mkdir(parents=True)
        joints = _hand(spec, seed=len(truth))
        truth.append(joints)
        write_png16(testing / "Depth" / seq / "image_0000.png", _render(spec, joints))
        uvd = spec.intrinsics.to_uvd(joints)
        (testing / f"{seq}.txt").write_text(f"{seq}/image_0000.png " + " ".join(f"{x:.4f}" for x in uvd.ravel()))
    answers = [(truth[0] + [0, 0, 2.0], True), (truth[1] + [0, 0, 2.0], True)]
    monkeypatch.setattr(cli, "_load_estimator", lambda args: FakeEstimator(answers, spec.joint_names))
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"")
    code, out = _run_cli(["eval", "--checkpoint", str(ckpt), "--dataset", "icvl", "--root", str(tmp_path),
                          "--out", str(tmp_path / "report"), "--json", "--overlays", "1"], capsys)
    assert code == 0
    report = json.loads(out)
    assert report["frames"] == 2 and report["mean_error_mm"] == pytest.approx(2.0, abs=1e-3)
    assert report["success_rate"]["10"] == 1.0 and report["checkpoints"] == [str(ckpt)]
    assert (tmp_path / "report" / "overlay_000.png").is_file()
    code, _ = _run_cli(["eval", "--checkpoint", str(ckpt), "--dataset", "nyu", "--root", str(tmp_path)], capsys)
    assert code == 2  # no NYU data there: a clear error, not a traceback

    def with_localisers(args: Any) -> FakeEstimator:
        fake = FakeEstimator(answers, spec.joint_names)
        fake.refiner, fake.detector = object(), object()  # type: ignore[attr-defined]
        return fake

    monkeypatch.setattr(cli, "_load_estimator", with_localisers)
    base = ["eval", "--checkpoint", str(ckpt), "--dataset", "icvl", "--root", str(tmp_path), "--json"]
    code, out = _run_cli(base, capsys)
    assert code == 0 and json.loads(out)["refiner"] is True and json.loads(out)["detector"] is True
    code, out = _run_cli([*base, "--centers", "gt"], capsys)  # every cube given: no localisation network ran
    assert code == 0 and json.loads(out)["refiner"] is False and json.loads(out)["detector"] is False
    (tmp_path / "a_file").write_text("not a folder")
    code, _ = _run_cli([*base, "--out", str(tmp_path / "a_file")], capsys)
    assert code == 2  # --out naming a file: one line, exit 2


# --------------------------------------------------------------------------- visibility of the ground truth


@settings(max_examples=60, deadline=None)
@given(plane=st.floats(300.0, 2000.0), ahead=st.floats(-200.0, 200.0), u=st.floats(2.0, 60.0),
       v=st.floats(2.0, 44.0), tol=st.floats(5.0, 150.0))
def test_joint_behind_a_wall_is_visible_only_within_the_tolerance(plane: float, ahead: float, u: float, v: float,
                                                                  tol: float) -> None:
    """A wall at depth ``plane``: a joint is seen iff the wall is at most ``tol`` in front of it."""
    from v2v_ros.evaluate.visibility import joint_visibility

    cam = Intrinsics(fx=60.0, fy=60.0, cx=32.0, cy=24.0)
    depth = np.full((48, 64), plane, np.float32)
    z = plane + ahead
    joint = np.array([[(u - cam.cx) * z / cam.fx, (v - cam.cy) * z / cam.fy, z]])
    assume(abs(ahead - tol) > 1e-3)
    assert joint_visibility(depth, joint, cam, tol)[0] == (ahead < tol)


def test_joint_visibility_edge_cases() -> None:
    from v2v_ros.evaluate.visibility import joint_visibility

    cam = Intrinsics(fx=60.0, fy=60.0, cx=32.0, cy=24.0)
    depth = np.full((48, 64), 500.0, np.float32)
    depth[:, :8] = 0.0  # a band with no depth
    joints = np.array([[0.0, 0.0, 510.0],  # in front of the wall: visible
                       [1e4, 0.0, 500.0],  # off the image
                       [0.0, 0.0, -10.0],  # behind the camera
                       [np.nan, 0.0, 500.0],  # unknown ground truth
                       [(2 - 32) * 500 / 60, 0.0, 500.0]])  # on the pixels without depth
    assert joint_visibility(depth, joints, cam, 25.0).tolist() == [True, False, False, False, False]


def test_evaluate_estimator_splits_errors_by_visibility() -> None:
    """Occluded joints are reported apart; success on visible joints ignores them."""
    from v2v_ros.evaluate.runner import evaluate_estimator

    spec = get_dataset("synthetic")
    frames = _frames(spec, 4)
    answers = []
    for i, f in enumerate(frames):
        pred = f.joints + [3.0, 4.0, 0.0]  # 5 mm everywhere ...
        if i < 2:  # ... but joint 3 is hidden behind a surface 100 mm in front of it and 30 mm off
            u, v, z = spec.intrinsics.to_uvd(f.joints[3])
            f.depth[int(round(v)) - 2:int(round(v)) + 3, int(round(u)) - 2:int(round(u)) + 3] = z - 100.0
            pred[3] = f.joints[3] + [0.0, 30.0, 0.0]
        answers.append((pred, True))
    report = evaluate_estimator(FakeEstimator(answers, spec.joint_names), frames, spec=spec)
    vis = report["visibility"]
    expected = np.ones(spec.num_eval_joints)
    expected[3] = 0.5
    np.testing.assert_allclose(vis["per_joint_visible_fraction"], expected)
    assert vis["mean_error_visible_mm"] == pytest.approx(5.0)
    assert vis["mean_error_occluded_mm"] == pytest.approx(30.0)
    assert report["success_rate"]["20"] == 0.5 and vis["success_rate_visible_joints"]["20"] == 1.0
    assert vis["worst_joint_occluded_fraction"] == 0.5 and vis["frames_all_visible"] == 0.5


def test_eval_cli_centers_file_is_converted_and_aligned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """`v2v eval --centers` on ITOP: the release's file (metres, y up, one line per frame of the split,
    invalid frames included) gives each evaluated frame its own centre in optical-frame mm."""
    import h5py

    from v2v_ros.data import itop
    from v2v_ros.evaluate import cli

    spec = get_dataset("itop_front")
    n = 4
    truth = [_hand(spec, seed=i) * [3.0, 3.0, 1.0] + [0.0, 0.0, 2000.0] for i in range(n)]  # mm, optical
    depth_name, label_name = itop.file_names("front", "test")
    ids = np.array([f"00_{i:05d}".encode() for i in range(n)])
    with h5py.File(tmp_path / depth_name, "w") as f:
        f["id"] = ids
        f["data"] = np.stack([_render(spec, j) / 1000.0 for j in truth]).astype(np.float16)
    with h5py.File(tmp_path / label_name, "w") as f:
        f["id"] = ids
        f["is_valid"] = np.array([1, 0, 1, 1], np.uint8)
        f["real_world_coordinates"] = (np.stack(truth) * [1.0, -1.0, 1.0] / 1000.0).astype(np.float32)
    released = [j.mean(axis=0) * [1.0, -1.0, 1.0] / 1000.0 for j in truth]  # the release's frame
    (tmp_path / "center_test.txt").write_text(
        "\n".join("invalid invalid invalid" if i == 1 else " ".join(f"{v:.7f}" for v in c)
                  for i, c in enumerate(released)) + "\n")
    kept = [0, 2, 3]
    est = FakeEstimator([(truth[i], True) for i in kept], spec.joint_names)
    monkeypatch.setattr(cli, "_load_estimator", lambda args: est)
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"")
    base = ["eval", "--checkpoint", str(ckpt), "--dataset", "itop", "--root", str(tmp_path), "--json"]
    code, out = _run_cli(base + ["--centers", str(tmp_path / "center_test.txt")], capsys)
    assert code == 0 and json.loads(out)["frames"] == 3
    assert len(est.refs) == 3
    for ref, i in zip(est.refs, kept, strict=True):
        np.testing.assert_allclose(ref, truth[i].mean(axis=0), atol=1e-3)
    (tmp_path / "short.txt").write_text("0.1 0.2 2.0\n")
    code, _ = _run_cli(base + ["--centers", str(tmp_path / "short.txt")], capsys)
    assert code == 2  # a file of another split: refused, not silently shifted
