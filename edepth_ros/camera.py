"""Camera model: intrinsics from CameraInfo or KITTI calibration, per-pixel rays, projection.

Conventions (REP 103/104): camera optical frame x right, y down, z forward; pixel (u, v) with
(0, 0) the centre of the top-left pixel. Rays r(u, v) have z = 1, so a point at depth z along the
pixel's ray is X = z * r.

Which matrix gives the rays:
- rectified images (D empty/all zero, or ``rectified=True``): P[:3, :3] when P is set, else K.
  P's translation column (a stereo camera's baseline, KITTI's P2) does not move this camera's
  rays; it is the translation from the reference camera's frame to this camera's frame
  (X_this = X_ref + stereo_offset, so this camera's centre sits at -stereo_offset in the reference
  frame), exposed as ``stereo_offset`` (metres) and used when transforming points from another
  sensor (KITTI LiDAR).
  With R not the identity (a stereo pair), rays are in the rectified frame; ``rect_from_optical``
  rotates optical-frame vectors (a tf ground plane) into it.
- distorted images (non-zero D): K and D, rays undistorted with OpenCV (plumb_bob and
  rational_polynomial through cv2.undistortPoints, equidistant through cv2.fisheye). Projection
  gives NaN for points outside what the image sees: far off axis the distortion polynomial folds
  back, and OpenCV would put such points (a 360-degree LiDAR's) inside the image at other pixels.

Resizing and cropping map pixel centres exactly (u' + 0.5 = s (u + 0.5)), the convention of
cv2.resize, so depth computed on a resized image stays exact.
"""

from __future__ import annotations

from collections import OrderedDict
from functools import lru_cache
from typing import Any, Optional

import numpy as np

from .described import described

SUPPORTED_DISTORTION = {
    "plumb_bob": (4, 5, 8, 12, 14),
    "rational_polynomial": (8, 12, 14),
    "equidistant": (4,),
}

_RAYS_CACHE: "OrderedDict[tuple, np.ndarray]" = OrderedDict()
_RAYS_CACHE_SIZE = 8
_VIEW_CACHE: "OrderedDict[tuple, tuple]" = OrderedDict()
_VIEW_CACHE_SIZE = 64
_VIEW_MARGIN_PX = 2.0  # how far beyond its edges' box a distorted camera still projects points (pixels)
_MAX_PIXELS = 2 ** 27
_CENTRAL = (0.05, 0.95)  # where a CameraInfo's principal point may lie, as a fraction of the size
_UNDISTORT_TOLERANCE_PX = 0.05  # a sound calibration inverts to ~1e-4 px; a folded one is off by pixels


class CameraModelError(ValueError):
    """The camera calibration is unusable; the message names the field and what to do."""


def _matrix(value, shape, field: str) -> np.ndarray:
    try:  # a copy: a model must not change when the caller reuses its buffer (the caches key on it)
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise CameraModelError(f"{field}: not numeric ({exc})") from None
    if arr.size != shape[0] * shape[1]:
        raise CameraModelError(
            f"{field}: has {arr.size} values, expected {shape[0] * shape[1]} (a {shape[0]}x{shape[1]} "
            "row-major matrix)"
        )
    arr = arr.reshape(shape)
    if not np.all(np.isfinite(arr)):
        raise CameraModelError(f"{field}: contains NaN or infinity; recalibrate the camera")
    return arr


def _vector(value, field: str) -> np.ndarray:
    try:  # a copy, as _matrix
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise CameraModelError(f"{field}: not numeric ({exc})") from None
    if arr.ndim > 1:
        raise CameraModelError(f"{field}: has shape {arr.shape}; expected a flat list of numbers")
    if not np.all(np.isfinite(arr)):
        raise CameraModelError(f"{field}: contains NaN or infinity; recalibrate the camera")
    return arr.ravel()


