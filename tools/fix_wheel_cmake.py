"""Rewrite the wheel builder's hard-coded paths in the ROS 2 PyPI wheels' CMake files.

The ros-* wheels export CMake config files that name
``/opt/python/cp311-cp311/include/python3.11`` and the builder's NumPy include
directory. Building our messages against them needs this interpreter's paths
instead (see ../shared/notes/ros2-from-pypi.md). Idempotent: run it any time.
"""

from __future__ import annotations

import pathlib
import sys
import sysconfig

import numpy

BUILDER_PY_INCLUDE = "/opt/python/cp311-cp311/include/python3.11"
BUILDER_NP_INCLUDE = "/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include"


def main(prefix: str) -> int:
    """Patch every ``*.cmake`` file under ``prefix/share``; print how many changed."""
    py_include = sysconfig.get_paths()["include"]
    np_include = numpy.get_include()
    changed = 0
    for path in pathlib.Path(prefix, "share").rglob("*.cmake"):
        text = path.read_text(errors="surrogateescape")
        new = text.replace(BUILDER_NP_INCLUDE, np_include).replace(BUILDER_PY_INCLUDE, py_include)
        if new != text:
            path.write_text(new, errors="surrogateescape")
            changed += 1
    print(f"fix_wheel_cmake: patched {changed} file(s) under {prefix}/share")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else sys.prefix))
