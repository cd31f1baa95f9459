"""Launch edepth_node for one camera (and RViz on request).

    ros2 launch edepth_ros edepth.launch.py camera:=camera params_file:=<share>/config/kitti.yaml rviz:=true

Arguments: camera (namespace of the camera's topics), image (image topic inside it), params_file,
model, backend (empty: keep the params file's value), use_sim_time (bag replay), rviz,
fixed_frame (RViz). Sets FASTDDS_DEFAULT_PROFILES_FILE to the package's config/fastdds.xml
unless the environment already names a profile: without it Fast DDS drops large best-effort
images between processes.
"""

import os
import tempfile

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PACKAGE = "edepth_ros"


def _truthy(text: str) -> bool:
    return text.strip().lower() in ("true", "1", "yes", "on")


def _rviz_config(share: str, camera: str, image: str = "image_raw") -> str:
    """The package's RViz config with its topics moved into the camera namespace, and its image
    display on the `image` argument's topic."""
    template = os.path.join(share, "config", "edepth.rviz")
    with open(template) as f:
        text = f.read()
    prefix = "/" + camera.strip("/") + "/" if camera.strip("/") else "/"
    text = text.replace("/camera/image_raw", "/camera/" + image.strip("/"))
    text = text.replace("/camera/", prefix)
    out = os.path.join(tempfile.gettempdir(), f"edepth_{camera.strip('/').replace('/', '_') or 'root'}.rviz")
    with open(out, "w") as f:
        f.write(text)
    return out


def launch_setup(context, *args, **kwargs):
    share = get_package_share_directory(PACKAGE)
    camera = LaunchConfiguration("camera").perform(context)
    image = LaunchConfiguration("image").perform(context)
    params_file = LaunchConfiguration("params_file").perform(context)
    model = LaunchConfiguration("model").perform(context)
    backend = LaunchConfiguration("backend").perform(context)
    use_sim_time = _truthy(LaunchConfiguration("use_sim_time").perform(context))
    overrides = {"use_sim_time": use_sim_time}
    if model:  # empty: keep the params file's value (or the default demo model)
        overrides["model"] = model
    if backend:
        overrides["backend"] = backend
    actions = [
        Node(
            package=PACKAGE,
            executable="edepth_node",
            name="edepth_node",
            namespace=camera,
            output="screen",
            parameters=[params_file, overrides],
            remappings=[
                ("image", image),
                ("image/compressed", image + "/compressed"),
            ],
        )
    ]
    if _truthy(LaunchConfiguration("rviz").perform(context)):
        actions.append(
            Node(
                package="rviz2",
                executable="rviz2",
                name="edepth_rviz",
                arguments=["-d", _rviz_config(share, camera, image),
                           "-f", LaunchConfiguration("fixed_frame").perform(context)],
                parameters=[{"use_sim_time": use_sim_time}],
                output="screen",
            )
        )
    return actions


def generate_launch_description():
    share = get_package_share_directory(PACKAGE)
    profile = os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE") or os.path.join(share, "config", "fastdds.xml")
    return LaunchDescription([
        DeclareLaunchArgument("camera", default_value="camera",
                              description="namespace of the camera topics (<camera>/image_raw, <camera>/camera_info); "
                                          "outputs appear as <camera>/depth, <camera>/points, ..."),
        DeclareLaunchArgument("image", default_value="image_raw",
                              description="image topic inside the camera namespace (image_raw, image_rect_color, ...)"),
        DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", "edepth.yaml"),
                              description="edepth_node parameters (config/edepth.yaml generic, config/kitti.yaml)"),
        DeclareLaunchArgument("model", default_value="",
                              description="model file (.onnx/.engine/.pt); empty keeps the params file's value"),
        DeclareLaunchArgument("backend", default_value="",
                              description="auto|onnxruntime|onnxruntime-cpu|onnxruntime-cuda|torch|tensorrt|embodied; "
                                          "empty keeps the params file's value"),
        DeclareLaunchArgument("use_sim_time", default_value="false",
                              description="use /clock (true when replaying a bag)"),
        DeclareLaunchArgument("rviz", default_value="false", description="start RViz with config/edepth.rviz"),
        DeclareLaunchArgument("fixed_frame", default_value="camera_optical_frame",
                              description="RViz fixed frame (the image's frame_id, or a tf frame above it)"),
        SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", profile),
        OpaqueFunction(function=launch_setup),
    ])