@lru_cache(maxsize=64)
def _fold_radius(distortion_model: str, D: tuple) -> float:
    """The normalised radius |(x/z, y/z)| up to which the radial distortion keeps moving points
    outwards (inf when it always does). Beyond it the polynomial folds back: points there land at
    the pixels of points nearer the axis. Tangential and thin-prism terms are left out (small
    wherever a calibration holds; the view's bounds keep projection there)."""
    r = np.geomspace(1e-3, 1e6, 30001)  # steps of 0.07%
    k = np.zeros(14)
    k[:len(D)] = D
    with np.errstate(all="ignore"):
        if distortion_model == "equidistant":
            t = np.arctan(r)
            t2 = t * t
            g = t * (1 + t2 * (k[0] + t2 * (k[1] + t2 * (k[2] + t2 * k[3]))))
            valid = np.isfinite(g)
        else:  # plumb_bob, rational_polynomial: k1 k2 p1 p2 k3 k4 k5 k6 ...
            r2 = r * r
            den = 1 + r2 * (k[5] + r2 * (k[6] + r2 * k[7]))
            g = r * (1 + r2 * (k[0] + r2 * (k[1] + r2 * k[4]))) / den
            valid = np.isfinite(g) & (den > 0)
        grows = valid[:-1] & valid[1:] & (np.diff(g) > 0)
    fold = np.flatnonzero(~grows)
    return float(r[fold[0]]) if fold.size else float("inf")


def _check_intrinsics(Kmat: np.ndarray, field: str) -> None:
    if not np.any(Kmat):
        raise CameraModelError(
            f"{field}: all zeros; the camera is not calibrated (run camera_calibration and publish "
            "its CameraInfo)"
        )
    for name, value in (("fx", Kmat[0, 0]), ("fy", Kmat[1, 1])):
        if not value > 0:
            raise CameraModelError(
                f"{field}: {name} is {value:g}; focal lengths must be positive (the camera is not "
                "calibrated, or the matrix is not row-major)"
            )
    for name, value in (("fx", Kmat[0, 0]), ("fy", Kmat[1, 1])):
        if not 1e-3 <= value <= 1e7:  # beyond this, float32 rays overflow: no real camera is there
            raise CameraModelError(f"{field}: {name} is {value:g} pixels, outside the plausible 1e-3 to 1e7; "
                                   "the calibration is corrupt or in other units")
    if abs(Kmat[0, 1]) > Kmat[0, 0]:
        raise CameraModelError(f"{field}: skew {Kmat[0, 1]:g} exceeds fx {Kmat[0, 0]:g}; the calibration is corrupt")
    if Kmat[1, 0] != 0 or Kmat[2, 0] != 0 or Kmat[2, 1] != 0 or abs(Kmat[2, 2] - 1) > 1e-9:
        raise CameraModelError(
            f"{field}: bottom-left entries must be 0 and the last 1 ([fx s cx; 0 fy cy; 0 0 1]), "
            f"got {Kmat.tolist()}"
        )


def check_rotation(R: np.ndarray, field: str, what: str = "publish the rectification rotation from "
                   "camera_calibration, or the identity for a monocular camera") -> np.ndarray:
    """Return R if it is a rotation matrix, else raise CameraModelError naming `field`."""
    # a non-rotation R would tilt or scale every ray: silently wrong depth, so refuse it
    with np.errstate(all="ignore"):
        ok = bool(np.abs(R).max() <= 1.0 + 1e-3 and np.allclose(R @ R.T, np.eye(3), atol=1e-3)
                  and np.linalg.det(R) > 0)
    if not ok:
        raise CameraModelError(
            f"{field}: {np.round(R, 6).tolist()} is not a rotation matrix (R R^T = I, det R = +1); {what}"
        )
    return R


def _check_principal_point(M: np.ndarray, width: int, height: int, field: str) -> None:
    cx, cy = M[0, 2], M[1, 2]
    if not (-0.5 <= cx <= width - 0.5 and -0.5 <= cy <= height - 0.5):
        raise CameraModelError(
            f"{field}: principal point ({cx:g}, {cy:g}) lies outside the {width}x{height} image; "
            "the calibration is for another resolution (scale it, or give the matching width/height)"
        )


def _check_principal_point_central(M: np.ndarray, width: int, height: int, field: str) -> None:
    # a calibration published with another resolution's width/height (a binned or decimated image
    # with binning_x/y left 0) still has its principal point inside, but near an edge
    fx, fy = (M[0, 2] + 0.5) / width, (M[1, 2] + 0.5) / height  # pixel centres: (w - 1) / 2 is 50%
    if not (_CENTRAL[0] <= fx <= _CENTRAL[1] and _CENTRAL[0] <= fy <= _CENTRAL[1]):
        raise CameraModelError(
            f"{field}: principal point ({M[0, 2]:g}, {M[1, 2]:g}) lies at {100 * fx:.0f}% / {100 * fy:.0f}% "
            f"of the {width}x{height} image, where no lens has it; width/height are likely of another "
            "resolution than K (a binned image needs binning_x/y set, a cropped one its roi)"
        )


