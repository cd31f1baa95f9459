"""The package's own promises: layout, import hygiene, the CLI, and a real two-process DDS graph."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from edepth_ros.ros_env import fastdds_profile, ros_environment

PROJECT = Path(__file__).resolve().parents[1]


def test_import_does_not_pull_rclpy_or_torch():
    code = (
        "import sys, edepth_ros, edepth_ros.cli, edepth_ros.ros_env, edepth_ros.frame\n"
        "bad = [m for m in ('rclpy', 'torch', 'timm', 'onnxruntime') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=PROJECT)


def test_package_xml_declares_ros_dependencies():
    root = ET.parse(PROJECT / "package.xml").getroot()
    assert root.get("format") == "3"
    assert root.findtext("name") == "edepth_ros"
    deps = {e.text for e in root.findall("exec_depend")}
    # every ROS package the code (and the launch file) imports is declared, so rosdep installs it
    ros_roots = re.compile(r"^\s*(?:from|import)\s+(rclpy|\w+_msgs|\w+_interfaces|tf2_\w+|launch_ros|launch|"
                           r"ament_index_python)\b", re.M)
    imported = set()
    for path in [*(PROJECT / "edepth_ros").rglob("*.py"), *(PROJECT / "launch").glob("*.py")]:
        imported |= set(ros_roots.findall(path.read_text()))
    assert {"rclpy", "sensor_msgs", "tf2_ros", "rcl_interfaces"} <= imported  # the scan finds them
    assert not imported - deps, f"imported but not in package.xml: {sorted(imported - deps)}"
    assert root.find("export/build_type").text == "ament_python"


def test_setup_py_installs_ament_marker_launch_config_and_scripts():
    tree = ast.parse((PROJECT / "setup.py").read_text())
    text = ast.unparse(tree)
    assert "share/ament_index/resource_index/packages" in text
    assert "edepth = edepth_ros.cli:main" in text and "edepth_node = edepth_ros.ros.node:main" in text
    assert (PROJECT / "resource" / "edepth_ros").is_file()
    for folder in ("launch", "config", "models"):
        assert folder in text


def test_ci_runs_the_readme_test_command():
    readme = (PROJECT / "README.md").read_text()
    assert "make test" in readme and "make demo" in readme
    ci = (PROJECT / ".ci" / "run").read_text()
    assert "make test" in ci


def test_fastdds_profile_replaces_builtin_transports_with_large_shm():
    ns = {"d": "http://www.eprosima.com"}
    root = ET.parse(fastdds_profile()).getroot()
    kinds = {t.findtext("d:type", namespaces=ns): t for t in root.iterfind(".//d:transport_descriptor", ns)}
    assert set(kinds) == {"SHM", "UDPv4"}
    assert int(kinds["SHM"].findtext("d:segment_size", namespaces=ns)) >= 32 * 2**20
    assert int(kinds["SHM"].findtext("d:maxMessageSize", namespaces=ns)) >= 4 * 2**20
    assert root.find(".//d:useBuiltinTransports", ns).text.strip() == "false"


def test_cli_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "edepth_ros.cli", "--help"], capture_output=True, text=True, cwd=PROJECT)
    assert out.returncode == 0, out.stderr
    for cmd in ("embodied-eval", "train", "export", "eval", "make-bag", "play", "demo", "bench"):
        assert cmd in out.stdout


def test_cli_unknown_command_fails_cleanly():
    out = subprocess.run([sys.executable, "-m", "edepth_ros.cli", "nope"], capture_output=True, text=True, cwd=PROJECT)
    assert out.returncode == 2 and "invalid choice" in out.stderr


@pytest.mark.ros
def test_large_image_crosses_fast_dds_between_processes_under_sensor_qos():
    """A 1242x375 rgb8 image (1.4 MB) must arrive intact between two processes (DESIGN.md section 7)."""
    pytest.importorskip("rclpy")
    env = ros_environment(domain_id=11)
    helper = str(PROJECT / "test" / "smoke_pubsub.py")
    n = 10
    sub = subprocess.Popen([sys.executable, helper, "sub", str(n), "40"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert sub.stdout.readline().strip() == "READY"
        pub = subprocess.run([sys.executable, helper, "pub", str(n)], env=env, timeout=60, capture_output=True, text=True)
        assert pub.returncode == 0, pub.stderr
        out, _ = sub.communicate(timeout=60)
    finally:
        sub.kill()
    result = dict(kv.split("=") for kv in out.split("RESULT")[-1].split())
    assert int(result["bad"]) == 0
    assert int(result["ok"]) >= n - 1, f"only {result['ok']} of {n} images arrived"
