"""launch/edepth.launch.py without launch / launch_ros (not installable from PyPI).

What is checked: the file compiles; its arguments, environment, node and remappings, read from
its syntax tree; its own logic (arguments -> node parameters, remappings, RViz config rewritten for
the namespace) executed against minimal stand-ins of the launch API; and the node command that
logic describes, run for real, comes up on the remapped topics. What is not: the launch runtime
itself and rviz2 (see docs/node.md).
"""

from __future__ import annotations

import ast
import importlib.util
import sys
import types
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
LAUNCH = PROJECT / "launch" / "edepth.launch.py"


def _tree():
    return ast.parse(LAUNCH.read_text(), filename=str(LAUNCH))


def _calls(tree, name):
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == name]


def test_launch_file_compiles():
    compile(LAUNCH.read_text(), str(LAUNCH), "exec")


def test_declares_the_documented_arguments():
    names = [c.args[0].value for c in _calls(_tree(), "DeclareLaunchArgument")]
    for needed in ("camera", "params_file", "model", "backend", "use_sim_time", "rviz"):
        assert needed in names, f"launch argument {needed!r} missing"
    for call in _calls(_tree(), "DeclareLaunchArgument"):
        kw = {k.arg for k in call.keywords}
        assert {"default_value", "description"} <= kw, ast.unparse(call)


def test_sets_the_fast_dds_profile_and_starts_edepth_node():
    tree = _tree()
    env = _calls(tree, "SetEnvironmentVariable")
    assert env and env[0].args[0].value == "FASTDDS_DEFAULT_PROFILES_FILE"
    assert "fastdds.xml" in ast.unparse(tree)
    nodes = {next(k.value.value for k in c.keywords if k.arg == "executable"): c for c in _calls(tree, "Node")}
    assert set(nodes) == {"edepth_node", "rviz2"}
    remaps = ast.unparse(next(k.value for k in nodes["edepth_node"].keywords if k.arg == "remappings"))
    assert "'image'" in remaps and "'image/compressed'" in remaps


# ---------------------------------------------------------- the file's logic against stand-ins


class _Config:
    def __init__(self, name, values):
        self.name, self.values = name, values

    def perform(self, context):
        return self.values[self.name]


def _load_with_standins(values: dict, share: Path):
    """Import the launch file with tiny stand-ins for launch/launch_ros that record what it builds."""
    recorded = {"nodes": [], "env": [], "args": []}

    class Recorder:
        def __init__(self, kind, *args, **kwargs):
            self.kind, self.args, self.kwargs = kind, args, kwargs

    launch = types.ModuleType("launch")
    launch.LaunchDescription = lambda actions: list(actions)
    actions = types.ModuleType("launch.actions")
    actions.DeclareLaunchArgument = lambda *a, **k: recorded["args"].append((a, k)) or Recorder("arg", *a, **k)
    actions.OpaqueFunction = lambda function: Recorder("opaque", function=function)
    actions.SetEnvironmentVariable = lambda *a: recorded["env"].append(a) or Recorder("env", *a)
    subs = types.ModuleType("launch.substitutions")
    subs.LaunchConfiguration = lambda name: _Config(name, values)
    launch_ros = types.ModuleType("launch_ros")
    ros_actions = types.ModuleType("launch_ros.actions")
    ros_actions.Node = lambda **k: recorded["nodes"].append(k) or Recorder("node", **k)
    ament = types.ModuleType("ament_index_python.packages")
    ament.get_package_share_directory = lambda pkg: str(share)
    fake = {"launch": launch, "launch.actions": actions, "launch.substitutions": subs, "launch_ros": launch_ros,
            "launch_ros.actions": ros_actions, "ament_index_python.packages": ament}
    saved = {k: sys.modules.get(k) for k in fake}
    sys.modules.update(fake)
    try:
        spec = importlib.util.spec_from_file_location("edepth_launch_under_test", LAUNCH)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        desc = mod.generate_launch_description()
        opaque = [a for a in desc if a.kind == "opaque"][0]
        opaque.kwargs["function"](context=None)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    return recorded


def _values(**over):
    v = {"camera": "front_cam", "image": "image_rect_color", "params_file": str(PROJECT / "config" / "kitti.yaml"),
         "model": "", "backend": "embodied", "use_sim_time": "true", "rviz": "true", "fixed_frame": "base_link"}
    v.update(over)
    return v