def _binning(value, field: str, size: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= int(value) <= size:
        raise CameraModelError(f"{field}: {value!r}; binning is an integer from 0 (= 1, none) up to the "
                               f"image size {size}")
    return int(value) or 1


def _size(value, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) <= 0:
        raise CameraModelError(f"{field}: {value!r}; image sizes must be positive integers")
    return int(value)


def require_camera_model(camera, error: type = TypeError, expected: str = "the image's CameraModel") -> "CameraModel":
    """``camera`` when it is a CameraModel, else ``error`` naming what was passed and how to build
    one (the caches of rays and plane depth key on ``CameraModel.key()``, which nothing else has)."""
    if not isinstance(camera, CameraModel):
        raise error(f"camera: expected {expected}, got {described(camera)}; build it with "
                    "CameraModel.from_camera_info(info) or CameraModel.from_intrinsics(fx, fy, cx, cy, width, height)")
    return camera


class CameraModel:
    """A calibrated camera: intrinsics at one image size, rays, projection.

    A value: its arrays are read-only and its attributes cannot be reassigned once built (the
    derived models, resized() and cropped(), are new objects), so its key and cached rays stay
    true; equal models (same size, matrices, distortion) share cached rays.
    """

    def __setattr__(self, name, value):
        if self.__dict__.get("_sealed") and name != "_rays":
            raise AttributeError(f"CameraModel.{name}: a camera model cannot change once built (its cached "
                                 "rays would not follow); build another with CameraModel(...), resized() or "
                                 "cropped()")
        object.__setattr__(self, name, value)

    def __init__(self, width: int, height: int, K, D=None, R=None, P=None,
                 distortion_model: str = "plumb_bob", frame_id: str = "",
                 rectified: Optional[bool] = None):
        self.width = _size(width, "width")
        self.height = _size(height, "height")
        if self.width * self.height > _MAX_PIXELS:  # rays are 12 bytes a pixel: refuse before allocating
            raise CameraModelError(f"width x height: {self.width}x{self.height} is more than the "
                                   f"{_MAX_PIXELS / 1e6:.0f} megapixels of any camera; the size fields are corrupt")
        self.frame_id = str(frame_id)
        K = _matrix(K, (3, 3), "K")
        D = np.zeros(0) if D is None else _vector(D, "D")
        self.R = np.eye(3) if R is None or not np.any(np.asarray(R)) else check_rotation(_matrix(R, (3, 3), "R"), "R")
        Pm = None if P is None or not np.any(np.asarray(P, dtype=np.float64)) else _matrix(P, (3, 4), "P")
        has_distortion = bool(np.any(D))
        self.rectified = (not has_distortion) if rectified is None else bool(rectified)
        if self.rectified:
            if Pm is not None:
                Kr = Pm[:, :3].copy()
                _check_intrinsics(Kr, "P[:3, :3]")
                _check_principal_point(Kr, self.width, self.height, "P")
                self.stereo_offset = np.linalg.solve(Kr, Pm[:, 3])
            else:
                _check_intrinsics(K, "K")
                _check_principal_point(K, self.width, self.height, "K")
                Kr = K
                self.stereo_offset = np.zeros(3)
            self.K = Kr
            self.D = np.zeros(0)
            self.distortion_model = distortion_model or "plumb_bob"
        else:
            _check_intrinsics(K, "K")
            _check_principal_point(K, self.width, self.height, "K")
            model = distortion_model or "plumb_bob"
            if model not in SUPPORTED_DISTORTION:
                raise CameraModelError(
                    f"distortion_model: '{model}' is not supported for unrectified images "
                    f"(supported: {sorted(SUPPORTED_DISTORTION)}); feed the rectified image "
                    "(image_proc's image_rect) and its P instead"
                )
            if D.size not in SUPPORTED_DISTORTION[model]:
                raise CameraModelError(
                    f"D: {D.size} coefficients for distortion_model '{model}', expected one of "
                    f"{SUPPORTED_DISTORTION[model]}"
                )
            self.K = K
            self.D = D
            self.distortion_model = model
            self.stereo_offset = np.zeros(3)
        self.P = Pm
        self._freeze()
        self._rays: Optional[np.ndarray] = None
        if not self.rectified:
            self.rays()  # undistorted once per model, here, so an uninvertible D is refused at once
        self._sealed = True

    def _freeze(self) -> None:
        """A model is a value: its arrays are read-only, so the caches keyed on them stay true."""
        for arr in (self.K, self.D, self.R, self.P, self.stereo_offset):
            if arr is not None:
                arr.flags.writeable = False

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_intrinsics(cls, fx: float, fy: float, cx: float, cy: float, width: int, height: int,
                        frame_id: str = "") -> "CameraModel":
        return cls(width, height, [[fx, 0, cx], [0, fy, cy], [0, 0, 1]], frame_id=frame_id)

    @classmethod
    def from_camera_info(cls, info: Any = None, *, width=None, height=None, k=None, d=None,
                         r=None, p=None, distortion_model=None, binning_x=0, binning_y=0,
                         roi=None, frame_id=None, rectified: Optional[bool] = None) -> "CameraModel":
        """From a sensor_msgs/CameraInfo (rclpy or rosbags message, duck-typed) or its plain fields.

        Keyword fields override the message's. K, P, ROI are at the calibration resolution
        (`width` x `height`); the model returned is for the image actually published: the ROI
        cropped out, then binned (ROS semantics). `rectified`: None decides from D (all zero =
        rectified); pass True for an image_rect topic whose CameraInfo still carries D.
        """
        def field(name, given):
            if given is not None:
                return given
            if info is None:
                return None
            for attr in (name, name.upper()):
                if hasattr(info, attr):
                    return getattr(info, attr)
            return None

        width = field("width", width)
        height = field("height", height)
        k, d, r, p = field("k", k), field("d", d), field("r", r), field("p", p)
        distortion_model = field("distortion_model", distortion_model) or "plumb_bob"
        if info is not None:
            binning_x = binning_x or getattr(info, "binning_x", 0)
            binning_y = binning_y or getattr(info, "binning_y", 0)
            roi = roi if roi is not None else getattr(info, "roi", None)
            if frame_id is None:
                frame_id = getattr(getattr(info, "header", None), "frame_id", "")
        if width is None or height is None or k is None:
            raise CameraModelError("CameraInfo: width, height and K are required")
        width = _size(width, "CameraInfo.width")
        height = _size(height, "CameraInfo.height")
        Kmat = _matrix(k, (3, 3), "CameraInfo.K")
        d = None if d is None else _vector(d, "CameraInfo.D")
        p = None if p is None else _vector(p, "CameraInfo.P")
        try:
            _check_intrinsics(Kmat, "CameraInfo.K")
        except CameraModelError as exc:
            # a valid P can stand in for an unset K only on rectified images: undistorting needs K
            has_p = p is not None and np.any(p)
            has_d = d is not None and np.any(d)
            if not has_p:
                raise exc
            if rectified is False or (rectified is None and has_d):
                raise CameraModelError(
                    f"{exc}; CameraInfo.P cannot stand in for K here: D is non-zero, so the image is "
                    "distorted and undistorting it needs K (feed image_rect with rectified=True, or "
                    "publish the calibrated K)") from None
        Pmat = None
        if p is not None and np.any(p):
            Pmat = _matrix(p, (3, 4), "CameraInfo.P")
        for name, M in (("CameraInfo.K", Kmat), ("CameraInfo.P", Pmat)):
            if M is not None and M[0, 0] > 0:
                _check_principal_point(M, width, height, name)
                _check_principal_point_central(M, width, height, name)
        bx = _binning(binning_x, "CameraInfo.binning_x", width)
        by = _binning(binning_y, "CameraInfo.binning_y", height)
        x0, y0, rw, rh = _roi_tuple(roi)
        if (rw == 0) != (rh == 0):
            raise CameraModelError(f"CameraInfo.roi: {rw}x{rh}; give both width and height, or neither "
                                   "(all zero = the full image)")
        if rw == 0:
            x0, y0, rw, rh = 0, 0, width, height
        if x0 < 0 or y0 < 0 or x0 + rw > width or y0 + rh > height:
            raise CameraModelError(
                f"CameraInfo.roi: x {x0}, y {y0}, {rw}x{rh} does not fit the {width}x{height} image"
            )
        model = cls(width, height, Kmat if np.any(Kmat) else Pmat[:, :3], d, r, Pmat,
                    distortion_model, frame_id or "", rectified)
        if (x0, y0, rw, rh) != (0, 0, width, height):
            model = model.cropped(x0, y0, rw, rh)
        if bx != 1 or by != 1:
            model = model.resized(rw // bx, rh // by, scale=(1.0 / bx, 1.0 / by))
        return model

    # ----------------------------------------------------------------- derived models
    def _affine(self, A: np.ndarray, width: int, height: int) -> "CameraModel":
        P = None if self.P is None else A @ self.P
        K = A @ self.K
        new = CameraModel.__new__(CameraModel)
        new.__dict__.update(self.__dict__, _sealed=False)
        new.width, new.height = _size(width, "width"), _size(height, "height")
        new.K, new.P, new._rays = K, P, None
        new._freeze()
        new._sealed = True
        return new

    def resized(self, width: int, height: int, scale: Optional[tuple] = None) -> "CameraModel":
        """The model of this image resized to (width, height) (pixel centres mapped exactly).

        `scale` (sx, sy) overrides width/self.width, for binning where the size is rounded down.
        """
        sx, sy = scale if scale is not None else (width / self.width, height / self.height)
        A = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1.0]])
        return self._affine(A, width, height)

    def cropped(self, x: int, y: int, width: int, height: int) -> "CameraModel":
        """The model of the sub-image with top-left pixel (x, y) and size (width, height)."""
        A = np.array([[1.0, 0, -x], [0, 1.0, -y], [0, 0, 1.0]])
        return self._affine(A, width, height)

    # ----------------------------------------------------------------- properties
    fx = property(lambda self: float(self.K[0, 0]))
    fy = property(lambda self: float(self.K[1, 1]))
    cx = property(lambda self: float(self.K[0, 2]))
    cy = property(lambda self: float(self.K[1, 2]))
    shape = property(lambda self: (self.height, self.width))

    @property
    def separable(self) -> bool:
        """True when ray x depends on u only and ray y on v only (pinhole, no skew, no distortion)."""
        return self.rectified and self.K[0, 1] == 0

    @property
    def rect_from_optical(self) -> np.ndarray:
        """Rotation taking optical-frame vectors into the frame the rays are in (R when rectified)."""
        return self.R if self.rectified else np.eye(3)

    def key(self) -> tuple:
        return (self.width, self.height, self.K.tobytes(), self.D.tobytes(),
                self.distortion_model, self.rectified, self.rect_from_optical.tobytes())

    def __eq__(self, other) -> bool:
        return isinstance(other, CameraModel) and self.key() == other.key()

    def __hash__(self) -> int:
        return hash(self.key())

    def __repr__(self) -> str:
        kind = "rectified" if self.rectified else f"distorted {self.distortion_model}"
        return (f"CameraModel({self.width}x{self.height}, fx={self.fx:.4g}, fy={self.fy:.4g}, "
                f"cx={self.cx:.4g}, cy={self.cy:.4g}, {kind})")

    def check_image_size(self, height: int, width: int, what: str = "image") -> None:
        if (int(height), int(width)) != (self.height, self.width):
            raise CameraModelError(
                f"{what}: {width}x{height} does not match the camera model's {self.width}x{self.height}; "
                "the CameraInfo belongs to another resolution (check binning/ROI, or resize the model)"
            )

    # ----------------------------------------------------------------- rays
    def ray_axes(self) -> tuple[np.ndarray, np.ndarray]:
        """For separable models: (x(u) of shape (W,), y(v) of shape (H,)), float64, ray = (x, y, 1)."""
        if not self.separable:
            raise CameraModelError("ray_axes: this camera has skew or distortion; use rays()")
        y = (np.arange(self.height) - self.cy) / self.fy
        x = (np.arange(self.width) - self.cx) / self.fx
        return x, y

    def rays(self) -> np.ndarray:
        """Per-pixel rays, float32 (H, W, 3) with z = 1, cached per camera model (read-only)."""
        if self._rays is not None:
            return self._rays
        key = self.key()
        rays = _RAYS_CACHE.get(key)
        if rays is None:
            rays = self._compute_rays()
            rays.setflags(write=False)
            _RAYS_CACHE[key] = rays
            while len(_RAYS_CACHE) > _RAYS_CACHE_SIZE:
                _RAYS_CACHE.popitem(last=False)
        else:
            _RAYS_CACHE.move_to_end(key)
        self._rays = rays
        return rays

    def _compute_rays(self) -> np.ndarray:
        H, W = self.height, self.width
        out = np.empty((H, W, 3), np.float32)
        out[..., 2] = 1.0
        if self.rectified:
            y = (np.arange(H) - self.cy) / self.fy
            x = (np.arange(W)[None, :] - self.cx - self.K[0, 1] * y[:, None]) / self.fx
            out[..., 0] = x
            out[..., 1] = y[:, None]
            return out
        import cv2

        uu, vv = np.meshgrid(np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64))
        # the outline at the pixels' outer edges too: resized and cropped models' pixel centres
        # lie inside it, so checking it here covers them
        eu, ev = np.arange(-0.5, W, 1.0), np.arange(-0.5, H, 1.0)
        outline = np.concatenate([np.stack([eu, np.full_like(eu, edge)], 1) for edge in (-0.5, H - 0.5)]
                                 + [np.stack([np.full_like(ev, edge), ev], 1) for edge in (-0.5, W - 0.5)])
        pixels = np.concatenate([np.stack([uu.ravel(), vv.ravel()], axis=1), outline])
        und = self._undistort(pixels)
        self._check_undistortion(und, pixels)
        out[..., :2] = und[: H * W].reshape(H, W, 2)
        return out

    def _undistort(self, pixels: np.ndarray) -> np.ndarray:
        """(N, 2) pixels of a distorted camera -> (N, 2) normalised coordinates (x/z, y/z)."""
        import cv2

        crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-10)
        if self.distortion_model == "equidistant":
            und = cv2.fisheye.undistortPoints(pixels.reshape(-1, 1, 2), self.K, self.D, criteria=crit)
        else:
            und = cv2.undistortPoints(pixels.reshape(-1, 1, 2), self.K, self.D, criteria=crit)
        return und.reshape(-1, 2)

    def _distort(self, points_cam: np.ndarray) -> np.ndarray:
        """(N, 3) points in front of a distorted camera -> (N, 2) pixels, OpenCV's model as is (it
        folds far off axis; project() keeps such points out)."""
        import cv2

        obj = points_cam.reshape(-1, 1, 3)
        zero = np.zeros(3)
        if self.distortion_model == "equidistant":
            img, _ = cv2.fisheye.projectPoints(obj, zero, zero, self.K, self.D)
        else:
            img, _ = cv2.projectPoints(obj, zero, zero, self.K, self.D)
        return img.reshape(-1, 2)

    def _view_bounds(self) -> tuple[float, float, float, float, float]:
        """(x_lo, x_hi, y_lo, y_hi, r_fold) of a distorted camera, normalised (x/z, y/z): the box its
        pixels see, widened by _VIEW_MARGIN_PX pixels, and the radius where its distortion folds back."""
        key = self.key()
        bounds = _VIEW_CACHE.get(key)
        if bounds is not None:
            _VIEW_CACHE.move_to_end(key)
            return bounds
        W, H = self.width, self.height
        # each side's outer edge and the pixel centres half a pixel inside it: their difference is
        # half a pixel there in normalised units, the distortion's stretch included
        vs = np.concatenate([[-0.5], np.arange(H), [H - 0.5]])
        us = np.concatenate([[-0.5], np.arange(W), [W - 0.5]])
        vc, uc = np.clip(vs, 0, H - 1), np.clip(us, 0, W - 1)
        sides = [(np.full_like(vs, edge), vs, np.full_like(vs, inner), vc)
                 for edge, inner in ((-0.5, 0), (W - 0.5, W - 1))]
        sides += [(us, np.full_like(us, edge), uc, np.full_like(us, inner))
                  for edge, inner in ((-0.5, 0), (H - 0.5, H - 1))]
        pixels = np.concatenate([np.stack([eu, ev], 1) for eu, ev, _, _ in sides]
                                + [np.stack([iu, iv], 1) for _, _, iu, iv in sides])
        und = self._undistort(pixels)
        self._check_undistortion(und, pixels)  # an uninvertible D is named here, not left as a NaN box
        n = len(pixels) // 2
        edge, inner = und[:n], und[n:]
        wide = edge + 2 * _VIEW_MARGIN_PX * (edge - inner)
        a, b, c = len(vs), 2 * len(vs), 2 * len(vs) + len(us)
        bounds = (float(wide[:a, 0].min()), float(wide[a:b, 0].max()), float(wide[b:c, 1].min()),
                  float(wide[c:, 1].max()), _fold_radius(self.distortion_model, tuple(self.D.tolist())))
        _VIEW_CACHE[key] = bounds
        while len(_VIEW_CACHE) > _VIEW_CACHE_SIZE:
            _VIEW_CACHE.popitem(last=False)
        return bounds

    def _check_undistortion(self, und: np.ndarray, pixels: np.ndarray) -> None:
        # strong D folds the distortion curve back on itself inside the image: OpenCV's iteration
        # then returns rays of other pixels (or overflows), which would give finite wrong depth
        with np.errstate(all="ignore"):
            finite = np.isfinite(und).all(axis=1) & (np.abs(und) < 1e6).all(axis=1)
            rays = np.concatenate([np.where(finite[:, None], und, 0.0), np.ones((len(und), 1))], axis=1)
            u, v = self._distort(rays).T
            err = np.where(finite, np.hypot(u - pixels[:, 0], v - pixels[:, 1]), np.inf)
        bad = ~(err <= _UNDISTORT_TOLERANCE_PX)
        if bad.any():
            worst = pixels[np.argmax(np.nan_to_num(err, nan=np.inf))]
            raise CameraModelError(
                f"D: {self.distortion_model} coefficients {self.D.tolist()} cannot be inverted over the "
                f"{self.width}x{self.height} image: the rays of {np.count_nonzero(bad)} of {len(pixels)} points "
                f"checked (pixel centres and the image's edges; e.g. u={worst[0]:g}, v={worst[1]:g}) do not "
                f"project back within {_UNDISTORT_TOLERANCE_PX} px; the calibration is wrong or for another "
                "resolution, or the lens sees more than 90 deg off its axis, where a ray has no depth z "
                "(recalibrate, or feed the rectified image_rect and its P)"
            )

    # ----------------------------------------------------------------- projection
    def project(self, points_cam) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Project (N, 3) points in this camera's frame: (u, v, z); u, v NaN where z <= 0 and, for a
        distorted camera, where the point lies outside what the image sees (the box of normalised
        coordinates its pixels cover, widened by _VIEW_MARGIN_PX pixels) or past the radius where the
        distortion folds back."""
        pts = np.asarray(points_cam, dtype=np.float64).reshape(-1, 3)
        z = pts[:, 2]
        front = z > 0
        u = np.full(len(pts), np.nan)
        v = np.full(len(pts), np.nan)
        if self.rectified:
            xn = pts[front, 0] / z[front]
            yn = pts[front, 1] / z[front]
            u[front] = self.K[0, 0] * xn + self.K[0, 1] * yn + self.K[0, 2]
            v[front] = self.K[1, 1] * yn + self.K[1, 2]
        elif front.any():
            # far off axis the distortion polynomial folds back and OpenCV puts points (a 360-degree
            # LiDAR's) inside the image at other pixels' places: only what the image sees is projected
            x_lo, x_hi, y_lo, y_hi, r_fold = self._view_bounds()
            idx = np.flatnonzero(front)
            xn, yn = pts[idx, 0] / z[idx], pts[idx, 1] / z[idx]
            seen = (xn >= x_lo) & (xn <= x_hi) & (yn >= y_lo) & (yn <= y_hi) & (xn * xn + yn * yn < r_fold * r_fold)
            idx = idx[seen]
            if idx.size:
                img = self._distort(pts[idx])
                u[idx], v[idx] = img[:, 0], img[:, 1]
        return u, v, z


def _roi_tuple(roi) -> tuple[int, int, int, int]:
    """(x_offset, y_offset, width, height) from a RegionOfInterest-like object, dict or tuple."""
    if roi is None:
        return 0, 0, 0, 0
    try:
        if isinstance(roi, dict):
            vals = tuple(int(roi.get(k, 0)) for k in ("x_offset", "y_offset", "width", "height"))
        elif hasattr(roi, "x_offset"):
            vals = (int(roi.x_offset), int(roi.y_offset), int(roi.width), int(roi.height))
        else:
            vals = tuple(int(v) for v in roi)
    except (TypeError, ValueError):
        vals = ()
    if len(vals) != 4 or min(vals) < 0:
        raise CameraModelError(f"CameraInfo.roi: {roi!r}; expected (x_offset, y_offset, width, height), "
                               "non-negative integers")
    return vals
