"""Installs as users make them: a wheel in a clean virtual environment (no ROS, no checkout),
the CMake/colcon install's node executable started from a sourced install, and the one-line
answers the command line gives when something a plain install lacks is needed.

The wheel test builds an sdist (so MANIFEST.in is checked too), a wheel from it, and installs
that into a fresh venv with nothing from this checkout on ``sys.path``; it then runs the README's
Python example word for word. Dependencies come from a wheelhouse in ``~/.cache/v2v_ros``
(filled from the package registry the first time, ~1 min; later runs install offline), and
torch only from a local file: where none exists (pip ``find-links``), the test is skipped
rather than download a multi-GB CUDA build.
"""

from __future__ import annotations

import ast
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TORCH_PIN = "torch==2.13.0"


# ------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------
def _setup_groups() -> dict[str, tuple[str, ...]]:
    """RUNTIME / ONNX / DEV as written in setup.py (read, not imported: importing runs setup())."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    groups = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            if node.targets[0].id in ("RUNTIME", "ONNX", "DEV"):
                groups[node.targets[0].id] = tuple(ast.literal_eval(node.value))
    return groups


def _pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            out[re.split(r"[=<>!~\[; ]", line, maxsplit=1)[0].lower()] = line
    return out


def _clean_env(**extra: str) -> dict[str, str]:
    """This environment without anything that points into the checkout or its .venv, as a user
    of the install would have it (DDS settings kept: loopback, the test's domain)."""
    # _ROS_WHEELS_BOOTSTRAP_COMPLETE: set by the ROS wheels in this process once they have put their
    # libraries on LD_LIBRARY_PATH; a fresh shell has neither.
    drop = ("PYTHONPATH", "AMENT_PREFIX_PATH", "LD_LIBRARY_PATH", "VIRTUAL_ENV", "PYTHONHOME",
            "_ROS_WHEELS_BOOTSTRAP_COMPLETE")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p and p != venv_bin)
    env.update(extra)
    return env


def _run(cmd: list[str], timeout: float = 600, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kw)