def test_launch_logic_builds_the_node_and_rviz(monkeypatch):
    monkeypatch.delenv("FASTDDS_DEFAULT_PROFILES_FILE", raising=False)
    rec = _load_with_standins(_values(), PROJECT)
    node, rviz = rec["nodes"]
    assert node["namespace"] == "front_cam" and node["executable"] == "edepth_node"
    assert node["parameters"] == [str(PROJECT / "config" / "kitti.yaml"), {"use_sim_time": True, "backend": "embodied"}]
    assert ("image", "image_rect_color") in node["remappings"]
    assert ("image/compressed", "image_rect_color/compressed") in node["remappings"]
    assert rec["env"] == [("FASTDDS_DEFAULT_PROFILES_FILE", str(PROJECT / "config" / "fastdds.xml"))]
    rviz_file = Path(rviz["arguments"][1])
    text = rviz_file.read_text()
    assert "/front_cam/depth/colored" in text and "/front_cam/points" in text and "/camera/" not in text
    # the image display follows the image argument (the node's input), not a fixed image_raw
    assert "/front_cam/image_rect_color" in text and "image_raw" not in text
    assert rviz["arguments"][2:] == ["-f", "base_link"] and rviz["parameters"] == [{"use_sim_time": True}]
    # rviz off, and an empty model/backend keeps the params file's values
    rec = _load_with_standins(_values(rviz="false", backend="", use_sim_time="false"), PROJECT)
    assert len(rec["nodes"]) == 1 and rec["nodes"][0]["parameters"][1] == {"use_sim_time": False}
    # a profile the user already chose is kept
    monkeypatch.setenv("FASTDDS_DEFAULT_PROFILES_FILE", "/etc/my_profile.xml")
    assert _load_with_standins(_values(), PROJECT)["env"] == [("FASTDDS_DEFAULT_PROFILES_FILE", "/etc/my_profile.xml")]


def test_rviz_config_is_yaml_with_the_three_displays():
    import yaml

    cfg = yaml.safe_load((PROJECT / "config" / "edepth.rviz").read_text())
    displays = {d["Topic"]["Value"]: d["Class"] for d in cfg["Visualization Manager"]["Displays"] if "Topic" in d}
    assert displays["/camera/depth/colored"] == "rviz_default_plugins/Image"
    assert displays["/camera/image_raw"] == "rviz_default_plugins/Image"
    assert displays["/camera/points"] == "rviz_default_plugins/PointCloud2"


@pytest.mark.ros
def test_the_node_the_launch_file_describes_comes_up_on_its_topics(tmp_path):
    """The launch logic's Node, turned into the command launch_ros would run, on ROS_DOMAIN_ID 52."""
    ros_util = pytest.importorskip("ros_util")
    if ros_util.ros_skip_reason():
        pytest.skip(ros_util.ros_skip_reason())
    import subprocess

    node = _load_with_standins(_values(rviz="false"), PROJECT)["nodes"][0]
    params_file, overrides = node["parameters"]
    cmd = [sys.executable, "-m", "edepth_ros.ros.node", "--ros-args", "-r", f"__node:={node['name']}",
           "-r", f"__ns:=/{node['namespace']}", "--params-file", params_file]
    for k, v in overrides.items():
        cmd += ["-p", f"{k}:={str(v).lower() if isinstance(v, bool) else v}"]
    for src, dst in node["remappings"]:
        cmd += ["-r", f"{src}:={dst}"]
    log = open(tmp_path / "node.log", "w")
    proc = subprocess.Popen(cmd, cwd=PROJECT, env=ros_util.node_env(52), stdout=log, stderr=subprocess.STDOUT)
    graph = ros_util.Graph(52, namespace="/")
    try:
        assert graph.wait_publishers("/front_cam/depth", timeout=30), (tmp_path / "node.log").read_text()
        assert graph.wait_publishers("/front_cam/points", timeout=5)
        import time

        deadline = time.monotonic() + 10
        while graph.node.count_subscribers("/front_cam/image_rect_color") < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert graph.node.count_subscribers("/front_cam/image_rect_color") == 1
        assert graph.node.count_subscribers("/front_cam/camera_info") == 1
    finally:
        graph.close()
        proc.send_signal(2)
        assert proc.wait(15) == 0, (tmp_path / "node.log").read_text()
        log.close()


def test_real_launch_runtime_where_installed():
    try:
        import launch  # noqa: F401
        import launch_ros  # noqa: F401
        from launch import LaunchDescription  # noqa: F401
    except ImportError:
        pytest.skip("launch / launch_ros are not installable from PyPI here: the launch runtime is untested "
                    "(run `ros2 launch edepth_ros edepth.launch.py` in a ROS 2 workspace)")
    spec = importlib.util.spec_from_file_location("edepth_launch_real", LAUNCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.generate_launch_description() is not None
