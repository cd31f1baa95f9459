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


# Fast DDS computes its UDP ports from the domain id; above 232 they pass 65535 and it ends the
# process from C with "[RTPS Error] Calculated port number is too high" (exit 1, no traceback)
MAX_DOMAIN_ID = 232


def domain_id_problem(value) -> str | None:
    """Why ``value`` cannot be a ROS_DOMAIN_ID (None when it can)."""
    try:
        number = int(str(value).strip())
    except ValueError:
        return f"{value!r}: not a whole number"
    if not 0 <= number <= MAX_DOMAIN_ID:
        return (f"{number}: must be 0-{MAX_DOMAIN_ID} (Fast DDS's port range; 0-101 avoids the Linux "
                "ephemeral ports)")
    return None


def ros_environment(domain_id: int | None = None, base: dict | None = None, localhost: bool = True) -> dict:
    """A copy of ``base`` (default os.environ) with the middleware settings this package relies on.

    An explicit FASTDDS_DEFAULT_PROFILES_FILE in ``base`` is kept: users may ship their own. A
    domain id (given, or ROS_DOMAIN_ID in ``base``) Fast DDS cannot use raises ValueError naming it.
    """
    env = dict(os.environ if base is None else base)
    env.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    env.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(fastdds_profile()))
    if localhost:
        env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    if domain_id is not None:
        env["ROS_DOMAIN_ID"] = str(domain_id)
    if env.get("ROS_DOMAIN_ID", "") != "":  # empty: the default domain, as rcl reads it
        problem = domain_id_problem(env["ROS_DOMAIN_ID"])
        if problem:
            raise ValueError(f"{'--domain-id' if domain_id is not None else 'ROS_DOMAIN_ID'} {problem}")
        env["ROS_DOMAIN_ID"] = str(int(env["ROS_DOMAIN_ID"]))
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def enter_ros_environment(domain_id: int | None, prog: str) -> bool:
    """Set this process's environment for rclpy (before it creates its participant); False, with
    the reason on stderr, where the domain id (given or the shell's) is one Fast DDS cannot use."""
    import sys

    try:
        env = ros_environment(domain_id)
    except ValueError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return False
    os.environ.update(env)
    return True
