"""ros/convert.py: messages <-> numpy for rclpy and rosbags messages, no cv_bridge."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sensor_msgs.msg", reason="ROS 2 message packages (ros-sensor-msgs) are not installed")

import cv2  # noqa: E402
from rclpy.serialization import deserialize_message  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from edepth_ros.camera import CameraModel, CameraModelError  # noqa: E402
from edepth_ros.pointcloud import cloud_array  # noqa: E402
from edepth_ros.ros import convert  # noqa: E402

H, W = 20, 30


def rgb_image():
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (H, W, 3), dtype=np.uint8)


def header(sec=12, nanosec=345, frame="cam_optical_frame"):
    h = Header(frame_id=frame)
    h.stamp.sec, h.stamp.nanosec = sec, nanosec
    return h


@pytest.mark.parametrize("encoding, make", [
    ("rgb8", lambda rgb: rgb),
    ("bgr8", lambda rgb: rgb[..., ::-1]),
    ("rgba8", lambda rgb: np.dstack([rgb, np.full((H, W), 9, np.uint8)])),
    ("bgra8", lambda rgb: np.dstack([rgb[..., ::-1], np.full((H, W), 9, np.uint8)])),
])
def test_colour_encodings_become_rgb(encoding, make):
    rgb = rgb_image()
    msg = convert.numpy_to_image(np.ascontiguousarray(make(rgb)), encoding, header())
    assert msg.encoding == encoding and msg.step == W * len(encoding.rstrip("8"))
    np.testing.assert_array_equal(convert.image_to_rgb(msg), rgb)


def test_mono8_becomes_grey_rgb():
    grey = rgb_image()[..., 0].copy()
    out = convert.image_to_rgb(convert.numpy_to_image(grey, "mono8"))
    assert out.shape == (H, W, 3) and all(np.array_equal(out[..., c], grey) for c in range(3))


def test_rgb8_reading_is_zero_copy():
    msg = convert.numpy_to_image(rgb_image(), "rgb8")
    out = convert.image_to_rgb(msg)
    assert np.shares_memory(out, np.frombuffer(msg.data, np.uint8))


def test_row_padding_is_honoured():
    rgb = rgb_image()
    padded = np.zeros((H, W * 3 + 6), np.uint8)
    padded[:, : W * 3] = rgb.reshape(H, -1)
    msg = Image(height=H, width=W, encoding="rgb8", step=W * 3 + 6)
    msg.data = padded.tobytes()
    np.testing.assert_array_equal(convert.image_to_rgb(msg), rgb)


def test_depth_encodings_follow_rep118():
    depth = np.linspace(0.5, 40, H * W, dtype=np.float32).reshape(H, W)
    depth[0, 0] = np.nan
    back = convert.depth_image_to_numpy(convert.depth_to_image(depth))
    np.testing.assert_array_equal(back, depth)
    mm = np.round(np.nan_to_num(depth) * 1000).astype(np.uint16)
    from16 = convert.depth_image_to_numpy(convert.numpy_to_image(mm, "16UC1"))
    assert np.isnan(from16[0, 0]) and from16.dtype == np.float32
    np.testing.assert_allclose(from16[1:], depth[1:], atol=1e-3)
    # big-endian 32FC1 (a message from another machine)
    msg = Image(height=H, width=W, encoding="32FC1", step=W * 4, is_bigendian=1)
    msg.data = depth.astype(">f4").tobytes()
    np.testing.assert_array_equal(convert.depth_image_to_numpy(msg), depth)


def test_bad_images_name_the_field():
    msg = Image(height=H, width=W, encoding="bayer_rggb8", step=W)
    msg.data = bytes(H * W)
    with pytest.raises(convert.ConversionError, match="bayer_rggb8"):
        convert.image_to_rgb(msg)
    msg = Image(height=H, width=W, encoding="rgb8", step=W * 3)
    msg.data = bytes(10)
    with pytest.raises(convert.ConversionError, match="Image.data has 10 bytes"):
        convert.image_to_rgb(msg)
    msg = Image(height=H, width=W, encoding="rgb8", step=W)
    with pytest.raises(convert.ConversionError, match="Image.step"):
        convert.image_to_rgb(msg)
    with pytest.raises(convert.ConversionError, match="32FC1"):
        convert.image_to_rgb(convert.depth_to_image(np.ones((H, W), np.float32)))


def test_compressed_png_is_lossless_and_jpeg_close():
    rgb = rgb_image()
    png = convert.rgb_to_compressed(rgb, header(), "png")
    assert "png" in png.format
    np.testing.assert_array_equal(convert.compressed_to_rgb(png), rgb)
    smooth = cv2.GaussianBlur(rgb, (7, 7), 3)
    jpg = convert.compressed_to_rgb(convert.rgb_to_compressed(smooth, None, "jpg"))
    assert np.abs(jpg.astype(int) - smooth).mean() < 6
    bad = convert.rgb_to_compressed(rgb)
    bad.data = bytes(b"not an image")
    with pytest.raises(convert.ConversionError, match="could not be decoded"):
        convert.compressed_to_rgb(bad)


def test_compressed_jpeg_exif_orientation_is_ignored():
    # the pixels as sent: an EXIF Orientation tag (3 = upside down, 6 = rotated) must not turn them
    import io

    pil = pytest.importorskip("PIL.Image")
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[: H // 2] = (200, 30, 30)  # top half red
    msg = convert.rgb_to_compressed(rgb, None, "jpg")
    for orientation in (3, 6):
        exif = pil.Exif()
        exif[0x0112] = orientation
        buf = io.BytesIO()
        pil.fromarray(rgb).save(buf, "JPEG", quality=95, exif=exif.tobytes())
        msg.data = buf.getvalue()
        out = convert.compressed_to_rgb(msg)
        assert out.shape == (H, W, 3), orientation
        assert out[2, 2, 0] > 150 and out[-3, 2, 0] < 50, orientation


def test_compressed_jpeg_padding_after_its_end_marker_is_accepted_but_truncation_is_not():
    smooth = cv2.GaussianBlur(rgb_image(), (7, 7), 3)
    jpg = bytes(convert.rgb_to_compressed(smooth, None, "jpg").data)
    ref = convert.compressed_to_rgb(convert.rgb_to_compressed(smooth, None, "jpg"))
    msg = convert.rgb_to_compressed(smooth, None, "jpg")
    for pad in (bytes(64), bytes(4096), b"\xff" * 100, b"\x00\xff" * 50):  # UVC/MJPEG buffer padding
        msg.data = jpg + pad
        np.testing.assert_array_equal(convert.compressed_to_rgb(msg), ref)
    for cut in (jpg[:-2], jpg[:-2] + bytes(100), jpg[: len(jpg) // 2] + b"\xff" * 10):
        msg.data = cut
        with pytest.raises(convert.ConversionError, match="end-of-image marker"):
            convert.compressed_to_rgb(msg)


def test_camera_info_round_trip_and_checks():
    cam = CameraModel.from_intrinsics(700.0, 710.0, 15.0, 10.0, W, H)
    info = convert.camera_info_from_model(cam, header())
    model = convert.camera_model_from_info(info, frame_id="cam_optical_frame")
    np.testing.assert_allclose(model.K, cam.K)
    assert (model.width, model.height, model.frame_id) == (W, H, "cam_optical_frame")
    assert convert.info_image_mismatch(info, W, H, "cam_optical_frame", model) is None
    assert "30x20 but the image is 31x20" in convert.info_image_mismatch(info, W + 1, H, "cam_optical_frame")
    assert "frame_id" in convert.info_image_mismatch(info, W, H, "other_frame")
    nan = convert.camera_info_from_model(cam)
    k = list(nan.k)
    k[0] = float("nan")
    nan.k, nan.p = k, [0.0] * 12
    with pytest.raises(CameraModelError, match="K"):
        convert.camera_model_from_info(nan)
    copy = convert.camera_info_with_header(info, header(99, 0, "x"))
    assert copy.header.stamp.sec == 99 and list(copy.k) == list(info.k)
    assert convert.camera_info_key(info) == convert.camera_info_key(copy)[:3] + ("cam_optical_frame",) + \
        convert.camera_info_key(copy)[4:]


def test_image_rect_camera_info_that_keeps_d_uses_p_when_told():
    """image_proc's image_rect topics keep the camera's D in camera_info: the node's
    image_rectification parameter says the image is rectified, so P is used and nothing undistorted."""
    from edepth_ros.ros.node import RECTIFIED

    info = convert.camera_info_from_model(CameraModel.from_intrinsics(700.0, 710.0, 15.0, 10.0, W, H))
    info.d = [-0.3, 0.1, 0.0, 0.0, 0.0]
    info.p = [650.0, 0.0, 14.0, 0.0, 0.0, 650.0, 9.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    auto = convert.camera_model_from_info(info, rectified=RECTIFIED["auto"])
    assert not auto.rectified and auto.fx == 700.0  # D non-zero: taken for a raw, distorted image
    rect = convert.camera_model_from_info(info, rectified=RECTIFIED["rectified"])
    assert rect.rectified and rect.fx == 650.0 and rect.D.size == 0
    assert not convert.camera_model_from_info(info, rectified=RECTIFIED["raw"]).rectified


def test_point_cloud_message_layout():
    cam = CameraModel.from_intrinsics(40.0, 40.0, 15.0, 10.0, W, H)
    depth = np.full((H, W), 4.0, np.float32)
    depth[3, 4] = np.nan
    pts = cloud_array(depth, cam, rgb=rgb_image(), organised=True)
    msg = convert.cloud_to_msg(pts, header())
    assert isinstance(msg, PointCloud2)
    assert (msg.height, msg.width, msg.point_step, msg.row_step) == (H, W, 16, 16 * W)
    assert [f.name for f in msg.fields] == ["x", "y", "z", "rgb"] and not msg.is_dense
    back = convert.cloud_from_msg(msg)
    np.testing.assert_array_equal(back.view(np.uint32), pts.reshape(-1, 4).view(np.uint32))
    flat = convert.cloud_to_msg(cloud_array(depth, cam), header())
    assert flat.height == 1 and flat.width == H * W - 1 and [f.name for f in flat.fields] == ["x", "y", "z"]
    assert flat.is_dense  # valid points only


def test_colorize_depth_near_warm_far_cold_invalid_black():
    depth = np.array([[1.0, 79.0, np.nan]], np.float32)
    col = convert.colorize_depth(depth, 0.0, 80.0, "turbo")
    assert col.shape == (1, 3, 3) and col.dtype == np.uint8
    near, far, none = col[0]
    assert near[0] > near[2] and far[2] > far[0] and not none.any()
    with pytest.raises(convert.ConversionError, match="colormap"):
        convert.colorize_depth(depth, colormap="rainbowz")


def test_rosbags_messages_convert_like_rclpy_ones():
    """Duck typing: rosbags' dataclasses (numpy data) and rclpy messages give the same arrays, and
    rosbags' CDR bytes deserialize into rclpy messages that convert identically."""
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_KILTED)
    T = ts.types
    rgb = rgb_image()
    hdr = T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=5, nanosec=6), frame_id="cam")
    img = T["sensor_msgs/msg/Image"](header=hdr, height=H, width=W, encoding="bgr8", is_bigendian=0, step=W * 3,
                                     data=np.ascontiguousarray(rgb[..., ::-1]).reshape(-1))
    np.testing.assert_array_equal(convert.image_to_rgb(img), rgb)
    cdr = ts.serialize_cdr(img, "sensor_msgs/msg/Image")
    as_rclpy = deserialize_message(bytes(cdr), Image)
    np.testing.assert_array_equal(convert.image_to_rgb(as_rclpy), rgb)
    assert convert.stamp_to_ns(img.header.stamp) == convert.stamp_to_ns(as_rclpy.header.stamp) == 5_000_000_006

    roi = T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    k = np.array([700.0, 0, 15.0, 0, 700.0, 10.0, 0, 0, 1])
    info = T["sensor_msgs/msg/CameraInfo"](header=hdr, height=H, width=W, distortion_model="plumb_bob",
                                           d=np.zeros(5), k=k, r=np.eye(3).reshape(-1),
                                           p=np.array([700.0, 0, 15.0, 0, 0, 700.0, 10.0, 0, 0, 0, 1, 0]),
                                           binning_x=0, binning_y=0, roi=roi)
    model = convert.camera_model_from_info(info)
    assert model.frame_id == "cam" and model.fx == 700.0
    info_rclpy = deserialize_message(bytes(ts.serialize_cdr(info, "sensor_msgs/msg/CameraInfo")), CameraInfo)
    assert convert.camera_info_key(info) == convert.camera_info_key(info_rclpy)


