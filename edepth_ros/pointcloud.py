"""Depth image -> 3-D points in the camera's optical frame (numpy only, no ROS types).

Points are X = z * r(u, v), with r = K^-1 [u, v, 1] the camera's cached rays (z-component 1), so a
point's z equals the depth image's value. A stereo-rectified camera (CameraInfo R not the identity)
has its rays and depth in the rectified frame: its points are rotated back, X = z * R^T r, into
the optical frame the image's frame_id and tf name (there z is not the depth value). Colour travels as the packed float32 that PointCloud2
"rgb" fields and PCL use (0x00RRGGBB reinterpreted as float32 bits).

``cloud_array`` builds the interleaved [x, y, z, rgb] float32 array in one buffer: that is exactly
PointCloud2's memory layout, so the ROS converter sends it with a single copy.
"""

from __future__ import annotations

import math
from pathlib import Path
from collections import OrderedDict
from typing import Optional

import cv2
import numpy as np

from .camera import CameraModel, require_camera_model


class PointCloudError(ValueError):
    """Bad input to the point-cloud functions; the message names the argument."""


def check_decimation(decimation) -> int:
    """decimation as an int >= 1 (keep every N-th pixel in x and y); PointCloudError naming it for
    0, negatives, a fraction such as 2.5 (never truncated), NaN, a bool or a string."""
    ok = isinstance(decimation, (int, np.integer)) and not isinstance(decimation, (bool, np.bool_))
    if not ok and isinstance(decimation, (float, np.floating)) and float(decimation).is_integer():
        ok = True  # 2.0: exactly an integer
    if not ok or int(decimation) < 1:
        raise PointCloudError(f"decimation: must be an integer >= 1 (keep every N-th pixel), got {decimation!r}")
    return int(decimation)


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """uint8 (..., 3) RGB -> float32 (...) holding the bits 0x00RRGGBB (PointCloud2 ``rgb``)."""
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.shape[-1] != 3:
        raise PointCloudError(f"rgb: expected uint8 (..., 3), got {rgb.dtype} {rgb.shape}")
    packed = np.zeros(rgb.shape[:-1] + (4,), np.uint8)
    # little-endian uint32 0x00RRGGBB is the byte sequence B, G, R, 0
    packed[..., 0] = rgb[..., 2]
    packed[..., 1] = rgb[..., 1]
    packed[..., 2] = rgb[..., 0]
    return packed.view("<f4")[..., 0]


def unpack_rgb(packed: np.ndarray) -> np.ndarray:
    """The inverse of :func:`pack_rgb`: float32 (...) -> uint8 (..., 3) RGB."""
    b = np.ascontiguousarray(packed, dtype="<f4")[..., None].view(np.uint8)
    return np.stack([b[..., 2], b[..., 1], b[..., 0]], axis=-1)


def _rays_for(camera, shape, decimation: int) -> np.ndarray:
    rays = camera.rays()
    if rays.shape[:2] != tuple(shape):
        raise PointCloudError(
            f"depth: shape {tuple(shape)} does not match the camera's {rays.shape[:2]} "
            "(give the camera model of the depth image's resolution, e.g. camera.resized(w, h))"
        )
    return rays[::decimation, ::decimation]


# (camera key, decimation, shape) -> contiguous x and y ray planes (z = 1): multiplying planes by
# the depth and interleaving them with cv2.merge is several times faster than numpy broadcasting
# over a trailing axis of 3 or 4 (466k points in about 1.5 ms on one core)
_PLANES: "OrderedDict[tuple, tuple]" = OrderedDict()
_PLANES_SIZE = 4


