"""pip-installable pure-Python part of v2v_ros (library + `v2v` CLI), for users without ROS.

The ROS build (messages, node executable, launch files) goes through CMake/colcon
(CMakeLists.txt); this file packages the Python sources plus what they need at run
time without a checkout: the shipped models, the configs and the ``.msg`` files
(``v2v synth --bag`` and ``v2v eval-bag`` read them), copied into ``v2v_ros/share/``
of the wheel (found by ``v2v_ros.resources``).

Dependencies are pinned to the versions ``requirements.txt`` lists, the ones the
tests ran with (unpinned, pip picked the newest torch: another release, and a CUDA
build of several GB). ``requirements.txt`` stays the single list of versions; here it
is only split into what the library needs, the ``onnx`` extra and development tools.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
# Installed with the library / with `pip install "v2v_ros[onnx]"` (v2v export, backend onnxruntime).
RUNTIME = ("torch", "numpy", "safetensors", "scipy", "h5py", "matplotlib", "pillow", "pyyaml", "tqdm", "rosbags")
ONNX = ("onnx", "onnxruntime", "onnxscript")
DEV = ("pytest", "hypothesis", "ruff")  # requirements.txt's test and lint tools, not installed by pip install .
SHARED = ("models", "config", "msg")  # folders copied to v2v_ros/share/ in the wheel


def pins(path: Path = ROOT / "requirements.txt") -> dict[str, str]:
    """{lower-case name: "name==version"} from a requirements file (comments and blanks skipped)."""
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name = re.split(r"[=<>!~\[; ]", line, maxsplit=1)[0]
            out[name.lower()] = line
    return out


class BuildPyWithData(build_py):
    """build_py that also copies models/, config/ and msg/ into v2v_ros/share/.

    Package data must live inside the package; the repository keeps these folders at
    its root (CMake installs them to share/v2v_ros), so they are copied at build
    time rather than moved. Editable installs skip this: they run from the checkout,
    where ``v2v_ros.resources`` finds the folders in place.
    """

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for folder in SHARED:
            src = ROOT / folder
            if not src.is_dir():
                raise FileNotFoundError(f"{src} is missing: the wheel would ship without its {folder}")
            # models/stages/ holds training-stage weights (init_from), not run-time models: not shipped
            shutil.copytree(src, Path(self.build_lib) / "v2v_ros" / "share" / folder, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("stages", "__pycache__"))


PINS = pins()

setup(
    name="v2v_ros",
    version="0.1.0",
    description="V2V-PoseNet 3D hand and body pose from depth images, with a ROS 2 node",
    long_description=(ROOT / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    packages=find_packages(include=["v2v_ros", "v2v_ros.*"]),
    python_requires=">=3.11",
    install_requires=[PINS[name] for name in RUNTIME],
    extras_require={"onnx": [PINS[name] for name in ONNX]},
    entry_points={"console_scripts": ["v2v=v2v_ros.cli:main"]},
    package_data={"v2v_ros": ["py.typed"]},
    cmdclass={"build_py": BuildPyWithData},
)
