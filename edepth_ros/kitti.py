"""KITTI calibration, Velodyne scans and LiDAR projection (object and raw layouts).

Object benchmark `calib/*.txt`: P2 (3x4 rectified camera-2 projection), R0_rect (3x3),
Tr_velo_to_cam (3x4); a LiDAR point X maps to pixels by P2 @ R0_rect @ Tr_velo_to_cam @ X.
P2 = K [I | t] with t the offset of camera 2's centre from the rectified camera-0 frame
(about 6 cm), so the LiDAR -> camera-2 transform is [I | t] @ R0_rect @ Tr_velo_to_cam, and
`T_cam_velo` here includes it: points land in camera 2's own optical frame, where depths are
measured from camera 2's centre.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .camera import CameraModel, CameraModelError, check_rotation

KITTI_WIDTH, KITTI_HEIGHT = 1242, 375
KITTI_LIDAR_HEIGHT = 1.73  # metres above the road (KITTI setup page)


class KittiFormatError(ValueError):
    """A KITTI file is missing, truncated or lacks a key; the message names the file and key."""


@dataclass(frozen=True)
class KittiCalib:
    """Camera model of the chosen rectified camera and the LiDAR -> camera transform (4x4)."""

    camera: CameraModel
    T_cam_velo: np.ndarray

    def with_size(self, width: int, height: int) -> "KittiCalib":
        """The same calibration for an image of another size (KITTI images vary by a few pixels)."""
        if (width, height) == (self.camera.width, self.camera.height):
            return self
        cam = CameraModel(width, height, self.camera.K, P=self.camera.P, frame_id=self.camera.frame_id)
        return KittiCalib(cam, self.T_cam_velo)


def _read_keyed(path) -> dict[str, np.ndarray | str]:
    """'KEY: v v v' lines -> {KEY: float64 array}, or the text where the values are not numbers."""
    path = Path(path)
    if path.is_dir():
        raise KittiFormatError(f"{path}: a folder, not a calibration file (give the .txt file)")
    if not path.is_file():
        raise KittiFormatError(f"{path}: no such calibration file")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise KittiFormatError(f"{path}: not a readable text calibration file ({exc})") from None
    out: dict[str, np.ndarray | str] = {}
    for line in text.splitlines():
        if ":" not in line:
            continue
        key, _, values = line.partition(":")
        key = key.strip()
        if key in out:  # which of the two is meant cannot be guessed
            raise KittiFormatError(f"{path}: key '{key}' appears twice; keep the right line")
        try:
            out[key] = np.array([float(v) for v in values.split()], dtype=np.float64)
        except ValueError:
            out[key] = values.strip()  # calib_time and similar; an error only if a matrix is read
    return out


def _get(values: dict, key: str, shape, path) -> np.ndarray:
    if key not in values:
        raise KittiFormatError(f"{path}: key '{key}' is missing (keys present: {sorted(values)})")
    arr = values[key]
    if isinstance(arr, str):
        raise KittiFormatError(f"{path}: key '{key}' is not numeric ({arr[:40]!r})")
    if arr.size != int(np.prod(shape)):
        raise KittiFormatError(f"{path}: key '{key}' has {arr.size} values, expected {int(np.prod(shape))}")
    if not np.all(np.isfinite(arr)):
        raise KittiFormatError(f"{path}: key '{key}' contains NaN or infinity")
    return arr.reshape(shape)


def _homogeneous(M: np.ndarray) -> np.ndarray:
    T = np.eye(4)
    T[: M.shape[0], : M.shape[1]] = M
    return T


def _calib(P: np.ndarray, R0: np.ndarray, Tr: np.ndarray, width: int, height: int, frame_id: str,
           path=None, key: str = "P2", rotations: tuple = ()) -> KittiCalib:
    try:
        camera = CameraModel(width, height, P[:, :3], P=P, frame_id=frame_id)
    except CameraModelError as exc:  # the file's numbers are not a camera: name the file and key
        raise KittiFormatError(f"{path}: key '{key}' is not a usable camera matrix ({exc})") from None
    names = rotations or (f"{path}: key 'R0_rect'", f"{path}: key 'Tr_velo_to_cam'")
    for name, M in zip(names, (R0, Tr[:, :3])):
        try:  # a scaled or sheared rotation would move every LiDAR point: wrong ground truth
            check_rotation(M, name, "the file is corrupt or not KITTI calibration")
        except CameraModelError as exc:
            raise KittiFormatError(str(exc)) from None
    offset = np.eye(4)
    offset[:3, 3] = camera.stereo_offset
    return KittiCalib(camera, offset @ _homogeneous(R0) @ _homogeneous(Tr))


def read_object_calib(path, width: int = KITTI_WIDTH, height: int = KITTI_HEIGHT, cam: int = 2) -> KittiCalib:
    """Object-benchmark calibration file -> KittiCalib for camera `cam` (2 = left colour).

    The file does not state the image size: pass the image's (KITTI images are 1224-1242 wide).
    """
    values = _read_keyed(path)
    P = _get(values, f"P{cam}", (3, 4), path)
    R0 = _get(values, "R0_rect", (3, 3), path)
    Tr = _get(values, "Tr_velo_to_cam", (3, 4), path)
    return _calib(P, R0, Tr, width, height, f"kitti_camera_{cam}", path, f"P{cam}")


def read_raw_calib(directory, cam: int = 2) -> KittiCalib:
    """Raw-data calibration folder (calib_cam_to_cam.txt, calib_velo_to_cam.txt) -> KittiCalib.

    The image size comes from S_rect_0{cam}.
    """
    directory = Path(directory)
    c2c_path = directory / "calib_cam_to_cam.txt"
    v2c_path = directory / "calib_velo_to_cam.txt"
    c2c = _read_keyed(c2c_path)
    v2c = _read_keyed(v2c_path)
    P = _get(c2c, f"P_rect_0{cam}", (3, 4), c2c_path)
    R0 = _get(c2c, "R_rect_00", (3, 3), c2c_path)
    size = _get(c2c, f"S_rect_0{cam}", (2,), c2c_path)
    if not (np.all(size >= 1) and np.allclose(size, np.round(size), rtol=0, atol=1e-3)):
        # a size is whole pixels: 1242.6 is a corrupt line, not something to round to an image size
        raise KittiFormatError(f"{c2c_path}: key 'S_rect_0{cam}' is {size[0]:g} x {size[1]:g}, not a whole "
                               "positive number of pixels; the file is corrupt (KITTI's read, e.g., "
                               "1.242000e+03 3.750000e+02)")
    R = _get(v2c, "R", (3, 3), v2c_path)
    T = _get(v2c, "T", (3, 1), v2c_path)
    return _calib(P, R0, np.hstack([R, T]), int(round(size[0])), int(round(size[1])), f"kitti_camera_{cam}",
                  c2c_path, f"P_rect_0{cam}/S_rect_0{cam}", (f"{c2c_path}: key 'R_rect_00'", f"{v2c_path}: key 'R'"))


def read_velodyne(path) -> np.ndarray:
    """A Velodyne .bin scan -> (N, 4) float32 x, y, z, reflectance in the LiDAR frame."""
    path = Path(path)
    if not path.is_file():
        raise KittiFormatError(f"{path}: no such Velodyne scan")
    size = os.path.getsize(path)
    if size % 16:
        raise KittiFormatError(f"{path}: {size} bytes is not a whole number of (x, y, z, r) float32 points")
    return np.fromfile(path, dtype=np.float32).reshape(-1, 4)


def lidar_to_camera(points_velo, calib: KittiCalib) -> np.ndarray:
    """(N, >=3) LiDAR points -> (N, 3) float64 points in the camera's optical frame."""
    pts = np.asarray(points_velo, dtype=np.float64)[:, :3]
    return pts @ calib.T_cam_velo[:3, :3].T + calib.T_cam_velo[:3, 3]