@pytest.mark.parametrize("organised, decimation, max_range, colour", [
    (True, 1, float("inf"), True), (False, 1, 3.5, True), (False, 2, float("inf"), False), (True, 3, 3.0, False),
    (False, 1, 0.5, True),  # no point in range: an empty cloud
])
def test_cloud_msg_writes_the_same_points_in_place(organised, decimation, max_range, colour):
    cam = CameraModel.from_intrinsics(40.0, 40.0, 15.0, 10.0, W, H)
    depth = np.linspace(1.0, 6.0, H * W, dtype=np.float32).reshape(H, W)
    depth[3, 4], depth[5, 5] = np.nan, 0.0
    rgb = rgb_image() if colour else None
    ref = convert.cloud_to_msg(cloud_array(depth, cam, rgb, decimation, max_range, organised), header())
    msg = convert.cloud_msg(depth, cam, rgb, decimation, max_range, organised, header())
    for field in ("height", "width", "point_step", "row_step", "is_dense", "fields"):
        assert getattr(msg, field) == getattr(ref, field), field
    assert bytes(msg.data) == bytes(ref.data)


def test_cloud_builder_reuses_its_buffer_and_resizes_it():
    cam = CameraModel.from_intrinsics(40.0, 40.0, 15.0, 10.0, W, H)
    builder = convert.CloudMessageBuilder()
    near = np.full((H, W), 2.0, np.float32)
    first = builder.build(near, cam, rgb_image(), organised=True)
    snapshot = bytes(first.data)
    second = builder.build(near * 2, cam, rgb_image(), organised=True)
    assert second.data is first.data and bytes(second.data) != snapshot  # one buffer, rewritten
    ref = convert.cloud_to_msg(cloud_array(near * 2, cam, rgb_image(), organised=True))
    assert bytes(second.data) == bytes(ref.data)
    fewer = near.copy()
    fewer[: H // 2] = np.nan
    for depth in (fewer, near, fewer):  # shrink, grow, shrink
        msg = builder.build(depth, cam, None, max_range=10.0)
        assert bytes(msg.data) == bytes(convert.cloud_to_msg(cloud_array(depth, cam, None, max_range=10.0)).data)
        assert msg.width == np.isfinite(depth).sum()


@pytest.mark.parametrize("decimation", [0, -2, 2.5])
def test_cloud_builder_names_a_bad_decimation_before_slicing(decimation):
    from edepth_ros.pointcloud import PointCloudError

    cam = CameraModel.from_intrinsics(40.0, 40.0, 15.0, 10.0, W, H)
    for organised in (False, True):
        with pytest.raises(PointCloudError, match="decimation: must be an integer >= 1"):
            convert.CloudMessageBuilder().build(np.ones((H, W), np.float32), cam, organised=organised,
                                                decimation=decimation)


def test_cloud_msg_leaves_out_infinite_depth_and_stays_dense():
    cam = CameraModel.from_intrinsics(40.0, 40.0, 15.0, 10.0, W, H)
    depth = np.full((H, W), 5.0, np.float32)
    depth[0] = np.inf  # REP 118 "too far"
    msg = convert.cloud_msg(depth, cam)
    assert msg.width == (H - 1) * W and msg.is_dense
    assert np.isfinite(convert.cloud_from_msg(msg)).all()
    assert not convert.cloud_msg(depth, cam, organised=True).is_dense  # NaN where the sky is


# ------------------------------------------------------------------ ros/tf_source.py (tf -> plane)


def _transform_stamped(T, stamp_ns, parent="camera_optical_frame", child="base_footprint"):
    """geometry_msgs/TransformStamped holding the 4x4 T (quaternion from the rotation block)."""
    from geometry_msgs.msg import TransformStamped

    R = T[:3, :3]
    w = np.sqrt(max(0.0, 1 + R[0, 0] + R[1, 1] + R[2, 2])) / 2
    x = np.copysign(np.sqrt(max(0.0, 1 + R[0, 0] - R[1, 1] - R[2, 2])) / 2, R[2, 1] - R[1, 2])
    y = np.copysign(np.sqrt(max(0.0, 1 - R[0, 0] + R[1, 1] - R[2, 2])) / 2, R[0, 2] - R[2, 0])
    z = np.copysign(np.sqrt(max(0.0, 1 - R[0, 0] - R[1, 1] + R[2, 2])) / 2, R[1, 0] - R[0, 1])
    msg = TransformStamped()
    msg.header = header(*divmod(stamp_ns, 1_000_000_000), frame=parent)
    msg.child_frame_id = child
    msg.transform.translation.x, msg.transform.translation.y, msg.transform.translation.z = map(float, T[:3, 3])
    msg.transform.rotation.x, msg.transform.rotation.y = float(x), float(y)
    msg.transform.rotation.z, msg.transform.rotation.w = float(z), float(w)
    return msg


class LookupError_(Exception):
    """Stands for tf2_ros.LookupException (tf2_ros is not installable here)."""


class RecordedBuffer:
    """A transform store answering lookup_transform like tf2_ros.Buffer (tf2_ros cannot be installed
    here); it serves the adapter's own logic: stamps, staleness, conversion, fallbacks."""

    def __init__(self):
        self.transforms = {}
        self.cleared = 0

    def lookup_transform(self, target, source, time, timeout=None):
        key = (target, source)
        if key not in self.transforms:
            raise LookupError_(f'"{source}" passed to lookupTransform argument source_frame does not exist')
        return self.transforms[key]

    def clear(self):
        self.transforms.clear()
        self.cleared += 1


def test_tf_pose_adapter_turns_transforms_into_planes_and_falls_back_with_a_reason():
    pytest.importorskip("rclpy")
    from edepth_ros.ground import GroundPlane
    from edepth_ros.ros.tf_source import StaticPose, TfPose, transform_to_matrix

    T = GroundPlane.transform_from_static(1.4, pitch=0.05, roll=-0.02)
    stamp = 50 * 1_000_000_000
    msg = _transform_stamped(T, stamp)
    np.testing.assert_allclose(transform_to_matrix(msg.transform), T, atol=1e-9)

    static = StaticPose(1.65, 0.0, 0.0)
    buf = RecordedBuffer()
    src = TfPose(None, "base_footprint", 0.05, 0.5, static, buffer=buf, errors=(LookupError_,))
    image_stamp = header(50, 100_000_000).stamp
    missing = src.lookup("camera_optical_frame", image_stamp)
    assert missing.source == "static" and missing.plane == static.plane
    assert "no transform base_footprint -> camera_optical_frame" in missing.problem and "LookupError_" in missing.problem

    buf.transforms[("camera_optical_frame", "base_footprint")] = msg
    found = src.lookup("camera_optical_frame", image_stamp)
    assert found.source == "tf" and found.problem is None
    expected = GroundPlane.from_static(1.4, 0.05, -0.02)
    np.testing.assert_allclose(found.plane.normal, expected.normal, atol=1e-9)
    assert found.plane.height == pytest.approx(1.4)

    stale = src.lookup("camera_optical_frame", header(52, 0).stamp)  # 2 s after the transform
    assert stale.source == "static" and "2.00 s older than the image" in stale.problem
    buf.transforms[("camera_optical_frame", "base_footprint")] = _transform_stamped(T, 0)  # static: never stale
    assert src.lookup("camera_optical_frame", header(500, 0).stamp).source == "tf"

    upside_down = T.copy()
    upside_down[:3, 3] *= -1  # the camera below the road
    buf.transforms[("camera_optical_frame", "base_footprint")] = _transform_stamped(upside_down, stamp)
    bad = src.lookup("camera_optical_frame", image_stamp)
    assert bad.source == "static" and "tf base_footprint -> camera_optical_frame" in bad.problem
    assert src.lookup("", image_stamp).problem.startswith("the image has no header.frame_id")
    src.reset()
    assert buf.cleared == 1


def test_real_tf2_ros_where_installed():
    try:
        import tf2_ros  # noqa: F401
    except ImportError:
        pytest.skip("tf2_ros is not installable from PyPI here: the live /tf lookup is untested "
                    "(the node falls back to the static pose parameters and says so at start)")
    import rclpy
    from tf2_ros import StaticTransformBroadcaster

    from edepth_ros.ground import GroundPlane
    from edepth_ros.ros.tf_source import StaticPose, TfPose

    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=53)
    try:
        node = rclpy.create_node("tf_test", context=ctx)
        T = GroundPlane.transform_from_static(1.3, pitch=0.03)
        StaticTransformBroadcaster(node).sendTransform(_transform_stamped(T, 0))
        src = TfPose(node, "base_footprint", 1.0, 0.5, StaticPose(1.65))
        found = src.lookup("camera_optical_frame", header(1, 0).stamp)
        assert found.source == "tf" and found.plane.height == pytest.approx(1.3)
    finally:
        rclpy.shutdown(context=ctx)
