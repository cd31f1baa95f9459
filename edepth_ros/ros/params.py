"""Every parameter of ``edepth_node``: declared in one table with its description and range, and
validated at start so that a bad value stops the node with a message naming the parameter.

``validate(values)`` is pure Python (used by tests and by tools that check a params file);
``declare_all(node)`` declares the table on an rclpy node with ParameterDescriptors
(FloatingPointRange / IntegerRange, choices in additional_constraints, read-only: the node reads
them once at start) and returns the validated values. rclpy is imported only there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ..ground import GroundPlane, PoseLimits

BACKENDS = ("auto", "onnxruntime", "onnxruntime-cpu", "onnxruntime-cuda", "torch", "tensorrt", "embodied")
RELIABILITY = ("reliable", "best_effort")
DURABILITY = ("volatile", "transient_local")
COLORMAPS = ("turbo", "jet", "viridis", "inferno", "magma", "plasma")
# QoS groups: inputs use sensor-data QoS by default, outputs reliable (RViz, rosbag record).
QOS_TOPICS = {
    "image": ("best_effort", 5),
    "camera_info": ("best_effort", 5),
    "semantic": ("best_effort", 5),
    "depth": ("reliable", 5),  # depth, depth/camera_info, depth/embodied, depth/confidence, depth/colored
    "points": ("reliable", 2),
}


class ParameterError(ValueError):
    """A parameter value that cannot be used; the text names the parameter and the fix."""


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: Any
    description: str
    range: Optional[tuple] = None  # (min, max) inclusive, for int / float
    choices: Optional[tuple] = None  # allowed strings

    @property
    def kind(self) -> type:
        return type(self.default)

    def constraints(self) -> str:
        if self.choices:
            return "one of: " + ", ".join(self.choices)
        if self.range:
            return f"{self.range[0]} <= value <= {self.range[1]}"
        return ""


def _qos_specs() -> list[ParamSpec]:
    specs = []
    for topic, (rel, depth) in QOS_TOPICS.items():
        what = "input" if topic in ("image", "camera_info", "semantic") else "output"
        specs += [
            ParamSpec(f"qos.{topic}.reliability", rel,
                      f"QoS reliability of the {topic} {what} topic(s). A reliable subscriber gets nothing "
                      "from a best-effort publisher: keep inputs best_effort unless the source is reliable.",
                      choices=RELIABILITY),
            ParamSpec(f"qos.{topic}.depth", depth, f"QoS history depth (keep last N) of the {topic} topic(s).",
                      range=(1, 1000)),
            ParamSpec(f"qos.{topic}.durability", "volatile",
                      f"QoS durability of the {topic} topic(s) (transient_local also serves late joiners on outputs).",
                      choices=DURABILITY),
        ]
    return specs


PARAMS: tuple[ParamSpec, ...] = tuple([
    # model / backend
    ParamSpec("backend", "auto", "Inference backend: auto tries TensorRT, ONNX Runtime CUDA, ONNX Runtime CPU, "
              "PyTorch; embodied runs no network (depth = embodied scene depth).", choices=BACKENDS),
    ParamSpec("model", "", "Model file (.onnx, .engine/.plan, .pt). Empty: the package's demo model under "
              "models/ when present, else the embodied-only backend."),
    ParamSpec("backend_threads", 0, "CPU threads for the backend (0: the runtime's default).", range=(0, 256)),
    ParamSpec("model_check_period", 2.0, "Seconds between checks of the model file and its sidecar: when either's "
              "SHA-256 changes, the new file is validated and loaded between frames; a file that fails is "
              "refused and the previous model keeps running. 0: never check.", range=(0.0, 3600.0)),
    ParamSpec("max_depth", 80.0, "Depth cap, metres, of the embodied-only backend (a model's cap comes from its "
              "export sidecar).", range=(1.0, 1000.0)),
    # input
    ParamSpec("image_transport", "raw", "raw: sensor_msgs/Image on 'image'; compressed: "
              "sensor_msgs/CompressedImage on 'image/compressed' (what bags usually hold).",
              choices=("raw", "compressed")),
    ParamSpec("image_rectification", "auto", "auto: the image is rectified when camera_info's D is all zero; "
              "rectified: it is (image_rect, image_rect_color: P is used even though camera_info still "
              "carries D); raw: it is distorted, and rays are undistorted with K and D.",
              choices=("auto", "rectified", "raw")),
    # extrinsics
    ParamSpec("ground_frame", "base_footprint", "tf frame whose z = 0 plane is the road (REP 105)."),
    ParamSpec("use_tf", True, "Take the camera pose from tf (ground_frame -> image frame at the image stamp) "
              "where tf2_ros is installed; the static camera_* parameters are the fallback."),
    ParamSpec("tf_timeout", 0.05, "Seconds to wait for a transform at the image stamp.", range=(0.0, 5.0)),
    ParamSpec("tf_max_age", 1.0, "A transform older than the image by more than this (seconds) is stale: "
              "the static pose is used instead.", range=(0.0, 3600.0)),
    ParamSpec("camera_height", 1.65, "Static mounting: camera height above the road, metres.", range=(0.05, 50.0)),
    ParamSpec("camera_pitch", 0.0, "Static mounting: pitch, radians, positive looks down.", range=(-1.2, 1.2)),
    ParamSpec("camera_roll", 0.0, "Static mounting: roll about the optical axis, radians.", range=(-1.2, 1.2)),
    ParamSpec("pose.max_height", PoseLimits.max_height, "Highest a pose (tf or static) may put the camera "
              "above the road, metres; a higher one is refused as a units or frame mistake (raise it for a "
              "pole or gantry camera).", range=(0.1, 200.0)),
    ParamSpec("pose.max_tilt", PoseLimits.max_tilt, "Largest combined pitch and roll against the road a pose "
              "may have, radians (0.611 = 35 deg); beyond it the pose is refused as a rotation mistake "
              "(raise it for a camera looking steeply down).", range=(0.01, 1.5708)),
    # image check
    ParamSpec("image_check.enabled", True, "Check every image before computing depth: a blank, blinded or "
              "noise image (lens covered, camera failed) is published with no depth (NaN), a warning and "
              "/diagnostics WARN, instead of road depth the camera cannot see."),
    ParamSpec("image_check.min_contrast", 2.0, "Luminance standard deviation (grey levels) below which an "
              "image is blank (real frames: 6.5-8.9 darkened tenfold, 65-89 as taken).", range=(0.0, 255.0)),
    ParamSpec("image_check.max_clipped_fraction", 0.98, "Fraction of black (<= 2) or white (>= 253) pixels "
              "above which an image is blinded or black (real frames: up to 0.77 brightened fourfold).",
              range=(0.0, 1.0)),
    ParamSpec("image_check.min_neighbour_correlation", 0.3, "Correlation of adjacent pixels below which an "
              "image is noise, not a scene (real frames: 0.90-1.00; noise: about 0).", range=(-1.0, 1.0)),
    ParamSpec("image_check.blind_tile_size", 32, "Side (pixels) of the windows judged blind when nearly all "
              "black or white (max_clipped_fraction of the window): a half-covered lens or sun-blown road "
              "gets no depth there, not road depth; 0 turns this off, else at least 8.", range=(0, 1024)),
    ParamSpec("image_check.blind_warn_fraction", 0.05, "Share of the image blind and given no depth above "
              "which the frame warns and /diagnostics goes WARN ('camera partly blind'; real frames as taken: "
              "up to 0.016, blown-out sky and sunlit road).", range=(0.0, 1.0)),
    # semantic labels
    ParamSpec("semantic.enabled", False, "Subscribe to 'semantic' (mono8 Cityscapes train ids) and use "
              "the label image whose stamp matches; the built-in geometric segmenter otherwise."),
    ParamSpec("semantic.wait", 0.05, "Seconds the worker waits for a matching label image.", range=(0.0, 5.0)),
    ParamSpec("semantic.buffer_size", 8, "Label images kept for stamp matching.", range=(1, 200)),
    ParamSpec("semantic.stamp_tolerance", 0.001, "Largest stamp difference, seconds, for a label image "
              "to match an image.", range=(0.0, 1.0)),
    # outputs
    ParamSpec("publish.embodied", True, "Publish depth/embodied (the geometry-only depth)."),
    ParamSpec("publish.confidence", True, "Publish depth/confidence (32FC1 in [0, 1])."),
    ParamSpec("publish.colored", True, "Publish depth/colored (rgb8 colour map for RViz / Foxglove)."),
    ParamSpec("publish.points", True, "Publish points (PointCloud2 in the optical frame)."),
    ParamSpec("points.decimation", 2, "Keep every N-th pixel in x and y for the point cloud.", range=(1, 64)),
    ParamSpec("points.organised", False, "Organised cloud (the decimated image grid, NaN for invalid) instead of valid points only."),
    ParamSpec("points.max_range", 50.0, "Points deeper than this (metres, along the optical axis) are left out.",
              range=(0.1, 1000.0)),
    ParamSpec("points.color", True, "Add the packed rgb field from the input image."),
    ParamSpec("colored.min_depth", 0.0, "Depth, metres, at the warm end of the colour map.", range=(0.0, 1000.0)),
    ParamSpec("colored.max_depth", 60.0, "Depth, metres, at the cold end of the colour map.", range=(0.1, 1000.0)),
    ParamSpec("colored.colormap", "turbo", "OpenCV colour map of depth/colored.", choices=COLORMAPS),
    # health
    ParamSpec("no_image_warn_after", 5.0, "Warn (naming the topic and its QoS) when no image has arrived "
              "for this many seconds.", range=(0.5, 3600.0)),
    ParamSpec("diagnostics_period", 1.0, "Seconds between /diagnostics messages.", range=(0.1, 60.0)),
    ParamSpec("warn_throttle", 5.0, "Seconds between two warnings about the same problem.", range=(0.0, 3600.0)),
] + _qos_specs())

SPECS = {p.name: p for p in PARAMS}


def defaults() -> dict:
    return {p.name: p.default for p in PARAMS}


def _check_one(spec: ParamSpec, value: Any) -> Any:
    kind = spec.kind
    where = f"parameter '{spec.name}'"
    if kind is bool:
        if not isinstance(value, bool):
            raise ParameterError(f"{where}: expected true or false, got {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParameterError(f"{where}: expected an integer, got {value!r}")
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParameterError(f"{where}: expected a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise ParameterError(f"{where}: must be finite, got {value!r}")
    elif kind is str and not isinstance(value, str):
        raise ParameterError(f"{where}: expected a string, got {value!r}")
    if spec.range is not None and not (spec.range[0] <= value <= spec.range[1]):
        raise ParameterError(f"{where} = {value!r} is out of range: {spec.constraints()} ({spec.description})")
    if spec.choices is not None and value not in spec.choices:
        raise ParameterError(f"{where} = {value!r} is not {spec.constraints()}")
    return value


NODE_NAME = "edepth_node"

# parameters rclpy itself reads (they may be in any node's params file)
ROS_OWN = {"use_sim_time", "start_type_description_service"}


def _refuse_qos_overrides(names) -> None:
    """rclpy applies ``qos_overrides.<topic>.<entity>.<policy>`` only to entities created with
    qos_overriding_options; this node sets QoS per topic group with its own parameters, so such an
    override would be accepted and do nothing: refused, naming the parameter to use."""
    given = sorted(n for n in names if n.startswith("qos_overrides."))
    if given:
        policy = given[0].rsplit(".", 1)[-1]
        policy = policy if policy in ("reliability", "depth", "durability") else "reliability|depth|durability"
        raise ParameterError(
            f"parameter '{given[0]}': this node does not read rclpy's qos_overrides; set its QoS with "
            f"qos.<{'|'.join(QOS_TOPICS)}>.{policy} instead (docs/node.md)")


def validate(values: dict) -> dict:
    """Defaults overlaid with ``values``, each checked; cross-parameter rules too. Unknown names
    raise (a misspelt parameter in a params file would otherwise be silently ignored)."""
    _refuse_qos_overrides(values)
    unknown = sorted(set(values) - set(SPECS) - ROS_OWN)
    if unknown:
        raise ParameterError(f"unknown parameter(s) {', '.join(unknown)}; see docs/node.md for the list")
    out = defaults()
    for name, value in values.items():
        if name in SPECS:
            out[name] = _check_one(SPECS[name], value)
    if out["colored.max_depth"] <= out["colored.min_depth"]:
        raise ParameterError(
            f"parameter 'colored.max_depth' = {out['colored.max_depth']} must exceed "
            f"'colored.min_depth' = {out['colored.min_depth']}"
        )
    _check_static_pose(out)
    if 0 < out["image_check.blind_tile_size"] < 8:  # too few pixels to tell a cover from a dark patch
        raise ParameterError(f"parameter 'image_check.blind_tile_size' = {out['image_check.blind_tile_size']}: "
                             "use 0 (no blind mask) or a tile of at least 8 pixels")
    if out["model"] and not Path(out["model"]).expanduser().is_file():
        raise ParameterError(f"parameter 'model': file {out['model']!r} not found; give the path of an "
                             "exported .onnx/.engine/.pt, or leave it empty for the demo model")
    if out["model"] == "" and out["backend"] not in ("auto", "embodied") and default_model() is None:
        raise ParameterError(f"parameter 'backend' = {out['backend']!r} needs a model file: set 'model' "
                             "(or use backend 'embodied' for geometry-only depth)")
    return out


def pose_limits(cfg: dict) -> PoseLimits:
    """The limits every pose the node uses is held to (tf's and the static fallback)."""
    return PoseLimits(max_height=cfg["pose.max_height"], max_tilt=cfg["pose.max_tilt"])


def _check_static_pose(out: dict) -> None:
    """The static fallback is built at start even with tf: a mounting beyond the pose limits stopped
    the node deep in start-up ('check the transform's units'), naming neither parameter."""
    plane = GroundPlane.from_static(out["camera_height"], out["camera_pitch"], out["camera_roll"], limits=None)
    limits = pose_limits(out)
    if plane.height > limits.max_height:
        raise ParameterError(f"parameter 'camera_height' = {out['camera_height']} m is above 'pose.max_height' = "
                             f"{limits.max_height} m; raise pose.max_height if the camera is mounted that high")
    if plane.tilt > limits.max_tilt:
        raise ParameterError(
            f"parameters 'camera_pitch' = {out['camera_pitch']} and 'camera_roll' = {out['camera_roll']} rad "
            f"tilt the camera {math.degrees(plane.tilt):.1f} deg against the road, beyond 'pose.max_tilt' = "
            f"{limits.max_tilt:.4g} rad ({math.degrees(limits.max_tilt):.1f} deg); raise pose.max_tilt for a "
            "camera mounted looking steeply down")


def default_model() -> Optional[Path]:
    """The demo model shipped under models/ (checkout or installed share dir), if present."""
    import sys

    here = Path(__file__).resolve().parents[2]
    folders = [here / "models", Path(sys.prefix) / "share" / "edepth_ros" / "models"]
    try:
        from ament_index_python.packages import get_package_share_directory

        folders.insert(1, Path(get_package_share_directory("edepth_ros")) / "models")
    except Exception:  # not in a ROS install: the checkout / prefix folders are enough
        pass
    for folder in folders:
        if not folder.is_dir():
            continue
        # models/demo/model.onnx (what `edepth export` publishes for the demo), else any .onnx
        preferred = [folder / "demo" / "model.onnx", folder / "demo.onnx", folder / "edepth_demo.onnx"]
        for path in preferred + sorted(folder.glob("*.onnx")) + sorted(folder.glob("*/*.onnx")):
            if path.is_file():
                return path
    return None


def load_params_file(path) -> dict:
    """A params YAML's top-level mapping ({} for an empty file), or ParameterError naming the file:
    missing, not YAML, not a mapping."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ParameterError(f"params file {path}: {'a folder' if path.is_dir() else 'no such file'}; "
                             "give the path of a YAML file ('<node>: ros__parameters: ...')")
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:  # safe_load: python tags are refused, never run
        raise ParameterError(f"{path}: not a readable YAML params file ({str(exc).splitlines()[0]})") from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ParameterError(f"{path}: expected a mapping '<node>: ros__parameters: ...', got {type(data).__name__}")
    for key, section in data.items():  # what rcl's parser needs of every node's (or namespace's) section
        if not _has_ros_parameters(section):
            raise ParameterError(f"{path}: section '{key}' has no 'ros__parameters:' key; write "
                                 f"'{key}: {{ros__parameters: {{name: value}}}}' (as nested YAML blocks)")
    return data


def _node_section(data: dict):
    """This node's section: '/**', 'edepth_node', '/cam/edepth_node' or inside namespaces ('/cam: edepth_node:')."""
    for key, value in data.items():
        if str(key) in ("/**", "**") or str(key).rstrip("/").split("/")[-1] == NODE_NAME:
            return value
    for value in data.values():
        if isinstance(value, dict) and "ros__parameters" not in value:
            found = _node_section(value)
            if found is not None:
                return found
    return None


def _has_ros_parameters(section) -> bool:
    """A node section holds ros__parameters; a namespace section ('/cam: edepth_node: ...') a node section."""
    return isinstance(section, dict) and ("ros__parameters" in section
                                          or any(_has_ros_parameters(v) for v in section.values()))


def read_params_file(path) -> dict:
    """The ros__parameters of a params YAML (``/**`` or ``edepth_node`` section), flattened to dotted names."""
    data = load_params_file(path)
    section = _node_section(data)
    if section is None and len(data) == 1:
        section = next(iter(data.values()))
    if not isinstance(section, dict) or "ros__parameters" not in section:
        raise ParameterError(f"{path}: no '<node>: ros__parameters:' section (expected '/**' or 'edepth_node')")

    flat: dict = {}

    def walk(prefix: str, node: dict) -> None:
        for k, v in node.items():
            name = f"{prefix}{k}"
            if isinstance(v, dict):
                walk(name + ".", v)
            else:
                flat[name] = v

    walk("", section["ros__parameters"])
    return flat


def declare_all(node) -> dict:
    """Declare every parameter on an rclpy node and return the validated values.

    Raises ParameterError naming the parameter (wrong type / out of range in the params file).
    """
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
    from rclpy.exceptions import ParameterException
    from rclpy.parameter import Parameter

    # rclpy keeps no public list of the overrides it was given (params file, -p)
    given = getattr(node, "_parameter_overrides", None)
    given = given if given is not None else {}
    values = {}
    for spec in PARAMS:
        override = given.get(spec.name)
        if spec.kind is float and override is not None and override.type_ == Parameter.Type.INTEGER:
            # YAML's `max_depth: 60` is an integer, which rclpy refuses for a double: taken as 60.0,
            # as validate() (and so a params-file check) takes it
            given[spec.name] = Parameter(spec.name, Parameter.Type.DOUBLE, float(override.value))
        desc = ParameterDescriptor(description=spec.description, additional_constraints=spec.constraints(),
                                   read_only=True)
        if spec.range is not None and spec.kind is float:
            desc.floating_point_range = [FloatingPointRange(from_value=float(spec.range[0]),
                                                            to_value=float(spec.range[1]), step=0.0)]
        elif spec.range is not None and spec.kind is int:
            desc.integer_range = [IntegerRange(from_value=int(spec.range[0]), to_value=int(spec.range[1]), step=1)]
        try:
            param = node.declare_parameter(spec.name, spec.default, desc)
        except ParameterException as exc:
            raise ParameterError(f"parameter '{spec.name}': {exc}; allowed: "
                                 f"{spec.constraints() or spec.kind.__name__}") from exc
        values[spec.name] = param.value
    # the node does not declare from overrides, so a misspelt name in a params file or on the command
    # line would be silently ignored: validate() refuses the names it does not know
    values.update({name: p.value for name, p in given.items() if name not in SPECS and name not in ROS_OWN})
    return validate(values)


def image_check_config(values: dict):
    """The pipeline's ImageCheckConfig from the image_check.* parameters."""
    from dataclasses import fields

    from ..image_check import ImageCheckConfig

    return ImageCheckConfig(**{f.name: values[f"image_check.{f.name}"] for f in fields(ImageCheckConfig)})


def qos_profile(values: dict, topic: str):
    """rclpy QoSProfile for a QoS group ('image', 'camera_info', 'semantic', 'depth', 'points')."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    rel = values[f"qos.{topic}.reliability"]
    dur = values[f"qos.{topic}.durability"]
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=int(values[f"qos.{topic}.depth"]),
        reliability=ReliabilityPolicy.RELIABLE if rel == "reliable" else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if dur == "transient_local" else DurabilityPolicy.VOLATILE,
    )


def describe_qos(values: dict, topic: str) -> str:
    return (f"{values[f'qos.{topic}.reliability']}, keep last {values[f'qos.{topic}.depth']}, "
            f"{values[f'qos.{topic}.durability']}")
