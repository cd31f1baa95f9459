"""ros/params.py: one table of parameters, validated at start; config files and docs in sync with it;
a real node rejects a bad params file naming the parameter, and serves descriptors with ranges."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from edepth_ros.ros import params
from edepth_ros.ros.params import PARAMS, ParameterError, read_params_file, validate

PROJECT = Path(__file__).resolve().parents[1]


def test_every_parameter_is_described_and_its_default_is_valid():
    names = [p.name for p in PARAMS]
    assert len(names) == len(set(names))
    for p in PARAMS:
        assert len(p.description) > 15, p.name
        if p.range:
            assert p.range[0] <= p.default <= p.range[1], p.name
        if p.choices:
            assert p.default in p.choices, p.name
    assert validate({}) == params.defaults()


@pytest.mark.parametrize("values, match", [
    ({"camera_height": 0.0}, "parameter 'camera_height' = 0.0 is out of range: 0.05 <= value <= 50.0"),
    ({"camera_pitch": float("nan")}, "'camera_pitch': must be finite"),
    ({"points.decimation": 2.5}, "'points.decimation': expected an integer"),
    ({"backend": "cuda"}, "'backend' = 'cuda' is not one of: auto"),
    ({"qos.image.reliability": "best-effort"}, "'qos.image.reliability' = 'best-effort' is not one of"),
    ({"use_tf": "yes"}, "'use_tf': expected true or false"),
    ({"colored.min_depth": 50.0, "colored.max_depth": 10.0}, "'colored.max_depth' = 10.0 must exceed"),
    ({"model": "/nonexistent/model.onnx"}, "parameter 'model': file '/nonexistent/model.onnx' not found"),
    ({"camera_hieght": 1.5}, "unknown parameter.*camera_hieght"),
    ({"qos_overrides./cam/depth.publisher.depth": 3}, r"does not read rclpy's qos_overrides.*qos\.<image\|camera_info"
                                                      r"\|semantic\|depth\|points>\.depth instead"),
    ({"image_check.max_clipped_fraction": 1.5}, "'image_check.max_clipped_fraction' = 1.5 is out of range"),
    ({"image_check.blind_tile_size": 4}, "'image_check.blind_tile_size' = 4: use 0 .* at least 8 pixels"),
    # inside their own ranges but beyond the pose limits: the node died in start-up ('check the
    # transform's units', naming no parameter), even with use_tf
    ({"camera_height": 12.0}, r"'camera_height' = 12.0 m is above 'pose.max_height' = 10.0 m; raise pose.max_height"),
    ({"camera_pitch": 0.7}, r"'camera_pitch' = 0.7 .* tilt the camera 40.1 deg .* beyond 'pose.max_tilt' = 0.6109"),
    ({"camera_roll": -0.8, "pose.max_tilt": 0.7}, r"'camera_roll' = -0.8 rad tilt the camera 45.8 deg"),
    ({"pose.max_height": 0.0}, "'pose.max_height' = 0.0 is out of range"),
])
def test_bad_values_are_named(values, match):
    with pytest.raises(ParameterError, match=match):
        validate(values)


def test_raised_pose_limits_let_the_static_pose_and_tf_through():
    """A pole camera 12 m up looking 40 deg down: possible once pose.max_height / pose.max_tilt say so,
    for the static fallback and for tf (both were held to the fixed 10 m / 35 deg)."""
    from types import SimpleNamespace

    from edepth_ros.ground import GroundPlane
    from edepth_ros.ros.tf_source import TfPose, make_pose_source

    cfg = validate({"camera_height": 12.0, "camera_pitch": 0.7, "pose.max_height": 20.0, "pose.max_tilt": 0.8,
                    "use_tf": False})
    static, note = make_pose_source(None, cfg)
    assert static.plane.height == pytest.approx(12.0) and static.plane.pitch == pytest.approx(0.7)
    assert "use_tf is false" in note
    pytest.importorskip("rclpy", reason="TfPose takes rclpy Time / Duration")
    T = GroundPlane.transform_from_static(15.0, pitch=0.75)

    class Buffer:  # one transform, stamped 0 (static)
        def lookup_transform(self, *a, **kw):
            from geometry_msgs.msg import TransformStamped

            from edepth_ros.bags.io import matrix_to_quaternion

            msg = TransformStamped()
            msg.transform.translation.x, msg.transform.translation.y, msg.transform.translation.z = T[:3, 3]
            r = msg.transform.rotation
            r.x, r.y, r.z, r.w = matrix_to_quaternion(T[:3, :3])
            return msg

    stamp = SimpleNamespace(sec=5, nanosec=0)
    got = TfPose(None, "base_footprint", 0.0, 1.0, static, buffer=Buffer()).lookup("cam", stamp)
    assert got.source == "tf" and got.plane.height == pytest.approx(15.0)
    default = make_pose_source(None, validate({"use_tf": False}))[0]
    refused = TfPose(None, "base_footprint", 0.0, 1.0, default, buffer=Buffer()).lookup("cam", stamp)
    assert refused.source == "static" and "above the maximum 10.0 m" in refused.problem
    assert "parameters pose.max_height, pose.max_tilt" in refused.problem


def test_image_check_parameters_make_the_pipeline_config():
    from edepth_ros.image_check import ImageCheckConfig

    assert params.image_check_config(params.defaults()) == ImageCheckConfig()
    got = params.image_check_config(validate({"image_check.enabled": False, "image_check.min_contrast": 5.0}))
    assert got == ImageCheckConfig(enabled=False, min_contrast=5.0)


def test_int_is_accepted_for_a_float_and_use_sim_time_passes():
    out = validate({"camera_height": 2, "use_sim_time": True})
    assert out["camera_height"] == 2.0 and isinstance(out["camera_height"], float)


def test_shipped_config_files_are_valid_and_complete():
    generic = read_params_file(PROJECT / "config" / "edepth.yaml")
    assert set(generic) == {p.name for p in PARAMS}, "config/edepth.yaml must list every parameter"
    assert validate(generic) == params.defaults()
    kitti = validate(read_params_file(PROJECT / "config" / "kitti.yaml"))
    assert kitti["camera_height"] == pytest.approx(1.65) and kitti["points.max_range"] == 80.0


def test_docs_list_every_parameter():
    doc = (PROJECT / "docs" / "node.md").read_text()
    missing = [p.name for p in PARAMS if f"`{p.name}`" not in doc]
    assert not missing, f"docs/node.md does not describe {missing}"


def test_read_params_file_rejects_a_file_without_ros_parameters(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("edepth_node:\n  camera_height: 1.0\n")
    with pytest.raises(ParameterError, match="ros__parameters"):
        read_params_file(f)
    # what rcl reads: node sections, namespace sections holding them; an empty file sets nothing
    f.write_text("/cam:\n  edepth_node:\n    ros__parameters:\n      camera_height: 1.0\n")
    assert read_params_file(f) == {"camera_height": 1.0}
    f.write_text("")
    assert params.load_params_file(f) == {}


# ------------------------------------------------------------------ a real node (ROS_DOMAIN_ID 50-51, 54)

ros_util = pytest.importorskip("ros_util")


def _run_node(tmp_path, domain, values, timeout=60):
    pytest.importorskip("rclpy", reason="rclpy (ros-rclpy wheel) is not installed")
    f = ros_util.write_params(tmp_path / "bad.yaml", values)
    return subprocess.run([sys.executable, "-m", "edepth_ros.ros.node", "--ros-args", "--params-file", str(f)],
                          cwd=PROJECT, env=ros_util.node_env(domain), capture_output=True, text=True, timeout=timeout)


@pytest.mark.ros
def test_node_refuses_to_start_with_a_bad_parameter_and_names_it(tmp_path):
    out = _run_node(tmp_path, 50, {"backend": "embodied", "points.decimation": 0})
    assert out.returncode == 2, out.stdout + out.stderr
    assert "cannot start" in out.stderr and "points.decimation" in out.stderr
    out = _run_node(tmp_path, 50, {"backend": "embodied", "camera_height": "high"})
    assert out.returncode == 2 and "camera_height" in out.stderr, out.stderr
    out = _run_node(tmp_path, 50, {"backend": "embodied", "qos.depth.reliability": "sometimes"})
    assert out.returncode == 2 and "'qos.depth.reliability' = 'sometimes' is not one of" in out.stderr, out.stderr
    # a misspelt name is not silently ignored (the node does not declare from overrides)
    out = _run_node(tmp_path, 50, {"backend": "embodied", "points.decimaton": 4})
    assert out.returncode == 2 and "unknown parameter(s) points.decimaton" in out.stderr, out.stderr


@pytest.mark.ros
def test_node_names_a_params_file_or_argument_rcl_cannot_parse(tmp_path):
    """These gave a traceback out of rclpy.init (rcl's parser) and exit 1; qos_overrides were
    accepted and did nothing (the node sets QoS with qos.<group>.*)."""
    pytest.importorskip("rclpy", reason="rclpy (ros-rclpy wheel) is not installed")
    files = {"missing": None, "syntax": "edepth_node:\n  ros__parameters:\n    camera_height: [1.0\n",
             "no_section": "edepth_node:\n  camera_height: 1.0\n", "a_list": "- camera_height: 1.0\n",
             "qos": "/**:\n  ros__parameters:\n    backend: embodied\n"
                    "    qos_overrides:\n      /cam/depth:\n        publisher:\n          reliability: best_effort\n"}
    expected = {"missing": "missing.yaml: no such file", "syntax": "not a readable YAML params file",
                "no_section": "section 'edepth_node' has no 'ros__parameters:' key", "a_list": "got list",
                "qos": "'qos_overrides./cam/depth.publisher.reliability': this node does not read rclpy's "
                       "qos_overrides; set its QoS with qos.<image|camera_info|semantic|depth|points>.reliability"}
    for name, text in files.items():
        f = tmp_path / f"{name}.yaml"
        if text is not None:
            f.write_text(text)
        out = subprocess.run([sys.executable, "-m", "edepth_ros.ros.node", "--ros-args", "--params-file", str(f)],
                             cwd=PROJECT, env=ros_util.node_env(54), capture_output=True, text=True, timeout=60)
        assert out.returncode == 2 and "cannot start" in out.stderr and expected[name] in out.stderr, (name, out.stderr)
        assert "Traceback" not in out.stderr, out.stderr
    out = subprocess.run([sys.executable, "-m", "edepth_ros.ros.node", "--ros-args", "-p", "camera_height"],
                         cwd=PROJECT, env=ros_util.node_env(54), capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "cannot start" in out.stderr and "Traceback" not in out.stderr, out.stderr


@pytest.mark.ros
def test_node_serves_descriptors_with_ranges_and_parameters_are_read_only(tmp_path):
    from rclpy.parameter import Parameter
    from rclpy.parameter_client import AsyncParameterClient

    # max_depth 60 is a YAML integer for a double, which rclpy alone refuses: taken as 60.0, as validate() does
    node = ros_util.NodeProcess(tmp_path, 51, {"backend": "embodied", "camera_height": 1.4, "max_depth": 60})
    graph = ros_util.Graph(51)
    try:
        client = AsyncParameterClient(graph.node, "/cam/edepth_node")
        assert client.wait_for_services(30.0), node.log()

        def result(future, timeout=10.0):
            deadline = time.monotonic() + timeout
            while not future.done() and time.monotonic() < deadline:
                time.sleep(0.02)
            assert future.done()
            return future.result()

        desc = {d.name: d for d in result(client.describe_parameters(["camera_height", "points.decimation",
                                                                      "backend"])).descriptors}
        r = desc["camera_height"].floating_point_range[0]
        assert (r.from_value, r.to_value) == (0.05, 50.0) and desc["camera_height"].read_only
        assert desc["points.decimation"].integer_range[0].to_value == 64
        assert "embodied" in desc["backend"].additional_constraints and desc["backend"].description
        values = result(client.get_parameters(["camera_height", "max_depth"])).values
        assert values[0].double_value == 1.4 and (values[1].type, values[1].double_value) == (3, 60.0)  # 3: DOUBLE
        res = result(client.set_parameters([Parameter("camera_height", value=2.0)])).results[0]
        assert not res.successful and "read-only" in res.reason
    finally:
        graph.close()
        assert node.stop() == 0, node.log()
