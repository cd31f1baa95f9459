"""The environment a ROS 2 process of this package needs (no rclpy import here).

One place decides the middleware, the Fast DDS profile and the discovery range, so the node, the
demo, the tests and the launch file run with the same settings.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def config_dir() -> Path:
    """The package's config/ folder: beside the package in a checkout, or the ament share dir."""
    candidates = [PACKAGE_DIR.parent / "config"]
    try:  # installed in a ROS 2 workspace: share/edepth_ros/config
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory("edepth_ros")) / "config")
    except Exception:  # ament_index is optional: not present outside a ROS install
        pass
    import sys

    candidates.append(Path(sys.prefix) / "share" / "edepth_ros" / "config")
    for c in candidates:
        if (c / "fastdds.xml").is_file():
            return c
    raise FileNotFoundError(
        "edepth_ros config/fastdds.xml not found (looked in "
        + ", ".join(str(c) for c in candidates)
        + "); reinstall the package or run from the checkout"
    )


def fastdds_profile() -> Path:
    return config_dir() / "fastdds.xml"


def ros_environment(domain_id: int | None = None, base: dict | None = None, localhost: bool = True) -> dict:
    """A copy of ``base`` (default os.environ) with the middleware settings this package relies on.

    An explicit FASTDDS_DEFAULT_PROFILES_FILE in ``base`` is kept: users may ship their own.
    """
    env = dict(os.environ if base is None else base)
    env.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    env.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(fastdds_profile()))
    if localhost:
        env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    if domain_id is not None:
        env["ROS_DOMAIN_ID"] = str(int(domain_id))
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env