def _ok(r: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert r.returncode == 0, f"{' '.join(r.args)} -> {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


def readme_python_example() -> str:
    """The README's Python example (the ```python block that loads a PoseEstimator)."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    found = [b for b in blocks if "PoseEstimator.load" in b]
    assert len(found) == 1, "README must have exactly one Python example that loads a PoseEstimator"
    return found[0]


# ------------------------------------------------------------------------------------------
# pip: metadata and the wheel in a clean venv
# ------------------------------------------------------------------------------------------
def test_setup_pins_every_requirement_exactly_once() -> None:
    """Every line of requirements.txt is a library dependency, part of the onnx extra or a
    development tool, so that pip installs the versions the tests ran with (unpinned, pip took a
    newer torch) and nothing is forgotten when requirements.txt changes."""
    groups = _setup_groups()
    assert set(groups) == {"RUNTIME", "ONNX", "DEV"}
    names = [n for g in groups.values() for n in g]
    assert len(names) == len(set(names)), "a requirement is in two groups"
    assert set(names) == set(_pins(ROOT / "requirements.txt")), "setup.py groups != requirements.txt"
    assert "torch" in groups["RUNTIME"] and "onnxruntime" in groups["ONNX"]


@pytest.mark.slow
def test_wheel_in_a_clean_venv_runs_the_readme_example(tmp_path: Path) -> None:
    py = sys.executable
    env = _clean_env()
    # 1. sdist (checks MANIFEST.in) -> wheel, from a copy so the checkout gets no build/ or egg-info
    src = tmp_path / "src"
    src.mkdir()
    for name in ("setup.py", "pyproject.toml", "MANIFEST.in", "README.md", "requirements.txt", "constraints.txt"):
        shutil.copy2(ROOT / name, src / name)
    for name in ("v2v_ros", "models", "config", "msg"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    _ok(_run([py, "setup.py", "-q", "sdist", "-d", tmp_path / "sdist"], cwd=src, env=env))
    sdist = next((tmp_path / "sdist").glob("v2v_ros-*.tar.gz"))
    _ok(_run([py, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", tmp_path / "dist", sdist],
             env=env))
    wheel = next((tmp_path / "dist").glob("v2v_ros-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        files = set(z.namelist())
        meta = z.read(next(f for f in files if f.endswith(".dist-info/METADATA"))).decode()
    for f in ("models/hand_default.safetensors", "models/hand_default.json", "models/body_default.safetensors",
              "config/hand_pose.yaml", "msg/Skeleton3DArray.msg"):
        assert f"v2v_ros/share/{f}" in files, f"wheel lacks {f}"
    requires = sorted(re.findall(r"^Requires-Dist: (\S+)$", meta, flags=re.M))  # without an extra marker
    pins = _pins(ROOT / "requirements.txt")
    assert requires == sorted(pins[n] for n in _setup_groups()["RUNTIME"])
    assert TORCH_PIN in requires

    # 2. dependencies from the wheelhouse; torch only from a local file
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "v2v_ros" / "wheelhouse"
    cache.mkdir(parents=True, exist_ok=True)
    r = _run([py, "-m", "pip", "download", "-q", "--no-deps", "--no-index", "--find-links", cache, "-d", cache,
              TORCH_PIN], env=env)
    if r.returncode != 0:
        pytest.skip(f"no local {TORCH_PIN} wheel (pip find-links); installing it would download a multi-GB build")
    venv = tmp_path / "venv"
    _ok(_run([py, "-m", "venv", venv], env=env))
    vpy = venv / "bin" / "python"
    install = [vpy, "-m", "pip", "install", "-q", "--no-index", "--find-links", cache,
               "-c", ROOT / "constraints.txt", wheel]
    if _run(install, env=env).returncode != 0:  # first run, or new pins: fill the wheelhouse once
        _ok(_run([py, "-m", "pip", "download", "-q", "--find-links", cache, "-d", cache,
                  "-c", ROOT / "constraints.txt", wheel], env=env))
        for stale in cache.glob("v2v_ros-*"):
            stale.unlink()
        _ok(_run(install, env=env))
    _ok(_run([vpy, "-m", "pip", "check"], env=env))

    # 3. the README's example, as written, from a folder that is not the checkout
    work = tmp_path / "work"
    work.mkdir()
    check = ("\nimport numpy as np\nassert res.valid and res.joints.shape == (21, 3)\n"
             "err = float(np.linalg.norm(res.joints - frame.joints, axis=1).mean())\n"
             "assert err < 40, err\nimport v2v_ros\nprint('FROM', v2v_ros.__file__)\n")
    r = _ok(_run([vpy, "-c", readme_python_example() + check], cwd=work, env=env))
    assert str(venv) in r.stdout.split("FROM", 1)[1], "the example did not import the installed wheel"
    assert r.stdout.startswith("True (21, 3)"), r.stdout

    # 4. what a plain install lacks is said in one line (exit 2), what it has works
    v2v = venv / "bin" / "v2v"
    r = _run([v2v, "export", "--onnx", work / "hand.onnx"], cwd=work, env=env)
    assert r.returncode == 2 and 'pip install "v2v_ros[onnx]"' in r.stderr and len(r.stderr.splitlines()) == 1
    r = _run([v2v, "bench", "--model", work / "missing"], cwd=work, env=env)
    assert r.returncode == 2 and "--random-weights" in r.stderr and len(r.stderr.splitlines()) == 1
    r = _run([v2v, "demo"], cwd=work, env=env)
    assert r.returncode == 2 and "rclpy" in r.stderr and len(r.stderr.splitlines()) == 1
    _ok(_run([v2v, "synth", "--out", work / "synth", "--n", "2", "--bag"], cwd=work, env=env))
    assert (work / "synth" / "bag" / "metadata.yaml").is_file()


# ------------------------------------------------------------------------------------------
# one-line answers in this checkout
# ------------------------------------------------------------------------------------------
def test_bench_refuses_a_missing_model_unless_random_weights_are_asked_for(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from v2v_ros.cli import main

    assert main(["bench", "--model", str(tmp_path / "missing.safetensors")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--random-weights" in err and "missing.safetensors" in err


def test_export_without_the_onnx_extra_says_how_to_get_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from v2v_ros.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxscript" else real(name, *a))
    assert main(["export", "--onnx", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "missing: onnxscript" in err and "v2v_ros[onnx]" in err
    assert not (tmp_path / "x.onnx").exists()


def test_synth_bag_without_message_files_is_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import v2v_ros.resources
    from v2v_ros.cli import main

    monkeypatch.setattr(v2v_ros.resources, "data_roots", lambda: [tmp_path / "nowhere"])
    assert main(["synth", "--out", str(tmp_path / "s"), "--n", "1", "--bag"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--bag" in err and str(tmp_path / "nowhere") in err
    assert not (tmp_path / "s").exists()


def test_shipped_model_lookup_names_every_place_tried(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import v2v_ros.resources as res

    assert res.shipped_model("hand_default") == ROOT / "models" / "hand_default.safetensors"
    monkeypatch.setattr(res, "PACKAGE_DATA", tmp_path / "a")
    monkeypatch.setattr(res, "SOURCE_ROOT", tmp_path / "b")
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(tmp_path / "c"))
    with pytest.raises(FileNotFoundError) as exc:
        res.shipped_model("hand_default")
    for where in ("a", "b", "c/share/v2v_ros"):
        assert str(tmp_path / where / "models" / "hand_default.safetensors") in str(exc.value)


def test_demo_printout_gives_both_denominators_and_no_hand_metric_for_bodies() -> None:
    from v2v_ros.demo import format_demo_summary

    base = {"frames_in": 90, "frames_out": 80, "frames_posed": 72, "dropped": 10, "rejected": {},
            "latency_ms": {"p50": 20.0, "p95": 40.0}, "throughput_fps": 28.0}
    hand = format_demo_summary({**base, "metrics": {"success_rate": {"20": 0.40}, "mean_error_mm": 14.0},
                                "metrics_posed": {"success_rate": {"20": 0.50}, "mean_error_mm": 14.0}})
    assert "over the 72 posed frames | over all 90 frames" in hand
    assert re.search(r"success @20 mm\s+50\.0 % \| 40\.0 %", hand), hand
    assert "mAP" not in hand
    body = format_demo_summary({**base, "metrics": {"map_10cm": 0.70, "ap_10cm_per_part": {"head": 0.7}},
                                "metrics_posed": {"map_10cm": 0.97}}, body=True)
    assert re.search(r"mAP \(10 cm rule\)\s+97\.0 % \| 70\.0 %", body), body
    assert "success" not in body and "with a person" in body


def test_demo_printout_keeps_the_first_skeleton_figures_only_for_one_hand_streams() -> None:
    """Hand demos score every published skeleton: a one-hand stream shows both the first-skeleton accuracy
    and every published target; a two-hand stream only the latter (its first skeleton is no hand in
    particular)."""
    from v2v_ros.demo import format_demo_summary

    base = {"frames_in": 90, "frames_out": 80, "frames_posed": 72, "dropped": 10, "rejected": {},
            "latency_ms": {"p50": 20.0, "p95": 40.0}, "throughput_fps": 28.0,
            "metrics": {"success_rate": {"20": 0.40}}, "metrics_posed": {"success_rate": {"20": 0.50}}}
    mt = {"found": 70, "targets_in_view": 90, "recall": 0.78, "precision": 1.0, "false_targets": 0,
          "mean_error_mm": 9.0, "handedness_accuracy": 0.99, "id_switches": 0, "id_switches_per_100_frames": 0.0}
    one = format_demo_summary({**base, "multi_target": {**mt, "frames_with_all_hands_in_view": 0}})
    assert "success @20 mm" in one and "70 of 90 hands found" in one and "0 false targets" in one
    two = format_demo_summary({**base, "multi_target": {**mt, "frames_with_all_hands_in_view": 85}})
    assert "success @20 mm" not in two and "70 of 90 hands found" in two


# ------------------------------------------------------------------------------------------
# ROS install: launch defaults, RViz configs, the installed executable
# ------------------------------------------------------------------------------------------
def _launch_default(launch: Path, name: str) -> str:
    tree = ast.parse(launch.read_text())
    for n in ast.walk(tree):
        if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "DeclareLaunchArgument" and \
                n.args and n.args[0].value == name:
            return next(k.value.value for k in n.keywords if k.arg == "default_value")
    raise AssertionError(f"{launch.name} does not declare {name}")


@pytest.mark.parametrize("preset", ["hand", "body"])
def test_rviz_config_shows_the_launch_files_default_topics(preset: str) -> None:
    """config/<preset>_pose.rviz draws the depth cloud of the launch file's default depth topic
    (realsense-ros >= 4.54) and the node's markers, so `rviz2 -d` works with the defaults."""
    launch = ROOT / "launch" / f"{preset}_pose.launch.py"
    cfg = yaml.safe_load((ROOT / "config" / f"{preset}_pose.rviz").read_text())
    displays = {d["Class"]: d for d in cfg["Visualization Manager"]["Displays"]}
    assert displays["rviz_default_plugins/DepthCloud"]["Depth Map Topic"] == _launch_default(launch, "depth_topic")
    assert displays["rviz_default_plugins/MarkerArray"]["Topic"]["Value"] == "/v2v_pose_node/markers"
    assert _launch_default(launch, "depth_topic") == "/camera/camera/depth/image_rect_raw"
    assert _launch_default(launch, "camera_info_topic") == "/camera/camera/depth/camera_info"


def _install_prefix() -> Path | None:
    """The CMake/colcon install prefix holding lib/v2v_ros/v2v_pose_node (make's ./install or one on
    AMENT_PREFIX_PATH), or None."""
    candidates = [Path(p) for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    for prefix in [*candidates, ROOT / "install"]:
        if (prefix / "lib" / "v2v_ros" / "v2v_pose_node").is_file():
            return prefix
    return None


@pytest.mark.ros
@pytest.mark.slow
def test_installed_node_runs_with_the_interpreter_that_has_its_dependencies(tmp_path: Path) -> None:
    """`source install/setup.bash; ros2 launch/run` executes lib/v2v_ros/v2v_pose_node directly: its
    #! line must name the interpreter with torch (CMake's V2V_PYTHON_EXECUTABLE; make: .venv), not
    whatever python3 is first on PATH. Started here from the sourced install's environment, with
    neither the checkout nor .venv/bin on any path, in a folder that is not the checkout."""
    prefix = _install_prefix()
    if prefix is None:
        pytest.skip("no CMake/colcon install of v2v_ros (make test builds ./install)")
    exe = prefix / "lib" / "v2v_ros" / "v2v_pose_node"
    first = exe.read_text().splitlines()[0]
    assert first.startswith("#!/") and "/env " not in first, f"{exe}: {first!r} depends on PATH"
    assert (prefix / "share" / "v2v_ros" / "config" / "body_pose.rviz").is_file()
    env = _clean_env(AMENT_PREFIX_PATH=os.pathsep.join(  # the underlay (ROS) stays; the checkout goes
        p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p and Path(p) != prefix))
    _ok(_run([first[2:].strip(), "-c", "import torch, rclpy, numpy, safetensors"], env=env))
    script = (f'source "{prefix}/share/v2v_ros/local_setup.bash" && exec "{exe}" --ros-args '
              f'--params-file "{prefix}/share/v2v_ros/config/hand_pose.yaml" -r depth/image:=/v2v_test/depth')
    proc = subprocess.Popen(["bash", "-c", script], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 120
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([proc.stdout], [], [], left)[0]:
                break  # silent until the deadline
            line = proc.stdout.readline()
            if not line:
                break  # exited
            lines.append(line)
            if "active: listening on /v2v_test/depth" in line:
                break
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    out = "".join(lines)
    assert "active: listening on /v2v_test/depth" in out, out[-3000:]
    assert "configured: model hand_default" in out, out[-3000:]
