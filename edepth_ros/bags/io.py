"""ROS 2 bag reading and writing with ``rosbags`` (pure Python, no ROS installation needed).

- ``typestore()``: the ROS 2 Kilted typestore (sensor_msgs, tf2_msgs, rosgraph_msgs, ... built in).
- ``BagWriter``: MCAP (default) or sqlite3, messages built with the helpers below.
- ``BagReader``: topics, counts, raw messages in time order, with truncation and missing
  topics reported by name instead of a traceback.
- Message builders (rosbags dataclasses) and numpy decoders that take views of the CDR buffer
  (no per-pixel Python).
- ``TfTree``: static + dynamic transforms from /tf_static and /tf, looked up by frame names (with
  the node's tf_max_age rule where asked).
- ``CameraInfos``, ``cdr_header_ns``, ``header_stamps_problem``: how the bag evaluation and
  training's BagDataset both pair messages (header stamps, else log time; the camera_info in force);
  ``no_ground_truth_reason``: what both say of a frame with nothing to score.
"""

from __future__ import annotations

import bisect
import functools
import logging
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

log = logging.getLogger(__name__)

CAMERA_FRAME = "camera_optical_frame"
GROUND_FRAME = "base_footprint"
LIDAR_FRAME = "lidar_link"

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
POINTCLOUD2 = "sensor_msgs/msg/PointCloud2"
TF_MESSAGE = "tf2_msgs/msg/TFMessage"
CLOCK = "rosgraph_msgs/msg/Clock"


class BagError(RuntimeError):
    """A bag that cannot be read or written as asked; the message names the bag and what to do."""


@functools.lru_cache(maxsize=1)
def typestore():
    """The rosbags typestore for ROS 2 Kilted (has tf2_msgs/TFMessage and rosgraph_msgs/Clock)."""
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_KILTED)


def msg_class(msgtype: str):
    try:
        return typestore().types[msgtype]
    except KeyError:
        raise BagError(f"message type {msgtype!r} is not in the rosbags Kilted typestore") from None


# ---------------------------------------------------------------- message builders (rosbags types)

def stamp_ns(seconds: float) -> int:
    return int(round(seconds * 1e9))