def project_lidar(points_velo, calib: KittiCalib, width: int | None = None, height: int | None = None,
                  min_depth: float = 0.1):
    """Project LiDAR points into the image.

    Returns (depth, pixel_index): depth float32 (H, W) with the nearest point's z per pixel
    (NaN where none); pixel_index (N,) int64 flat pixel index (v * W + u, rounded) of each point,
    -1 for points behind the camera or outside the image.
    """
    cam = calib.camera
    W = cam.width if width is None else int(width)
    H = cam.height if height is None else int(height)
    pts = lidar_to_camera(points_velo, calib)
    u, v, z = cam.project(pts)
    ok = (z > min_depth) & np.isfinite(u)
    ui = np.full(len(pts), -1, np.int64)
    vi = np.full(len(pts), -1, np.int64)
    ui[ok] = np.rint(u[ok]).astype(np.int64)
    vi[ok] = np.rint(v[ok]).astype(np.int64)
    ok &= (ui >= 0) & (ui < W) & (vi >= 0) & (vi < H)
    pixel_index = np.where(ok, vi * W + ui, -1)
    depth = np.full(H * W, np.nan, np.float32)
    idx = np.flatnonzero(ok)
    order = idx[np.argsort(-z[idx])]  # far first, so the nearest point per pixel is written last
    depth[pixel_index[order]] = z[order]
    return depth.reshape(H, W), pixel_index
