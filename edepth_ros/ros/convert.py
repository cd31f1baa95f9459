"""The one place where ROS messages become numpy / CameraModel and back (no cv_bridge).

Readers are duck-typed: they read ``msg.height``, ``msg.data``... and so work on rclpy messages and
on rosbags' deserialized messages alike, with no ROS installation (message classes are imported
only by the builders). Readers are zero-copy where the encoding allows (``np.ndarray`` over the
message's buffer); builders copy each array once into the message.

Encodings (REP 118 for depth): rgb8, bgr8, rgba8, bgra8, mono8 colour images; 32FC1 (metres, NaN
invalid) and 16UC1 (millimetres, 0 invalid) depth; mono8 / 8UC1 label images.
"""

from __future__ import annotations

import array
from typing import Optional

import cv2
import numpy as np

# encoding -> (dtype, channels)
ENCODINGS = {
    "rgb8": (np.uint8, 3),
    "bgr8": (np.uint8, 3),
    "rgba8": (np.uint8, 4),
    "bgra8": (np.uint8, 4),
    "mono8": (np.uint8, 1),
    "8UC1": (np.uint8, 1),
    "mono16": (np.uint16, 1),
    "16UC1": (np.uint16, 1),
    "32FC1": (np.float32, 1),
}
COLOUR_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")
DEPTH_ENCODINGS = ("32FC1", "16UC1")
LABEL_ENCODINGS = ("mono8", "8UC1")

COLORMAPS = {
    "turbo": cv2.COLORMAP_TURBO,
    "jet": cv2.COLORMAP_JET,
    "viridis": cv2.COLORMAP_VIRIDIS,
    "inferno": cv2.COLORMAP_INFERNO,
    "magma": cv2.COLORMAP_MAGMA,
    "plasma": cv2.COLORMAP_PLASMA,
}

POINTFIELD_FLOAT32 = 7  # sensor_msgs/PointField.FLOAT32
# A CompressedImage declaring more pixels than this is refused before decoding: a 420 KB PNG can
# declare 12000 x 12000 and cost 430 MB and seconds to decode (a decompression bomb). 8K is 33 MP.
MAX_COMPRESSED_PIXELS = 50_000_000


class ConversionError(ValueError):
    """A message that cannot be converted; the text names the field and what is wrong."""


# ----------------------------------------------------------------------------------------- time


def stamp_to_ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def stamp_to_sec(stamp) -> float:
    return int(stamp.sec) + int(stamp.nanosec) * 1e-9


# --------------------------------------------------------------------------------------- images


def _buffer(data) -> np.ndarray:
    """A uint8 view of a message's data (bytes, array.array, memoryview or a numpy array)."""
    if isinstance(data, np.ndarray):
        return data.view(np.uint8).reshape(-1) if data.dtype != np.uint8 else data.reshape(-1)
    return np.frombuffer(data, np.uint8)


def image_to_numpy(msg) -> np.ndarray:
    """The image's pixels as (H, W) or (H, W, C) in the encoding's own dtype and channel order.

    Zero-copy (a view over msg.data, read-only) unless the data is big-endian on this machine.
    """
    enc = str(msg.encoding)
    if enc not in ENCODINGS:
        raise ConversionError(
            f"Image.encoding {enc!r} is not supported (supported: {', '.join(ENCODINGS)}); "
            "republish the image as rgb8/bgr8 (e.g. with image_proc debayer)"
        )
    dtype, channels = ENCODINGS[enc]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    itemsize = np.dtype(dtype).itemsize
    row = w * channels * itemsize
    if h <= 0 or w <= 0:
        raise ConversionError(f"Image: size {w}x{h} is empty")
    if step < row:
        raise ConversionError(f"Image.step {step} is smaller than width * bytes per pixel = {row} ({enc})")
    buf = _buffer(msg.data)
    need = step * (h - 1) + row
    if buf.size < need:
        raise ConversionError(f"Image.data has {buf.size} bytes; {w}x{h} {enc} with step {step} needs {need}")
    big = bool(getattr(msg, "is_bigendian", False))
    dt = np.dtype(dtype).newbyteorder(">" if big else "<")
    shape = (h, w, channels) if channels > 1 else (h, w)
    strides = (step, channels * itemsize, itemsize) if channels > 1 else (step, itemsize)
    arr = np.ndarray(shape, dtype=dt, buffer=buf, strides=strides)
    if not dt.isnative:
        arr = arr.astype(np.dtype(dtype))
    return arr