def header(stamp: int, frame_id: str):
    """std_msgs/Header from an integer nanosecond stamp."""
    t = msg_class("builtin_interfaces/msg/Time")(sec=int(stamp // 1_000_000_000), nanosec=int(stamp % 1_000_000_000))
    return msg_class("std_msgs/msg/Header")(stamp=t, frame_id=frame_id)


def header_ns(hdr) -> int:
    """Nanoseconds of a Header's stamp (rosbags or rclpy message)."""
    return int(hdr.stamp.sec) * 1_000_000_000 + int(hdr.stamp.nanosec)


def image_msg(array: np.ndarray, stamp: int, frame_id: str, encoding: str | None = None):
    """sensor_msgs/Image: uint8 (H, W, 3) -> rgb8, (H, W) uint8 -> mono8, float32 -> 32FC1."""
    a = np.ascontiguousarray(array)
    if encoding is None:
        if a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] == 3:
            encoding = "rgb8"
        elif a.dtype == np.uint8 and a.ndim == 2:
            encoding = "mono8"
        elif a.dtype == np.float32 and a.ndim == 2:
            encoding = "32FC1"
        elif a.dtype == np.uint16 and a.ndim == 2:
            encoding = "16UC1"
        else:
            raise BagError(f"image array of dtype {a.dtype} and shape {a.shape}: no ROS encoding for it")
    h, w = a.shape[:2]
    return msg_class(IMAGE)(header=header(stamp, frame_id), height=h, width=w, encoding=encoding,
                            is_bigendian=0, step=a.strides[0], data=a.reshape(-1).view(np.uint8))


def compressed_image_msg(rgb: np.ndarray, stamp: int, frame_id: str, fmt: str = "jpeg", quality: int = 90):
    """sensor_msgs/CompressedImage (jpeg or png) from an RGB uint8 image, encoded by OpenCV."""
    import cv2

    ext = ".jpg" if fmt in ("jpeg", "jpg") else ".png"
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if ext == ".jpg" else []
    ok, buf = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise BagError(f"OpenCV could not encode the image as {fmt}")
    return msg_class(COMPRESSED_IMAGE)(header=header(stamp, frame_id), format=f"rgb8; {fmt} compressed bgr8",
                                       data=buf.reshape(-1))


def camera_info_msg(camera, stamp: int, frame_id: str):
    """sensor_msgs/CameraInfo from a CameraModel (K, D, R, P, distortion model)."""
    K = np.asarray(camera.K, dtype=np.float64).reshape(3, 3)
    D = np.zeros(5) if getattr(camera, "D", None) is None else np.asarray(camera.D, dtype=np.float64).ravel()
    R = np.eye(3) if getattr(camera, "R", None) is None else np.asarray(camera.R, dtype=np.float64).reshape(3, 3)
    P = getattr(camera, "P", None)
    P = np.hstack([K, np.zeros((3, 1))]) if P is None else np.asarray(P, dtype=np.float64).reshape(3, 4)
    roi = msg_class("sensor_msgs/msg/RegionOfInterest")(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return msg_class(CAMERA_INFO)(
        header=header(stamp, frame_id), height=int(camera.height), width=int(camera.width),
        distortion_model=getattr(camera, "distortion_model", "plumb_bob") or "plumb_bob",
        d=D, k=K.ravel(), r=R.ravel(), p=P.ravel(), binning_x=0, binning_y=0, roi=roi)


def pointcloud_msg(xyz: np.ndarray, stamp: int, frame_id: str, intensity: np.ndarray | None = None):
    """Unorganised sensor_msgs/PointCloud2 with float32 x, y, z (and intensity if given)."""
    PointField = msg_class("sensor_msgs/msg/PointField")
    names = ["x", "y", "z"] + (["intensity"] if intensity is not None else [])
    rec = np.empty(len(xyz), dtype=[(n, "<f4") for n in names])
    rec["x"], rec["y"], rec["z"] = (np.asarray(xyz, np.float32)[:, i] for i in range(3))
    if intensity is not None:
        rec["intensity"] = intensity
    fields = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1) for i, n in enumerate(names)]
    step = 4 * len(names)
    return msg_class(POINTCLOUD2)(header=header(stamp, frame_id), height=1, width=len(rec), fields=fields,
                                  is_bigendian=False, point_step=step, row_step=step * len(rec),
                                  data=rec.view(np.uint8).reshape(-1), is_dense=True)


