"""Where the shipped models, configs and ``.msg`` files are, however v2v_ros was installed.

The same files live in three places depending on the install, and every command
that has a default model or reads the messages must find them without the user
passing paths:

* a wheel (``pip install .``): inside the package, ``v2v_ros/share/{models,config,msg}``
  (``setup.py`` copies them there when it builds the wheel);
* a checkout or an editable install (``make``): the repository's ``models/``,
  ``config/`` and ``msg/``;
* a CMake/colcon install: ``<prefix>/share/v2v_ros/`` for every prefix on
  ``AMENT_PREFIX_PATH`` (set by ``source install/setup.bash``).

Lookups try them in that order; a miss raises ``FileNotFoundError`` naming every
place tried, so a user sees which path to fix instead of a bare "not found".
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE = "v2v_ros"
PACKAGE_DATA = Path(__file__).resolve().parent / "share"  # in a wheel
SOURCE_ROOT = Path(__file__).resolve().parents[1]  # in a checkout (or site-packages in a wheel)


def data_roots() -> list[Path]:
    """Folders that may hold ``models/``, ``config/`` and ``msg/``, in lookup order."""
    roots = [PACKAGE_DATA, SOURCE_ROOT]
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix:
            roots.append(Path(prefix) / "share" / PACKAGE)
    return list(dict.fromkeys(roots))


def find_data(relative: str | os.PathLike[str]) -> Path:
    """The first existing ``root/relative`` over :func:`data_roots`; FileNotFoundError lists them all."""
    tried = [root / relative for root in data_roots()]
    for path in tried:
        if path.exists():
            return path
    raise FileNotFoundError(f"{relative} is not shipped with this install (tried {', '.join(map(str, tried))})")


def shipped_model(name: str = "hand_default") -> Path:
    """Path of a shipped model's weights, ``models/<name>.safetensors`` (its ``.json`` and any
    ``.refiner``/``.detector`` companions lie next to it), e.g. for ``PoseEstimator.load``."""
    path = find_data(Path("models") / f"{name}.safetensors")
    if not path.with_suffix(".json").is_file():
        raise FileNotFoundError(f"{path.with_suffix('.json')} is missing (the metadata of {path.name})")
    return path