def image_to_rgb(msg) -> np.ndarray:
    """uint8 (H, W, 3) RGB from an rgb8/bgr8/rgba8/bgra8/mono8 Image (zero-copy for rgb8)."""
    enc = str(msg.encoding)
    if enc not in COLOUR_ENCODINGS:
        raise ConversionError(
            f"Image.encoding {enc!r} is not a colour encoding this node takes "
            f"({', '.join(COLOUR_ENCODINGS)}); republish it as rgb8 or bgr8"
        )
    arr = image_to_numpy(msg)
    if enc == "rgb8":
        return arr if arr.flags.c_contiguous else np.ascontiguousarray(arr)
    code = {
        "bgr8": cv2.COLOR_BGR2RGB,
        "rgba8": cv2.COLOR_RGBA2RGB,
        "bgra8": cv2.COLOR_BGRA2RGB,
        "mono8": cv2.COLOR_GRAY2RGB,
    }[enc]
    return cv2.cvtColor(np.ascontiguousarray(arr), code)


def compressed_to_rgb(msg) -> np.ndarray:
    """uint8 (H, W, 3) RGB from a sensor_msgs/CompressedImage (jpeg, png, ... via cv2.imdecode)."""
    buf = _buffer(msg.data)
    if buf.size == 0:
        raise ConversionError("CompressedImage.data is empty")
    if buf.size >= 2 and buf[0] == 0xFF and buf[1] == 0xD8:
        # libjpeg decodes a truncated JPEG with its missing rows grey: a wrong image, not an error.
        # The end-of-image marker FF D9 must end the data once trailing 0x00/0xFF padding is
        # stripped (UVC/MJPEG cameras pad frames to their buffer size; libjpeg stops at FF D9).
        end = _end_without_padding(buf)
        if end < 4 or buf[end - 1] != 0xD9 or buf[end - 2] != 0xFF:
            raise ConversionError(f"CompressedImage (format {getattr(msg, 'format', '')!r}, {buf.size} bytes): JPEG "
                                  "without its end-of-image marker FF D9 at the end of the data (after any 0x00/0xFF "
                                  "padding): truncated in transport or in the bag")
    size = _declared_size(buf)
    if size is not None and size[0] * size[1] > MAX_COMPRESSED_PIXELS:
        raise ConversionError(f"CompressedImage (format {getattr(msg, 'format', '')!r}, {buf.size} bytes) declares "
                              f"{size[0]}x{size[1]} pixels, over the {MAX_COMPRESSED_PIXELS / 1e6:.0f} MP limit "
                              "(a corrupt header or a decompression bomb): not decoded")
    try:
        # IGNORE_ORIENTATION: the pixels as sent (an EXIF Orientation tag would rotate or flip them,
        # unlike image_transport's compressed subscriber, and the camera_info describes them unrotated)
        bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    except cv2.error as exc:  # some corrupt headers raise instead of returning None
        raise ConversionError(f"CompressedImage (format {getattr(msg, 'format', '')!r}, {buf.size} bytes) could not "
                              f"be decoded by OpenCV: {str(exc).strip().splitlines()[-1]}") from None
    if bgr is None:
        raise ConversionError(
            f"CompressedImage (format {getattr(msg, 'format', '')!r}, {buf.size} bytes) could not be decoded by OpenCV"
        )
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _end_without_padding(buf: np.ndarray) -> int:
    """Length of a uint8 buffer without its trailing 0x00 / 0xFF bytes; only the padding is read
    (in growing chunks from the end), never the whole image."""
    end, chunk = int(buf.size), 64
    while end > 0:
        start = max(0, end - chunk)
        tail = buf[start:end]
        real = np.flatnonzero((tail != 0x00) & (tail != 0xFF))
        if real.size:
            return start + int(real[-1]) + 1
        end, chunk = start, chunk * 4
    return 0