def _ray_planes(camera: CameraModel, shape, decimation: int) -> tuple:
    """(x, y, z) planes of the optical-frame ray per unit depth; z is None where it is 1 (no R)."""
    # keyed on the intrinsics (a model's arrays are frozen): a key by id() handed a new camera,
    # allocated at a freed one's address, the old camera's rays
    key = (camera.key(), decimation, tuple(shape))
    planes = _PLANES.get(key)
    if planes is None:
        rays = _rays_for(camera, shape, decimation)
        R = camera.rect_from_optical
        if np.array_equal(R, np.eye(3)):
            planes = (np.ascontiguousarray(rays[..., 0]), np.ascontiguousarray(rays[..., 1]), None)
        else:  # rectified-frame rays -> optical frame (R^T r): the cloud must be where tf says the camera is
            optical = (rays.astype(np.float64) @ R).astype(np.float32)
            planes = tuple(np.ascontiguousarray(optical[..., i]) for i in range(3))
        for p in planes:
            if p is not None:
                p.setflags(write=False)
        _PLANES[key] = planes
        while len(_PLANES) > _PLANES_SIZE:
            _PLANES.popitem(last=False)
    else:
        _PLANES.move_to_end(key)
    return planes


def _packed_plane(rgb: np.ndarray) -> np.ndarray:
    """uint8 (..., 3) RGB -> float32 (...) with the bits 0x00RRGGBB (bytes B, G, R, 0)."""
    shape = rgb.shape[:-1]
    src = np.ascontiguousarray(rgb).reshape(-1, 1, 3)
    dst = np.empty((src.shape[0], 1, 4), np.uint8)
    cv2.mixChannels([src], [dst], [0, 2, 1, 1, 2, 0, -1, 3])  # -1: a zero byte
    return dst.view(np.float32).reshape(shape)


