"""The launch file is for real ROS 2 installs: checked when launch_ros is importable, otherwise
its text is checked for portability (no absolute paths) and its arguments."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
LAUNCHES = [ROOT / "launch" / "hand_pose.launch.py", ROOT / "launch" / "body_pose.launch.py"]
CONFIGS = [ROOT / "config" / "hand_pose.yaml", ROOT / "config" / "body_pose.yaml", ROOT / "config" / "two_hands.yaml"]
ARGS = {"namespace", "depth_topic", "camera_info_topic", "params_file", "use_sim_time", "log_level"}


@pytest.mark.parametrize("launch", LAUNCHES, ids=lambda p: p.name)
def test_launch_file_is_portable_and_declares_arguments(launch: Path) -> None:
    text = launch.read_text()
    tree = ast.parse(text)
    strings = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    assert not [s for s in strings if s.startswith("/") and not s.startswith(("/camera", "/compressedDepth"))], "absolute path in launch"
    assert "get_package_share_directory" in text
    # its default parameter file is one of this package's (which the next test checks)
    assert any(f'"{c.name}"' in text for c in CONFIGS), "default params_file is not a package config"
    declared = {n.args[0].value for n in ast.walk(tree) if isinstance(n, ast.Call)
                and getattr(n.func, "id", "") == "DeclareLaunchArgument"}
    assert ARGS <= declared


@pytest.mark.skipif(importlib.util.find_spec("launch_ros") is None, reason="launch_ros not installed here")
@pytest.mark.parametrize("launch", LAUNCHES, ids=lambda p: p.name)
def test_launch_description_builds(launch: Path) -> None:  # pragma: no cover - only on ROS installs
    spec = importlib.util.spec_from_file_location(launch.stem.replace(".", "_"), launch)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    ld = mod.generate_launch_description()
    names = {a.name for a in ld.get_launch_arguments()}
    assert ARGS <= names


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_params_yaml_matches_declared_parameters(config: Path) -> None:
    pytest.importorskip("rcl_interfaces")
    from v2v_ros.ros.params import BY_NAME, validate  # noqa: PLC0415

    data = yaml.safe_load(config.read_text())["/**"]["ros__parameters"]

    def flat(d: dict, prefix: str = "") -> dict:
        out = {}
        for k, v in d.items():
            if isinstance(v, dict):
                out.update(flat(v, f"{prefix}{k}."))
            else:
                out[f"{prefix}{k}"] = v
        return out

    values = flat(data)
    unknown = set(values) - set(BY_NAME)
    assert not unknown, f"yaml has undeclared parameters {unknown}"
    for name, v in values.items():
        assert type(v) is type(BY_NAME[name].default), f"{name}: yaml type {type(v)} != declared"
        assert validate(name, v, values) is None


def test_rviz_config_shows_depth_cloud_and_markers() -> None:
    cfg = yaml.safe_load((ROOT / "config" / "hand_pose.rviz").read_text())
    classes = {d["Class"] for d in cfg["Visualization Manager"]["Displays"]}
    assert {"rviz_default_plugins/DepthCloud", "rviz_default_plugins/MarkerArray"} <= classes