def _declared_size(buf: np.ndarray) -> Optional[tuple]:
    """(width, height) a compressed image's header declares, read without decoding (Pillow opens
    lazily); None where Pillow is absent or does not know the format (OpenCV then decides)."""
    try:
        import io

        from PIL import Image as PILImage

        PILImage.MAX_IMAGE_PIXELS = None  # the limit is ours (MAX_COMPRESSED_PIXELS), not a warning
        with PILImage.open(io.BytesIO(buf.tobytes())) as im:
            return int(im.size[0]), int(im.size[1])
    except Exception:  # not an image Pillow knows, or a broken header: cv2.imdecode reports it
        return None


def depth_image_to_numpy(msg) -> np.ndarray:
    """float32 (H, W) metres, NaN invalid, from a 32FC1 (metres) or 16UC1 (mm, 0 = none) Image."""
    enc = str(msg.encoding)
    if enc not in DEPTH_ENCODINGS:
        raise ConversionError(f"depth Image.encoding {enc!r} is not one of {', '.join(DEPTH_ENCODINGS)} (REP 118)")
    arr = image_to_numpy(msg)
    if enc == "32FC1":
        return arr
    depth = arr.astype(np.float32) * np.float32(1e-3)
    depth[arr == 0] = np.nan
    return depth


def label_image_to_numpy(msg) -> np.ndarray:
    """uint8 (H, W) Cityscapes train ids from a mono8 / 8UC1 Image."""
    enc = str(msg.encoding)
    if enc not in LABEL_ENCODINGS:
        raise ConversionError(
            f"semantic Image.encoding {enc!r} is not one of {', '.join(LABEL_ENCODINGS)} (uint8 train ids)"
        )
    return image_to_numpy(msg)


# ---------------------------------------------------------------------------------- CameraInfo


def camera_model_from_info(msg, frame_id: Optional[str] = None, rectified: Optional[bool] = None):
    """CameraModel from a sensor_msgs/CameraInfo (rclpy or rosbags). Raises CameraModelError
    (a ValueError naming the field) for uncalibrated / NaN intrinsics. rectified: None decides
    from D (all zero = rectified); True for an image_rect topic whose CameraInfo still carries D."""
    from ..camera import CameraModel

    return CameraModel.from_camera_info(msg, frame_id=frame_id, rectified=rectified)


def camera_info_key(msg) -> tuple:
    """Hashable contents of a CameraInfo (everything but the stamp): rebuild the model only on change."""
    roi = msg.roi
    return (
        int(msg.width), int(msg.height), str(msg.distortion_model), str(msg.header.frame_id),
        tuple(np.asarray(msg.k, np.float64).tolist()), tuple(np.asarray(msg.d, np.float64).tolist()),
        tuple(np.asarray(msg.r, np.float64).tolist()), tuple(np.asarray(msg.p, np.float64).tolist()),
        int(msg.binning_x), int(msg.binning_y),
        (int(roi.x_offset), int(roi.y_offset), int(roi.width), int(roi.height)),
    )


def info_image_mismatch(info, image_width: int, image_height: int, image_frame: str, camera=None) -> Optional[str]:
    """Why a CameraInfo does not describe an image, or None when it does.

    The size compared is the camera model's (binning and ROI applied) when given, else the
    CameraInfo's own. An empty CameraInfo frame_id is accepted (many drivers leave it empty).
    """
    w = int(camera.width) if camera is not None else int(info.width)
    h = int(camera.height) if camera is not None else int(info.height)
    if (w, h) != (int(image_width), int(image_height)):
        return (f"camera_info is {w}x{h} but the image is {image_width}x{image_height} "
                "(is camera_info from another camera or resolution?)")
    info_frame = str(info.header.frame_id)
    if info_frame and image_frame and info_frame != image_frame:
        return f"camera_info frame_id {info_frame!r} differs from the image's {image_frame!r}"
    return None