def cloud_array(
    depth: np.ndarray,
    camera: CameraModel,
    rgb: Optional[np.ndarray] = None,
    decimation: int = 1,
    max_range: float = math.inf,
    organised: bool = False,
    min_depth: float = 0.0,
    out: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Interleaved float32 points: (N, C) or, organised, (H', W', C); C = 4 with rgb else 3.

    Valid points have min_depth < z <= max_range (z is the depth image's value, metres; with a
    rectification R the points are rotated into the optical frame, see the module). Organised
    clouds keep every (decimated) pixel with NaN x, y, z where invalid; unorganised ones keep only
    the valid points, in row-major pixel order. ``out``: a float32 C-contiguous buffer of the
    result's size to write into (e.g. a view of a message's buffer; see ``count_valid``).
    """
    depth = _check_depth(depth)
    decimation = check_decimation(decimation)
    if rgb is not None:
        rgb = np.asarray(rgb)
        if rgb.shape != depth.shape + (3,) or rgb.dtype != np.uint8:
            raise PointCloudError(
                f"rgb: expected uint8 {depth.shape + (3,)} to match depth, got {rgb.dtype} {rgb.shape}"
            )
    camera = require_camera_model(camera, TypeError, expected="an edepth_ros.camera.CameraModel")
    rx, ry, rz = _ray_planes(camera, depth.shape, decimation)
    z = np.ascontiguousarray(depth[::decimation, ::decimation])
    mask = _valid_mask(z, min_depth, max_range)
    colours = None if rgb is None else rgb[::decimation, ::decimation]
    if organised:
        zz = np.full(z.shape, np.nan, np.float32)
        cv2.copyTo(z, mask, zz)  # invalid -> NaN, so x and y are NaN too
        planes = [cv2.multiply(rx, zz), cv2.multiply(ry, zz), zz if rz is None else cv2.multiply(rz, zz)]
        if colours is not None:
            planes.append(_packed_plane(colours))
        shape = z.shape + (len(planes),)
    else:
        valid = mask > 0
        zv = z[valid].reshape(-1, 1)
        if zv.shape[0] == 0:
            return np.empty((0, 3 if colours is None else 4), np.float32)
        planes = [rx[valid].reshape(-1, 1) * zv, ry[valid].reshape(-1, 1) * zv,
                  zv if rz is None else rz[valid].reshape(-1, 1) * zv]
        if colours is not None:
            planes.append(_packed_plane(colours[valid]).reshape(-1, 1))
        shape = (zv.shape[0], len(planes))
    if out is not None:
        if out.dtype != np.float32 or out.size != int(np.prod(shape)) or not out.flags.c_contiguous:
            raise PointCloudError(f"out: expected a C-contiguous float32 buffer of {shape}, got {out.dtype} {out.shape}")
        dst = out.reshape(planes[0].shape[:2] + (len(planes),))
        cv2.merge(planes, dst)
        return out.reshape(shape)
    return cv2.merge(planes).reshape(shape)


_F32_MAX = float(np.finfo(np.float32).max)


def _check_depth(depth) -> np.ndarray:
    depth = np.asarray(depth)
    if depth.ndim != 2 or depth.dtype != np.float32:
        raise PointCloudError(f"depth: expected float32 (H, W), got {depth.dtype} {depth.shape}")
    return depth


def _valid_mask(z: np.ndarray, min_depth: float, max_range: float) -> np.ndarray:
    """uint8 255 where min_depth < z <= max_range and z is finite (cv2.inRange is inclusive and
    false for NaN; the upper bound is capped at float32's largest value, so +inf depth, REP 118's
    "too far", is never a point, even with max_range = inf)."""
    for name, value in (("min_depth", min_depth), ("max_range", max_range)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise PointCloudError(f"{name}: expected a number of metres, got {value!r}")
    if not (math.isfinite(min_depth) and min_depth >= 0):  # NaN would make every point invalid, or valid
        raise PointCloudError(f"min_depth: must be a finite number >= 0 metres, got {min_depth}")
    if not max_range > min_depth:
        raise PointCloudError(f"max_range: must be > min_depth ({min_depth} m), got {max_range}")
    lo = float(np.nextafter(np.float32(min_depth), np.float32(np.inf)))
    return cv2.inRange(z, lo, min(float(max_range), _F32_MAX))


def count_valid(depth: np.ndarray, decimation: int = 1, max_range: float = math.inf, min_depth: float = 0.0) -> int:
    """How many points an unorganised ``cloud_array`` with these settings returns."""
    depth = _check_depth(depth)
    decimation = check_decimation(decimation)
    z = np.ascontiguousarray(depth[::decimation, ::decimation])
    return int(cv2.countNonZero(_valid_mask(z, min_depth, max_range)))


def depth_to_points(
    depth: np.ndarray,
    camera: CameraModel,
    rgb: Optional[np.ndarray] = None,
    decimation: int = 1,
    max_range: float = math.inf,
    organised: bool = False,
):
    """Depth -> (xyz float32 (N, 3) or (H', W', 3), packed rgb float32 (N,)/(H', W') or None)."""
    arr = cloud_array(depth, camera, rgb, decimation, max_range, organised)
    xyz = np.ascontiguousarray(arr[..., :3])
    colours = np.ascontiguousarray(arr[..., 3]) if rgb is not None else None
    return xyz, colours


def write_ply(path, xyz: np.ndarray, rgb: Optional[np.ndarray] = None) -> int:
    """Write a binary little-endian PLY (x, y, z float; red, green, blue uchar). NaN points are
    left out. ``rgb`` is packed float32 (N,) or uint8 (N, 3). Returns the number of points written.
    """
    xyz = np.asarray(xyz, np.float32).reshape(-1, 3)
    keep = np.isfinite(xyz).all(axis=1)
    colours = None
    if rgb is not None:
        rgb = np.asarray(rgb)
        if rgb.dtype == np.uint8:
            colours = rgb.reshape(-1, 3)
        else:
            colours = unpack_rgb(rgb.reshape(-1))
        if len(colours) != len(xyz):
            raise PointCloudError(f"rgb: {len(colours)} colours for {len(xyz)} points")
        colours = colours[keep]
    xyz = xyz[keep]
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if colours is not None:
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    rec = np.empty(len(xyz), dtype=fields)
    rec["x"], rec["y"], rec["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {len(xyz)}",
              "property float x", "property float y", "property float z"]
    if colours is not None:
        rec["red"], rec["green"], rec["blue"] = colours[:, 0], colours[:, 1], colours[:, 2]
        header += ["property uchar red", "property uchar green", "property uchar blue"]
    header.append("end_header")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(("\n".join(header) + "\n").encode("ascii"))
        f.write(rec.tobytes())
    return len(xyz)
