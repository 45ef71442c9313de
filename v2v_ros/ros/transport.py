"""Where the package's Fast DDS profile is and how processes get it (no rclpy import).

Fast DDS sends to a process on the same host through shared memory, out of a segment owned
by the *publishing* process (512 KiB unless configured). Images larger than that (a 640x480
16UC1 frame is 614,400 bytes) overwrite their own fragments before a subscriber has read
them: with best-effort QoS whole frames are lost, with reliable QoS the camera_info sent
next to them is lost and repaired late (ros2/rmw_fastrtps#739, eProsima/Fast-DDS#1666).
``config/fastdds_large_data.xml`` gives publishers a 16 MiB segment. It has to be in the
environment of the process that publishes the images (a camera driver, ``v2v play``, the
test camera) before its first ROS context starts; the subscriber's setting does not matter.
"""

from __future__ import annotations

import os
from pathlib import Path

from v2v_ros.resources import find_data

PROFILE_NAME = "fastdds_large_data.xml"
ENV = "FASTDDS_DEFAULT_PROFILES_FILE"


def profile_path() -> Path | None:
    """The shipped profile (wheel, checkout or share/v2v_ros/config; v2v_ros.resources), if found."""
    try:
        return find_data(Path("config") / PROFILE_NAME)
    except FileNotFoundError:
        return None


def profile_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's environment, modified in place) with the profile set,
    unless the user already chose a Fast DDS profile file; returns it."""
    env = os.environ if env is None else env  # type: ignore[assignment]
    if not env.get(ENV) and not env.get("FASTRTPS_DEFAULT_PROFILES_FILE"):
        path = profile_path()
        if path is not None:
            env[ENV] = str(path)
    return env  # type: ignore[return-value]