# ------------------------------------------------------------------------------------ builders


def _new_message(msg_type):
    """A message whose byte-array setter keeps the array.array given (``check_fields=True``);
    without it rclpy (Jazzy and later) copies every image or cloud once more on assignment.
    Distributions before the keyword always keep the array."""
    try:
        return msg_type(check_fields=True)
    except (AssertionError, TypeError):
        return msg_type()


def _bytes_array(arr: np.ndarray) -> array.array:
    """One copy of a numpy array into the array.array('B') rclpy stores (no per-byte checks)."""
    out = array.array("B")
    out.frombytes(np.ascontiguousarray(arr).reshape(-1).view(np.uint8))
    return out


def numpy_to_image(arr: np.ndarray, encoding: str, header=None):
    """sensor_msgs/Image from an (H, W) or (H, W, C) array in ``encoding`` (little-endian)."""
    from sensor_msgs.msg import Image

    if encoding not in ENCODINGS:
        raise ConversionError(f"encoding {encoding!r} is not one of {', '.join(ENCODINGS)}")
    dtype, channels = ENCODINGS[encoding]
    arr = np.asarray(arr)
    if arr.dtype != dtype or (arr.shape[2] if arr.ndim == 3 else 1) != channels or arr.ndim not in (2, 3):
        raise ConversionError(
            f"array {arr.dtype} {arr.shape} does not fit encoding {encoding} ({np.dtype(dtype)} x {channels})"
        )
    msg = _new_message(Image)
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(arr.shape[0]), int(arr.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = int(arr.shape[1] * channels * np.dtype(dtype).itemsize)
    msg.data = _bytes_array(arr)
    return msg


def depth_to_image(depth: np.ndarray, header=None):
    """32FC1 Image (metres, NaN invalid) from float32 (H, W)."""
    return numpy_to_image(np.asarray(depth, np.float32), "32FC1", header)


def rgb_to_compressed(rgb: np.ndarray, header=None, fmt: str = "png"):
    """sensor_msgs/CompressedImage (png or jpeg) from uint8 RGB, as image_transport names it."""
    from sensor_msgs.msg import CompressedImage

    ok, enc = cv2.imencode("." + fmt, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ConversionError(f"cv2.imencode could not encode a {rgb.shape} image as {fmt}")
    msg = _new_message(CompressedImage)
    if header is not None:
        msg.header = header
    msg.format = f"rgb8; {fmt} compressed bgr8"
    msg.data = _bytes_array(enc)
    return msg


def camera_info_from_model(camera, header=None):
    """sensor_msgs/CameraInfo for a CameraModel (K, D, R, P, size, distortion model)."""
    from sensor_msgs.msg import CameraInfo

    msg = CameraInfo()
    if header is not None:
        msg.header = header
    msg.width, msg.height = int(camera.width), int(camera.height)
    msg.distortion_model = str(getattr(camera, "distortion_model", "plumb_bob") or "plumb_bob")
    K = np.asarray(camera.K, np.float64)
    D = getattr(camera, "D", None)
    R = getattr(camera, "R", None)
    P = getattr(camera, "P", None)
    msg.k = K.reshape(-1).tolist()
    msg.d = [] if D is None else np.asarray(D, np.float64).reshape(-1).tolist()
    msg.r = (np.eye(3) if R is None else np.asarray(R, np.float64)).reshape(-1).tolist()
    if P is None:
        P = np.hstack([K, np.zeros((3, 1))])
    msg.p = np.asarray(P, np.float64).reshape(-1).tolist()
    return msg


def camera_info_with_header(info, header):
    """A copy of a CameraInfo message with another header (for depth/camera_info)."""
    from sensor_msgs.msg import CameraInfo

    out = CameraInfo()
    out.header = header
    for field in ("height", "width", "distortion_model", "d", "k", "r", "p", "binning_x", "binning_y", "roi"):
        setattr(out, field, getattr(info, field))
    return out


def cloud_to_msg(points: np.ndarray, header=None):
    """PointCloud2 from interleaved float32 points (N, C) or organised (H, W, C), C = 3 (x, y, z)
    or 4 (x, y, z, rgb packed float32) as built by ``pointcloud.cloud_array``. is_dense: no NaN/inf
    point (organised clouds carry NaN points where there is no depth)."""
    from sensor_msgs.msg import PointCloud2, PointField

    points = np.asarray(points)
    if points.dtype != np.float32 or points.ndim not in (2, 3) or points.shape[-1] not in (3, 4):
        raise ConversionError(f"points: expected float32 (N, 3|4) or (H, W, 3|4), got {points.dtype} {points.shape}")
    c = points.shape[-1]
    h, w = (points.shape[0], points.shape[1]) if points.ndim == 3 else (1, points.shape[0])
    msg = _new_message(PointCloud2)
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(h), int(w)
    names = ("x", "y", "z", "rgb")[:c]
    msg.fields = [PointField(name=n, offset=4 * i, datatype=POINTFIELD_FLOAT32, count=1) for i, n in enumerate(names)]
    msg.is_bigendian = False
    msg.point_step = 4 * c
    msg.row_step = msg.point_step * int(w)
    msg.is_dense = bool(np.isfinite(points[..., :3]).all())
    msg.data = _bytes_array(points)
    return msg


class CloudMessageBuilder:
    """PointCloud2 messages straight from depth images, the points written once, directly into the
    message's buffer. The buffer is kept and reused for the next message: ``publish()`` copies a
    message before it returns, and writing into memory already mapped avoids faulting in a fresh
    7 MB every frame (which costs more than building the cloud). Use one builder per publisher and
    build the next message only after the previous one was published.
    """

    def __init__(self):
        self._buf: Optional[array.array] = None

    def _buffer(self, nbytes: int) -> array.array:
        buf = self._buf
        if buf is None:
            buf = array.array("B", [0]) * nbytes
        elif len(buf) > nbytes:
            del buf[nbytes:]
        elif len(buf) < nbytes:
            buf.frombytes(bytes(nbytes - len(buf)))
        self._buf = buf
        return buf

    def build(self, depth: np.ndarray, camera, rgb: Optional[np.ndarray] = None, decimation: int = 1,
              max_range: float = float("inf"), organised: bool = False, header=None):
        """Same content as ``cloud_to_msg(pointcloud.cloud_array(...), header)``."""
        from sensor_msgs.msg import PointCloud2, PointField

        from ..pointcloud import check_decimation, cloud_array, count_valid

        decimation = check_decimation(decimation)  # PointCloudError naming it, before any slicing
        c = 3 if rgb is None else 4
        zshape = depth[::decimation, ::decimation].shape
        n = zshape[0] * zshape[1] if organised else count_valid(depth, decimation, max_range)
        buf = self._buffer(n * 4 * c)
        view = np.frombuffer(buf, np.float32) if n else np.empty(0, np.float32)
        pts = cloud_array(depth, camera, rgb, decimation, max_range, organised, out=view)
        h, w = (pts.shape[0], pts.shape[1]) if organised else (1, pts.shape[0])
        msg = _new_message(PointCloud2)
        if header is not None:
            msg.header = header
        msg.height, msg.width = int(h), int(w)
        msg.fields = [PointField(name=nm, offset=4 * i, datatype=POINTFIELD_FLOAT32, count=1)
                      for i, nm in enumerate(("x", "y", "z", "rgb")[:c])]
        msg.is_bigendian = False
        msg.point_step = 4 * c
        msg.row_step = msg.point_step * int(w)
        # an unorganised cloud holds valid points only; an organised one has NaN where there is no depth
        msg.is_dense = not organised or bool(np.isfinite(pts[..., 2]).all())
        msg.data = buf
        return msg


def cloud_msg(depth: np.ndarray, camera, rgb: Optional[np.ndarray] = None, decimation: int = 1,
              max_range: float = float("inf"), organised: bool = False, header=None):
    """A one-off PointCloud2 from a depth image (its own buffer); see CloudMessageBuilder."""
    return CloudMessageBuilder().build(depth, camera, rgb, decimation, max_range, organised, header)


def cloud_from_msg(msg) -> np.ndarray:
    """(H*W, len(fields)) float32 from a PointCloud2 whose fields are all FLOAT32 (rclpy or rosbags).

    The layout (offsets, point_step, row_step, data length) is checked before any byte is read,
    and is_bigendian is honoured; ConversionError names the inconsistent field.
    """
    fields = list(msg.fields)
    for f in fields:
        if int(f.datatype) != POINTFIELD_FLOAT32 or int(f.count) != 1:
            raise ConversionError(f"PointCloud2 field {str(f.name)!r}: datatype {int(f.datatype)} x count "
                                  f"{int(f.count)}; only FLOAT32 fields of count 1 are read here")
    h, w = int(msg.height), int(msg.width)
    point_step, row_step = int(msg.point_step), int(msg.row_step)
    if h == 0 or w == 0:
        return np.empty((0, len(fields)), np.float32)
    if point_step <= 0:
        raise ConversionError(f"PointCloud2.point_step is {point_step} for {w}x{h} points; it must be positive")
    for f in fields:
        if int(f.offset) + 4 > point_step:
            raise ConversionError(f"PointCloud2 field {str(f.name)!r}: offset {int(f.offset)} + 4 bytes exceeds "
                                  f"point_step {point_step}")
    if row_step < w * point_step:
        raise ConversionError(f"PointCloud2.row_step {row_step} is smaller than width {w} x point_step {point_step}")
    raw = _buffer(msg.data)
    need = row_step * (h - 1) + w * point_step
    if raw.size < need:
        raise ConversionError(f"PointCloud2.data has {raw.size} bytes; {w}x{h} points with point_step "
                              f"{point_step} and row_step {row_step} need {need}")
    dt = np.dtype(">f4" if bool(getattr(msg, "is_bigendian", False)) else "<f4")
    out = np.empty((h * w, len(fields)), np.float32)
    for i, f in enumerate(fields):
        col = np.ndarray((h, w), dt, raw, offset=int(f.offset), strides=(row_step, point_step))
        out[:, i] = col.reshape(-1)
    return out


# ------------------------------------------------------------------------------------- colour


def colorize_depth(depth: np.ndarray, min_depth: float = 0.0, max_depth: float = 80.0,
                   colormap: str = "turbo") -> np.ndarray:
    """uint8 (H, W, 3) RGB picture of a depth image: near is warm (red), far is cold (blue) on
    turbo; invalid (NaN) pixels are black. Scaled linearly between min_depth and max_depth."""
    if colormap not in COLORMAPS:
        raise ConversionError(f"colormap {colormap!r} is not one of {', '.join(COLORMAPS)}")
    if not max_depth > min_depth:
        raise ConversionError(f"colour range: max_depth {max_depth} must exceed min_depth {min_depth}")
    scale = 255.0 / (max_depth - min_depth)
    with np.errstate(invalid="ignore"):
        v = (np.float32(max_depth) - depth) * np.float32(scale)  # near -> 255 (warm end)
        np.clip(v, 0, 255, out=v)
    valid = np.isfinite(v)
    u8 = np.where(valid, v, 0).astype(np.uint8)
    bgr = cv2.applyColorMap(u8, COLORMAPS[colormap])
    bgr[~valid] = 0
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