def matrix_to_quaternion(R: np.ndarray) -> tuple[float, float, float, float]:
    """(x, y, z, w) of a rotation matrix (Shepperd's method, numerically safe)."""
    R = np.asarray(R, dtype=np.float64)
    tr = np.trace(R)
    if tr > 0:
        s = 2.0 * np.sqrt(tr + 1.0)
        q = ((R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s, 0.25 * s)
    else:
        i = int(np.argmax(np.diag(R)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(1.0 + R[i, i] - R[j, j] - R[k, k])
        q = [0.0, 0.0, 0.0, 0.0]
        q[i] = 0.25 * s
        q[j] = (R[j, i] + R[i, j]) / s
        q[k] = (R[k, i] + R[i, k]) / s
        q[3] = (R[k, j] - R[j, k]) / s
    q = np.asarray(q) / np.linalg.norm(q)
    return tuple(float(v) for v in q)


def quaternion_to_matrix(x: float, y: float, z: float, w: float) -> np.ndarray:
    n = np.sqrt(x * x + y * y + z * z + w * w)
    if n == 0:
        raise BagError("transform with a zero quaternion: the rotation is undefined")
    x, y, z, w = x / n, y / n, z / n, w / n
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def transform_stamped(T_parent_child: np.ndarray, stamp: int, parent: str, child: str):
    """geometry_msgs/TransformStamped: the pose of ``child`` in ``parent`` (maps child coords to parent)."""
    T = np.asarray(T_parent_child, dtype=np.float64)
    qx, qy, qz, qw = matrix_to_quaternion(T[:3, :3])
    Vector3 = msg_class("geometry_msgs/msg/Vector3")
    Quaternion = msg_class("geometry_msgs/msg/Quaternion")
    tf = msg_class("geometry_msgs/msg/Transform")(
        translation=Vector3(x=float(T[0, 3]), y=float(T[1, 3]), z=float(T[2, 3])),
        rotation=Quaternion(x=qx, y=qy, z=qz, w=qw))
    return msg_class("geometry_msgs/msg/TransformStamped")(header=header(stamp, parent), child_frame_id=child,
                                                            transform=tf)


def tf_message(transforms: list):
    return msg_class(TF_MESSAGE)(transforms=list(transforms))


def clock_msg(stamp: int):
    t = msg_class("builtin_interfaces/msg/Time")(sec=int(stamp // 1_000_000_000), nanosec=int(stamp % 1_000_000_000))
    return msg_class(CLOCK)(clock=t)


# ---------------------------------------------------------------- decoders (numpy views)

def image_to_rgb(msg) -> np.ndarray:
    """RGB uint8 (H, W, 3) from sensor_msgs/Image or CompressedImage (ros/convert.py's readers)."""
    from ..ros import convert

    if not hasattr(msg, "encoding"):  # CompressedImage has format, not encoding
        return convert.compressed_to_rgb(msg)
    return convert.image_to_rgb(msg)


def depth_to_metres(msg) -> np.ndarray:
    """float32 metres (NaN = none) from a 32FC1 or 16UC1 depth image (REP 118)."""
    from ..ros import convert

    return convert.depth_image_to_numpy(msg)


def labels_array(msg) -> np.ndarray:
    from ..ros import convert

    return convert.label_image_to_numpy(msg)


_PF_DTYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 8: "f8"}


def pointcloud_xyz(msg) -> np.ndarray:
    """(N, 3) float32 finite x, y, z of a sensor_msgs/PointCloud2 (any point layout, one view).

    A layout numpy cannot view (unknown datatype, a field outside point_step, short rows) is a
    BagError naming the field; callers add the topic."""
    fields = {f.name: f for f in msg.fields}
    missing = [n for n in "xyz" if n not in fields]
    if missing:
        raise BagError(f"PointCloud2 has no field(s) {missing}; fields are {list(fields)}")
    step, width, height = int(msg.point_step), int(msg.width), int(msg.height)
    for name in "xyz":
        f = fields[name]
        if f.datatype not in _PF_DTYPES:
            raise BagError(f"PointCloud2 field {name!r} has datatype {f.datatype}, not a PointField type "
                           "(1 INT8 ... 7 FLOAT32, 8 FLOAT64): the cloud's publisher wrote it wrong")
        size = np.dtype(_PF_DTYPES[f.datatype]).itemsize
        if int(f.count) < 1 or f.offset + size > step:
            raise BagError(f"PointCloud2 field {name!r} (offset {f.offset}, {size} bytes, count {f.count}) does "
                           f"not fit in point_step {step}: the cloud's layout is inconsistent")
    order = ">" if msg.is_bigendian else "<"
    dtype = np.dtype({"names": list("xyz"),
                      "formats": [order + _PF_DTYPES[fields[n].datatype] for n in "xyz"],
                      "offsets": [fields[n].offset for n in "xyz"], "itemsize": step})
    n, row = width * height, width * step
    buf = np.ascontiguousarray(np.asarray(msg.data, dtype=np.uint8))
    padded = height > 1 and int(msg.row_step) != row
    if padded and int(msg.row_step) < row:
        raise BagError(f"PointCloud2 row_step {msg.row_step} is shorter than width {width} x point_step {step}")
    need = (height - 1) * int(msg.row_step) + row if padded else n * step
    if buf.size < need:
        raise BagError(f"PointCloud2 data has {buf.size} bytes for {n} points of {step}: truncated")
    if padded:  # rows padded to row_step: keep the points of each row
        buf = np.lib.stride_tricks.as_strided(buf, shape=(height, row), strides=(int(msg.row_step), 1)).reshape(-1)
    rec = np.frombuffer(np.ascontiguousarray(buf[: n * step]), dtype=dtype)
    xyz = np.stack([rec["x"], rec["y"], rec["z"]], axis=1).astype(np.float32)
    return xyz[np.isfinite(xyz).all(axis=1)]


def transform_to_matrix(transform) -> np.ndarray:
    """4x4 from geometry_msgs/Transform (the child's pose in the parent)."""
    T = np.eye(4)
    r, t = transform.rotation, transform.translation
    T[:3, :3] = quaternion_to_matrix(r.x, r.y, r.z, r.w)
    T[:3, 3] = (t.x, t.y, t.z)
    return T


def camera_from_info(msg):
    """CameraModel from a CameraInfo message (rosbags or rclpy), through ros/convert.py."""
    from ..ros import convert

    return convert.camera_model_from_info(msg)


# ---------------------------------------------------------------- stamps and camera_info

STAMP_CHECK_MESSAGES = 200  # header stamps are judged on each topic's first messages (drivers do not change)


def cdr_header_ns(raw) -> int | None:
    """Header stamp (ns) of a serialized message whose first field is a std_msgs/Header (Image,
    CompressedImage, PointCloud2, CameraInfo), read from the CDR bytes without deserializing the
    message (images are large); None for fewer than 12 bytes."""
    head = bytes(raw[:12])
    if len(head) < 12:
        return None
    sec, nsec = struct.unpack("<iI" if head[1] == 1 else ">iI", head[4:12])  # byte 1: CDR_LE 1, CDR_BE 0
    return sec * 1_000_000_000 + nsec


def header_stamps_problem(stamps: dict[str, list]) -> str | None:
    """Why these topics' header stamps cannot pair their messages (None when they can), judged on
    each topic's first STAMP_CHECK_MESSAGES stamps (in log order): all 0 (a driver that never sets
    them), or mostly not increasing (a constant or copied stamp). The caller pairs by log time then."""
    problems = []
    for topic, values in stamps.items():
        v = [s or 0 for s in values[:STAMP_CHECK_MESSAGES]]
        if not v:
            continue
        if not any(v):
            problems.append(f"{topic}: all {len(v)} header stamps are 0")
            continue
        back = sum(b <= a for a, b in zip(v, v[1:]))
        if len(v) > 1 and 2 * back > len(v) - 1:
            problems.append(f"{topic}: {back} of {len(v) - 1} consecutive header stamps do not increase")
    return "; ".join(problems) or None


def no_ground_truth_reason(topic: str, gt: np.ndarray, msg, min_depth: float, max_depth: float,
                           where: str = "") -> str:
    """Why a frame's ground truth ``gt`` (metres, NaN/0 = none) from ``topic`` has no pixel in
    ``min_depth``-``max_depth`` m (``where``: e.g. " inside the kb crop"), naming the likely cause: a
    depth image in millimetres, or a cloud with no point in view. The bag evaluation and training's
    BagDataset both skip such a frame with this message."""
    reason = f"'{topic}': no ground-truth pixel in {min_depth:g}-{max_depth:g} m{where}"
    values = gt[np.isfinite(gt) & (gt > 0)]
    encoding = getattr(msg, "encoding", None)  # an Image has one, a PointCloud2 not
    if encoding is not None and values.size and (values >= max_depth).all():
        reason += (f"; every value is beyond {max_depth:g} m: is this {encoding} depth in millimetres? "
                   "32FC1 is metres (REP 118), 16UC1 millimetres: convert it to metres")
    elif not values.size:
        reason += ("; the depth image has no positive value" if encoding is not None
                   else "; no point of the cloud lands in the image")
    return reason


class CameraInfos:
    """Every CameraInfo of a topic (small), looked up by stamp: the one in force at an image (the
    latest at or before it, else the first). CameraModels are cached by content; one that cannot be
    built is cached as its CameraModelError, raised at each lookup."""

    def __init__(self, reader: "BagReader", topic: str, log_time: bool = False):
        """log_time: index by bag log time (where header stamps are unusable), else by header stamp
        (log time where a stamp is 0)."""
        items = [(t, reader.deserialize(raw, mt)) for _, mt, t, raw in reader.messages([topic])]
        self._index(items, log_time)

    @classmethod
    def of(cls, items, log_time: bool = False) -> "CameraInfos":
        """From (log time, CameraInfo message) pairs already read."""
        self = cls.__new__(cls)
        self._index(list(items), log_time)
        return self

    def _index(self, items: list, log_time: bool) -> None:
        stamps = [t if log_time else (header_ns(m.header) or t) for t, m in items]
        order = np.argsort(stamps, kind="stable")
        self.stamps = [stamps[i] for i in order]
        self.msgs = [items[i][1] for i in order]
        self._models: dict = {}

    def info_at(self, stamp: int):
        """(CameraInfo message, CameraModel) in force at ``stamp``, or None with no message at all."""
        if not self.msgs:
            return None
        msg = self.msgs[max(0, bisect.bisect_right(self.stamps, stamp) - 1)]
        key = (msg.width, msg.height, bytes(np.asarray(msg.k, np.float64)), bytes(np.asarray(msg.p, np.float64)),
               bytes(np.asarray(msg.d, np.float64)), msg.header.frame_id)
        if key not in self._models:
            try:
                self._models[key] = camera_from_info(msg)
            except ValueError as exc:  # CameraModelError: uncalibrated or impossible intrinsics
                self._models[key] = exc
        model = self._models[key]
        if isinstance(model, Exception):
            raise model.with_traceback(None)  # the same error each frame, without a growing traceback
        return msg, model


# ---------------------------------------------------------------- transforms

class TfStaleError(BagError):
    """A /tf edge on the chain has no transform within the max age of the asked time (a publisher that
    stopped or had not started): the live node uses its static pose then (tf_max_age)."""

    def __init__(self, parent: str, child: str, t: int, dt_ns: int, max_age_ns: int):
        self.parent, self.child, self.dt_ns = parent, child, dt_ns
        side = "older" if dt_ns < 0 else "newer"
        super().__init__(f"transform {parent} -> {child} nearest to t = {t * 1e-9:.3f} s is {abs(dt_ns) * 1e-9:.2f} s "
                         f"{side} than it (tf_max_age {max_age_ns * 1e-9:g} s)")


class TfTree:
    """Transforms from /tf_static and /tf, looked up as T_target_source (maps source coords to target).

    Static transforms are kept forever; dynamic ones as time series (the latest at or before the
    asked time, else the earliest), on the clock the frames are paired by: header stamps, or the
    bag's log time with ``log_time`` (set it once the pairing is known: where header stamps are
    unusable, lookups are at log times). A dynamic transform stamped 0 (a publisher that leaves it
    unset) is placed at its log time in either case, so the latest at or before a frame is the one
    the live node would have had then, and it is never stale. Chains through the tree in either
    direction. With ``max_age_ns`` a dynamic edge must have a transform that close to the asked time
    (the latest at or before it, else the next after it), as the node's tf_max_age, else TfStaleError.
    """

    def __init__(self, log_time: bool = False):
        self.log_time = log_time
        self.static: dict[tuple[str, str], np.ndarray] = {}
        # (header stamp, log time or None, T) in arrival order; sorted per clock on first lookup
        self.dynamic: dict[tuple[str, str], list[tuple[int, int | None, np.ndarray]]] = {}
        self._sorted: dict[tuple[str, str], tuple] = {}

    def add_message(self, tf_msg, static: bool, log_t: int | None = None) -> None:
        """``log_t``: the message's bag log time (ns), used where its stamp is 0 or with ``log_time``."""
        for ts in tf_msg.transforms:
            key = (ts.header.frame_id.lstrip("/"), ts.child_frame_id.lstrip("/"))
            T = transform_to_matrix(ts.transform)
            if static:
                self.static[key] = T  # stamped 0 or not: valid at all times
            else:
                self.dynamic.setdefault(key, []).append((header_ns(ts.header), log_t, T))
                self._sorted.pop(key, None)

    def _series(self, edge: tuple[str, str]) -> tuple[list, list]:
        """(times, [(time, never stale, T)]) of a dynamic edge on the current clock, sorted (stable)."""
        cached = self._sorted.get(edge)
        if cached is None or cached[0] != self.log_time:
            items = []
            for stamp, log_t, T in self.dynamic[edge]:
                t = log_t if log_t is not None and (self.log_time or stamp == 0) else stamp
                items.append((t, stamp == 0, T))
            items.sort(key=lambda item: item[0])
            cached = (self.log_time, [item[0] for item in items], items)
            self._sorted[edge] = cached
        return cached[1], cached[2]

    def _edge(self, parent: str, child: str, t: int | None, max_age_ns: int | None = None) -> np.ndarray | None:
        if (parent, child) in self.static:
            return self.static[(parent, child)]
        if not self.dynamic.get((parent, child)):
            return None
        times, series = self._series((parent, child))
        if t is None:
            return series[-1][2]
        i = bisect.bisect_right(times, t) - 1
        if max_age_ns is None:
            return series[max(i, 0)][2]  # the latest at or before t, else the earliest
        before = series[i] if i >= 0 else None
        after = series[i + 1] if i + 1 < len(series) else None
        # stamp 0 on /tf: a static transform published there, never stale (as the node treats it)
        if before is not None and (before[1] or t - before[0] <= max_age_ns):
            return before[2]
        if after is not None and (after[1] or after[0] - t <= max_age_ns):
            return after[2]
        near = min((s for s in (before, after) if s is not None), key=lambda s: abs(s[0] - t))
        raise TfStaleError(parent, child, t, near[0] - t, max_age_ns)

    def frames(self) -> set[str]:
        out = set()
        for p, c in list(self.static) + list(self.dynamic):
            out.update((p, c))
        return out

    def lookup(self, target: str, source: str, t: int | None = None,
               max_age_ns: int | None = None) -> np.ndarray | None:
        """T_target_source, or None where the two frames are not connected; TfStaleError (with
        ``max_age_ns``) where an edge of the chain has no transform that close to ``t``."""
        target, source = target.lstrip("/"), source.lstrip("/")
        if target == source:
            return np.eye(4)
        edges = list(self.static) + list(self.dynamic)
        # breadth-first search over undirected edges from source for the chain first, then the
        # transforms of that chain only: an edge elsewhere in the tree may be stale without mattering
        came_from: dict[str, tuple | None] = {source: None}
        frontier = [source]
        while frontier and target not in came_from:
            nxt = []
            for frame in frontier:
                for p, c in edges:
                    if c == frame and p not in came_from:  # going up: T_p_source = T_p_c @ T_c_source
                        came_from[p] = (frame, p, c, True)
                        nxt.append(p)
                    elif p == frame and c not in came_from:  # going down: inverse of the edge
                        came_from[c] = (frame, p, c, False)
                        nxt.append(c)
            frontier = nxt
        if target not in came_from:
            return None
        T = np.eye(4)
        frame = target
        while came_from[frame] is not None:  # T_target_source = step_k @ ... @ step_1, walked back
            prev, p, c, up = came_from[frame]
            edge = self._edge(p, c, t, max_age_ns)
            T = T @ (edge if up else np.linalg.inv(edge))
            frame = prev
        return T


# ---------------------------------------------------------------- writer / reader

SENSOR_QOS = ("- history: 3\n  depth: 5\n  reliability: 2\n  durability: 2\n  deadline:\n    sec: 0\n"
              "    nsec: 0\n  lifespan:\n    sec: 0\n    nsec: 0\n  liveliness: 1\n  liveliness_lease_duration:\n"
              "    sec: 0\n    nsec: 0\n  avoid_ros_namespace_conventions: false")


class BagWriter:
    """Write a ROS 2 bag: ``with BagWriter(path) as w: w.add_topic(...); w.write(topic, t_ns, msg)``."""

    def __init__(self, path: str | Path, storage: str = "mcap"):
        from rosbags.rosbag2 import StoragePlugin, Writer

        self.path = Path(path)
        plugins = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
        if storage not in plugins:
            raise BagError(f"storage {storage!r}: use 'mcap' or 'sqlite3'")
        if self.path.exists():
            raise BagError(f"{self.path} exists already; remove it or choose another output path")
        self._writer = Writer(self.path, version=9, storage_plugin=plugins[storage])
        self._conns: dict[str, tuple] = {}

    def __enter__(self) -> "BagWriter":
        self._writer.open()
        return self

    def __exit__(self, *exc) -> None:
        self._writer.close()

    def add_topic(self, topic: str, msgtype: str, msgdef: str | None = None, rihs01: str | None = None,
                  offered_qos_profiles: Iterable = ()) -> None:
        """offered_qos_profiles: rosbags ``Qos`` of the topic's publishers (metadata.yaml's
        offered_qos_profiles, which players use to offer the same QoS)."""
        if topic in self._conns:
            return
        qos = list(offered_qos_profiles)
        if msgdef is not None and rihs01 is not None:
            conn = self._writer.add_connection(topic, msgtype, msgdef=msgdef, rihs01=rihs01, offered_qos_profiles=qos)
        else:
            conn = self._writer.add_connection(topic, msgtype, typestore=typestore(), offered_qos_profiles=qos)
        self._conns[topic] = (conn, msgtype)

    def write(self, topic: str, t_ns: int, msg) -> None:
        """Serialize a rosbags message with the typestore and write it (topic added on first use)."""
        if topic not in self._conns:
            self.add_topic(topic, msg.__msgtype__)
        conn, msgtype = self._conns[topic]
        self._writer.write(conn, int(t_ns), typestore().serialize_cdr(msg, msgtype))

    def write_raw(self, topic: str, t_ns: int, data: bytes) -> None:
        if topic not in self._conns:
            raise BagError(f"topic {topic!r} was not added to {self.path}; call add_topic first")
        self._writer.write(self._conns[topic][0], int(t_ns), data)


@dataclass
class TopicInfo:
    msgtype: str
    count: int


class BagReader:
    """Read a ROS 2 bag (sqlite3 or MCAP folder, or a bare .mcap / .db3 file) with rosbags.

    ``messages(topics)`` yields ``(topic, msgtype, t_ns, raw)`` in log-time order; a bag cut short
    ends the iteration early and sets ``truncated`` to the reason instead of raising.
    """

    def __init__(self, path: str | Path):
        from rosbags.highlevel import AnyReader

        self.path = Path(path)
        if not self.path.exists():
            raise BagError(f"bag {self.path} does not exist")
        self.truncated: str | None = None
        try:
            self._reader = AnyReader([self.path], default_typestore=typestore())
            self._reader.open()
        except Exception as exc:  # rosbags raises several types for unreadable files
            mcap = _mcap_file(self.path)
            salvaged = _SalvagedMcap(mcap) if mcap is not None else None
            if salvaged is None or not salvaged.connections:
                raise BagError(
                    f"bag {self.path} cannot be opened ({type(exc).__name__}: {exc}); is it a ROS 2 bag folder "
                    "with metadata.yaml, or a .mcap/.db3 file? A bag cut short while recording may need "
                    "`ros2 bag reindex`") from exc
            self._reader = salvaged
            self.truncated = f"{mcap.name} is cut short ({exc}); read its complete records in order"
            log.warning("bag %s: %s", self.path, self.truncated)

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> "BagReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def topics(self) -> dict[str, TopicInfo]:
        out: dict[str, TopicInfo] = {}
        for c in self._reader.connections:
            info = out.setdefault(c.topic, TopicInfo(c.msgtype, 0))
            info.count += int(c.msgcount or 0)
        return out

    @property
    def start_ns(self) -> int:
        return int(self._reader.start_time)

    @property
    def end_ns(self) -> int:
        return int(self._reader.end_time)

    def connections(self, topics: Iterable[str] | None = None) -> list:
        if topics is None:
            return list(self._reader.connections)
        wanted = set(topics)
        return [c for c in self._reader.connections if c.topic in wanted]

    def require_topics(self, topics: Iterable[str]) -> None:
        have = self.topics
        missing = [t for t in topics if t and t not in have]
        if missing:
            listing = ", ".join(f"{t} ({i.msgtype}, {i.count})" for t, i in sorted(have.items()))
            raise BagError(f"bag {self.path} has no topic {', '.join(missing)}; its topics are: {listing}")

    def require_types(self, expected) -> None:
        """Each topic holds one of its allowed message types, or BagError naming it. ``expected``: (topic,
        allowed types) pairs (or a dict of them): pairs, so a topic given for two roles is checked for both."""
        have = self.topics
        for topic, types in (expected.items() if isinstance(expected, dict) else expected):
            if topic and topic in have and have[topic].msgtype not in types:
                raise BagError(f"topic {topic} in {self.path} holds {have[topic].msgtype}, not "
                               f"{' or '.join(types)}; give the topic that does")

    def require_depth_sources(self, image_topic: str, camera_info_topic: str, lidar_topic: str | None = None,
                              depth_topic: str | None = None, labels_topic: str | None = None,
                              flags: dict[str, str] | None = None) -> None:
        """The topics a depth evaluation or training set reads exist, are distinct where they must be, and
        hold the message types it reads (else BagError naming the topic), before any message is decoded.
        ``flags``: what the caller calls each role ('image', 'lidar', 'depth', 'labels'), for the messages."""
        names = {"image": "the image topic", "lidar": "the LiDAR topic", "depth": "the depth topic",
                 "labels": "the labels topic", **(flags or {})}
        roles = [(r, t) for r, t in (("image", image_topic), ("lidar", lidar_topic), ("depth", depth_topic),
                                     ("labels", labels_topic)) if t]
        # one topic in two roles: its messages would all go to one of them, and every frame be skipped
        same = next((f"{names[ra]} and {names[rb]} are both {a}: give each its own topic of {self.path} (images, "
                     "ground truth and labels are different streams)"
                     for i, (ra, a) in enumerate(roles) for rb, b in roles[i + 1:] if a == b), None)
        self.require_topics([image_topic, camera_info_topic, lidar_topic, depth_topic, labels_topic])
        try:
            self.require_types([(image_topic, (IMAGE, COMPRESSED_IMAGE)), (camera_info_topic, (CAMERA_INFO,)),
                                (lidar_topic, (POINTCLOUD2,)), (depth_topic, (IMAGE,)), (labels_topic, (IMAGE,))])
        except BagError as exc:
            raise BagError(f"{exc}; {same}" if same else str(exc)) from None
        if same:  # the same message type in both roles (an image topic given as the depth or labels topic)
            raise BagError(same)
        self.require_tf_types()

    def require_tf_types(self) -> None:
        """/tf and /tf_static, where the bag has them, hold tf2_msgs/TFMessage (else BagError naming the
        topic: its messages have no ``transforms`` to read)."""
        have = self.topics
        for topic in ("/tf", "/tf_static"):
            if topic in have and have[topic].msgtype != TF_MESSAGE:
                raise BagError(f"topic {topic} in {self.path} holds {have[topic].msgtype}, not {TF_MESSAGE}: its "
                               "transforms cannot be read; rewrite the bag with TFMessage there, or drop the topic "
                               "and give the extrinsics and the camera mounting instead")

    def messages(self, topics: Iterable[str] | None = None) -> Iterator[tuple[str, str, int, bytes]]:
        conns = self.connections(topics)
        if not conns:
            return
        it = self._reader.messages(connections=conns)
        while True:
            try:
                conn, t, raw = next(it)
            except StopIteration:
                return
            except Exception as exc:  # a truncated chunk or database page: keep what was read
                self.truncated = self.truncated or f"{type(exc).__name__}: {exc}"
                return
            yield conn.topic, conn.msgtype, int(t), raw

    def deserialize(self, raw: bytes, msgtype: str):
        try:
            return self._reader.deserialize(raw, msgtype)
        except Exception as exc:  # rosbags raises its own types (SerdeError, ...) on corrupt bytes
            raise BagError(f"bag {self.path}: a {msgtype} message does not deserialize "
                           f"({type(exc).__name__}: {exc}); the bag is corrupt there") from exc


def _mcap_file(path: Path) -> Path | None:
    if path.is_file() and path.suffix == ".mcap":
        return path
    if path.is_dir():
        found = sorted(path.glob("*.mcap"))
        return found[0] if len(found) == 1 else None
    return None


class _SalvagedMcap:
    """The readable front of an MCAP file with no footer (recording killed, file cut short).

    Uses rosbags' own MCAP record parser (McapReader.meta_scan / messages_scan, rosbags 0.11) over
    the file as far as its records are complete; a partial last chunk is dropped.
    """

    def __init__(self, path: Path):
        from rosbags.rosbag2.storage_mcap import McapReader

        self.path = path
        self._mcap = McapReader(path)
        self._mcap.bio = path.open("rb")
        try:
            self._mcap.bio.read(8)  # magic
            op = self._mcap.bio.read(1)
            if op != b"\x01":
                raise BagError(f"{path}: no MCAP header record")
            size = int.from_bytes(self._mcap.bio.read(8), "little")
            self._mcap.bio.seek(size, 1)
            self._mcap.data_start = self._mcap.bio.tell()
            self._mcap.data_end = path.stat().st_size
            try:
                self._mcap.meta_scan()
            except Exception:  # stops at the cut; schemas and channels before it are kept
                pass
        except Exception:
            self._mcap.bio.close()
            self.connections = []
            return
        self.connections = list(self._mcap.connections)
        self.start_time, self.end_time = 0, 0

    def messages(self, connections):
        return self._mcap.messages_scan(connections)

    def deserialize(self, raw, msgtype: str):
        return typestore().deserialize_cdr(raw, msgtype)

    def close(self) -> None:
        if self._mcap.bio is not None:
            self._mcap.bio.close()
