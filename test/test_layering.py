"""Package layers: the core imports neither data code nor ROS; the bag tools work without rclpy.

Checked on the source (every import statement, including the lazy ones inside
functions, which an import-time check would miss) and by running the bag commands in
a Python where rclpy cannot be imported.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "v2v_ros"
# A Python in which `import rclpy` fails, as on a machine without ROS 2.
NO_RCLPY = "import sys\nsys.modules['rclpy'] = None\n"


def _imports(path: Path) -> set[str]:
    mods: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            mods |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            mods.add(node.module)
    return mods


def _offending(folder: str, forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    bad = {}
    for f in sorted((PKG / folder).rglob("*.py")):
        hits = sorted(m for m in _imports(f) if any(m == p or m.startswith(p + ".") for p in forbidden))
        if hits:
            bad[str(f.relative_to(PKG))] = hits
    return bad


def test_core_imports_no_data_ros_or_tools() -> None:
    assert _offending("core", ("v2v_ros.data", "v2v_ros.ros", "v2v_ros.bag", "v2v_ros.train",
                               "v2v_ros.evaluate", "rclpy", "rosbags")) == {}


def test_bag_tools_import_no_ros() -> None:
    assert _offending("bag", ("v2v_ros.ros", "rclpy")) == {}


def test_the_scan_sees_lazy_imports(tmp_path: Path) -> None:
    """The check can fail: an import inside a function is found."""
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from v2v_ros.data.synthetic import render_frame  # noqa\n    import rclpy\n")
    assert _imports(f) >= {"v2v_ros.data.synthetic", "rclpy"}


def _run(code: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(PKG.parent), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-c", NO_RCLPY + code], capture_output=True, text=True, env=env,
                          timeout=120)


def test_bag_commands_without_rclpy(tmp_path: Path) -> None:
    r = _run("import v2v_ros.bag.cli, v2v_ros.bag.evaluate, v2v_ros.bag.io\n"
             "from v2v_ros.cli import main\n"
             f"code = main(['eval-bag', {str(tmp_path / 'missing')!r}, '--out', {str(tmp_path / 'out')!r}])\n"
             "assert 'v2v_ros.ros.play' not in sys.modules and sys.modules.get('rclpy') is None\n"
             "sys.exit(code)\n")
    # The bag is missing: eval-bag gets as far as reading it and says so in one line (exit 1), no ImportError.
    assert r.returncode == 1, r.stderr
    assert r.stderr.startswith("eval-bag:") and "missing" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("argv, code, message", [
    (["--help"], 0, None),
    (["play", "BAG"], 1, "play: needs rclpy"),
    (["play", "BAG", "--domain-id", "999"], 2, "--domain-id"),  # argument errors need no ROS either
])
def test_play_is_the_ros_command(argv: list[str], code: int, message: str | None) -> None:
    r = _run(f"from v2v_ros.cli import main\nsys.exit(main({argv!r}))\n")
    assert r.returncode == code, r.stderr
    if message:
        assert message in r.stderr and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    else:
        assert "play" in r.stdout and "eval-bag" in r.stdout
